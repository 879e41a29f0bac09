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

import contextlib
import functools
import gc
import io
import logging
import os
import signal
import sys
from contextlib import AbstractContextManager, chdir, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from unittest import mock

import gevent
import gevent.event
from locust.env import Environment
from locust.event import Events

from bootbench import events as bootbench_events
from bootbench.run import harness, lifecycle
from bootbench.run.master import MasterRun
from bootbench.user import BootUser
from bootbench.views import progress
from support.processes import LOCUSTFILE, clean_env
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


@dataclass
class HeadlessRun:
    """What a finished in-process ``locust --headless`` run left: as :class:`support.processes.LocustRun` has it."""

    env: Environment
    run: MasterRun
    stdout: str
    stderr: str
    """What the run wrote to ``sys.stderr`` (log records go to pytest's capture, not here)."""
    log: list[str] = field(default_factory=list)
    """The ``bootbench`` loggers' records, ``name: message``, in order (what a real run's log shows of them)."""

    @property
    def metrics(self) -> dict[str, Any]:
        return self.run.metrics

    @property
    def folder(self) -> Path:
        return self.run.recorder.folder

    @property
    def exit_code(self) -> int:
        """The code Locust's main would exit with (locust/main.py ``shutdown``)."""
        if self.env.process_exit_code is not None:
            return self.env.process_exit_code
        if self.env.runner.errors or self.env.runner.exceptions:
            return self.env.parsed_options.exit_code_on_error
        return 0


def headless_run(*argv: str, host: str = "", results_dir: Path, users: int = 1, environ: dict[str, str] | None = None,
                 timeout: float = 90, command_line: bool = False, cwd: Path | None = None, report: bool = True,
                 progress_every: float | None = None) -> HeadlessRun:
    """``locust --headless -u USERS ARGV`` inside this process, as :func:`support.processes.run_locust` runs it.

    The process environment is cleaned of bootbench options and keys, plus ``environ``; stdout and stderr are
    captured; the root logger is at Locust's ``--loglevel`` (INFO), as Locust's ``setup_logging`` leaves it, so the
    run log gets what a real run's does. ``command_line``: ``sys.argv`` reads as that command's (the run's
    provenance records it). ``cwd``: the working directory the run starts in (as a process started there).
    ``report=False`` leaves report.html out, for a test that never reads it (:func:`without_report`).
    ``progress_every``: seconds between headless progress lines instead of the usual interval, so that a short
    run prints several.
    """
    printed, complained = io.StringIO(), io.StringIO()
    argv_now = ["locust", "-f", str(LOCUSTFILE), "--headless", "-u", str(users), *argv,
                *(["-H", host] if host else []), "--results-dir", str(results_dir)]
    every = (mock.patch.object(progress, "start", functools.partial(progress.start, interval=progress_every))
             if progress_every is not None else nullcontext())
    with mock.patch.dict(os.environ, clean_env(environ), clear=True), kept_signal_handlers(), \
            contextlib.redirect_stdout(printed), contextlib.redirect_stderr(complained), \
            mock.patch.object(sys, "argv", argv_now if command_line else sys.argv), \
            chdir(cwd) if cwd is not None else nullcontext(), nullcontext() if report else without_report(), every, \
            log_records("bootbench") as logged:
        with root_log_level(logging.INFO), young_objects_only():
            env = local_environment(*argv, host=host, results_dir=results_dir)
            run = run_to_end(env, users=users, timeout=timeout)
    return HeadlessRun(env, run, printed.getvalue(), complained.getvalue(), logged)


@dataclass(frozen=True)
class Planned:
    """One run of :func:`headless_runs`: ``locust --headless -u USERS ARGV [-H HOST] --results-dir RESULTS_DIR``."""

    argv: tuple[str, ...]
    results_dir: Path
    host: str = ""
    users: int = 1


