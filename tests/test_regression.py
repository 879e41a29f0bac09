"""Baseline comparison: bootstrap intervals of the median / p95 difference, Mann-Whitney p, verdict, fail-if-slower."""

from __future__ import annotations

import json
import re

import gevent
import numpy as np
import pytest

from bootbench.views.regression import (FASTER, HEADER, NO_DATA, NO_DIFFERENCE, SLOWER, RegressionError,
                                        compare_metrics, compare_phase, fail_if_slower, parse_percent, row,
                                        slower_than_allowed)
from support.cli import bootbench
from support.folders import without_report
from support.inprocess import kept_signal_handlers, local_environment, run_to_end

PHASE = "first_response_ms"


def lognormal(seed: int, n: int = 100, median: float = 150.0, sigma: float = 0.25) -> list[float]:
    return list(np.random.default_rng(seed).lognormal(np.log(median), sigma, n))


def test_same_distribution_is_no_significant_difference():
    result = compare_phase(PHASE, lognormal(1), lognormal(2))
    assert result.verdict == NO_DIFFERENCE
    low, high = result.median_ci
    assert low < 0 < high
    assert result.p_value > 0.05
    assert (result.baseline_count, result.candidate_count) == (100, 100)


def test_same_distribution_is_rarely_called_different():
    """Over 40 pairs drawn from one distribution, the 95% verdict calls at most a few of them different."""
    verdicts = [compare_phase(PHASE, lognormal(2 * i), lognormal(2 * i + 1), resamples=500).verdict
                for i in range(40)]
    assert verdicts.count(NO_DIFFERENCE) >= 36, verdicts


def test_shifted_by_30_ms_is_slower_with_an_interval_excluding_zero():
    base = lognormal(1)
    result = compare_phase(PHASE, base, [v + 30 for v in lognormal(2)])
    assert result.verdict == SLOWER
    low, high = result.median_ci
    assert 0 < low < 30 < high < 60
    assert result.median_diff == pytest.approx(30, abs=15)
    assert result.p95_diff > 0 and result.p95_ci[0] < result.p95_diff < result.p95_ci[1]
    assert result.p_value < 0.001
    assert result.median_change_pct == pytest.approx(100 * result.median_diff / result.baseline_median)
    faster = compare_phase(PHASE, [v + 30 for v in lognormal(2)], base)
    assert faster.verdict == FASTER and faster.median_ci[1] < 0


def test_bootstrap_is_seeded_and_the_median_difference_is_exact():
    base, cand = lognormal(3, 50), lognormal(4, 60)
    a, b = compare_phase(PHASE, base, cand, seed=7), compare_phase(PHASE, base, cand, seed=7)
    assert a == b
    assert a.median_diff == pytest.approx(np.median(cand) - np.median(base))
    assert a.p95_diff == pytest.approx(np.percentile(cand, 95) - np.percentile(base, 95))
    assert compare_phase(PHASE, base, cand, seed=8).median_ci != a.median_ci


def test_significance_needs_both_the_interval_and_the_rank_test():
    # Two identical values in each run: the bootstrap interval is [0, 0] and the rank test p = 1.
    assert compare_phase(PHASE, [100.0, 100.0], [100.0, 100.0]).verdict == NO_DIFFERENCE
    # Three samples each, fully separated: the interval excludes 0, but Mann-Whitney's exact p is 0.1.
    tiny = compare_phase(PHASE, [100.0, 101.0, 102.0], [200.0, 201.0, 202.0])
    assert tiny.median_ci[0] > 0 and tiny.p_value == pytest.approx(0.1)
    assert tiny.verdict == NO_DIFFERENCE


def test_one_sample_per_run_is_too_few_samples_not_a_zero_width_interval(tmp_path):
    """Issue 20 item 10: below the bootstrap's minimum (2 values per run) there is no interval, no p, no verdict."""
    from bootbench.views.regression import TOO_FEW
    from support.folders import record_run, timings

    result = compare_phase(PHASE, [100.0], [150.0])
    assert result.verdict == TOO_FEW == "too few samples"
    assert result.median_ci is None and result.p95_ci is None and result.p_value is None
    assert (result.baseline_count, result.candidate_count) == (1, 1) and result.median_diff == 50.0
    assert slower_than_allowed(result, 10.0, run="r", baseline="b") is None
    assert compare_phase(PHASE, [100.0, 101.0], [150.0]).verdict == TOO_FEW
    assert compare_phase(PHASE, [100.0, 101.0], [150.0, 151.0]).verdict != TOO_FEW
    base, run = (record_run(tmp_path, "-i", "1", samples=timings(1, first_audio_ms=ms), report=False)
                 for ms in (80.0, 120.0))
    done = bootbench("compare", "--baseline", base, run, "--fail-if-slower", "10%")
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(PHASE)]
    assert line.rstrip().endswith("too few samples") and "1.0000" not in line and "+0.0 to +0.0" not in line
    assert f"--fail-if-slower cannot judge {PHASE}" in done.stderr and "at least 2" in done.stderr


