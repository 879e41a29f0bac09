"""Statistics from raw samples: exact percentiles, bootstrap intervals, the live snapshot, bins, the p99 note."""

import numpy as np
import pytest

from bootbench.samples import PHASES, TURN_PHASES, Sample, Turn
from bootbench.stats import (SMALL_SAMPLE, LiveSamples, block_means, errors_by_kind, p99_note, percentiles, round_bins,
                             snapshot, summarize, summarize_errors, summarize_phases, summarize_samples)


def test_percentiles_are_exact_not_locust_buckets():
    # Locust would report p90 = p95 = p99 = 1200 for these (docs/locust.md, section 1).
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
    assert summarize(values, intervals=False)["ci95_mean"] is None


def test_empty_and_single_values():
    assert summarize([])["count"] == 0 and summarize([])["median"] is None
    one = summarize([5.0])
    assert one["stdev"] is None and one["ci95_mean"] is None and one["p99"] == 5.0  # undefined for n = 1, not 0
    assert summarize([None, float("nan"), 3.0])["count"] == 1


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


def test_the_live_snapshot_shows_the_numbers_of_the_final_summary():
    rng = np.random.default_rng(3)
    samples = [Sample(i, "local", 1, "t", True, first_response_ms=float(v), session_start_ms=float(v) / 3)
               for i, v in enumerate(rng.lognormal(5, 0.3, 57), start=1)]
    samples += [Sample(58, "w", 1, "t", False, "audio_timeout", "x"), Sample(59, "w", 1, "t", False, None, "y")]
    snap, final = snapshot(samples, planned=80), summarize_samples(samples)
    head = final["phases"]["first_response_ms"]
    assert (snap.median, snap.p95, snap.p99, snap.mean) == (head["median"], head["p95"], head["p99"], head["mean"])
    assert snap.session_start_median == final["phases"]["session_start_ms"]["median"]
    assert (snap.iterations, snap.planned, snap.successes, snap.failures) == (59, 80, 57, 2)
    assert snap.errors_by_kind == errors_by_kind(samples) == {"audio_timeout": 1, "unknown": 1}
    assert snapshot([]).median is None and snapshot([]).success_rate is None


def mixed_samples(multi_turn: bool) -> list[Sample]:
    """Successes, failures, a value that is not finite, an inaudible reply; with warm turns when ``multi_turn``."""
    rng = np.random.default_rng(11)
    samples = []
    for i in range(1, 131):
        first = float(rng.lognormal(5, 0.3))
        sample = Sample(i, "local", i % 7, "t", i % 13 != 0, error_kind=None if i % 13 else "audio_timeout",
                        session_start_ms=float(rng.uniform(100, 300)), first_response_ms=first,
                        input_to_audio_ms=first - 1, first_audible_ms=None if i % 17 == 0 else first + 5,
                        stop_ms=float("nan") if i == 40 else 1.0, late_stamp_reads=1 if i % 11 == 0 or i == 26 else 0)
        if multi_turn and i % 5:
            warm = [float(v) for v in rng.uniform(80, 200, 1 + i % 3)]
            sample.turns = [Turn(1, input_to_audio_ms=first - 1)] + [Turn(k + 2, input_to_audio_ms=v)
                                                                      for k, v in enumerate(warm)]
            sample.cold_penalty_ms = first - 1 - float(np.median(warm))
        samples.append(sample)
    return samples


