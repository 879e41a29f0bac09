"""Cold and warm turns (``--turns N``): every turn against the reference server's per-turn ground truth.

The server answers turn 1 after a fixed cold first-audio delay and every
later turn of the session after a shorter fixed warm one, so each turn's
``input_to_audio_ms`` must match the server's own interval for that turn,
and ``cold_penalty_ms`` the injected difference. Generous bounds, as in
test_accuracy.py: the measured accuracy is bench/accuracy.py's business.
"""

from __future__ import annotations

import csv
import statistics

import pytest

from bootbench.samples import MULTI_TURN_FIELDS, PHASES, SAMPLE_FIELDS, TURN_PHASES, Sample, Turn, cold_penalty
from bootbench.stats import summarize, summarize_groups
from support.cli import bootbench
from support.ground_truth import SHARED_LEADING_MS, SHARED_RUN_SERVER, ground_truth_run
from support.processes import read_jsonl, run_locust
from support.provider_table import IN_SHARED_RUNS

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, COLD_MS, WARM_MS, REPLY_MS = 30.0, 120.0, 40.0, 200
BOUND_MS = 15.0
"""How far a sample may be from the server's own interval (test_accuracy.py's 10 ms, plus the few ms the server
takes to parse a 1 s clip before it stamps the end of the turn that follows it, on a machine shared by many)."""
INJECTED_BOUND_MS = 15.0
"""How far the server's own interval, or a difference of two samples, may be from what was injected."""
ITERATIONS, TURNS = 4, 3
REALTIME_ITERATIONS = 2
"""At real-time pace each turn streams its 1 s clip: two iterations (a new connection, then a warm one) of three
turns take about 11 s where four took 22."""
UNDERRUN_ALLOWANCE_MS = 25.0
"""How much later than the server's schedule playback may run on a shared, loaded machine (test_audible_runs.py)."""


def test_the_shared_run_has_the_delays_these_tests_expect():
    server = SHARED_RUN_SERVER
    assert [float(server[k]) for k in ("setup_delay", "first_audio_delay", "warm_first_audio_delay")] == [
        SETUP_MS, COLD_MS, WARM_MS]
    assert (server["reply_ms"], server["cold_penalty"]) == (REPLY_MS, 0)


def server_for_turns(reference_server, **extra):
    return reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(COLD_MS),
                            warm_first_audio_delay=str(WARM_MS), cold_penalty=0, reply_ms=REPLY_MS, **extra)