def test_a_phase_without_samples_has_no_data():
    result = compare_phase("stop_ms", [], [1.0, 2.0, None, float("nan")])
    assert result.verdict == NO_DATA and result.candidate_count == 2 and result.p_value is None
    assert row(result)[-1] == NO_DATA and len(row(result)) == len(HEADER)


def test_fail_if_slower_names_the_run_and_how_much():
    slow = compare_phase(PHASE, lognormal(1), [v + 30 for v in lognormal(2)])
    sentence = slower_than_allowed(slow, 10.0, run="results/today", baseline="results/last-week")
    change = slow.median_change_pct
    assert 12 < change < 30
    assert sentence.startswith(f"results/today is slower than the baseline results/last-week on {PHASE}: median ")
    assert f"({change:+.1f}%, 95% CI +" in sentence and ", p < 0.0001), more than the allowed 10%." in sentence
    assert sentence.count(". ") == 0
    assert slower_than_allowed(slow, 35.0, run="a", baseline="b") is None
    same = compare_phase(PHASE, lognormal(1), lognormal(2))
    assert slower_than_allowed(same, 0.0, run="a", baseline="b") is None
    faster = compare_phase(PHASE, [v + 30 for v in lognormal(2)], lognormal(1))
    assert slower_than_allowed(faster, 0.0, run="a", baseline="b") is None


@pytest.mark.parametrize("text, pct", [("10%", 10.0), (" 2.5 % ", 2.5), ("0.1", 10.0), ("0", 0.0)])
def test_percentages_parse(text, pct):
    assert parse_percent(text) == pct


@pytest.mark.parametrize("text", ["", "ten", "-5%", "10%%", "0.1x"])
def test_bad_percentages_say_one_sentence(text):
    with pytest.raises(RegressionError, match=r"^--fail-if-slower expects a non-negative percentage such as 10%, "):
        parse_percent(text)


def test_a_bare_10_is_no_longer_10_percent_but_refused_as_ambiguous():
    """Issue 20 item 15: "10" was read as 10 %, while success_rate>=0.95 reads a bare number as a fraction."""
    with pytest.raises(RegressionError, match=r"^--fail-if-slower 10 is ambiguous \(10% or 1000%\?\)"):
        parse_percent("10")


@pytest.fixture(scope="module")
def real_runs(tmp_path_factory, shared_reference_server):
    """Three runs of 20 iterations against reference servers, side by side in this process: a baseline, the same
    delays again (another seed), +50 ms."""
    work = tmp_path_factory.mktemp("runs")
    plans = {}
    for name, first_audio_delay, seed in (("baseline", "uniform:100:160", 1), ("same", "uniform:100:160", 2),
                                          ("slow", "uniform:150:210", 3)):
        server = shared_reference_server(setup_delay="20", first_audio_delay=first_audio_delay, cold_penalty=0,
                                         seed=seed, reply_ms=100)
        plans[name] = local_environment("-i", "20", "--wait-ms", "20", host=server.url, results_dir=work / name)
    with kept_signal_handlers(), without_report():
        started = {name: gevent.spawn(run_to_end, env, 1) for name, env in plans.items()}
        gevent.joinall(list(started.values()), raise_error=True)
    runs = {name: greenlet.value for name, greenlet in started.items()}
    for run in runs.values():
        assert run.metrics["summary"]["successes"] == 20 and not run.incomplete
    return {name: run.recorder.folder for name, run in runs.items()}


def metrics_of(folder):
    return json.loads((folder / "metrics.json").read_text())


def test_real_runs_with_different_injected_delays(real_runs):
    """Runs against the reference server: the same delays compare as no difference, +50 ms as slower."""
    baseline, same, slow = (metrics_of(real_runs[name]) for name in ("baseline", "same", "slow"))
    assert compare_metrics(baseline, same)[PHASE].verdict == NO_DIFFERENCE
    comparisons = compare_metrics(baseline, slow)
    assert set(comparisons) >= {"connect_ms", "session_start_ms", PHASE, "cold_start_ms", "stop_ms"}
    slower = comparisons[PHASE]
    assert slower.verdict == SLOWER and 0 < slower.median_ci[0] < 50 < slower.median_ci[1] < 100
    assert comparisons["cold_start_ms"].verdict == SLOWER
    assert fail_if_slower(baseline, slow, 10.0, run="slow", baseline_name="baseline").startswith(
        f"slow is slower than the baseline baseline on {PHASE}")
    assert fail_if_slower(baseline, slow, 80.0, run="slow", baseline_name="baseline") is None
    assert fail_if_slower(baseline, same, 0.0, run="same", baseline_name="baseline") is None