@pytest.mark.parametrize("multi_turn", [False, True])
def test_a_runs_live_list_gives_the_snapshot_of_its_samples_counted_afresh(multi_turn):
    """LiveSamples keeps each phase's values as samples are appended: the snapshot is the one a full pass gives."""
    samples = mixed_samples(multi_turn)
    live = LiveSamples()
    for count, sample in enumerate(samples, start=1):
        live.append(sample)
        if count in (1, 13, 60):
            assert snapshot(live, 200) == snapshot(list(live), 200)
    snap = snapshot(live, 200)
    assert snap == snapshot(samples, 200) and list(live) == samples
    ok = [s for s in samples if s.ok]
    phases = (*PHASES, *(TURN_PHASES if multi_turn else ()))
    assert snap.phases == summarize_phases(ok, phases, intervals=False, sums=True)
    assert (snap.iterations, snap.successes, snap.failures) == (130, 120, 10)
    assert snap.errors_by_kind == {"audio_timeout": 10} and snap.inaudible_replies == sum(
        1 for s in ok if s.first_audible_ms is None)
    # late kernel-stamp reads: every sample's, the failed iteration 26's too (12 of 130 samples have one)
    assert snap.late_stamp_reads == summarize_samples(samples)["late_stamp_reads"] == 12
    assert snapshot([Sample(1, "w", 1, "t", True, first_response_ms=1.0)]).late_stamp_reads is None  # process clock
    assert snap.phases["stop_ms"]["count"] == 119  # the NaN is no value
    if multi_turn:
        warm_sessions = [s for s in ok if s.cold_penalty_ms is not None]
        assert snap.cold_input_to_audio_median == float(np.median([s.input_to_audio_ms for s in warm_sessions]))
        assert snap.warm_input_to_audio_median == summarize(
            [t.input_to_audio_ms for s in warm_sessions for t in s.turns[1:]])["median"]
    else:
        assert snap.cold_penalty_median is None and "warm_input_to_audio_ms" not in snap.phases


def test_a_live_list_changed_behind_its_columns_is_counted_afresh():
    live = LiveSamples()
    for sample in mixed_samples(False)[:20]:
        live.append(sample)
    list.append(live, Sample(99, "local", 1, "t", False, error_kind="disconnected"))  # not through append()
    assert snapshot(live).failures == snapshot(list(live)).failures == 2


def test_p99_of_fewer_than_100_values_lies_between_the_two_slowest_and_the_note_says_so():
    for n in (2, 12, 57, 99):
        values = np.random.default_rng(n).uniform(100, 300, n)
        [p99] = percentiles(values, [99])
        top_two = np.sort(values)[-2:]
        assert top_two[0] <= p99 < top_two[1]
        assert p99_note(n) == f"fewer than {SMALL_SAMPLE} samples, so p99 rests on the slowest one or two"
    assert p99_note(0) == "" and p99_note(SMALL_SAMPLE) == ""


def test_round_bins_cover_every_value_with_round_widths():
    values = [101.0, 149.9, 150.0, 151.2, 160.3, 199.0, 240.5]
    bins = round_bins(values)
    assert sum(count for _, _, count in bins) == len(values)
    widths = {round(high - low, 9) for low, high, _ in bins}
    assert len(widths) == 1 and widths.pop() in (10.0, 20.0, 50.0)
    assert bins[0][0] <= min(values) and bins[-1][1] > max(values)
    assert round_bins([]) == [] and round_bins([5.0, 5.0]) == [(5.0, 6.0, 2)]


def test_block_means_ignore_missing_values():
    assert block_means([1.0, 3.0, np.nan, np.nan, 5.0], 2).tolist() == [2.0, 0.0, 5.0]


def test_identical_values_have_a_stdev_of_zero_not_float_noise():
    # issue 20 item 11: seven leading silences of 0.1 ms gave a stdev of 1.5e-17 (numpy's rounding of the mean);
    # the stdev is kept to the CSV files' precision (microseconds), so identical values read 0 everywhere
    for value in (0.1, 0.7, 2.3, 12345.678):
        stats = summarize([value] * 7)
        assert stats["stdev"] == 0.0 and str(stats["stdev"]) == "0.0", (value, stats["stdev"])
    assert summarize([1.0, 1.0004])["stdev"] == 0.0          # below a microsecond: zero, as the CSV shows it
    assert summarize([1.0, 2.0, 4.0])["stdev"] == 1.528      # a real spread, to the microsecond
    from bootbench.exporters import CSV_DECIMALS
    from bootbench.stats import STDEV_DECIMALS
    assert STDEV_DECIMALS == CSV_DECIMALS
