"""Fixtures shared by the tests; the helpers themselves live in tests/support/."""

from __future__ import annotations

# Locust monkey-patches the standard library with gevent when it is first imported. Import it before any
# test module imports ssl (requests, aiohttp, websocket-client), as `locust` itself does, or the late
# patch of ssl recurses (gevent issue 1016) depending on which test file pytest collects first.
import locust  # noqa: F401,E402  isort: skip

from pathlib import Path

import pytest


@pytest.fixture
def refusals(tmp_path, monkeypatch):
    """Bad input parsed and checked in-process, in tmp_path with a clean environment (tests/support/refusals.py)."""
    from support.refusals import Refusals

    return Refusals.in_folder(tmp_path, monkeypatch)


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
