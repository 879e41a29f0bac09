"""The harness: everything bootbench keeps for one Locust environment, reached as ``environment.bootbench``.

Locust keeps a test's state on its :class:`~locust.env.Environment` and
runner, never in module globals; bootbench does the same. One
:class:`Harness` hangs off each environment (attached by ``init``, or by
whichever hook Locust calls first), and every hook, user, message handler,
load shape and web UI view reaches it through :func:`of`. Two environments in
one process (a master and its workers in a test, two web UI sessions)
therefore never see each other's runs.

What it holds, by role:

- the master, or the single local process: the run in progress and the last
  one (:class:`~bootbench.run.master.MasterRun`; the web UI tab shows the last
  until the next starts), the embedded reference server, the dead-worker watch
  and progress line greenlets, and the signal that is stopping the process;
- a process that runs users (a worker, or the local process): the users'
  :class:`~bootbench.run.context.RunContext`, the user numbers, the ticket
  requests waiting for the master's answer;
- a worker: its watch on a silent master;
- the master, or the single local process: its Prometheus metrics (:class:`~bootbench.run.exposition.Exposition`:
  its own registry, ``/metrics``, the push at the end).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

import gevent
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from bootbench.run.context import RunContext
from bootbench.run.embedded import EmbeddedServer
from bootbench.run.exposition import Exposition
from bootbench.run.master import MasterRun
from bootbench.run.master_watch import MasterWatch
from bootbench.run.messages import TicketRequests

ATTRIBUTE = "bootbench"
"""The attribute of a Locust ``Environment`` that holds its :class:`Harness`."""


@dataclass(eq=False)
class Harness:
    """bootbench's state on one Locust environment, for the process's lifetime (across web UI runs)."""

    environment: Any
    current: MasterRun | None = None
    """The run in progress (master or local process), or None between runs."""
    last: MasterRun | None = None
    """The last run opened (what the web UI tab shows between runs)."""
    signal: str | None = None
    """The signal that is stopping this process ("SIGINT", "SIGTERM"), once one arrived."""
    embedded: EmbeddedServer = field(default_factory=EmbeddedServer)
    watcher: gevent.Greenlet | None = None
    """The current run's dead-worker watch (on a master)."""
    progress: gevent.Greenlet | None = None
    """The current run's progress line (headless)."""
    context: RunContext | None = None
    """What this process's users read for the current run (a worker's, or the local process's)."""
    user_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    """Numbers of the users this process starts."""
    tickets: TicketRequests = field(default_factory=TicketRequests)
    """The users' ticket requests waiting for the master's answer."""
    master_watch: MasterWatch = field(default_factory=MasterWatch)
    """A worker's watch on its master's heartbeat replies."""
    exposition: Exposition = field(default_factory=Exposition)
    """The Prometheus metrics of this environment's runs (master or local process): registry, endpoints, push."""
    serving_users: bool = False
    """The users' message handlers are registered on the runner (see ``events._serve_users``)."""

    @property
    def runner(self) -> Any:
        return self.environment.runner

    @property
    def owns_runs(self) -> bool:
        """This process owns the runs: a master, or the single local process."""
        return isinstance(self.runner, (MasterRunner, LocalRunner))

    @property
    def runs_users(self) -> bool:
        """This process runs users: a worker, or the single local process."""
        return isinstance(self.runner, (WorkerRunner, LocalRunner))

    def current_or_last(self) -> MasterRun | None:
        """The run in progress, else the last one (what the web UI tab shows)."""
        return self.current or self.last

    def next_user_number(self) -> int:
        """A number for a new user, unique within this environment."""
        return next(self.user_numbers)


def of(environment: Any) -> Harness:
    """The harness of ``environment``, attached on first use.

    ``init`` attaches it, but Locust can call bootbench before ``init``: a
    worker that joins a running master gets the master's spawn message while
    it is still connecting, and fires ``test_start`` (and starts users) before
    Locust's main fires ``init``.
    """
    harness = getattr(environment, ATTRIBUTE, None)
    if not isinstance(harness, Harness):
        harness = Harness(environment)
        setattr(environment, ATTRIBUTE, harness)
    return harness
