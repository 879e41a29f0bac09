"""What the raw-WebSocket protocols (OpenAI Realtime, Gemini Live) share on the server side.

One WebSocket carries one session. :class:`WebSocketProtocol` owns the
connection's life: the upgrade (with a hook to refuse it), the receive
loop, the client's close frame (the stop: ``stop_received``, our close
frame is ``ended_sent``), disconnects and server shutdown. A subclass turns
frames into scheduler calls in :meth:`WebSocketProtocol.on_frame`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .context import ProtocolContext
from .json_checks import Problem
from .reply import GREETING_HZ, GREETING_MS, ReplyAudio
from .speechlike import SpeechJudge
from .truth import SessionTruth

log = logging.getLogger("bootbench.server")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CLOSE_TIMEOUT_S = 1.0
"""How long our close frame waits for the client's (aiohttp's default is 10 s)."""
MAX_CLOSE_REASON_BYTES = 123


def spawn(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """A task whose failure is logged with its traceback instead of vanishing."""
    task = asyncio.create_task(coro)
    task.add_done_callback(_log_failure)
    return task


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("session task failed", exc_info=task.exception())


def stop_outcome(record: SessionTruth) -> str:
    """The outcome of a session the client ended: how far it got."""
    if record.t_ns["first_audio_sent"] is not None:
        return "ok"
    if record.t_ns["ready_sent"] is not None:
        return "stopped_before_audio"
    return "stopped_before_ready"


@dataclass(eq=False)
class WebSocketConnection:
    """One WebSocket and the one session it may carry."""

    ws: web.WebSocketResponse
    sid: str
    outside: SessionTruth
    record: SessionTruth | None = None
    ready: bool = False
    setup_task: asyncio.Task[None] | None = None
    reply_task: asyncio.Task[None] | None = None
    greeting_task: asyncio.Task[None] | None = None
    judge: SpeechJudge | None = None
    """With ``--vad-needs-speech``: the current turn's audio, judged when the turn ends."""

    def violation_target(self) -> SessionTruth:
        """The record a violation belongs to: the session once started, else the connection."""
        return self.record if self.record is not None and self.record.outcome is None else self.outside

    def cancel_tasks(self) -> None:
        """Stop setting up and stop streaming the reply and the greeting (not the task calling this: it goes on)."""
        for task in (self.setup_task, self.reply_task, self.greeting_task):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()