def check_every_turn(run, burst: bool, leading_ms: float = 0.0, iterations: int = ITERATIONS) -> None:
    """Each turn of each sample against the server's record of its session; the CSVs, report and compare agree."""
    metrics = run.metrics
    samples = run.samples
    sessions = run.ok_sessions()
    assert len(samples) == len(sessions) == iterations
    assert run.violations == 0 and run.notes == 0
    for sample, session in zip(samples, sessions):
        assert sample["ok"], sample
        turns, truth = sample["turns"], session["turns"]
        assert [t["turn"] for t in turns] == [t["turn"] for t in truth] == [1, 2, 3]
        assert [t["first_audio_delay_ms"] for t in truth] == [COLD_MS, WARM_MS, WARM_MS]
        for mine, theirs in zip(turns, truth):
            assert mine["input_to_audio_ms"] == pytest.approx(theirs["measured"]["input_to_audio_ms"], abs=BOUND_MS)
            assert mine["reply_ms"] == pytest.approx(theirs["measured"]["reply_ms"], abs=BOUND_MS)
            if leading_ms == 0:  # the reply starts audible (no leading silence): each turn is heard as it arrives
                assert mine["input_to_audible_ms"] == pytest.approx(mine["input_to_audio_ms"], abs=BOUND_MS)
            else:  # heard after the leading silence, or later when playback underran (test_audible_runs.py's bound)
                late = mine["input_to_audible_ms"] - mine["input_to_audio_ms"] - leading_ms
                assert -1 <= late <= UNDERRUN_ALLOWANCE_MS, (mine, theirs)
            if burst:  # the clip is one message, so the server's interval is the injected delay
                assert theirs["measured"]["input_to_audio_ms"] == pytest.approx(theirs["first_audio_delay_ms"],
                                                                                abs=INJECTED_BOUND_MS)
        assert sample["input_to_audio_ms"] == turns[0]["input_to_audio_ms"]
        assert session["measured"]["input_to_audio_ms"] == truth[0]["measured"]["input_to_audio_ms"]
        assert sample["cold_penalty_ms"] == pytest.approx(COLD_MS - WARM_MS, abs=INJECTED_BOUND_MS)
        assert sample["first_response_ms"] == pytest.approx(session["measured"]["first_response_ms"], abs=BOUND_MS)

        assert [t["clip"] for t in turns] == [sample["clip"]] * TURNS  # one clip: every turn sends it

    phases = metrics["summary"]["phases"]
    assert phases["cold_penalty_ms"]["count"] == iterations
    assert phases["warm_input_to_audio_ms"]["count"] == iterations * (TURNS - 1)
    warm_audible = [t["input_to_audible_ms"] for s in samples for t in s["turns"][1:]]
    assert phases["warm_input_to_audible_ms"]["count"] == iterations * (TURNS - 1)
    assert phases["warm_input_to_audible_ms"]["median"] == pytest.approx(statistics.median(warm_audible))
    assert phases["cold_penalty_ms"]["median"] == pytest.approx(COLD_MS - WARM_MS, abs=INJECTED_BOUND_MS)
    low, high = phases["cold_penalty_ms"]["ci95_median"]
    assert low <= phases["cold_penalty_ms"]["median"] <= high
    assert metrics["run"]["turns"] == TURNS
    assert "cold penalty: median" in run.stdout

    folder = run.folder
    with open(folder / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["turn3_input_to_audio_ms"]) for r in rows] == pytest.approx(  # the CSV keeps 3 decimals
        [s["turns"][2]["input_to_audio_ms"] for s in samples], abs=0.001)
    assert [float(r["cold_penalty_ms"]) for r in rows] == pytest.approx([s["cold_penalty_ms"] for s in samples],
                                                                       abs=0.001)
    with open(folder / "summary.csv") as f:
        summary_rows = {r["phase"]: r for r in csv.DictReader(f)}
    assert set(summary_rows) == {*PHASES, *TURN_PHASES}
    assert float(summary_rows["cold_penalty_ms"]["median"]) == pytest.approx(phases["cold_penalty_ms"]["median"],
                                                                              abs=0.001)
    report = (folder / "report.html").read_text()
    assert 'id="turns"' in report and 'data-plot="cold-warm"' in report and 'data-plot="cold-penalty"' in report
    compared = bootbench("compare", "--markdown", folder)
    assert compared.returncode == 0, compared.stderr
    header, _, row = compared.stdout.splitlines()[:3]
    cells = dict(zip((c.strip() for c in header.split("|")), (c.strip() for c in row.split("|"))))
    assert float(cells["Cold penalty median (ms)"]) == pytest.approx(phases["cold_penalty_ms"]["median"], abs=0.05)
    assert float(cells["Warm input→audio median (ms)"]) == pytest.approx(
        phases["warm_input_to_audio_ms"]["median"], abs=0.05)
    # Locust's own request counts (its CSV may miss the last iteration's events): one warm request per warm turn
    assert run.request_counts["warm_input_to_audio_ms"] == (TURNS - 1) * run.request_counts["first_response_ms"] > 0
    assert run.request_counts["warm_input_to_audible_ms"] == run.request_counts["warm_input_to_audio_ms"]


@pytest.mark.parametrize("provider", IN_SHARED_RUNS)
def test_every_turn_matches_the_servers_ground_truth(shared_ground_truth_run, provider):
    """The session's shared ground-truth run (tests/conftest.py): burst pace, 230 ms of leading silence."""
    check_every_turn(shared_ground_truth_run(provider), burst=True, leading_ms=SHARED_LEADING_MS)


