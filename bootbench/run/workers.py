"""Watching a distributed run's workers: a worker that died is recorded, and its tickets are written off.

Locust has no public "which workers are alive" call; :func:`live_workers`
is the one place that reads its private ``MasterRunner.clients`` and
``STATE_MISSING`` (tests/test_run_workers.py fails if they change).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import gevent
from locust.runners import STATE_MISSING, MasterRunner

if TYPE_CHECKING:
    from bootbench.run.master import MasterRun

WATCH_INTERVAL = 1.0
"""Seconds between two looks at the workers (Locust marks a worker missing after ~3 missed 1 s heartbeats)."""


def live_workers(runner: MasterRunner) -> set[str]:
    """Client ids of the workers the master still hears from."""
    return {node.id for node in runner.clients.values() if node.state != STATE_MISSING}


def watch(runner: Any, run: MasterRun, still_current: Callable[[], bool]) -> gevent.Greenlet | None:
    """On a master, write off the tickets of workers that died, every WATCH_INTERVAL s while ``still_current()``.

    The run then still ends by itself when the rest of its budget is spent.
    None on a local runner (no workers to lose).
    """
    if not isinstance(runner, MasterRunner):
        return None
    return gevent.spawn(_watch, runner, run, still_current)


def _watch(runner: MasterRunner, run: MasterRun, still_current: Callable[[], bool]) -> None:
    while still_current():
        run.write_off_missing(live_workers(runner), set(runner.clients.keys()))
        gevent.sleep(WATCH_INTERVAL)

