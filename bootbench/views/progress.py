"""The headless progress line: one compact line of exact numbers every few seconds.

    bootbench: 37/100 iterations, median 151.2 ms, p95 230.1 ms, 0 failed

It goes through the ``bootbench`` logger next to Locust's own table, and is
started and stopped with the run by the office (events.py).
"""

from __future__ import annotations

import logging
from typing import Sequence

import gevent

from bootbench.views.formatting import format_ms
from bootbench.views.live import Snapshot, snapshot
from bootbench.samples import Sample

INTERVAL = 5.0
"""Seconds between two progress lines."""

log = logging.getLogger("bootbench")


def progress_line(snap: Snapshot) -> str:
    """The one-line summary of a snapshot."""
    done = f"{snap.iterations}/{snap.planned}" if snap.planned else f"{snap.iterations}"
    parts = [f"bootbench: {done} iterations"]
    if snap.median is not None:
        parts.append(f"median {format_ms(snap.median)} ms")
        parts.append(f"p95 {format_ms(snap.p95)} ms")
    parts.append(f"{snap.failures} failed")
    if snap.errors_by_kind:
        parts[-1] += " (" + ", ".join(f"{kind} x{count}" for kind, count in snap.errors_by_kind.items()) + ")"
    return ", ".join(parts)


def start(samples: Sequence[Sample], planned: int, interval: float = INTERVAL) -> gevent.Greenlet:
    """Log a progress line about ``samples`` (the run's live list) every ``interval`` s until killed."""
    return gevent.spawn(_report_every, samples, planned, interval)


def stop(greenlet: gevent.Greenlet | None) -> None:
    """End the progress lines of a run (no further line is logged)."""
    if greenlet is not None:
        greenlet.kill(block=False)


def _report_every(samples: Sequence[Sample], planned: int, interval: float) -> None:
    while True:
        gevent.sleep(interval)
        log.info("%s", progress_line(snapshot(samples, planned)))