def test_every_turn_matches_the_servers_ground_truth_at_realtime_pace(shared_reference_server, tmp_path):
    # answered at the end of each turn, as the embedded server does at this pace: an answer from the first chunk
    # comes before the input ended, and has no input phases (tests/test_answer_overlap.py)
    server = server_for_turns(shared_reference_server, extra_args=("--reply-after", "end-of-turn"))
    run = ground_truth_run(server, tmp_path / "r", "-i", str(REALTIME_ITERATIONS), "--turns", str(TURNS),
                           "--pace", "realtime")
    check_every_turn(run, burst=False, iterations=REALTIME_ITERATIONS)


def test_one_turn_writes_what_it_always_did(shared_reference_server, tmp_path):
    server = server_for_turns(shared_reference_server)
    run = ground_truth_run(server, tmp_path / "r", "-i", "3")
    assert run.exit_code == 0, run.stderr[-3000:]
    single_turn_keys = [f for f in SAMPLE_FIELDS if f not in MULTI_TURN_FIELDS]
    for sample in [*run.metrics["samples"], *read_jsonl(run.folder / "samples.jsonl")]:
        assert list(sample) == single_turn_keys
    with open(run.folder / "samples.csv") as f:
        assert next(csv.reader(f)) == single_turn_keys
    with open(run.folder / "summary.csv") as f:
        assert [r["phase"] for r in csv.DictReader(f)] == list(PHASES)
    assert list(run.metrics["summary"]["phases"]) == list(PHASES)
    assert "cold penalty" not in run.stdout and 'id="turns"' not in (run.folder / "report.html").read_text()
    assert len(run.ok_sessions()) == 3
    for session in run.ok_sessions():  # the server saw one turn per session, answered after the cold delay
        assert [t["turn"] for t in session["turns"]] == [1]
        assert session["turns"][0]["first_audio_delay_ms"] == COLD_MS


def test_a_failed_warm_turn_fails_the_iteration_and_keeps_the_cold_figures(reference_server, tmp_path):
    server = reference_server(setup_delay="30", first_audio_delay="60", warm_first_audio_delay="900",
                              cold_penalty=0, reply_ms=120)
    run = run_locust("-u", "1", "-i", "2", "--turns", "3", "--provider", "openai", "--timeout", "0.5",
                     "-H", server.url, "--results-dir", str(tmp_path / "r"), "--csv", str(tmp_path / "locust"),
                     cwd=tmp_path)
    assert run.returncode == 1, run.stderr[-3000:]
    samples = sorted(run.metrics["samples"], key=lambda s: s["iteration"])
    sessions = sorted((r for r in read_jsonl(server.ground_truth) if r["session"] is not None),
                      key=lambda r: r["t_ns"]["start_received"])
    assert len(samples) == len(sessions) == 2
    for sample, session in zip(samples, sessions):
        assert not sample["ok"] and sample["error_kind"] == "audio_timeout"
        assert sample["error"].startswith("turn 2: ")
        assert session["turns"][0]["first_audio_delay_ms"] == 60 and session["turns"][1]["first_audio_delay_ms"] == 900
        assert sample["input_to_audio_ms"] == pytest.approx(session["measured"]["input_to_audio_ms"], abs=BOUND_MS)
        assert [t["turn"] for t in sample["turns"]] == [1, 2]
        assert sample["turns"][0]["reply_ms"] is not None and sample["turns"][1]["input_to_audio_ms"] is None
        assert sample["cold_penalty_ms"] is None
    assert run.metrics["errors"]["by_kind"] == {"audio_timeout": 2}
    with open(tmp_path / "locust_failures.csv") as f:
        failures = list(csv.DictReader(f))
    assert {r["Name"] for r in failures} == {"warm_input_to_audio_ms"}  # (Locust's CSV may miss the last one)


@pytest.mark.parametrize("args, message", [
    (("--turns", "0"), "--turns must be at least 1"),
    (("--reply-gap-ms", "0"), "--reply-gap-ms must be a positive number"),
])
def test_bad_turn_options_are_one_sentence_and_exit_2(refusals, tmp_path, args, message):
    # in-process (tests/support/refusals.py); the real command's exit code 2: tests/test_bad_input.py
    line = refusals.line("--headless", "-i", "1", *args)
    assert line.startswith("bootbench: ") and message in line
    assert not (tmp_path / "results").exists()


