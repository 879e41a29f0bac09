"""Watching a distributed run's workers: a worker that died is recorded, and its tickets are written off.

Locust has no public "which workers are alive" call; :func:`live_workers`
is the one place that reads its private ``MasterRunner.clients`` and
``STATE_MISSING`` (tests/test_run_workers.py fails if they change).
:func:`spawn_messages_without_stall` works around a Locust worker that stalls on
every spawn message.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

import gevent
from locust import argument_parser
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


def spawn_messages_without_stall() -> None:
    """Make Locust's ``default_args_dict`` build its parser once per process instead of once per option.

    A Locust 2.47 worker handling a spawn message calls
    ``argument_parser.default_args_dict()`` for each of the ~100 options the
    master sends, and each call builds and runs a whole argument parser. On a
    busy machine that blocks the worker for seconds, the master hears no
    heartbeat for 3 s and marks it missing: a run loses all its workers on its
    first spawn. The defaults do not change within a process; callers get a copy.
    """
    original = argument_parser.default_args_dict
    if getattr(original, "bootbench_cached", False):
        return
    cached = functools.cache(original)

    def default_args_dict() -> dict:
        return dict(cached())

    default_args_dict.bootbench_cached = True  # type: ignore[attr-defined]
    argument_parser.default_args_dict = default_args_dict
