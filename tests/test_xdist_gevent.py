"""tests/support/xdist_gevent.py: pytest-xdist's worker runs under Locust's gevent patch (a real run of it,
and the internals it replaces)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import xdist_gevent
from support.processes import ROOT


def test_xdist_internals_the_patch_replaces_are_there():
    """xdist's TestQueue still waits on ``_has_items_event`` under ``_lock``: the one thing install() swaps."""
    import execnet
    from xdist import remote

    queue = remote.TestQueue(execnet.gateway_base.get_execmodel("main_thread_only"))
    assert hasattr(queue, "_has_items_event") and hasattr(queue, "_lock")
    source = Path(remote.__file__).read_text()
    assert "self._has_items_event.wait()" in source
    assert "self.torun = TestQueue(" in source  # WorkerInteractor.torun, which worker_queue() finds


def test_polled_event_is_set_from_a_real_thread_while_the_hub_runs():
    """Locust patched this process (conftest): a real thread sets the event, the waiting greenlet wakes."""
    from gevent import monkey

    assert monkey.is_module_patched("threading")
    event = xdist_gevent.PolledEvent()
    assert event.wait(timeout=0.01) is False
    # a raw OS thread, as execnet's receiving thread is (not threading's: the patched module would join it at exit)
    start_new_thread = monkey.get_original("_thread", "start_new_thread")
    real_sleep = monkey.get_original("time", "sleep")
    started = time.monotonic()
    start_new_thread(lambda: (real_sleep(0.05), event.set()), ())
    assert event.wait(timeout=5) is True
    assert 0.04 < time.monotonic() - started < 2
    event.clear()
    assert not event.is_set()


@pytest.mark.slow  # a pytest run with two xdist workers: about 15 s of real processes
def test_a_patched_suite_runs_in_xdist_workers(tmp_path):
    """A pytest run with two xdist workers whose tests run after Locust's patch: every test runs (before the
    patch the workers stopped at their first wait with gevent's LoopExit and nothing ran)."""
    (tmp_path / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "def pytest_sessionstart(session):\n"
        "    import locust  # noqa: F401\n"
        "    from support import xdist_gevent\n"
        "    xdist_gevent.install(session.config)\n")
    (tmp_path / "test_many.py").write_text(
        "import pytest, gevent\n"
        "@pytest.mark.parametrize('i', range(12))\n"
        "def test_sleeps(i):\n    gevent.sleep(0.01)\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "-q", "-p", "no:cacheprovider",
                             "-p", "no:locust", "-p", "no:anyio", str(tmp_path)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "12 passed" in result.stdout
