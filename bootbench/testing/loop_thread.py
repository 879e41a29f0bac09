"""An asyncio event loop in a thread of its own, for the kit's servers (the fake service, the reference server).

    with LoopThread() as loop:
        port = loop.run(start_server())     # a coroutine run on the loop, its result returned here

The driver under test blocks in the caller's thread; the server runs beside
it. Under Locust's gevent patching the thread is a greenlet, which works the
same: every blocking wait of a driver yields to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")
STOP_TIMEOUT_S = 5.0


class LoopThread:
    """A running event loop on a daemon thread; :meth:`run` a coroutine on it from any other thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="bootbench-testing-loop", daemon=True)
        self._started = threading.Event()

    def __enter__(self) -> LoopThread:
        self._thread.start()
        self._started.wait(STOP_TIMEOUT_S)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self.run(_cancel_the_rest())  # a library's background tasks (Engine.IO pings) end cleanly
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STOP_TIMEOUT_S)
        if not self._thread.is_alive():
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = STOP_TIMEOUT_S) -> T:
        """Run ``coro`` on the loop and return its result (its exception raised here)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()


async def _cancel_the_rest() -> None:
    """Cancel every task of the loop but this one, and wait for them to end."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
