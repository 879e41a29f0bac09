"""pytest-xdist's worker loop, made to wait in a way gevent's hub can live with (one quarantined patch).

An xdist worker runs its tests in the main thread and receives the controller's commands in a second, real
thread (execnet's ``main_thread_only`` model, which xdist forces). The main thread waits for its next test
on ``xdist.remote.TestQueue._has_items_event``, which the receiving thread sets. Once Locust has
monkey-patched the standard library (this suite's conftest imports it at session start), that wait
allocates a gevent lock, which a real thread cannot release: the worker stops at its first wait with
gevent's ``LoopExit``. :func:`install` swaps that one event for :class:`PolledEvent`, whose ``wait`` polls a
flag with gevent's sleep (a real thread may set a plain attribute; the hub keeps running the tests'
background greenlets meanwhile).

``tests/test_xdist_gevent.py`` fails when xdist's internals change under it.
"""

from __future__ import annotations

import time

POLL_S = 0.002
"""How often a waiting worker looks for its next test; under the cost of starting any test here."""


class PolledEvent:
    """``threading.Event``'s ``set``/``clear``/``is_set``/``wait``, set from any thread, waited on by polling."""

    def __init__(self, is_set: bool = False):
        self._flag = is_set

    def set(self) -> None:
        self._flag = True

    def clear(self) -> None:
        self._flag = False

    def is_set(self) -> bool:
        return self._flag

    def wait(self, timeout: float | None = None) -> bool:
        # time.sleep is gevent's here (the run is patched): the hub runs while this greenlet waits.
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._flag:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True


def worker_queue(config):
    """The running xdist worker's test queue, or None outside an xdist worker."""
    if not hasattr(config, "workerinput"):
        return None
    # By name: execnet runs xdist/remote.py's source as the worker's __channelexec__ module, so its class is
    # not the importable xdist.remote.WorkerInteractor.
    for plugin in config.pluginmanager.get_plugins():
        if type(plugin).__name__ == "WorkerInteractor" and hasattr(plugin, "torun"):
            return plugin.torun
    raise RuntimeError("an xdist worker without a WorkerInteractor holding its test queue (torun): "
                       "tests/support/xdist_gevent.py needs updating for this pytest-xdist")


def install(config) -> None:
    """In an xdist worker, replace its test queue's event with a :class:`PolledEvent` (state kept)."""
    queue = worker_queue(config)
    if queue is None:
        return
    with queue._lock:
        queue._has_items_event = PolledEvent(queue._has_items_event.is_set())
