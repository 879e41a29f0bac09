"""The reference server inside this process, for the kit: the real emulation (bootbench.server's app), in a thread.

    with InProcessReferenceServer(ServerConfig(api_key="right")) as server:
        drive(OpenAIRealtimeDriver, server.url, "refused_auth")
        server.records()                  # its ground truth: one record per session and connection

The same application the reference server process serves (every protocol of
its table, an installed plugin's among them), started in milliseconds, so a
scenario can have a server configured for it. Its timings are not the
benchmark's (the tests and ``bench/`` use the process for those); what a
scenario reads here is what the server did and what it counted.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from aiohttp import web

from bootbench.server.app import ServerApp, build_app
from bootbench.server.config import ServerConfig
from bootbench.server.truth import GroundTruthWriter

from .loop_thread import LoopThread


class InProcessReferenceServer:
    """The reference server's app on 127.0.0.1 in a thread of this process; a context manager."""

    def __init__(self, config: ServerConfig | None = None) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="bootbench-kit-"))
        self.truth = self._folder / "truth.jsonl"
        self.config = config or ServerConfig()
        self.url = ""
        self._loop = LoopThread()
        self._server: ServerApp | None = None
        self._runner: web.AppRunner | None = None
        self._writer: GroundTruthWriter | None = None

    def __enter__(self) -> InProcessReferenceServer:
        self._loop.__enter__()
        port = self._loop.run(self._start())
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        try:
            self._loop.run(self._stop())
        finally:
            self._loop.__exit__(kind, error, trace)
            shutil.rmtree(self._folder, ignore_errors=True)

    def records(self) -> list[dict[str, Any]]:
        """The server's ground truth so far: one record per session (``session`` set) or connection."""
        if not self.truth.exists():
            return []
        return [json.loads(line) for line in self.truth.read_text().splitlines() if line.strip()]

    def stats(self) -> dict[str, Any]:
        """What ``GET /stats`` reports (sessions, outcomes, violations, notes)."""
        assert self._server is not None
        return self._loop.run(self._stats())

    async def _stats(self) -> dict[str, Any]:
        assert self._server is not None
        return self._server.scheduler.stats()

    async def _start(self) -> int:
        self._writer = GroundTruthWriter(self.truth)
        self._server = build_app(self.config, self._writer)
        self._runner = web.AppRunner(self._server.app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return self._runner.addresses[0][1]

    async def _stop(self) -> None:
        if self._server is not None:
            await self._server.close_protocols()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._writer is not None:
            self._writer.close()
