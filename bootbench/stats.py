"""The one place bootbench computes statistics: from raw sample values, never from Locust's rounded buckets.

Final statistics for metrics.json (:func:`summarize_samples` with bootstrap
intervals, :func:`summarize_errors`), the cheap live :class:`Snapshot` the
web tab and the progress line recompute while a run goes, histogram bins,
and the percentiles the plots mark. Every percentile is numpy's linear
interpolation between order statistics, so a finished run's last snapshot,
its metrics.json, its report and its plots show the same numbers.

    summary = summarize_samples(samples)        # metrics.json "summary"
    snap = snapshot(samples, planned=100)        # snap.median, snap.p95, snap.errors_by_kind
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import numpy.ma  # noqa: F401  numpy imports it lazily on the first quantile (about 18 ms): here, at start-up, not mid-run in the first progress line

from bootbench.samples import HEADLINE, PHASES, TURN_PHASES, Sample, phase_values

BOOTSTRAP_RESAMPLES = 2000
SMALL_SAMPLE = 100
"""Below this many values p99 is interpolated between the slowest two (see :func:`p99_note`)."""
STATISTICS = ("count", "mean", "median", "min", "max", "stdev", "p90", "p95", "p99")
"""The statistics :func:`summarize` gives for every phase, besides its confidence intervals."""
STDEV_DECIMALS = 3
"""The standard deviation is kept to the CSV files' precision (``exporters.CSV_DECIMALS``: a microsecond). numpy's
stdev of identical values is float noise (seven values of 0.1 ms give 1.5e-17), and no clock stamps finer than that."""


def finite(values: Iterable[float | None]) -> list[float]:
    """The values that are numbers (not None, not NaN or infinite)."""
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float]:
    """The ``qs`` percentiles (0..100) of ``values``, by linear interpolation between order statistics."""
    return [float(x) for x in np.percentile(np.asarray(values, dtype=np.float64), qs)]


def p99_note(count: int) -> str:
    """What a p99 of ``count`` values really is, when that needs saying ("" from :data:`SMALL_SAMPLE` on).

    With n values, linear interpolation puts p99 at rank 0.99 (n - 1): for
    n < 100 that lies between the slowest and the second slowest value.
    """
    if count <= 0 or count >= SMALL_SAMPLE:
        return ""
    return f"fewer than {SMALL_SAMPLE} samples, so p99 rests on the slowest one or two"


def summarize(values: Iterable[float | None], *, seed: int = 0, intervals: bool = True) -> dict[str, Any]:
    """Exact statistics of raw values: :data:`STATISTICS` and 95 % bootstrap intervals of mean and median.

    The intervals come from a seeded percentile bootstrap, so the same values
    always give the same interval; ``intervals=False`` skips them (None). The
    sample standard deviation of a single value is undefined: None.
    """
    return summarize_array(np.asarray(finite(values), dtype=np.float64), seed=seed, intervals=intervals)


def summarize_array(data: np.ndarray, *, seed: int = 0, intervals: bool = True) -> dict[str, Any]:
    """:func:`summarize` of values that are all finite already, as a float64 array (the live columns' path)."""
    n = int(data.size)
    if n == 0:
        return {"count": 0, **{k: None for k in STATISTICS[1:]}, "ci95_mean": None, "ci95_median": None}
    p90, p95, p99 = percentiles(data, [90, 95, 99])
    return {
        "count": n,
        "mean": float(data.mean()),
        "median": float(np.median(data)),
        "min": float(data.min()),
        "max": float(data.max()),
        "stdev": round(float(data.std(ddof=1)), STDEV_DECIMALS) + 0.0 if n > 1 else None,  # + 0.0: never -0.0
        "p90": p90,
        "p95": p95,
        "p99": p99,
        "ci95_mean": _bootstrap(data, np.mean, seed) if intervals else None,
        "ci95_median": _bootstrap(data, np.median, seed) if intervals else None,
    }


BOOTSTRAP_MIN_VALUES = 2
"""Fewer values than this have no bootstrap interval: every resample of one value is that value."""


def _bootstrap(data: np.ndarray, statistic, seed: int) -> list[float] | None:
    if data.size < BOOTSTRAP_MIN_VALUES:
        return None
    rng = np.random.default_rng(seed)
    resamples = rng.choice(data, size=(BOOTSTRAP_RESAMPLES, data.size), replace=True)
    estimates = statistic(resamples, axis=1)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return [float(low), float(high)]


def summarize_groups(groups: Sequence[Iterable[float | None]], *, seed: int = 0,
                     intervals: bool = True) -> dict[str, Any]:
    """:func:`summarize` of a phase with several values per sample (``groups``: one list per sample).

    The statistics are exact over all values pooled. Values of one session
    are not independent (a slow session is slow on every turn), so the 95 %
    intervals come from a seeded cluster bootstrap: whole samples are
    resampled, each bringing all its values. With at most one value per
    sample this is :func:`summarize` itself, to the last digit.
    """
    clusters = [np.asarray(finite(group), dtype=np.float64) for group in groups]
    clusters = [c for c in clusters if c.size]
    if all(c.size == 1 for c in clusters):
        return summarize([float(c[0]) for c in clusters], seed=seed, intervals=intervals)
    result = summarize(np.concatenate(clusters).tolist(), intervals=False)
    if intervals:
        result["ci95_mean"] = _cluster_bootstrap(clusters, np.mean, seed)
        result["ci95_median"] = _cluster_bootstrap(clusters, np.median, seed)
    return result


def _cluster_bootstrap(clusters: list[np.ndarray], statistic, seed: int) -> list[float] | None:
    if len(clusters) < BOOTSTRAP_MIN_VALUES:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(clusters), size=(BOOTSTRAP_RESAMPLES, len(clusters)))
    if len({c.size for c in clusters}) == 1:  # equal-sized sessions (every one has N-1 warm turns): one array op
        stacked = np.stack(clusters)
        estimates = statistic(stacked[picks].reshape(BOOTSTRAP_RESAMPLES, -1), axis=1)
    else:
        estimates = np.array([statistic(np.concatenate([clusters[i] for i in row])) for row in picks])
    low, high = np.percentile(estimates, [2.5, 97.5])
    return [float(low), float(high)]


