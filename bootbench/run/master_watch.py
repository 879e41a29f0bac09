"""A worker's watch on its master: a master that stops answering ends the worker within a bound.

A master that is killed, or whose network goes away without a FIN, leaves
its workers waiting: Locust's worker quits only after 60 s without a
heartbeat reply (``MASTER_HEARTBEAT_TIMEOUT``), and its users go on calling
the service meanwhile. During a run, this watch stops the worker after
``--master-silence-s`` (default 10 s) without one, with one sentence in its
log and exit code 1; its iterations in flight are lost (the master, if it is
still there, has written them off already).

"During a run" is from the worker's ``test_start`` to the master's flush
request (:mod:`bootbench.run.messages`): once the master has asked for the
last samples it writes the run's files, which can keep it from answering
heartbeats for a few seconds, and then tells its workers to quit.

Locust fires ``heartbeat_received`` on a worker for each reply of the master
to the worker's 1 s heartbeat (docs/locust.md, section 2).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gevent
from locust.runners import STATE_RUNNING, STATE_SPAWNING, WorkerRunner

log = logging.getLogger("bootbench")

CHECK_INTERVAL = 1.0
"""Seconds between two looks at the time of the master's last heartbeat reply."""
TICKET_SLACK = 5.0
"""A user waits for its ticket this much longer than the silence bound, so that the watch speaks first."""
LOCAL_TICKET_WAIT = 60.0
"""The ticket wait of a local run's users (their master is in the same process)."""


def ticket_wait(runner: Any, silence_s: float) -> float:
    """Seconds a user waits for its iteration ticket before giving up (the master is gone).

    Only a worker waits on the network, ``silence_s`` (``--master-silence-s``)
    + :data:`TICKET_SLACK`; a local runner answers at once (LOCAL_TICKET_WAIT is a backstop).
    """
    return ticket_wait_s(on_worker=isinstance(runner, WorkerRunner), silence_s=silence_s)


def ticket_wait_s(*, on_worker: bool, silence_s: float) -> float:
    """:func:`ticket_wait` for a user on a worker (``on_worker``) or in the local process, before any runner exists."""
    return silence_s + TICKET_SLACK if on_worker else LOCAL_TICKET_WAIT


@dataclass(eq=False)
class MasterWatch:
    """A worker's view of its master: when it last answered a heartbeat, and whether a run is on."""

    heard: float = field(default_factory=time.monotonic)
    """When the master last answered a heartbeat (monotonic seconds)."""
    armed: bool = False
    """A run is on and the master has not asked for its last samples yet."""

    def run_ending(self) -> None:
        """The master asked for this worker's last samples: it is about to write the run's files, then quit."""
        self.armed = False


def watch(environment: Any, state: MasterWatch, silence_bound: Callable[[], float]) -> gevent.Greenlet | None:
    """On a worker, watch the master's heartbeat replies for the process's lifetime; None elsewhere.

    ``silence_bound()`` is the current run's ``--master-silence-s``.
    """
    runner = environment.runner
    if not isinstance(runner, WorkerRunner):
        return None

    def on_heartbeat(**_kwargs: Any) -> None:
        state.heard = time.monotonic()

    def on_test_start(**_kwargs: Any) -> None:
        state.heard, state.armed = time.monotonic(), True

    environment.events.heartbeat_received.add_listener(on_heartbeat)
    environment.events.test_start.add_listener(on_test_start)
    return gevent.spawn(_watch, environment, state, silence_bound)


def _watch(environment: Any, state: MasterWatch, silence_bound: Callable[[], float]) -> None:
    runner = environment.runner
    while True:
        gevent.sleep(CHECK_INTERVAL)
        if not state.armed or runner.state not in (STATE_SPAWNING, STATE_RUNNING):
            continue
        bound = silence_bound()
        if time.monotonic() - state.heard < bound:
            continue
        log.error("bootbench: lost the master at %s:%s (no heartbeat for %g s); stopping this worker, "
                  "its iterations in flight are lost", runner.master_host, runner.master_port, bound)
        environment.process_exit_code = 1
        gevent.spawn(runner.quit)
        return
