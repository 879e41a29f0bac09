"""Fixtures shared by the tests; the helpers themselves live in tests/support/."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_sessionstart(session):
    """Locust monkey-patches the standard library with gevent when it is first imported. Import it before any
    test module imports ssl (requests, aiohttp, websocket-client), as `locust` itself does, or the late patch
    of ssl recurses (gevent issue 1016) depending on which test file pytest collects first.

    Not at this file's import: a pytest-xdist worker builds its test queue (a lock and an event that its
    receiving thread, a real thread, sets) after loading this file and before the session starts. Patched
    first, those would be gevent's, which a real thread cannot wake, and the worker would stop at its first
    wait (gevent LoopExit); tests/support/xdist_gevent.py makes the worker's one wait a polled one."""
    import locust  # noqa: F401
    from support import xdist_gevent

    xdist_gevent.install(session.config)


@pytest.fixture
def refusals(tmp_path, monkeypatch):
    """Bad input parsed and checked in-process, in tmp_path with a clean environment (tests/support/refusals.py)."""
    from support.refusals import Refusals

    return Refusals.in_folder(tmp_path, monkeypatch)


@pytest.fixture(scope="session", autouse=True)
def _prompt_reference_servers():
    """Every reference server a test starts in this process runs under SCHED_FIFO (support.processes.make_prompt):
    its ground truth holds while other processes keep the cores busy. Without the privilege the servers run
    under normal scheduling, as before."""
    from bootbench.server.launcher import ReferenceServer
    from support.processes import make_prompt

    start = ReferenceServer.start.__func__

    def prompt_start(cls, *args, **kwargs):
        server = start(cls, *args, **kwargs)
        make_prompt(server.pid)
        return server

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ReferenceServer, "start", classmethod(prompt_start))
        yield


@pytest.fixture(autouse=True)
def _process_signal_handlers():
    """An in-process run installs SIGINT/SIGTERM handlers for the process (bootbench.run.lifecycle.note_signals):
    every test gives pytest its own back. Fixtures of a wider scope that run in-process keep theirs themselves."""
    from support.inprocess import kept_signal_handlers

    with kept_signal_handlers():
        yield


@pytest.fixture
def reference_server(tmp_path):
    """Factory: start a real reference server process with the given options; stopped after the test."""
    from bootbench.server.launcher import ReferenceServer

    started = []

    def start(**kwargs) -> ReferenceServer:
        kwargs.setdefault("ground_truth", str(tmp_path / f"truth{len(started)}.jsonl"))
        server = ReferenceServer.start(**kwargs)
        server.ground_truth = Path(kwargs["ground_truth"])
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def shared_reference_server(tmp_path_factory):
    """Factory cached for the whole session: the same options give the same running server, stopped at the end.

    Runs against a shared server read only their own sessions and the difference of its counters
    (tests/support/ground_truth.py).
    """
    from bootbench.server.launcher import ReferenceServer

    running: dict[str, ReferenceServer] = {}

    def start(**kwargs) -> ReferenceServer:
        key = repr(sorted((name, list(value) if isinstance(value, (list, tuple)) else value)
                          for name, value in kwargs.items()))
        if key not in running:
            truth = tmp_path_factory.mktemp("shared-server") / "truth.jsonl"
            server = ReferenceServer.start(**{"ground_truth": str(truth), **kwargs})
            server.ground_truth = Path(kwargs.get("ground_truth", truth))
            running[key] = server
        return running[key]

    yield start
    for server in running.values():
        server.stop()


@pytest.fixture(scope="session")
def shared_ground_truth_run(shared_reference_server, tmp_path_factory):
    """Factory: the session's in-process ground-truth run for a provider at a pace (run on first use, then cached).

    ``pace="burst"`` (the default): four iterations of three turns against ``SHARED_RUN_SERVER`` (cold and warm
    delays, 230 ms of leading silence); the provider, audible, turns and accuracy tests read it.
    ``pace="realtime"``: two iterations, one turn, against ``SHARED_REALTIME_SERVER`` (230 ms of leading silence,
    and a greeting for OpenAI and Gemini); the audible, greeting and provider tests read it.

    The burst runs of four providers run side by side in this process (tests/support/ground_truth.py
    ``SIDE_BY_SIDE``, ``ground_truth_runs``): the first test to ask for one of them waits for all four.

    Two runs, not one: at burst pace an OpenAI or Gemini answer pre-empts a greeting before it starts and an
    Aivoco client takes a greeting for the answer, so greetings need the real-time pace; and three turns at
    real-time pace would take three times as long (and Aivoco's server answers a streaming clip from its first
    chunk, so real-time turns say nothing the burst ones do not). tests/support/ground_truth.py has the details.
    """
    from support.ground_truth import (GroundTruthRun, ground_truth_runs, shared_run_args, shared_server_options,
                                      side_by_side)

    runs: dict[tuple[str, str], GroundTruthRun] = {}

    def run(provider: str, pace: str = "burst") -> GroundTruthRun:
        if (provider, pace) not in runs:
            # the runs of a few providers at once (ground_truth.SIDE_BY_SIDE): mostly waiting for replies
            batch = [p for p in side_by_side(provider, pace) if (p, pace) not in runs]
            plans = {p: (shared_reference_server(**shared_server_options(p, pace)),
                         tmp_path_factory.mktemp(f"shared-run-{p}-{pace}") / "r",
                         (*shared_run_args(pace, p), "--provider", p)) for p in batch}
            for p, done in ground_truth_runs(plans, environ={"AIVOCO_API_KEY": "k-123456"}).items():
                runs[p, pace] = done
        return runs[provider, pace]

    return run


@pytest.fixture(scope="session")
def shared_fixed_run(shared_reference_server, tmp_path_factory):
    """The session's one in-process run of 20 Aivoco iterations, one user, burst pace, against fixed delays.

    ``FIXED_RUN_SERVER`` (setup 30 ms, first audio 80 ms, no cold penalty); test_accuracy reads every sample
    against its session, test_boot_run the counts, connects and summary, test_report its report.html, console
    summary and progress lines (tests/support/ground_truth.py).
    """
    from support.ground_truth import FIXED_RUN_ARGS, FIXED_RUN_PROGRESS_S, FIXED_RUN_SERVER, ground_truth_run

    server = shared_reference_server(**FIXED_RUN_SERVER)
    folder = tmp_path_factory.mktemp("shared-fixed-run")
    return ground_truth_run(server, folder / "r", *FIXED_RUN_ARGS, environ={"AIVOCO_API_KEY": "test-key-123"},
                            progress_every=FIXED_RUN_PROGRESS_S)


RUNS_A_SERVER = frozenset({"reference_server", "shared_reference_server", "shared_ground_truth_run",
                           "shared_fixed_run"})
"""Fixtures that start a reference server process (and the runs against it): their tests are ``slow``."""


def pytest_collection_modifyitems(items):
    """Mark ``slow`` every test that needs a reference server process, so ``make test-quick`` leaves them out.

    Tests that start Locust or a server some other way carry the marker themselves.
    """
    for item in items:
        if RUNS_A_SERVER & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
