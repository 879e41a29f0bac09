"""The Locust side of a concurrency sweep: a ``LoadTestShape`` that walks the levels of ``--sweep``.

Locust drives users over time with a :class:`locust.LoadTestShape`: its
``tick()`` returns ``(user_count, spawn_rate)`` and the runner ramps to it
(on a master, across the workers). bootbench installs :class:`SweepShape` as
``environment.shape_class`` when ``--sweep`` is given (in ``init``, on the
master or the single local process), so headless runs, ``--processes`` and
master/worker runs, and the web UI's start button all drive it the same way.

A level does not end after a time but when its iterations have finished, so
``tick()`` waits: it polls the run's :class:`~bootbench.run.sweep.Sweep`
every :data:`POLL` s, starts each round (answers the held ticket requests),
asks the processes for their CPU at the level's edges, and returns the next
level's user count once the level is done; ``None`` once the run is over
(Locust then stops, or quits a headless run).
"""

from __future__ import annotations

import logging
from typing import Any

import gevent
from locust import LoadTestShape
from locust.runners import STATE_RUNNING

from bootbench.run import harness, messages
from bootbench.run.sweep import FINISHED, SPAWN_RATE

log = logging.getLogger("bootbench")

POLL = 0.01
"""Seconds between two looks at the sweep while a level runs."""


class SweepShape(LoadTestShape):
    """Runs the levels of ``--sweep`` one after another, each until its iterations have finished."""

    def __init__(self, first_level: int) -> None:
        super().__init__()
        self.first_level = first_level

    def tick(self) -> tuple[int, float] | None:
        run = harness.of(self.runner.environment).current
        if run is None or run.sweep is None:
            # The first tick: the run opens at test_start, which ramping to the first level fires.
            return self.first_level, SPAWN_RATE
        runner = self.runner
        sweep = run.sweep
        while True:
            if run.budget.closed:  # stopped early, or stopping
                return None
            spawned = runner.state == STATE_RUNNING
            step = sweep.step(run.budget, runner.user_count, spawned)
            if step.edge is not None:
                index, edge = step.edge
                log.info("sweep: level %d/%d (%d users) %s", index + 1, len(sweep.levels), sweep.levels[index],
                         "starts" if edge == "open" else "done")
                messages.ask_cpu(runner, index, edge)
            if step.release:
                messages.release(runner, run, step.release)
            if sweep.state == FINISHED:
                return None
            if step.spawn is not None:
                return step.spawn, SPAWN_RATE
            gevent.sleep(POLL)


def install(environment: Any, levels: tuple[int, ...]) -> None:
    """Make ``environment`` run the sweep ``levels`` as its load shape (the master's or local runner's)."""
    shape = SweepShape(levels[0])
    shape.runner = environment.runner
    environment.shape_class = shape
