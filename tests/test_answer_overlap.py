"""Answers that overlap what they should follow: the input still being sent (issue 20 item 6), the last reply (item 4).

An answer whose first audio arrives before the last input went out has no
``input_to_audio_ms`` worth the name (it would be negative): the sample says
by how much it came early, the input phases leave it out, and the run warns.
Audio of a reply that arrives after bootbench took that reply as ended is an
anomaly, and the run warns that the warm turns after it may have timed it.
"""

from __future__ import annotations

import base64
import csv
import threading
import time

import pytest

from bootbench.audio import Stimulus
from bootbench.providers.aivoco import AivocoDriver
from bootbench.providers.base import DriverConfig
from bootbench.run.embedded import EmbeddedServer
from bootbench.samples import STAGE_PHASES, Sample, Timeline, Turn
from bootbench.stats import summarize_samples
from support.ground_truth import ground_truth_run
from support.inprocess import headless_run

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

BOUND_MS = 15.0
"""As tests/test_turns.py: a sample against the server's own interval."""
MS = 1_000_000


# ---- item 6: the answer began before the input ended


def test_an_answer_before_the_last_input_has_no_input_phases_and_says_how_early_it_came():
    early = Timeline(session_ready=0, input_sent=900 * MS, first_audio=150 * MS, first_audible=160 * MS)
    phases = early.phases()
    assert phases["input_to_audio_ms"] is None and phases["input_to_audible_ms"] is None
    assert phases["first_response_ms"] == 150.0 and phases["leading_silence_ms"] == 10.0
    assert early.answered_before_input_end_ms() == 750.0
    turn = Turn.of(2, early)
    assert turn.input_to_audio_ms is None and turn.input_to_audible_ms is None
    assert turn.answered_before_input_end_ms == 750.0
    on_time = Timeline(session_ready=0, input_sent=100 * MS, first_audio=150 * MS)
    assert on_time.answered_before_input_end_ms() is None and on_time.phases()["input_to_audio_ms"] == 50.0
    assert Turn.of(1, on_time).answered_before_input_end_ms is None
    sample = Sample(1, "local", 1, "t", True, first_response_ms=150.0, answered_before_input_end_ms=750.0)
    assert Sample.from_dict(sample.to_dict()) == sample
    counted = summarize_samples([sample, Sample(2, "local", 1, "t", True, first_response_ms=150.0,
                                                input_to_audio_ms=50.0),
                                 Sample(3, "local", 1, "t", True, first_response_ms=150.0,
                                        input_to_audio_ms=50.0, turns=[Turn(1, 50.0), turn])])
    assert counted["answered_before_input_end"] == 2   # the first, and the third's warm turn


