"""Timeline, Sample, and the statistics over samples.

A :class:`Timeline` holds the raw ``perf_counter_ns`` timestamps of one
cycle, taken by one process on one clock; :meth:`Timeline.phases` turns them
into the millisecond intervals defined in DESIGN.md. A :class:`Sample` is the
record of one finished iteration, as written to ``samples.jsonl`` and shipped
from workers to the master. :func:`summarize` computes exact statistics from
raw values (never from Locust's rounded buckets).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any, Iterable

import numpy as np

class ErrorKind(StrEnum):
    """Why a cycle failed; the value is what samples, metrics.json and the console show."""

    CONNECT_FAILED = "connect_failed"
    AUTH_FAILED = "auth_failed"
    SESSION_TIMEOUT = "session_timeout"
    AUDIO_TIMEOUT = "audio_timeout"
    DISCONNECTED = "disconnected"
    PROTOCOL_ERROR = "protocol_error"
    SERVER_ERROR = "server_error"
    SEND_FAILED = "send_failed"


@dataclass(frozen=True)
class Phase:
    """One interval bootbench reports: its name in every output, a label for people, and its two end events."""

    name: str
    label: str
    start: str
    end: str
    unit: str = "ms"


PHASE_TABLE: tuple[Phase, ...] = (
    Phase("connect_ms", "connect", "connect start", "transport open"),
    Phase("session_start_ms", "session start", "start request sent", "session ready"),
    Phase("first_response_ms", "first response", "session ready", "first audio event"),
    Phase("input_to_audio_ms", "input to audio", "last input sent", "first audio event"),
    Phase("cold_start_ms", "cold start", "cycle start", "first audio event"),
    Phase("stop_ms", "stop", "stop sent", "stop acknowledged"),
)
"""Every interval bootbench reports, in cycle order (docs/architecture.md defines each)."""
PHASE_BY_NAME: dict[str, Phase] = {p.name: p for p in PHASE_TABLE}
PHASES: tuple[str, ...] = tuple(p.name for p in PHASE_TABLE)
"""The phase names, in cycle order. ``first_response_ms`` is the headline."""

HEADLINE = "first_response_ms"

BOOTSTRAP_RESAMPLES = 2000
SMALL_SAMPLE = 100
"""Below this many samples a p99 is just the maximum; reports say so."""


@dataclass
class Timeline:
    """Raw monotonic timestamps (``time.perf_counter_ns()``) of one cycle; None = not reached."""

    cycle_start: int | None = None
    connect_start: int | None = None
    connected: int | None = None
    start_sent: int | None = None
    session_ready: int | None = None
    input_sent: int | None = None
    first_audio: int | None = None
    stop_sent: int | None = None
    stop_acked: int | None = None

    def phases(self) -> dict[str, float | None]:
        """The DESIGN.md intervals in milliseconds; None where an end was not reached."""
        return {
            "connect_ms": _ms(self.connect_start, self.connected),
            "session_start_ms": _ms(self.start_sent, self.session_ready),
            "first_response_ms": _ms(self.session_ready, self.first_audio),
            "input_to_audio_ms": _ms(self.input_sent, self.first_audio),
            "cold_start_ms": _ms(self.cycle_start, self.first_audio),
            "stop_ms": _ms(self.stop_sent, self.stop_acked),
        }


def _ms(start: int | None, end: int | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start) / 1e6


@dataclass
class Sample:
    """One finished iteration: who ran it, whether it got audio back, and its phases in ms."""

    iteration: int
    worker: str
    user: int
    started_at: str
    ok: bool
    error_kind: str | None = None
    error: str | None = None
    connect_ms: float | None = None
    session_start_ms: float | None = None
    first_response_ms: float | None = None
    input_to_audio_ms: float | None = None
    cold_start_ms: float | None = None
    stop_ms: float | None = None
    connected_this_cycle: bool = False
    anomalies: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def summarize(values: Iterable[float], *, seed: int = 0) -> dict[str, Any]:
    """Exact statistics of raw values: count, mean, median, min, max, stdev, p90/p95/p99, bootstrap CIs.

    Percentiles use linear interpolation between order statistics (numpy's
    default). The 95 % intervals for mean and median come from a seeded
    percentile bootstrap, so the same samples always give the same interval.
    """
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(data.size)
    if n == 0:
        return {"count": 0, **{k: None for k in ("mean", "median", "min", "max", "stdev", "p90", "p95", "p99")},
                "ci95_mean": None, "ci95_median": None}
    p90, p95, p99 = (float(x) for x in np.percentile(data, [90, 95, 99]))
    return {
        "count": n,
        "mean": float(data.mean()),
        "median": float(np.median(data)),
        "min": float(data.min()),
        "max": float(data.max()),
        "stdev": float(data.std(ddof=1)) if n > 1 else 0.0,
        "p90": p90,
        "p95": p95,
        "p99": p99,
        "ci95_mean": _bootstrap(data, np.mean, seed),
        "ci95_median": _bootstrap(data, np.median, seed),
    }


def _bootstrap(data: np.ndarray, statistic, seed: int) -> list[float] | None:
    if data.size < 2:
        return None
    rng = np.random.default_rng(seed)
    resamples = rng.choice(data, size=(BOOTSTRAP_RESAMPLES, data.size), replace=True)
    estimates = statistic(resamples, axis=1)
    low, high = np.percentile(estimates, [2.5, 97.5])
    return [float(low), float(high)]


def summarize_samples(samples: list[Sample]) -> dict[str, Any]:
    """The ``summary`` block of metrics.json: counts, success rate, and exact stats per phase.

    Failed iterations are counted but never contribute timings.
    """
    successes = [s for s in samples if s.ok]
    n = len(samples)
    return {
        "iterations": n,
        "successes": len(successes),
        "failures": n - len(successes),
        "success_rate": (len(successes) / n) if n else None,
        "p99_is_max": len(successes) < SMALL_SAMPLE,
        "phases": {phase: summarize(getattr(s, phase) for s in successes) for phase in PHASES},
    }


def summarize_errors(samples: list[Sample], first: int = 20) -> dict[str, Any]:
    """The ``errors`` block of metrics.json: counts by kind and the first messages with their iteration."""
    by_kind: dict[str, int] = {}
    listed: list[dict[str, Any]] = []
    for s in sorted(samples, key=lambda s: s.iteration):
        if s.ok:
            continue
        kind = s.error_kind or "unknown"
        by_kind[kind] = by_kind.get(kind, 0) + 1
        if len(listed) < first:
            listed.append({"iteration": s.iteration, "worker": s.worker, "kind": kind, "message": s.error})
    anomalies: dict[str, int] = {}
    for s in samples:
        for name, count in s.anomalies.items():
            anomalies[name] = anomalies.get(name, 0) + count
    return {"by_kind": by_kind, "first": listed, "anomalies": anomalies}
