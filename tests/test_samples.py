"""Exact statistics from raw samples, and the timeline's phase arithmetic."""

import numpy as np
import pytest

from bootbench.samples import PHASES, Sample, Timeline, summarize, summarize_errors, summarize_samples


def test_percentiles_are_exact_not_locust_buckets():
    # Locust would report p90 = p95 = p99 = 1200 for these (LOCUST_NOTES).
    values = np.linspace(800, 1200, 1000)
    stats = summarize(values)
    assert stats["p90"] == pytest.approx(np.percentile(values, 90))
    assert stats["p95"] == pytest.approx(1180.0, abs=0.5)
    assert stats["p99"] == pytest.approx(1196.0, abs=0.5)
    assert stats["median"] == pytest.approx(1000.0)
    assert (stats["min"], stats["max"], stats["count"]) == (800.0, 1200.0, 1000)


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    values = rng.normal(200, 20, 300)
    a, b = summarize(values), summarize(values)
    low, high = a["ci95_mean"]
    assert low < a["mean"] < high
    assert high - low == pytest.approx(2 * 1.96 * 20 / np.sqrt(300), rel=0.25)
    assert a["ci95_median"] == b["ci95_median"]


def test_empty_and_single_values():
    assert summarize([])["count"] == 0 and summarize([])["median"] is None
    one = summarize([5.0])
    assert one["stdev"] == 0.0 and one["ci95_mean"] is None and one["p99"] == 5.0


def test_timeline_phases_follow_the_design_table():
    ms = 1_000_000
    tl = Timeline(cycle_start=0, connect_start=1 * ms, connected=11 * ms, start_sent=12 * ms,
                  session_ready=62 * ms, input_sent=63 * ms, first_audio=212 * ms,
                  stop_sent=215 * ms, stop_acked=218 * ms)
    assert tl.phases() == {"connect_ms": 10.0, "session_start_ms": 50.0, "first_response_ms": 150.0,
                           "input_to_audio_ms": 149.0, "cold_start_ms": 212.0, "stop_ms": 3.0}
    assert Timeline(start_sent=0).phases()["session_start_ms"] is None


def test_failures_are_counted_but_never_timed():
    ok = [Sample(i, "local", 1, "t", True, first_response_ms=100.0 + i) for i in range(1, 4)]
    bad = Sample(4, "local", 1, "t", False, "auth_failed", "Invalid API key", first_response_ms=None,
                 anomalies={"stray_audio": 2})
    summary = summarize_samples(ok + [bad])
    assert (summary["iterations"], summary["successes"], summary["failures"]) == (4, 3, 1)
    assert summary["success_rate"] == 0.75
    assert summary["phases"]["first_response_ms"]["count"] == 3
    assert summary["phases"]["first_response_ms"]["max"] == 103.0
    assert set(summary["phases"]) == set(PHASES)
    errors = summarize_errors(ok + [bad])
    assert errors["by_kind"] == {"auth_failed": 1}
    assert errors["first"][0] == {"iteration": 4, "worker": "local", "kind": "auth_failed", "message": "Invalid API key"}
    assert errors["anomalies"] == {"stray_audio": 2}


def test_sample_round_trips_through_a_dict():
    s = Sample(7, "w1", 2, "t", True, first_response_ms=12.5, anomalies={"x": 1})
    assert Sample.from_dict({**s.to_dict(), "unknown_future_field": 1}) == s