def summarize_samples(samples: Sequence[Sample]) -> dict[str, Any]:
    """The ``summary`` block of metrics.json: counts, success rate, and exact statistics per phase.

    Failed iterations are counted but never contribute timings. ``p99_is_max``
    (a v1 name, kept) is true below :data:`SMALL_SAMPLE` successes.
    """
    successes = [s for s in samples if s.ok]
    n = len(samples)
    return {
        "iterations": n,
        "successes": len(successes),
        "failures": n - len(successes),
        "success_rate": (len(successes) / n) if n else None,
        "p99_is_max": len(successes) < SMALL_SAMPLE,
        "inaudible_replies": inaudible_replies(successes),
        **late_stamps(samples),
        "greetings": sum(1 for s in samples if s.greeting_ms is not None),
        "answered_before_input_end": answered_before_input_end(successes),
        "phases": summarize_phases(successes, (*PHASES, *turn_phases(samples))),
        "service_latency": service_latency(successes),
    }


def summarize_phases(successes: Sequence[Sample], phases: Sequence[str], *, intervals: bool = True,
                     sums: bool = False) -> dict[str, dict[str, Any]]:
    """:func:`summarize` of each of ``phases`` over successful samples (a turn phase through :func:`summarize_groups`).

    metrics.json's ``summary.phases`` (with intervals) and the live :class:`Snapshot` (without, with ``sums``: each
    phase's ``sum`` of values as well) both come from here, so a finished run's last snapshot holds metrics.json's
    numbers to the last digit.
    """
    result = {}
    for phase in phases:
        if phase in TURN_PHASES:
            groups = [phase_values(s, phase) for s in successes]
            summary = summarize_groups(groups, intervals=intervals)
            values = finite(v for group in groups for v in group)
        else:
            values = finite(getattr(s, phase) for s in successes)
            summary = summarize(values, intervals=intervals)
        if sums:
            summary["sum"] = math.fsum(values)
        result[phase] = summary
    return result


def inaudible_replies(samples: Iterable[Sample]) -> int:
    """Successful iterations whose answer never became audible before it ended or the timeout (not failures)."""
    return sum(1 for s in samples if s.ok and s.first_response_ms is not None and s.first_audible_ms is None)


