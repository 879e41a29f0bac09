"""Builds the reference server's aiohttp application and runs it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from .aivoco import AivocoProtocol
from .config import LISTENING_PREFIX, ServerConfig
from .latency import LatencyModel
from .scheduler import SessionScheduler
from .truth import GroundTruthWriter

log = logging.getLogger("bootbench.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StartupError(Exception):
    """The server cannot start for a reason the user can fix (address in use, unwritable ground truth file)."""


@dataclass
class NodelayCounts:
    """How many requests' sockets were checked for TCP_NODELAY and how many lacked it."""

    checked: int = 0
    was_missing: int = 0


def nodelay_middleware(counts: NodelayCounts) -> Any:
    """aiohttp middleware making sure every accepted socket has TCP_NODELAY (Nagle adds ~40 ms to small frames).

    aiohttp sets it itself; this verifies it per request and sets it if missing.
    """

    @web.middleware
    async def ensure_nodelay(request: web.Request, handler: Handler) -> web.StreamResponse:
        transport = request.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            counts.checked += 1
            if not sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
                counts.was_missing += 1
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return await handler(request)

    return ensure_nodelay


def build_app(config: ServerConfig, writer: GroundTruthWriter) -> tuple[web.Application, SessionScheduler]:
    """The aiohttp app with every wire protocol mounted, plus ``GET /stats``."""
    model = LatencyModel(config.setup_delay, config.first_audio_delay, config.cold_penalty_ms, config.seed)
    scheduler = SessionScheduler(model, config.capacity, writer)
    nodelay = NodelayCounts()
    app = web.Application(middlewares=[nodelay_middleware(nodelay)])

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**scheduler.stats(),
                                  "tcp_nodelay": asdict(nodelay)})

    app.router.add_get("/stats", stats)
    AivocoProtocol(scheduler, api_key=config.api_key, reply_ms=config.reply_ms).attach(app)
    return app, scheduler


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("parent process %d is gone; shutting down", parent_pid)
            stop.set()
            return
        await asyncio.sleep(0.5)


async def serve(config: ServerConfig) -> None:
    """Listen, print the listening line on stdout, serve until SIGTERM/SIGINT, then shut down cleanly.

    Raises :class:`StartupError` if the address cannot be bound or the ground truth file opened.
    """
    try:
        writer = GroundTruthWriter(config.ground_truth)
    except OSError as exc:
        raise StartupError(f"cannot open ground truth file {config.ground_truth}: {exc.strerror or exc}") from None
    try:
        app, scheduler = build_app(config, writer)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, config.host, config.port).start()
            except OSError as exc:
                raise StartupError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
            port = runner.addresses[0][1]
            shown_host = "127.0.0.1" if config.host in ("", "0.0.0.0", "::") else config.host
            shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
            log.info("latency model: %s; capacity %s; reply %d ms; api key %s; ground truth %s",
                     scheduler.model.describe(), config.capacity or "unlimited", config.reply_ms,
                     "required" if config.api_key else "any non-empty", config.ground_truth or "not recorded")
            print(f"{LISTENING_PREFIX}http://{shown_host}:{port}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            watcher = asyncio.create_task(_watch_parent(config.parent_pid, stop)) if config.parent_pid else None
            await stop.wait()
            if watcher is not None:
                watcher.cancel()
            log.info("shutting down: %s", scheduler.stats())
        finally:
            await runner.cleanup()
            log.debug("web runner cleaned up")
    finally:
        writer.close()