class WebSocketProtocol:
    """Base of a JSON-over-WebSocket protocol mounted at ``path``; one session per connection."""

    protocol = ""
    path = ""

    def __init__(self, context: ProtocolContext) -> None:
        self.scheduler = context.scheduler
        self.api_key = context.api_key
        self.reply = ReplyAudio(context.reply_ms)
        self.greeting = ReplyAudio(GREETING_MS, tone_hz=GREETING_HZ)
        self.vad_needs_speech = context.vad_needs_speech
        self.connections: set[WebSocketConnection] = set()
        self.stopping = False
        self._numbers = itertools.count(1)

    def attach(self, app: web.Application) -> None:
        """Mount the endpoint."""
        app.router.add_get(self.path, self.handle)

    # ---- what a subclass provides

    def refuse(self, request: web.Request, sid: str, received_ns: int) -> web.StreamResponse | None:
        """A response that refuses the upgrade (bad key, bad query), or None to accept it."""
        return None

    def new_connection(self, ws: web.WebSocketResponse, request: web.Request, sid: str) -> WebSocketConnection:
        return WebSocketConnection(ws, sid, self.scheduler.connection_record(self.protocol, sid))

    async def on_open(self, conn: WebSocketConnection) -> None:
        """The socket is open (OpenAI greets with ``session.created``)."""

    async def on_frame(self, conn: WebSocketConnection, data: str | bytes, binary: bool, received_ns: int) -> None:
        raise NotImplementedError

    async def greet(self, conn: WebSocketConnection, start_ns: int) -> None:
        """Stream the greeting (``self.greeting``, ``greeting=True``) in the protocol's reply messages."""
        raise NotImplementedError

    # ---- greetings and speech judgement (the same policy in both protocols)

    def schedule_greeting(self, conn: WebSocketConnection, ready_ns: int) -> None:
        """After ready: greet ``injected.greeting_ms`` later, unasked, when the session draws a greeting."""
        record = conn.record
        if record is not None and record.injected is not None and record.injected.greeting_ms is not None:
            conn.greeting_task = spawn(self.greet(conn, ready_ns + int(record.injected.greeting_ms * 1e6)))

    def stop_greeting(self, conn: WebSocketConnection) -> bool:
        """The answer starts: cut a greeting still being sent short; True if one was."""
        task = conn.greeting_task
        if task is None or task.done():
            return False
        task.cancel()
        if conn.record is not None and conn.record.greeting is not None:
            conn.record.greeting.interrupted = True
        return True

    def hear(self, conn: WebSocketConnection, pcm: bytes, rate: int) -> None:
        """Keep the turn's audio for the speech judgement (only with ``--vad-needs-speech``)."""
        if self.vad_needs_speech:
            if conn.judge is None or conn.judge.rate != rate:
                conn.judge = SpeechJudge(rate)
            conn.judge.add(pcm)

    def speech_ok(self, conn: WebSocketConnection) -> bool:
        """At a turn end the server detected: answer it? Without ``--vad-needs-speech`` always; else if speech-like.

        The judgement goes into the ground truth (``input_speech``) and the next turn starts afresh.
        """
        if not self.vad_needs_speech:
            return True
        speech = conn.judge is not None and conn.judge.is_speech()
        if conn.record is not None:
            conn.record.input_speech = speech
        if conn.judge is not None:
            conn.judge.reset()
        if not speech:
            log.info("%s: the turn's audio is not speech-like; not answered (--vad-needs-speech)", conn.sid)
        return speech

    # ---- the connection's life

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """One WebSocket from upgrade to close."""
        received = time.perf_counter_ns()
        sid = f"{self.protocol}-{next(self._numbers)}"
        refusal = self.refuse(request, sid, received)
        if refusal is not None:
            return refusal
        ws = web.WebSocketResponse(autoclose=False, max_msg_size=MAX_MESSAGE_BYTES, timeout=CLOSE_TIMEOUT_S)
        if not ws.can_prepare(request).ok:
            self.refused_violation(sid, f"{request.method} {request.path} without a WebSocket upgrade")
            return web.json_response({"error": {"message": "WebSocket upgrade required"}}, status=426)
        await ws.prepare(request)
        conn = self.new_connection(ws, request, sid)
        self.connections.add(conn)
        self.scheduler.connections += 1
        try:
            await self.on_open(conn)
            while True:
                msg = await ws.receive()
                received = time.perf_counter_ns()
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    await self.on_frame(conn, msg.data, msg.type is WSMsgType.BINARY, received)
                elif msg.type is WSMsgType.CLOSE:
                    await self._client_closed(conn, received)
                    break
                else:
                    break
        finally:
            self.connections.discard(conn)
            self.scheduler.connections -= 1
            conn.cancel_tasks()
            if conn.record is not None and conn.record.outcome is None:
                self.scheduler.finish(conn.record, "server_stopped" if self.stopping else "disconnected")
            self.scheduler.finish(conn.outside, "outside_session")
        return ws

    async def _client_closed(self, conn: WebSocketConnection, received_ns: int) -> None:
        """The client's close frame is the stop; our close frame acknowledges it."""
        conn.cancel_tasks()
        record = conn.record
        if record is not None and record.outcome is None:
            record.t_ns["stop_received"] = received_ns
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            await conn.ws.close(code=WSCloseCode.OK, drain=False)
            self.scheduler.finish(record, stop_outcome(record))
        else:
            await conn.ws.close(code=WSCloseCode.OK, drain=False)

    async def close_with(self, conn: WebSocketConnection, code: int, reason: str, outcome: str | None) -> None:
        """End the connection from the server side (an error the service reports by closing); ``outcome`` ends the session."""
        conn.cancel_tasks()
        record = conn.record
        if outcome is not None and record is not None and record.outcome is None:
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            self.scheduler.finish(record, outcome)
        message = reason.encode("utf-8")[:MAX_CLOSE_REASON_BYTES]
        await conn.ws.close(code=code, message=message)

    async def close(self) -> None:
        """Server shutdown: close every socket (1001 going away); live sessions end as ``server_stopped``."""
        self.stopping = True
        for conn in list(self.connections):
            conn.cancel_tasks()
            try:
                await conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
            except Exception:
                log.exception("closing %s at shutdown failed", conn.sid)

    # ---- helpers

    async def send_json(self, conn: WebSocketConnection, message: dict[str, Any], binary: bool = False) -> None:
        """Send one JSON message (in a binary frame when ``binary``); a socket already closing drops it."""
        if conn.ws.closed:
            return
        text = json.dumps(message, separators=(",", ":"))
        try:
            if binary:
                await conn.ws.send_bytes(text.encode("utf-8"))
            else:
                await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s: message dropped, socket closing (%s)", conn.sid, exc)

    def refused_violation(self, sid: str, description: str) -> None:
        """Count a violation of a request refused before any WebSocket existed."""
        record = self.scheduler.connection_record(self.protocol, sid)
        self.scheduler.violation(record, description)
        self.scheduler.finish(record, "outside_session")

    def violations(self, conn: WebSocketConnection, problems: list[Problem],
                   record: SessionTruth | None = None) -> None:
        """Count each problem against ``record`` (default: the session, else the connection): a note or a violation."""
        target = record or conn.violation_target()
        for problem in problems:
            if problem.note:
                self.scheduler.note(target, problem.message)
            else:
                self.scheduler.violation(target, problem.message)