def late_stamps(samples: Sequence[Sample]) -> dict[str, int | None]:
    """The kernel clock's reads that waited for the reader thread, over the run: ``late_stamp_reads`` (their sum over
    the samples' own counts) and ``late_stamp_iterations`` (the samples that had any); both None when no sample was
    counted (the process clock, or a run recorded before the count).

    Such a read's bytes had waited in the kernel longer than Python's switch interval, so a message among them may
    carry a later one's stamp (bootbench.providers.kernel_clock): a timing of those iterations may be late by up to
    the window the run log gives for each connection.
    """
    counts = [s.late_stamp_reads for s in samples if s.late_stamp_reads is not None]
    if not counts:
        return {"late_stamp_reads": None, "late_stamp_iterations": None}
    return {"late_stamp_reads": sum(counts), "late_stamp_iterations": sum(1 for count in counts if count)}


def answered_before_input_end(samples: Iterable[Sample]) -> int:
    """Successful iterations with an answer (of any turn) that began before its input had all been sent."""
    return sum(1 for s in samples if s.ok and (
        s.answered_before_input_end_ms is not None
        or any(t.answered_before_input_end_ms is not None for t in s.turns or ())))


def service_latency(samples: Iterable[Sample]) -> dict[str, Any] | None:
    """"The service says X, bootbench measured Y": the median of each latency figure the service reported for its
    answers (Deepgram's ``LatencyReport``, :attr:`Sample.service_latency_ms`), over every turn that has a report,
    beside the median of bootbench's ``input_to_audio_ms`` over the same turns (metrics.json
    ``summary.service_latency``); None when the service reported nothing.

    Every turn counts (a single-turn iteration usually has no report: it arrives after the reply).
    """
    reported = [(t.service_latency_ms, t.input_to_audio_ms) for s in samples if s.ok
                for t in (s.turns or [s]) if t.service_latency_ms]
    if not reported:
        return None
    names = sorted({name for figures, _ in reported for name in figures}, key=lambda name: (name != "total_ms", name))
    ours = finite(measured for _, measured in reported)
    return {"turns": len(reported),
            "service": {name: float(np.median(finite(figures.get(name) for figures, _ in reported)))
                        for name in names},
            "measured": {"input_to_audio_ms": float(np.median(ours)) if ours else None}}


def turn_phases(samples: Iterable[Sample]) -> tuple[str, ...]:
    """:data:`~bootbench.samples.TURN_PHASES` when the samples come from a run with ``--turns`` > 1, else ()."""
    return TURN_PHASES if any(s.turns is not None for s in samples) else ()


def errors_by_kind(samples: Iterable[Sample]) -> dict[str, int]:
    """How many iterations failed of each error kind, sorted by kind."""
    counts: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            kind = s.error_kind or "unknown"
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def summarize_errors(samples: Sequence[Sample], first: int = 20) -> dict[str, Any]:
    """The ``errors`` block of metrics.json: counts by kind, the first messages with their iteration, anomalies."""
    failed = [s for s in sorted(samples, key=lambda s: s.iteration) if not s.ok]
    listed = [{"iteration": s.iteration, "worker": s.worker, "kind": s.error_kind or "unknown", "message": s.error}
              for s in failed[:first]]
    anomalies: dict[str, int] = {}
    for s in samples:
        for name, count in s.anomalies.items():
            anomalies[name] = anomalies.get(name, 0) + count
    return {"by_kind": errors_by_kind(failed), "first": listed, "anomalies": anomalies}


