"""The headless progress line's schedule: one :func:`~bootbench.views.text.progress_line` every few seconds.

The line goes through the ``bootbench`` logger next to Locust's own table;
the run layer starts it with the run and stops it when the run ends.

    greenlet = progress.start(run.samples, run.planned)
    ...
    progress.stop(greenlet)
"""

from __future__ import annotations

import logging
from typing import Callable, Sequence

import gevent

from bootbench.samples import HEADLINE, Sample
from bootbench.stats import snapshot
from bootbench.views.text import progress_line

INTERVAL = 5.0
"""Seconds between two progress lines."""

log = logging.getLogger("bootbench")


def start(samples: Sequence[Sample], planned: int, interval: float = INTERVAL,
          headline: str = HEADLINE, level: Callable[[], str] | None = None,
          ended: Callable[[], bool] = lambda: False) -> gevent.Greenlet:
    """Log a progress line about ``samples`` (the run's live list), led by ``headline``, every ``interval`` s.

    ``level`` leads the line: a sweep's current level, the turn the sessions in flight reached
    (:meth:`bootbench.run.master.MasterRun.progress_label`). Lines stop once ``ended()``: the run is over
    as soon as its last iteration is accounted for, while Locust still winds down.
    """
    return gevent.spawn(_report_every, samples, planned, interval, headline, level, ended)


def stop(greenlet: gevent.Greenlet | None) -> None:
    """End the progress lines of a run (no further line is logged)."""
    if greenlet is not None:
        greenlet.kill(block=False)


def _report_every(samples: Sequence[Sample], planned: int, interval: float, headline: str,
                  level: Callable[[], str] | None, ended: Callable[[], bool]) -> None:
    while True:
        gevent.sleep(interval)
        if ended():
            return
        log.info("%s", progress_line(snapshot(samples, planned, headline), level=level() if level else ""))