def headless_runs(plans: dict[str, Planned], *, environ: dict[str, str] | None = None,
                  timeout: float = 90) -> dict[str, HeadlessRun]:
    """Several in-process ``locust --headless`` runs at the same time, each on an Environment of its own (so a
    Harness of its own: two runs in one process never see each other, tests/test_run_inprocess.py).

    A short run against the reference server is mostly waiting (delays, replies streamed at real-time pace), so
    runs side by side take about as long as the longest. The process-wide parts are set once, as
    :func:`headless_run` sets them. A run's ``stdout`` is what its end printed (the console summary, its checks,
    its folder last, printed without a pause, so that two runs' output never interleaves); ``stderr`` and ``log``
    are those of all the runs.
    """
    printed, complained = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ, clean_env(environ), clear=True), kept_signal_handlers(), \
            contextlib.redirect_stdout(printed), contextlib.redirect_stderr(complained), \
            log_records("bootbench") as logged, in_step(len(plans), timeout):
        with root_log_level(logging.INFO), young_objects_only():
            envs = {key: local_environment(*plan.argv, host=plan.host, results_dir=plan.results_dir)
                    for key, plan in plans.items()}
            running = {key: gevent.spawn(run_to_end, env, plans[key].users, None, timeout) for key, env in envs.items()}
            gevent.joinall(list(running.values()))
    runs = {key: greenlet.get() for key, greenlet in running.items()}  # a run that failed raises here
    output = _output_by_folder(printed.getvalue(), [run.recorder.folder for run in runs.values()])
    return {key: HeadlessRun(envs[key], run, output[run.recorder.folder], complained.getvalue(), logged)
            for key, run in runs.items()}


@contextmanager
def in_step(runs: int, timeout: float) -> Iterator[None]:
    """``runs`` runs in this process start their users together and end together.

    Runs in one process share one gevent loop, and a run's start (its folder, run.json, provenance) and its end
    (stopping its users, then metrics.json, the CSVs and report.html) are a few hundred milliseconds of CPU each,
    seconds on a loaded machine, during which no other greenlet runs: a run still timing its cycles would take
    that stall for a slow answer. So every user waits before it connects until every run has opened, and each
    run, once its iterations are done, waits for the others before it stops. Only the files' ``ended_at`` differ.
    """
    opened, done = gevent.event.Event(), gevent.event.Event()
    open_run, end_run, user_start = lifecycle.open_run, lifecycle._end_run, BootUser.on_start
    counts = {"opened": 0, "done": 0}

    def open_in_step(bench: harness.Harness) -> MasterRun:
        run = open_run(bench)
        counts["opened"] += 1
        if counts["opened"] >= runs:
            opened.set()
        return run

    def start_in_step(user: BootUser) -> None:
        opened.wait(timeout)
        user_start(user)

    def end_in_step(environment: Environment) -> None:
        counts["done"] += 1
        if counts["done"] >= runs:
            done.set()
        done.wait(timeout)
        end_run(environment)

    with mock.patch.object(lifecycle, "open_run", open_in_step), mock.patch.object(lifecycle, "_end_run", end_in_step), \
            mock.patch.object(BootUser, "on_start", start_in_step):
        yield


def _output_by_folder(text: str, folders: list[Path]) -> dict[Path, str]:
    """Console output of runs that ended one after another, split into each run's part: its lines up to its folder."""
    named = {str(folder): folder for folder in folders}
    parts: dict[Path, str] = {}
    lines: list[str] = []
    for line in text.splitlines(keepends=True):
        lines.append(line)
        if line.strip() in named:
            parts[named[line.strip()]] = "".join(lines)
            lines = []
    assert set(parts) == set(folders), f"not every run printed its folder:\n{text[-3000:]}"
    return parts


def without_report() -> AbstractContextManager[Any]:
    """Runs that end inside this block write every result file but report.html (for tests that never read it:
    drawing its plots takes matplotlib a good part of a second per run)."""
    return mock.patch("bootbench.exporters.write_report_safely", lambda folder, metrics: None)


@contextmanager
def log_records(name: str) -> Iterator[list[str]]:
    """The records logged to ``name`` and its children meanwhile, as ``name: message`` lines in order."""
    lines: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(f"{record.name}: {record.getMessage()}")
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)


@contextmanager
def root_log_level(level: int) -> Iterator[None]:
    """The root logger at ``level`` for a while (Locust's main sets it from ``--loglevel``)."""
    root = logging.getLogger()
    saved = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(saved)


@contextmanager
def young_objects_only() -> Iterator[None]:
    """The cyclic garbage collector looks only at objects made meanwhile (``gc.freeze``), for a timed run.

    The pytest process holds far more objects than a Locust process (every test module, pytest's own, earlier
    runs): a full collection there was measured at 150-300 ms, twice within one 20-iteration run, which a
    timed phase must not absorb. A subprocess run pays that only on its own, much smaller heap.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