@dataclass
class Snapshot:
    """Counts and exact statistics of a run's finished iterations at one moment.

    ``first_response_ms``, ``median``, ``p95``, ``p99`` and ``mean`` are those
    of the ``headline`` phase (``first_response_ms`` unless ``--headline`` says otherwise);
    ``phases`` holds every phase's statistics without intervals (metrics.json's, see :func:`summarize_phases`).
    """

    iterations: int
    planned: int
    """The planned number of iterations; 0 means no limit."""
    successes: int
    failures: int
    first_response_ms: list[float] = field(default_factory=list)
    median: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    session_start_median: float | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    cold_penalty_median: float | None = None
    """``--turns`` > 1 only: the median cold penalty so far (else None)."""
    warm_input_to_audio_median: float | None = None
    cold_input_to_audio_median: float | None = None
    """``--turns`` > 1 only: median ``input_to_audio_ms`` of turn 1 of the sessions that had warm turns."""
    headline: str = HEADLINE
    first_audible_median: float | None = None
    inaudible_replies: int = 0
    late_stamp_reads: int | None = None
    """Kernel clock: the samples' ``late_stamp_reads`` so far (metrics.json's ``summary.late_stamp_reads``); None
    while no sample has a count (the process clock)."""
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Every phase's :func:`summarize` without intervals, plus ``sum`` (the sum of its values), by phase name."""

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.iterations if self.iterations else None


class PhaseColumns:
    """What a :class:`Snapshot` is computed from: counts, and each phase's finite values over the successful samples.

    Values are kept in sample order (``array('d')``), so the statistics are those of :func:`summarize_phases`
    over the same samples to the last digit. :meth:`add` is a few microseconds per sample; a snapshot is then
    numpy work over the columns, not a Python pass over every sample for every phase (over 100 000 samples
    that pass took about half a second, every few seconds, inside the process whose users it stalled).
    """

    def __init__(self) -> None:
        self.iterations = 0
        self.successes = 0
        self.errors: dict[str, int] = {}
        self.inaudible = 0
        self.late_stamp_reads: int | None = None
        self.multi_turn = False
        self.values: dict[str, array] = {phase: array("d") for phase in (*PHASES, *TURN_PHASES)}
        self.cold_input_to_audio = array("d")
        """``--turns`` > 1: turn 1's ``input_to_audio_ms`` of the sessions with a cold penalty."""

    @classmethod
    def of(cls, samples: Iterable[Sample]) -> PhaseColumns:
        columns = cls()
        for sample in samples:
            columns.add(sample)
        return columns

    def add(self, sample: Sample) -> None:
        """Count one finished sample (in the order the samples list holds them)."""
        self.iterations += 1
        if sample.turns is not None:
            self.multi_turn = True
        if sample.late_stamp_reads is not None:   # counted for every sample, as late_stamps() does
            self.late_stamp_reads = (self.late_stamp_reads or 0) + sample.late_stamp_reads
        if not sample.ok:
            kind = sample.error_kind or "unknown"
            self.errors[kind] = self.errors.get(kind, 0) + 1
            return
        self.successes += 1
        for phase in PHASES:
            value = getattr(sample, phase)
            if value is not None and math.isfinite(value):
                self.values[phase].append(value)
        if sample.turns is not None or sample.cold_penalty_ms is not None:
            for phase in TURN_PHASES:
                self.values[phase].extend(float(v) for v in phase_values(sample, phase)
                                          if v is not None and math.isfinite(v))
            if sample.cold_penalty_ms is not None and sample.input_to_audio_ms is not None \
                    and math.isfinite(sample.input_to_audio_ms):
                self.cold_input_to_audio.append(sample.input_to_audio_ms)
        if sample.first_response_ms is not None and sample.first_audible_ms is None:
            self.inaudible += 1

    def snapshot(self, planned: int = 0, headline: str = HEADLINE) -> Snapshot:
        phases: dict[str, dict[str, Any]] = {}
        for phase in (*PHASES, *(TURN_PHASES if self.multi_turn else ())):
            column = self.values[phase]
            phases[phase] = {**summarize_array(np.array(column, dtype=np.float64), intervals=False),
                             "sum": math.fsum(column)}
        head = phases[headline]
        snap = Snapshot(iterations=self.iterations, planned=planned, successes=self.successes,
                        failures=self.iterations - self.successes, first_response_ms=self.values[headline].tolist(),
                        median=head["median"], p95=head["p95"], p99=head["p99"], mean=head["mean"],
                        session_start_median=phases["session_start_ms"]["median"],
                        errors_by_kind=dict(sorted(self.errors.items())), headline=headline,
                        first_audible_median=phases["first_audible_ms"]["median"], inaudible_replies=self.inaudible,
                        late_stamp_reads=self.late_stamp_reads, phases=phases)
        if self.multi_turn:
            snap.cold_penalty_median = phases["cold_penalty_ms"]["median"]
            snap.cold_input_to_audio_median = summarize_array(np.array(self.cold_input_to_audio, dtype=np.float64),
                                                              intervals=False)["median"]
            snap.warm_input_to_audio_median = phases["warm_input_to_audio_ms"]["median"]
        return snap


