"""bootbench on real Locust runners inside the test process: options, environments, runs, clusters.

Locust's own tests build a master and its workers in one process; so do
these. Each environment gets its own ``Events`` with bootbench's hooks
registered (:func:`bootbench.events.register`), so runs in one process never
share state (each has its own :class:`~bootbench.run.harness.Harness`).

    env = local_environment("-i", "3", host=server.url, results_dir=tmp_path)
    run = run_to_end(env, users=1)
    assert run.metrics["summary"]["successes"] == 3
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import gevent
from locust.env import Environment
from locust.event import Events

from bootbench import events as bootbench_events
from bootbench.run import harness
from bootbench.run.master import MasterRun
from bootbench.user import BootUser
from support.refusals import locust_parser


def parse(*argv: str) -> Any:
    """Locust's own parser with bootbench's options, on ``argv`` (no config file; LOCUST_* variables still apply)."""
    return locust_parser().parse_args(["-f", "locustfile.py", *argv])


def environment(*argv: str, host: str = "", results_dir: Path | None = None) -> Environment:
    """A Locust environment for ``argv`` with bootbench's hooks on its own events (no runner yet)."""
    args = [*argv, "--results-dir", str(results_dir)] if results_dir is not None else list(argv)
    parsed = parse("--headless", *args)
    events = Events()
    bootbench_events.register(events)
    return Environment(user_classes=[BootUser], events=events, host=host or None, parsed_options=parsed)


def init(env: Environment) -> harness.Harness:
    """Fire ``init`` as Locust's main does once the runner exists; the environment's harness."""
    env.events.init.fire(environment=env, runner=env.runner, web_ui=None)
    return harness.of(env)


def local_environment(*argv: str, host: str = "", results_dir: Path | None = None) -> Environment:
    """A single local process: environment, LocalRunner, ``init`` fired."""
    env = environment(*argv, host=host, results_dir=results_dir)
    env.create_local_runner()
    init(env)
    return env


def run_to_end(env: Environment, users: int, spawn_rate: float | None = None, timeout: float = 60) -> MasterRun:
    """Start ``users`` on the environment's (local or master) runner and wait until the run has ended by itself."""
    runner = env.runner
    runner.start(users, spawn_rate=spawn_rate or users)
    with gevent.Timeout(timeout, TimeoutError(f"the run did not end within {timeout} s")):
        runner.greenlet.join()
    finish(env)
    run = harness.of(env).last
    assert run is not None and run.metrics is not None, "the run was never closed"
    return run


def finish(env: Environment) -> None:
    """What Locust's main does when the runner is done: ``quitting`` then ``quit``."""
    env.events.quitting.fire(environment=env, reverse=True)
    env.events.quit.fire(exit_code=env.process_exit_code or 0)


@contextmanager
def kept_signal_handlers() -> Iterator[None]:
    """A run installs SIGINT/SIGTERM handlers for the process; give pytest its own back afterwards."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)
