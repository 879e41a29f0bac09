"""The outputs of the service stage phases and of the warm turn phases (issue 22, parts 1 and 5), on result folders
built in-process (tests/support/folders.py): the console's median stage waterfall, report.html's, `--check` on a
stage phase, and `bootbench compare --baseline` on stage and turn phases (a cluster bootstrap for the warm turns).

The drivers that stamp the stages are tested against the reference server's ground truth elsewhere (a test per
provider); these read back what a run with known stage values writes.
"""

from __future__ import annotations

import csv
import json
import random
import re

import numpy as np
import pytest

from bootbench.checks import parse_check
from bootbench.samples import PHASES, STAGE_PHASES, TURN_PHASES, Turn, cold_penalty
from bootbench.views.regression import (NO_DIFFERENCE, SLOWER, TOO_FEW, compare_groups, compare_metrics,
                                        compare_phase, measured)
from bootbench.views.text import console_summary
from support.cli import bootbench
from support.folders import record_run, timings

STAGE_OFFSETS = {"turn_end_ms": -20.0, "transcript_ms": 25.0, "response_start_ms": 30.0, "first_text_ms": 60.0}
"""Where each stage sits against the input-to-audio interval (ms before its first audio: turn end before the input
ended, as a service's VAD may hear the end of speech during our trailing silence)."""


def with_stages(rows, offsets=STAGE_OFFSETS, shift_ms: float = 0.0):
    """``rows`` of :func:`timings` with service stages at fixed offsets from their input-to-audio interval."""
    for row in rows:
        base = row["input_to_audio_ms"]
        for phase, offset in offsets.items():
            row[phase] = round((offset if offset < 0 else base - 100 + offset) + shift_ms, 3)
    return rows