def compare_cli(*args):
    return bootbench("compare", *args)


def phase_line(stdout: str, heading: str, phase: str) -> str:
    """The row of ``phase`` in the text table under ``heading``."""
    lines = stdout.splitlines()
    start = lines.index(heading)
    return next(line for line in lines[start:] if line.startswith(phase + " "))


def test_compare_baseline_says_slower_with_an_interval_excluding_zero_and_fails_if_slower(real_runs, tmp_path):
    base, slow = real_runs["baseline"], real_runs["slow"]
    base_id, slow_id = base.name, slow.name
    result = compare_cli("--baseline", base, slow, "--fail-if-slower", "10%", "--html", tmp_path / "c.html")
    assert result.returncode == 3, result.stderr
    line = phase_line(result.stdout, f"{slow_id} against the baseline {base_id}", PHASE)
    assert line.rstrip().endswith(SLOWER)
    low, high = (float(x) for x in re.search(r"([+-][0-9.]+) to ([+-][0-9.]+)", line).groups())
    assert 0 < low < 50 < high
    (sentence,) = [l for l in result.stderr.splitlines() if l.startswith(f"bootbench: {slow_id} is slower")]
    assert f"on {PHASE}: median " in sentence and "more than the allowed 10%." in sentence
    page = (tmp_path / "c.html").read_text()
    assert 'id="regression"' in page and 'id="regression-1"' in page and f">{SLOWER}<" in page
    # Allowed more than the change: the verdict stays "slower" but the command passes.
    assert compare_cli("--baseline", base, slow, "--fail-if-slower", "80%", "--html", tmp_path / "c.html").returncode == 0
    # --phase names another phase: session start (a fixed 20 ms on both servers) did not change.
    assert compare_cli("--baseline", base, slow, "--fail-if-slower", "10%", "--phase", "session_start_ms",
                       "--html", tmp_path / "c.html").returncode == 0


def test_compare_baseline_with_the_same_delays_is_no_significant_difference_and_exits_0(real_runs, tmp_path):
    base, same = real_runs["baseline"], real_runs["same"]
    result = compare_cli("--baseline", base, same, "--fail-if-slower", "0%", "--markdown",
                         "--html", tmp_path / "c.html")
    assert result.returncode == 0, result.stderr
    row_ = next(line for line in result.stdout.splitlines() if line.startswith(f"| {PHASE} |"))
    assert row_.endswith(f"| {NO_DIFFERENCE} |")
    assert "is slower" not in result.stderr


@pytest.mark.parametrize("args, sentence", [
    (["--fail-if-slower", "10%"], "bootbench: --fail-if-slower needs --baseline FOLDER (the run to compare with)"),
    (["--baseline", "{base}", "--fail-if-slower", "ten"],
     "bootbench: --fail-if-slower expects a non-negative percentage such as 10%, not 'ten'"),
    (["--baseline", "{base}", "--fail-if-slower", "5", "--phase", "latency"],
     "bootbench: --phase 'latency' is not a phase; use one of connect_ms, "),
    (["--baseline", "{tmp}/nowhere"], "bootbench: {tmp}/nowhere does not exist"),
])
def test_bad_compare_options_are_one_sentence_and_exit_2(real_runs, tmp_path, args, sentence):
    values = {"base": real_runs["baseline"], "tmp": tmp_path}
    result = compare_cli(*(a.format(**values) for a in args), real_runs["same"], "--html", tmp_path / "c.html")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(sentence.format(**values))
    assert not (tmp_path / "c.html").exists()


def test_a_difference_that_rounds_to_zero_is_never_negative_zero():
    # issue 20 item 11: compare printed "-0.0" for a median difference of -0.04 ms
    from bootbench.views.text import format_ms

    same = compare_phase(PHASE, [100.0, 100.02, 100.04] * 10, [100.0, 100.0, 100.0] * 10)
    cells = row(same)
    assert not any(re.search(r"-0\.0(?!\d)", cell) for cell in cells), cells
    assert cells[HEADER.index("Δ median (ms)")] == "+0.0"
    assert format_ms(-0.04) == "0.0" and format_ms(-0.05) == "-0.1" and format_ms(-1e-12) == "0.0"
    sentence = slower_than_allowed(compare_phase(PHASE, lognormal(1), [v + 30.0 for v in lognormal(2)]), 0.0,
                                   run="r", baseline="b")
    assert sentence is not None and "-0.0" not in sentence