# ---- the statistics of a phase with several values per sample


def test_a_phase_with_several_values_per_sample_is_exact_over_all_values_with_a_cluster_bootstrap():
    groups = [[10.0, 12.0], [11.0, 13.0], [30.0, 31.0], [9.0, 14.0]]
    pooled = summarize_groups(groups)
    flat = summarize([v for g in groups for v in g])
    for key in ("count", "mean", "median", "min", "max", "p95", "p99"):
        assert pooled[key] == flat[key]
    assert pooled["count"] == 8
    # Resampling whole sessions (the slow one brings both its values) gives a wider interval than pretending
    # the 8 values were independent.
    low, high = pooled["ci95_mean"]
    flat_low, flat_high = flat["ci95_mean"]
    assert high - low > flat_high - flat_low
    assert summarize_groups(groups) == pooled  # seeded: the same values give the same interval
    ragged = summarize_groups([[10.0], [11.0, 13.0, 12.0], [30.0, 31.0], []])
    assert ragged["count"] == 6 and ragged["ci95_median"] is not None


def test_one_value_per_sample_gives_exactly_summarize():
    values = [5.0, 7.5, 6.0, 9.0, 4.0]
    assert summarize_groups([[v] for v in values] + [[None], []]) == summarize(values)


def test_cold_penalty_is_turn_1_minus_the_median_of_the_warm_turns_and_survives_a_round_trip():
    turns = [Turn(1, input_to_audio_ms=150.0, reply_ms=600.0), Turn(2, input_to_audio_ms=100.0),
             Turn(3, input_to_audio_ms=90.0), Turn(4, input_to_audio_ms=200.0)]
    assert cold_penalty(turns) == 150.0 - 100.0
    assert cold_penalty(turns[:1]) is None and cold_penalty([Turn(1), Turn(2, input_to_audio_ms=80.0)]) is None
    sample = Sample(iteration=1, worker="local", user=1, started_at="", ok=True, turns=turns, cold_penalty_ms=50.0)
    assert Sample.from_dict(sample.to_dict()) == sample
    single = Sample(iteration=1, worker="local", user=1, started_at="", ok=True)
    assert not set(MULTI_TURN_FIELDS) & set(single.to_dict())
    assert Sample.from_dict(single.to_dict()) == single


def test_each_turn_records_the_clip_it_sent(shared_reference_server, tmp_path):
    # two clips of different lengths, three turns: iteration 1 sends a, b, a; iteration 2 b, a, b (the rotation)
    import numpy as np
    import soundfile

    lengths = {"a.wav": 0.2, "b.wav": 0.5}
    for name, seconds in lengths.items():
        t = np.arange(int(16_000 * seconds)) / 16_000
        soundfile.write(tmp_path / name, 0.5 * np.sin(2 * np.pi * 440 * t), 16_000, subtype="PCM_16")
    server = server_for_turns(shared_reference_server)
    run = ground_truth_run(server, tmp_path / "r", "-i", "2", "--turns", str(TURNS),
                           *(arg for name in lengths for arg in ("--audio", str(tmp_path / name))))
    assert run.exit_code == 0, run.stderr[-3000:]
    sent = [[t["clip"] for t in sample["turns"]] for sample in run.samples]
    assert sent == [["a.wav", "b.wav", "a.wav"], ["b.wav", "a.wav", "b.wav"]]
    assert [sample["clip"] for sample in run.samples] == ["a.wav", "b.wav"]  # turn 1's is the sample's
    # what the server took in each session is those clips' audio (16 kHz, as Aivoco sends it)
    taken = [session["audio_in"]["samples"] / 16_000 for session in run.ok_sessions()]
    assert taken == pytest.approx([sum(lengths[name] for name in turns) for turns in sent], abs=0.01)
    with open(run.folder / "samples.csv") as f:
        assert [[r[f"turn{k}_clip"] for k in (1, 2, 3)] for r in csv.DictReader(f)] == sent