def metrics_of(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_every_stage_phase_is_a_phase_that_checks_and_compare_name():
    assert set(STAGE_PHASES) == set(STAGE_OFFSETS) and set(STAGE_PHASES) <= set(PHASES)
    for phase in (*STAGE_PHASES, *TURN_PHASES):
        check = parse_check(f"{phase}:median < 500")
        assert (check.phase, check.stat, check.threshold) == (phase, "median", 500.0)
    assert "warm_input_to_audible_ms" in TURN_PHASES


def test_the_console_prints_the_median_waterfall_from_the_last_input_only_when_a_stage_was_seen(tmp_path):
    rows = with_stages(timings(9, first_audio_ms=200, spread_ms=40, seed=3))
    metrics = metrics_of(record_run(tmp_path / "a", "-i", "9", samples=rows, report=False))
    medians = {phase: float(np.median([row[phase] for row in rows]))
               for phase in (*STAGE_PHASES, "input_to_audio_ms")}
    (line,) = [line for line in console_summary(metrics).splitlines() if line.startswith("  stages")]
    assert line == ("  stages (median from the last input): "
                    f"turn end {medians['turn_end_ms']:.1f} ms -> transcript {medians['transcript_ms']:.1f} -> "
                    f"response start {medians['response_start_ms']:.1f} -> first text {medians['first_text_ms']:.1f} "
                    f"-> first audio {medians['input_to_audio_ms']:.1f}")
    assert medians["turn_end_ms"] == -20.0  # reached before the last input: negative, and kept

    only_text = timings(5, seed=4)
    for row in only_text:
        row["first_text_ms"] = row["input_to_audio_ms"] - 10
    metrics = metrics_of(record_run(tmp_path / "b", "-i", "5", samples=only_text, report=False))
    (line,) = [line for line in console_summary(metrics).splitlines() if line.startswith("  stages")]
    assert line.startswith("  stages (median from the last input): first text ") and " -> first audio " in line
    assert "turn end" not in line

    none = metrics_of(record_run(tmp_path / "c", "-i", "5", samples=timings(5), report=False))
    assert "stages" not in console_summary(none)


def test_the_report_draws_the_same_waterfall_as_a_table_of_bars(tmp_path):
    rows = with_stages(timings(7, first_audio_ms=150, spread_ms=30, seed=5))
    folder = record_run(tmp_path / "a", "-i", "7", samples=rows)
    metrics, html = metrics_of(folder), (folder / "report.html").read_text()
    section = html[html.index('<section id="stages">'):]
    section = section[:section.index("</section>")]
    found = re.findall(r'<tr id="stage-(\w+)" data-value="([^"]+)">.*?margin-left:([0-9.]+)%;width:([0-9.]+)%',
                       section)
    assert [phase for phase, *_ in found] == [*STAGE_PHASES, "input_to_audio_ms"]
    medians = [float(value) for _, value, _, _ in found]
    assert medians == [metrics["summary"]["phases"][phase]["median"] for phase, *_ in found]
    # one axis from the earliest median (turn end, negative) to the latest: each bar spans 0 .. its median
    low, span = min(medians), max(medians) - min(medians)
    for median, (_, _, left, width) in zip(medians, found):
        assert float(left) == pytest.approx(100 * (min(0, median) - low) / span, abs=0.01)
        assert float(width) == pytest.approx(100 * abs(median) / span, abs=0.01)
    plain = record_run(tmp_path / "b", "-i", "3", samples=timings(3))
    assert 'id="stages"' not in (plain / "report.html").read_text()


def test_a_check_on_a_stage_phase_is_measured_on_its_exact_statistics(tmp_path):
    rows = with_stages(timings(6, first_audio_ms=200, seed=6))
    median = float(np.median([row["first_text_ms"] for row in rows]))
    folder = record_run(tmp_path, "-i", "6", "--check", f"first_text_ms:median < {median + 1:g}",
                        "--check", f"first_text_ms:median < {median - 1:g}", "--check", "transcript_ms:count >= 6",
                        samples=rows, report=False)
    checks = metrics_of(folder)["checks"]
    assert [(c["value"], c["ok"]) for c in checks] == [(median, True), (median, False), (6, True)]


def two_stage_runs(tmp_path, shift_ms: float):
    base = with_stages(timings(30, first_audio_ms=200, spread_ms=20, seed=7))
    run = with_stages(timings(30, first_audio_ms=200, spread_ms=20, seed=7), shift_ms=shift_ms)  # the same audio
    return (record_run(tmp_path / "base", "-i", "30", samples=base, report=False),
            record_run(tmp_path / "run", "-i", "30", samples=run, report=False))


def test_compare_baseline_compares_the_stage_phases_and_leaves_out_what_neither_run_measured(tmp_path):
    base, run = two_stage_runs(tmp_path, shift_ms=40.0)  # only the stages moved: the audio did not
    comparisons = compare_metrics(metrics_of(base), metrics_of(run))
    for phase in STAGE_PHASES:
        assert comparisons[phase].verdict == SLOWER
        assert comparisons[phase].median_diff == pytest.approx(40.0, abs=0.01)
        assert 0 < comparisons[phase].median_ci[0] <= 40 <= comparisons[phase].median_ci[1]
    assert comparisons["input_to_audio_ms"].verdict == NO_DIFFERENCE
    shown = [c.phase for c in measured(comparisons.values())]
    assert set(STAGE_PHASES) <= set(shown) and "call_create_ms" not in shown and "cold_penalty_ms" not in shown

    result = bootbench("compare", "--baseline", base, run, "--fail-if-slower", "10%", "--phase", "first_text_ms")
    assert result.returncode == 3, result.stderr
    table = result.stdout[result.stdout.index("against the baseline"):]
    lines = {line.split()[0]: line for line in table.splitlines()[1:] if line and line.split()[0] in PHASES}
    assert set(lines) == set(shown)
    assert lines["first_text_ms"].rstrip().endswith(SLOWER) and "+40.0" in lines["first_text_ms"]
    assert "is slower than the baseline" in result.stderr and "on first_text_ms: median" in result.stderr
    # turn end moved from -20 ms (before the last input) to +20: 200 % slower, never a "-200 %" that passes a gate
    assert comparisons["turn_end_ms"].median_change_pct == pytest.approx(200.0)
    gate = bootbench("compare", "--baseline", base, run, "--fail-if-slower", "150%", "--phase", "turn_end_ms")
    assert gate.returncode == 3 and "on turn_end_ms: median 20.0 ms against -20.0 ms, +40.0 ms (+200.0%" in gate.stderr


def turn_rows(count: int, *, warm_ms: float, seed: int, turns: int = 3, cold_ms: float = 300.0,
              session_spread_ms: float = 30.0):
    """``count`` successful sessions of ``turns`` turns: each session has its own offset (its turns are alike)."""
    rng = random.Random(seed)
    rows = timings(count, first_audio_ms=cold_ms, seed=seed)
    for row in rows:
        offset = rng.random() * session_spread_ms
        numbers = [(row["input_to_audio_ms"], row["input_to_audible_ms"])]
        numbers += [(round(warm_ms + offset + rng.random() * 4, 3),) * 2 for _ in range(turns - 1)]
        row["turns"] = [Turn(turn=k, input_to_audio_ms=audio, input_to_audible_ms=audible + 5.0, reply_ms=100.0,
                             clip="sine") for k, (audio, audible) in enumerate(numbers, start=1)]
        row["cold_penalty_ms"] = cold_penalty(row["turns"])
    return rows


def test_compare_baseline_compares_the_warm_turn_phases_resampling_whole_sessions(tmp_path):
    base = record_run(tmp_path / "base", "-i", "20", "--turns", "3", samples=turn_rows(20, warm_ms=100, seed=1),
                      report=False)
    slow = record_run(tmp_path / "slow", "-i", "20", "--turns", "3", samples=turn_rows(20, warm_ms=130, seed=2),
                      report=False)
    same = record_run(tmp_path / "same", "-i", "20", "--turns", "3", samples=turn_rows(20, warm_ms=100, seed=3),
                      report=False)
    base_m, slow_m, same_m = (metrics_of(f) for f in (base, slow, same))
    slower = compare_metrics(base_m, slow_m)
    for phase in ("warm_input_to_audio_ms", "warm_input_to_audible_ms"):
        comparison = slower[phase]
        assert (comparison.baseline_count, comparison.candidate_count) == (40, 40)  # every warm turn, pooled
        assert comparison.baseline_median == base_m["summary"]["phases"][phase]["median"]
        assert comparison.verdict == SLOWER and 0 < comparison.median_ci[0] < 30 < comparison.median_ci[1]
    assert slower["cold_penalty_ms"].verdict != NO_DIFFERENCE  # 30 ms less penalty: faster
    assert compare_metrics(base_m, same_m)["warm_input_to_audio_ms"].verdict == NO_DIFFERENCE

    gate = bootbench("compare", "--baseline", base, slow, "--fail-if-slower", "10%", "--phase",
                     "warm_input_to_audio_ms", "--markdown")
    assert gate.returncode == 3, gate.stderr
    assert "on warm_input_to_audio_ms: median" in gate.stderr
    rows = [line for line in gate.stdout.splitlines() if line.startswith("| warm_input_to_aud")]
    assert len(rows) == 2 and all(row.endswith(f"| {SLOWER} |") for row in rows)
    single = record_run(tmp_path / "single", "-i", "3", samples=timings(3), report=False)
    plain = bootbench("compare", "--baseline", single, single)
    assert plain.returncode == 0 and "warm_input" not in plain.stdout and "cold_penalty" not in plain.stdout


def test_the_cluster_bootstrap_widens_the_interval_of_correlated_turns():
    # 10 sessions of 9 warm turns each, a session's turns alike: 90 values but 10 independent ones
    rng = np.random.default_rng(0)
    offsets = rng.normal(0, 20, size=(2, 10))
    base = [list(100 + offsets[0, i] + rng.normal(0, 1, 9)) for i in range(10)]
    run = [list(110 + offsets[1, i] + rng.normal(0, 1, 9)) for i in range(10)]
    clustered = compare_groups("warm_input_to_audio_ms", base, run)
    pooled = compare_phase("warm_input_to_audio_ms", [v for g in base for v in g], [v for g in run for v in g])
    assert clustered.median_diff == pooled.median_diff  # the same exact medians
    assert (clustered.baseline_count, clustered.candidate_count) == (90, 90)
    width = clustered.median_ci[1] - clustered.median_ci[0]
    assert width > 2 * (pooled.median_ci[1] - pooled.median_ci[0])
    assert clustered.p_value > pooled.p_value  # ranked over 10 session medians, not 90 values
    # one value per session: exactly compare_phase; one session: too few to resample
    assert compare_groups("p", [[1.0], [2.0], [3.0]], [[2.0], [3.0], [4.0]]) == compare_phase(
        "p", [1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert compare_groups("p", [[1.0, 2.0]], [[2.0, 3.0], [4.0, 5.0]]).verdict == TOO_FEW


def test_warm_input_to_audible_and_each_turns_clip_reach_every_output(tmp_path):
    rows = turn_rows(4, warm_ms=100, seed=9)
    for index, row in enumerate(rows):
        for turn in row["turns"]:
            turn.clip = ["a.wav", "b.wav", "c.wav"][(index + turn.turn - 1) % 3]
    rows[0]["turns"][1].stages_ms = {"transcript_ms": 40.5, "first_text_ms": 80.25}
    folder = record_run(tmp_path, "-i", "4", "--turns", "3", "--check", "warm_input_to_audible_ms:p95 < 1000",
                        samples=rows)
    metrics = metrics_of(folder)
    warm = metrics["summary"]["phases"]["warm_input_to_audible_ms"]
    values = [t.input_to_audible_ms for row in rows for t in row["turns"][1:]]
    assert warm["count"] == 8 and warm["median"] == pytest.approx(float(np.median(values)))
    assert metrics["checks"][0]["ok"] and metrics["checks"][0]["value"] == pytest.approx(warm["p95"])
    assert [[t["clip"] for t in s["turns"]] for s in metrics["samples"]] == [
        ["a.wav", "b.wav", "c.wav"], ["b.wav", "c.wav", "a.wav"], ["c.wav", "a.wav", "b.wav"],
        ["a.wav", "b.wav", "c.wav"]]
    with open(folder / "summary.csv") as f:
        summary = {r["phase"]: r for r in csv.DictReader(f)}
    assert float(summary["warm_input_to_audible_ms"]["median"]) == pytest.approx(warm["median"], abs=0.001)
    with open(folder / "samples.csv") as f:
        samples = list(csv.DictReader(f))
    assert [r["turn2_clip"] for r in samples] == ["b.wav", "c.wav", "a.wav", "b.wav"]
    # a turn's stages as name=ms;... like the service's latency figures (they were a column of NaN)
    assert [r["turn2_stages_ms"] for r in samples] == ["first_text_ms=80.25;transcript_ms=40.5", "", "", ""]
    assert [float(r["turn3_input_to_audible_ms"]) for r in samples] == pytest.approx(
        [row["turns"][2].input_to_audible_ms for row in rows], abs=0.001)
    text = console_summary(metrics)
    assert (f"input to audible: cold (turn 1) median {metrics['summary']['phases']['input_to_audible_ms']['median']:.1f}"
            f" ms, warm median {warm['median']:.1f} ms, p95 {warm['p95']:.1f} ms (8 warm turns heard)") in text
    html = (folder / "report.html").read_text()
    assert re.search(r'id="stat-warm-input-to-audible" data-value="([^"]+)"', html)[1] == json.dumps(warm["median"])
    assert 'id="phase-warm_input_to_audible_ms"' in html


def test_the_web_tab_shows_the_warm_input_to_audible_median_beside_the_warm_input_to_audio_one():
    from bootbench.samples import Sample
    from bootbench.stats import snapshot
    from bootbench.views.webui import tab_rows

    turns = [Turn(1, 300.0, 310.0, 500.0), Turn(2, 100.0, 112.0, 400.0), Turn(3, 120.0, 131.0, 400.0)]
    sample = Sample(1, "local", 1, "t", True, first_response_ms=300.0, input_to_audio_ms=300.0,
                    turns=turns, cold_penalty_ms=190.0)
    rows = {row["label"]: row["value"] for row in tab_rows(snapshot([sample]), "r", running=True)}
    assert rows["Input to audio median, warm (turns 2..N)"] == "110.0 ms"
    assert rows["Input to audible median, warm (turns 2..N)"] == "121.5 ms"
