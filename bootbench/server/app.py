"""Builds the reference server's aiohttp application and runs it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from . import protocols
from .config import ServerConfig
from .constants import LISTENING_PREFIX
from .context import ProtocolContext
from .faults import FaultPlan, served_forms
from .latency import LatencyModel
from .scheduler import SessionScheduler
from .truth import GroundTruthWriter

log = logging.getLogger("bootbench.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DRAIN_TIMEOUT_S = 1.0


class StartupError(Exception):
    """The server cannot start for a reason the user can fix (address in use, unwritable ground truth file)."""


class WireProtocol(Protocol):
    """What app.py needs from a protocol module's server object."""

    def attach(self, app: web.Application) -> None: ...

    async def close(self) -> None: ...


@dataclass
class RequestMonitor:
    """Counts requests in flight and makes sure every accepted socket has TCP_NODELAY.

    aiohttp sets TCP_NODELAY itself; the check is cheap insurance, since a
    socket without it adds ~40 ms (Nagle + delayed ACK) to small frames.
    """

    nodelay_checked: int = 0
    nodelay_was_missing: int = 0
    in_flight: int = 0

    def middleware(self) -> Any:
        """The aiohttp middleware doing the counting."""

        @web.middleware
        async def monitor(request: web.Request, handler: Handler) -> web.StreamResponse:
            transport = request.transport
            sock = transport.get_extra_info("socket") if transport is not None else None
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                self.nodelay_checked += 1
                if not sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY):
                    self.nodelay_was_missing += 1
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.in_flight += 1
            try:
                return await handler(request)
            finally:
                self.in_flight -= 1

        return monitor


@dataclass
class ServerApp:
    """The assembled application: aiohttp app, shared scheduler, mounted protocols."""

    app: web.Application
    scheduler: SessionScheduler
    monitor: RequestMonitor
    protocols: list[WireProtocol] = field(default_factory=list)

    async def close_protocols(self) -> None:
        """End every session and connection, then wait (bounded) for their requests to finish.

        Runs before aiohttp's own shutdown, which stops reading sockets and would
        leave clients waiting seconds for their WebSocket close handshake.
        """
        for protocol in self.protocols:
            await protocol.close()
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while self.monitor.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


def config_block(config: ServerConfig) -> dict[str, Any]:
    """The server's latency model and behaviour as ``GET /stats`` reports them under ``config`` (no key)."""
    return {
        "setup_delay": config.setup_delay.spec,
        "first_audio_delay": config.first_audio_delay.spec,
        "cold_penalty_ms": config.cold_penalty_ms,
        "capacity": config.capacity,
        "reply_ms": config.reply_ms,
        "reply_after": config.reply_after,
        "seed": config.seed,
        "faults": [fault.text for fault in config.faults],
        "leading_silence": config.leading_silence.spec if config.leading_silence else None,
        "greeting": config.greeting.spec if config.greeting else None,
        "vad_needs_speech": config.vad_needs_speech,
        "socketio_path": config.socketio_path,
        "api_key_required": config.api_key is not None,
    }


def build_app(config: ServerConfig, writer: GroundTruthWriter) -> ServerApp:
    """The aiohttp app with every wire protocol of the table (:mod:`.protocols`) mounted, plus ``GET /stats``."""
    model = LatencyModel(config.setup_delay, config.first_audio_delay, config.cold_penalty_ms, config.seed,
                         leading_silence=config.leading_silence, greeting=config.greeting,
                         warm_first_audio_delay=config.warm_first_audio_delay)
    table = protocols.factories()
    plan = FaultPlan(config.faults, config.seed, forms=served_forms(table))
    scheduler = SessionScheduler(model, config.capacity, writer, faults=plan)
    monitor = RequestMonitor()
    app = web.Application(middlewares=[monitor.middleware()])
    server = ServerApp(app, scheduler, monitor)

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**scheduler.stats(), "tcp_nodelay": {
            "checked": monitor.nodelay_checked, "was_missing": monitor.nodelay_was_missing},
            "config": config_block(config)})

    app.router.add_get("/stats", stats)
    context = ProtocolContext(scheduler, config)
    for factory in table.values():
        server.protocols.append(factory(context))
    for protocol in server.protocols:
        protocol.attach(app)
    return server


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("parent process %d is gone; shutting down", parent_pid)
            stop.set()
            return
        await asyncio.sleep(0.5)


def _tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    """The server's TLS context (``--tls-cert``/``--tls-key``), or None to serve plain HTTP and WebSocket."""
    if not config.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"cannot load the TLS certificate {config.tls_cert}: {exc}") from None
    return context


async def serve(config: ServerConfig) -> None:
    """Listen, print the listening line on stdout, serve until SIGTERM/SIGINT, then shut down cleanly.

    Raises :class:`StartupError` if the address cannot be bound or the ground truth file opened.
    """
    try:
        writer = GroundTruthWriter(config.ground_truth)
    except OSError as exc:
        raise StartupError(f"cannot open ground truth file {config.ground_truth}: {exc.strerror or exc}") from None
    try:
        try:
            server = build_app(config, writer)
        except protocols.ProtocolError as exc:
            raise StartupError(str(exc)) from None
        runner = web.AppRunner(server.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        try:
            try:
                await web.TCPSite(runner, config.host, config.port, ssl_context=_tls_context(config)).start()
            except OSError as exc:
                raise StartupError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
            port = runner.addresses[0][1]
            wildcard = config.host in ("", "0.0.0.0", "::")
            shown_host = "127.0.0.1" if wildcard else config.host
            shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
            # A wildcard bind is announced as such: the URL first (what the launcher connects to), then the truth.
            bound = f" (bound to {config.host or '0.0.0.0'}: every address of this host)" if wildcard else ""
            log.info("latency model: %s; capacity %s; reply %d ms%s; api key %s; ground truth %s",
                     server.scheduler.model.describe(), config.capacity or "unlimited", config.reply_ms,
                     "; answers speech-like turns only" if config.vad_needs_speech else "",
                     "required" if config.api_key else "any non-empty", config.ground_truth or "not recorded")
            if server.scheduler.faults:
                log.info("faults: %s", server.scheduler.faults.describe())
            scheme = "https" if config.tls_cert else "http"
            print(f"{LISTENING_PREFIX}{scheme}://{shown_host}:{port}{bound}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            watcher = asyncio.create_task(_watch_parent(config.parent_pid, stop)) if config.parent_pid else None
            await stop.wait()
            if watcher is not None:
                watcher.cancel()
            log.info("shutting down: %s", server.scheduler.stats())
            await server.close_protocols()
        finally:
            await runner.cleanup()
    finally:
        writer.close()
