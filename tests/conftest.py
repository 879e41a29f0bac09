"""Fixtures shared by the tests; the helpers themselves live in tests/support/."""

from __future__ import annotations

# Locust monkey-patches the standard library with gevent when it is first imported. Import it before any
# test module imports ssl (requests, aiohttp, websocket-client), as `locust` itself does, or the late
# patch of ssl recurses (gevent issue 1016) depending on which test file pytest collects first.
import locust  # noqa: F401,E402  isort: skip

from pathlib import Path

import pytest


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
    """Factory: one reference server process per configuration for the whole session (same options, same server).

    Every test that reads its ground truth shares the file with the other users of that configuration: it
    must keep only the records of its own sessions.
    """
    from bootbench.server.launcher import ReferenceServer

    started: dict[str, ReferenceServer] = {}

    def get(**options) -> ReferenceServer:
        key = repr(sorted(options.items()))
        if key not in started:
            truth = tmp_path_factory.mktemp("shared-server") / "truth.jsonl"
            server = ReferenceServer.start(ground_truth=str(truth), **options)
            server.ground_truth = truth
            started[key] = server
        return started[key]

    yield get
    for server in started.values():
        server.stop()