def test_an_answer_that_began_before_the_input_ended_is_flagged_and_left_out_of_the_input_phases(
        shared_reference_server, tmp_path):
    # The reference server's Aivoco emulation answers from the first chunk (--reply-after first-input, its
    # default): a 1 s sine streamed at real-time pace is still going out when the answer begins.
    server = shared_reference_server(setup_delay="30", first_audio_delay="120", warm_first_audio_delay="40",
                                     cold_penalty=0, reply_ms=200)
    run = ground_truth_run(server, tmp_path / "r", "-i", "2", "--turns", "2", "--pace", "realtime")
    samples, sessions = run.samples, run.ok_sessions()
    assert len(samples) == len(sessions) == 2 and run.violations == 0
    for sample, session in zip(samples, sessions):
        assert sample["ok"], sample
        for mine, theirs in zip(sample["turns"], session["turns"]):
            before = -theirs["measured"]["input_to_audio_ms"]   # the server saw the answer start before the input ended
            assert before > 500
            assert mine["answered_before_input_end_ms"] == pytest.approx(before, abs=BOUND_MS)
            assert mine["input_to_audio_ms"] is None and mine["input_to_audible_ms"] is None
        assert sample["answered_before_input_end_ms"] == sample["turns"][0]["answered_before_input_end_ms"]
        assert sample["input_to_audio_ms"] is None and sample["input_to_audible_ms"] is None
        assert sample["cold_penalty_ms"] is None
        assert sample["first_response_ms"] == pytest.approx(session["measured"]["first_response_ms"], abs=BOUND_MS)
    summary = run.metrics["summary"]
    assert summary["answered_before_input_end"] == 2
    for phase in ("input_to_audio_ms", "input_to_audible_ms", "warm_input_to_audio_ms", "cold_penalty_ms"):
        assert summary["phases"][phase]["count"] == 0, phase
    assert summary["phases"]["first_response_ms"]["count"] == 2
    # Locust's table: no negative input_to_audio_ms requests
    assert run.request_counts.get("input_to_audio_ms", 0) == 0 and run.request_counts["first_response_ms"] == 2
    (warning,) = [w for w in run.metrics["run"]["warnings"] if "before their input" in w]
    assert warning.startswith("2 iteration(s) were answered before their input had all been sent")
    assert "input_to_audio_ms" in warning and f"warning: {warning}" in run.stdout
    with open(run.folder / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    # only a service stage may be negative: Aivoco's text came before the input ended too (samples.Phase.stage),
    # kept in the statistics but never a Locust request
    assert not any(value.startswith("-") for row in rows if row["phase"] not in STAGE_PHASES
                   for value in row.values()), rows
    assert all(sample["first_text_ms"] < 0 for sample in samples) and "first_text_ms" not in run.request_counts
    with open(run.folder / "samples.csv") as f:
        assert all(float(r["answered_before_input_end_ms"]) > 500 for r in csv.DictReader(f))
    assert "were answered before their input had all been sent" in (run.folder / "report.html").read_text()


@pytest.mark.slow
def test_the_embedded_server_answers_at_the_end_of_a_realtime_turn_and_from_the_first_message_of_a_burst(tmp_path):
    # Before: --pace realtime --audio speech against the embedded server gave input_to_audio_ms of about -3819 ms.
    run = headless_run("-i", "1", "--pace", "realtime", results_dir=tmp_path / "r", report=False).run
    (sample,) = run.samples
    assert sample.ok and sample.answered_before_input_end_ms is None
    assert 500 <= sample.input_to_audio_ms <= 2500   # its 500 ms of quiet that ends a turn, then the first-audio delay
    assert run.metrics["run"]["reference_server"]["reply_after"] == "end-of-turn"
    assert run.metrics["run"]["warnings"] == []

    embedded = EmbeddedServer()
    try:
        burst = embedded.ensure_started("burst")
        assert embedded.config()["reply_after"] == "first-input" and embedded.ensure_started("burst") is burst
        realtime = embedded.ensure_started("realtime")   # a later run (the web UI's) at the other pace: restarted
        assert realtime is not burst and burst.returncode is not None
        assert embedded.config()["reply_after"] == "end-of-turn"
    finally:
        embedded.stop()


# ---- item 4: the rest of a reply after bootbench took it as ended


def reply_chunk() -> dict:
    pcm = Stimulus.sine(seconds=0.04, rate=24_000).samples.astype("<i2").tobytes()
    return {"audio_data": base64.b64encode(pcm).decode("ascii")}


def test_audio_of_a_reply_after_its_quiet_ended_it_is_an_anomaly_not_part_of_the_reply():
    # A reply that pauses 340 ms (longer than --reply-gap-ms 200) and resumes while the next turn still waits for
    # our own input's pause: before, the pause ended nothing and the resumed audio counted as the same reply, so
    # no gap too short for a service was ever noticed (--turns 3 --reply-gap-ms 1 took the rest of reply 1 as
    # turn 2's answer, warm median 56 ms instead of ~104, with no anomaly and no warning).
    driver = AivocoDriver(DriverConfig(url="http://127.0.0.1:9", api_key="k", reply_gap_ms=200.0), Stimulus.sine())
    session = driver.session = driver.new_session(1)
    session.ready_ns = time.perf_counter_ns()
    driver.input_starting()
    timeline = Timeline(input_sent=time.perf_counter_ns())
    stamps: list[int] = []

    def service() -> None:
        for at_ms in (20, 60, 400):   # 400: after 200 ms of quiet, before our input's 500 ms pause is over
            time.sleep(max(0.0, (timeline.input_sent + at_ms * MS - time.perf_counter_ns()) / 1e9))
            stamps.append(time.perf_counter_ns())
            driver._on_audio_response(reply_chunk())

    sender = threading.Thread(target=service)
    sender.start()
    assert session.audio.wait(2)
    driver.reply_end(timeline, time.perf_counter_ns() + 5_000 * MS)
    sender.join()
    assert len(stamps) == 3
    assert stamps[1] <= timeline.reply_end <= stamps[1] + 5 * MS   # the reply ended with its second chunk
    assert driver.anomalies["audio_between_turns"] == 1
    assert time.perf_counter_ns() >= timeline.input_sent + 500 * MS   # the next turn still waited for the pause


def test_a_run_whose_replies_went_on_after_their_end_warns_about_the_warm_turns():
    from bootbench import options
    from bootbench.run.master import sample_warnings
    from support.inprocess import parse

    def sample(iteration: int, stray: int) -> Sample:
        return Sample(iteration, "local", 1, "t", True, first_response_ms=100.0, input_to_audio_ms=100.0,
                      anomalies={"audio_between_turns": stray} if stray else {},
                      turns=[Turn(1, 100.0), Turn(2, 20.0), Turn(3, 100.0)], cold_penalty_ms=40.0)

    samples = [sample(1, 3), sample(2, 0), sample(3, 1)]
    aivoco = options.resolve(parse("--turns", "3", "--reply-gap-ms", "200"), "")
    (warning,) = sample_warnings(samples, aivoco)
    assert warning.startswith("audio of a reply arrived after it had been taken as ended (audio_between_turns x4, "
                              "in 2 of 3 sessions)")
    assert "--reply-gap-ms 200" in warning and "warm turns" in warning
    openai = options.resolve(parse("--turns", "3", "--provider", "openai"), "")
    (warning,) = sample_warnings(samples, openai)
    assert "--reply-gap-ms" not in warning and "warm turns" in warning
    assert sample_warnings([sample(1, 0)], aivoco) == []


@pytest.mark.parametrize("gap", ["1", "199.9"])
def test_a_reply_gap_shorter_than_real_streams_chunk_spacing_is_refused_saying_why(refusals, tmp_path, gap):
    sentence = refusals.sentence("--headless", "-i", "1", "--turns", "3", "--reply-gap-ms", gap)
    assert sentence == ("--reply-gap-ms must be at least 200 ms, twice the longest chunk spacing of real streams "
                        "(100 ms): a shorter quiet falls between two chunks of one reply, and its rest would be "
                        f"timed as the next turn's answer, not {gap}")
    assert not (tmp_path / "results").exists()
