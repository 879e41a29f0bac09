"""Exact headline statistics of the samples so far, cheap enough to recompute every few seconds.

The web UI tab and the headless progress line read a :class:`Snapshot`
while a run goes. Its percentiles use the same method as
:func:`bootbench.samples.summarize` (linear interpolation over the raw
values), so the final snapshot of a run shows exactly the numbers of its
metrics.json; it skips the bootstrap intervals, which would cost the users
sharing this process real CPU time.

    snap = snapshot(office.recorder.samples, planned=100)
    snap.median, snap.p95, snap.errors_by_kind
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from bootbench.samples import HEADLINE, SMALL_SAMPLE, Sample


@dataclass
class Snapshot:
    """Counts and first-response statistics of a run's finished iterations at one moment."""

    iterations: int
    planned: int
    successes: int
    failures: int
    first_response_ms: list[float] = field(default_factory=list)
    median: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None
    session_start_median: float | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.iterations if self.iterations else None

    @property
    def p99_is_max(self) -> bool:
        """True while there are too few samples for p99 to be more than the maximum."""
        return self.successes < SMALL_SAMPLE


def snapshot(samples: Sequence[Sample], planned: int = 0) -> Snapshot:
    """Statistics of ``samples`` (finished iterations so far); ``planned`` 0 means no limit."""
    samples = list(samples)
    ok = [s for s in samples if s.ok]
    values = [v for v in (getattr(s, HEADLINE) for s in ok) if v is not None and math.isfinite(v)]
    sessions = [s.session_start_ms for s in ok if s.session_start_ms is not None]
    errors: dict[str, int] = {}
    for s in samples:
        if not s.ok:
            kind = s.error_kind or "unknown"
            errors[kind] = errors.get(kind, 0) + 1
    snap = Snapshot(iterations=len(samples), planned=planned, successes=len(ok), failures=len(samples) - len(ok),
                    first_response_ms=values, errors_by_kind=dict(sorted(errors.items())))
    if values:
        data = np.asarray(values, dtype=np.float64)
        snap.median = float(np.median(data))
        snap.p95, snap.p99 = (float(x) for x in np.percentile(data, [95, 99]))
        snap.mean = float(data.mean())
    if sessions:
        snap.session_start_median = float(np.median(np.asarray(sessions, dtype=np.float64)))
    return snap


def histogram(values: Sequence[float], max_bins: int = 16) -> list[tuple[float, float, int]]:
    """``(low, high, count)`` bins of round width (1, 2 or 5 times a power of ten) covering ``values``.

    The number of bins is close to sqrt(n) for n values, and at most ``max_bins``.
    """
    if not values:
        return []
    low, high = float(min(values)), float(max(values))
    target = max(3, min(max_bins, math.ceil(math.sqrt(len(values)))))
    width = nice_width(high - low, target, max_bins) if high > low else 1.0
    start = math.floor(low / width) * width
    count = max(1, math.floor((high - start) / width) + 1)
    counts = [0] * count
    for v in values:
        counts[min(count - 1, int((v - start) // width))] += 1
    return [(start + i * width, start + (i + 1) * width, c) for i, c in enumerate(counts)]


def nice_width(span: float, target: int, most: int) -> float:
    """The width of 1, 2 or 5 times a power of ten that cuts ``span`` into nearest ``target`` bins, at most ``most``."""
    power = 10 ** math.floor(math.log10(span / target))
    candidates = [m * power * scale for scale in (0.1, 1, 10, 100) for m in (1, 2, 5)]
    fitting = [w for w in candidates if span / w + 1 <= most] or [max(candidates)]
    return min(fitting, key=lambda w: (abs(span / w - target), -w))
