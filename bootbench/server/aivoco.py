"""Aivoco's Socket.IO speech-to-speech protocol (PROTOCOLS.md section 1), server side.

A strict implementation: every client message is checked
(:mod:`.aivoco_checks`) and each deviation from the protocol, including
messages out of order, is counted as a violation, so a test can prove a
client sends nothing malformed or out of order.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import socketio
from aiohttp import web

from .aivoco_checks import check_audio_data, check_start_call
from .constants import AIVOCO_OUTPUT_RATE, AIVOCO_SOCKETIO_PATH
from .pcm import reply_chunks_b64
from .scheduler import SessionScheduler, sleep_until
from .truth import SessionTruth

PROTOCOL = "aivoco"
REPLY_CHUNK_MS = 40
REPLY_RATE = AIVOCO_OUTPUT_RATE
REPLY_TEXT = "Hello, this is the bootbench reference server."
CREDITS = 1000
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

log = logging.getLogger("bootbench.server")


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("session task failed", exc_info=task.exception())


def _spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    task = asyncio.create_task(coro)
    task.add_done_callback(_log_failure)
    return task


class Phase(enum.Enum):
    """Where a session is between ``start_call`` and its end."""

    SETTING_UP = "setting_up"
    READY = "ready"


@dataclass
class AivocoSession:
    """A live session on one connection."""

    record: SessionTruth
    phase: Phase = Phase.SETTING_UP
    setup_task: asyncio.Task[None] | None = None
    reply_task: asyncio.Task[None] | None = None

    def cancel_tasks(self) -> None:
        """Stop setting up and stop streaming the reply."""
        for task in (self.setup_task, self.reply_task):
            if task is not None and not task.done():
                task.cancel()


@dataclass
class AivocoConnection:
    """One Socket.IO connection: its current session (sessions are sequential) and stray violations."""

    sid: str
    outside: SessionTruth
    session: AivocoSession | None = None

    def violation_target(self) -> SessionTruth:
        """The record a violation belongs to: the live session, else the connection."""
        return self.session.record if self.session is not None else self.outside


class AivocoProtocol:
    """Serves Aivoco's Socket.IO protocol on ``/socket.io/`` of an aiohttp app.

        protocol = AivocoProtocol(scheduler, api_key=None, reply_ms=600)
        protocol.attach(app)
    """

    def __init__(self, scheduler: SessionScheduler, *, api_key: str | None, reply_ms: int) -> None:
        self.scheduler = scheduler
        self._api_key = api_key
        self.reply = [(chunk, len(base64.b64decode(chunk)) // 2)
                      for chunk in reply_chunks_b64(reply_ms, REPLY_RATE, REPLY_CHUNK_MS)]
        self.sio = socketio.AsyncServer(async_mode="aiohttp", async_handlers=False, cors_allowed_origins="*",
                                        max_http_buffer_size=MAX_MESSAGE_BYTES)
        self.connections: dict[str, AivocoConnection] = {}
        self.stopping = False
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("start_call", self.on_start_call)
        self.sio.on("audio_data", self.on_audio_data)
        self.sio.on("stop_call", self.on_stop_call)
        self.sio.on("*", self.on_other_event)

    def attach(self, app: web.Application) -> None:
        """Mount the Socket.IO endpoint (``/socket.io/``)."""
        self.sio.attach(app, socketio_path=AIVOCO_SOCKETIO_PATH.strip("/"))

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        conn = AivocoConnection(sid, outside=self.scheduler.connection_record(PROTOCOL, sid))
        self.connections[sid] = conn
        self.scheduler.connections += 1
        if auth:
            self.scheduler.violation(conn.outside, "connect: auth data sent at connect (the key belongs in start_call)")

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        conn = self.connections.pop(sid, None)
        if conn is None:
            return
        self.scheduler.connections -= 1
        if conn.session is not None:
            conn.session.cancel_tasks()
            self.scheduler.finish(conn.session.record, "server_stopped" if self.stopping else "disconnected")
            conn.session = None
        self.scheduler.finish(conn.outside, "outside_session")

    async def on_start_call(self, sid: str, *args: Any) -> None:
        received = time.perf_counter_ns()
        conn = self.connections.get(sid)
        if conn is None:
            return
        if conn.session is not None:
            self.scheduler.violation(conn.session.record,
                                     f"start_call while session {conn.session.record.session} is active")
            return
        record = self.scheduler.open(PROTOCOL, sid, received)
        for problem in check_start_call(args):
            self.scheduler.violation(record, problem)
        payload = args[0] if len(args) == 1 and isinstance(args[0], dict) else {}
        key = payload.get("auth_key")
        if not isinstance(key, str) or not key:
            await self._fail_auth(record, "Missing API key")
        elif self._api_key is not None and key != self._api_key:
            await self._fail_auth(record, "Invalid API key")
        else:
            self.scheduler.accept(record)
            session = conn.session = AivocoSession(record)
            session.setup_task = _spawn(self._set_up(session))

    async def _fail_auth(self, record: SessionTruth, message: str) -> None:
        record.t_ns["ended_sent"] = time.perf_counter_ns()
        await self.sio.emit("auth_failed", {"message": message, "credits": 0}, to=record.sid)
        log.info("session %s %s: auth failed: %s", record.session, record.sid, message)
        self.scheduler.finish(record, "auth_failed")

    async def _set_up(self, session: AivocoSession) -> None:
        record = session.record
        assert record.injected is not None
        await self.scheduler.admit(record)
        await sleep_until(time.perf_counter_ns() + int(record.injected.total_setup_ms * 1e6))
        await self.sio.emit("auth_success", {"credits": CREDITS}, to=record.sid)
        session.phase = Phase.READY
        record.t_ns["ready_sent"] = time.perf_counter_ns()
        await self.sio.emit("session_ready", {"message": "Session ready", "credits_available": CREDITS,
                                              "cost_per_minute": 1, "functions_loaded": 0}, to=record.sid)

    async def on_audio_data(self, sid: str, *args: Any) -> None:
        received = time.perf_counter_ns()
        conn = self.connections.get(sid)
        if conn is None:
            return
        if conn.session is None:
            self.scheduler.violation(conn.outside, "audio_data outside a session (before start_call or after it ended)")
            return
        session = conn.session
        record = session.record
        if session.phase is not Phase.READY:
            self.scheduler.violation(record, "audio_data before session_ready")
            return
        check = check_audio_data(args)
        for problem in check.problems:
            self.scheduler.violation(record, problem)
        record.audio_in.chunks += 1
        if check.pcm is not None and check.peak is not None:
            record.audio_in.samples += len(check.pcm) // 2
            record.audio_in.peak = max(record.audio_in.peak, check.peak)
        record.t_ns["last_input_received"] = received
        if record.t_ns["first_input_received"] is None:
            record.t_ns["first_input_received"] = received
            session.reply_task = _spawn(self._stream_reply(session))

    async def _stream_reply(self, session: AivocoSession) -> None:
        record = session.record
        assert record.injected is not None and record.t_ns["first_input_received"] is not None
        start = record.t_ns["first_input_received"] + int(record.injected.first_audio_delay_ms * 1e6)
        out = record.audio_out
        for index, (chunk, samples) in enumerate(self.reply):
            due = start + index * REPLY_CHUNK_MS * 1_000_000
            await sleep_until(due)
            sent = time.perf_counter_ns()
            if index == 0:
                record.t_ns["first_audio_sent"] = sent
            late_ms = round((sent - due) / 1e6, 3)
            out.max_late_ms = late_ms if out.max_late_ms is None else max(out.max_late_ms, late_ms)
            out.chunks += 1
            out.samples += samples
            await self.sio.emit("audio_response", {"audio_data": chunk}, to=record.sid)
            if index == 0:
                await self.sio.emit("text_response", {"text": REPLY_TEXT}, to=record.sid)

    async def on_stop_call(self, sid: str, *args: Any) -> None:
        received = time.perf_counter_ns()
        conn = self.connections.get(sid)
        if conn is None:
            return
        if args:
            self.scheduler.violation(conn.violation_target(), "stop_call: carries a payload (it takes none)")
        session = conn.session
        if session is None:
            self.scheduler.violation(conn.outside, "stop_call with no active session")
            return
        conn.session = None
        session.cancel_tasks()
        record = session.record
        record.t_ns["stop_received"] = received
        if record.t_ns["first_audio_sent"] is not None:
            outcome = "ok"
        elif record.t_ns["ready_sent"] is not None:
            outcome = "stopped_before_audio"
        else:
            outcome = "stopped_before_ready"
        record.t_ns["ended_sent"] = time.perf_counter_ns()
        await self.sio.emit("session_ended", {"reason": "user_requested", "message": "Call ended",
                                              "total_credits_used": 1, "remaining_credits": CREDITS - 1},
                            to=sid)
        self.scheduler.finish(record, outcome)

    async def on_other_event(self, event: str, sid: str, *args: Any) -> None:
        conn = self.connections.get(sid)
        if conn is None:
            return
        self.scheduler.violation(conn.violation_target(),
                                 f"unexpected event {event!r} (a client sends start_call, audio_data, stop_call)")

    async def close(self) -> None:
        """Server shutdown: disconnect every client; live sessions end as ``server_stopped``."""
        self.stopping = True
        log.debug("aivoco: disconnecting %d clients", len(self.connections))
        for sid in list(self.connections):
            try:
                await self.sio.disconnect(sid)
            except Exception:
                log.exception("disconnecting %s at shutdown failed", sid)
        for sid in list(self.connections):
            await self.on_disconnect(sid)
        await self.sio.shutdown()
        log.debug("aivoco: shut down")