class LiveSamples(list):
    """A run's samples as they arrive (a list: the recorder appends each), with their :class:`PhaseColumns`
    kept up to date on :meth:`append`, so that :func:`snapshot` of them needs no pass over every sample."""

    def __init__(self) -> None:
        super().__init__()
        self.columns = PhaseColumns()

    def append(self, sample: Sample) -> None:
        super().append(sample)
        self.columns.add(sample)


def snapshot(samples: Sequence[Sample], planned: int = 0, headline: str = HEADLINE) -> Snapshot:
    """Statistics of ``samples`` (finished iterations so far), without the costly bootstrap intervals.

    Cheap enough to recompute every few seconds in a process whose users
    share the CPU; the numbers equal those :func:`summarize_samples` gives.
    A :class:`LiveSamples` (a run's own list) brings its columns; any other
    sequence is counted here, once.
    """
    columns = getattr(samples, "columns", None)
    if not isinstance(columns, PhaseColumns) or columns.iterations != len(samples):
        columns = PhaseColumns.of(samples)
    return columns.snapshot(planned, headline)


def round_bins(values: Sequence[float], max_bins: int = 16) -> list[tuple[float, float, int]]:
    """``(low, high, count)`` bins of round width (1, 2 or 5 times a power of ten) covering ``values``.

    The number of bins is close to sqrt(n) for n values, and at most
    ``max_bins``: bins a person reads as numbers (the web tab's text histogram).
    """
    if not values:
        return []
    low, high = float(min(values)), float(max(values))
    target = max(3, min(max_bins, math.ceil(math.sqrt(len(values)))))
    width = _round_width(high - low, target, max_bins) if high > low else 1.0
    start = math.floor(low / width) * width
    count = max(1, math.floor((high - start) / width) + 1)
    counts = [0] * count
    for v in values:
        counts[min(count - 1, int((v - start) // width))] += 1
    return [(start + i * width, start + (i + 1) * width, c) for i, c in enumerate(counts)]


def _round_width(span: float, target: int, most: int) -> float:
    """The width of 1, 2 or 5 times a power of ten that cuts ``span`` into nearest ``target`` bins, at most ``most``."""
    power = 10 ** math.floor(math.log10(span / target))
    candidates = [m * power * scale for scale in (0.1, 1, 10, 100) for m in (1, 2, 5)]
    fitting = [w for w in candidates if span / w + 1 <= most] or [max(candidates)]
    return min(fitting, key=lambda w: (abs(span / w - target), -w))


def plot_bin_edges(values: Sequence[float]) -> np.ndarray:
    """Bin edges for a drawn histogram: numpy's "auto" rule, kept between 8 and 60 bins."""
    data = np.asarray(values, dtype=float)
    edges = np.histogram_bin_edges(data, bins="auto")
    if len(edges) - 1 > 60:
        return np.linspace(data.min(), data.max(), 61)
    if len(edges) - 1 < 8:
        span = max(data.max() - data.min(), 1.0)
        return np.linspace(data.min() - span * 0.05, data.max() + span * 0.05, 11)
    return edges


def rolling_median(values: Sequence[float], window: int) -> np.ndarray:
    """The median of each value's centred ``window`` of neighbours (fewer at the ends)."""
    import pandas as pd

    return pd.Series(values, dtype=float).rolling(window, min_periods=1, center=True).median().to_numpy()


def block_means(values: Sequence[float], block: int) -> np.ndarray:
    """The mean of each run of ``block`` consecutive values, NaN ignored; 0 for a block with no number."""
    data = np.asarray(values, dtype=float)
    means = []
    for start in range(0, data.size, block):
        present = data[start:start + block]
        present = present[~np.isnan(present)]
        means.append(float(present.mean()) if present.size else 0.0)
    return np.array(means)
