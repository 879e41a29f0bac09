"""Aivoco's Socket.IO speech-to-speech protocol (docs/protocols/aivoco.md), server side.

A strict implementation: every client message is checked
(:mod:`.checks`) and each deviation from the protocol, including
messages out of order, is counted as a violation, so a test can prove a
client sends nothing malformed or out of order. The service's behaviour
toward such messages is not documented and no vendor SDK exists to compare
with, so they stay violations (audio before ``session_ready`` is dropped, as
a service with no session yet would); only auth data at connect, which
Socket.IO hands over and the service never reads, is a note.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bootbench.server.context import ProtocolContext
from bootbench.server.faults import FaultSpec
from bootbench.server.reply import GREETING_HZ, GREETING_MS, Chunks, ReplyAudio, silenced
from bootbench.server.scheduler import sleep_until
from bootbench.server.speechlike import SpeechJudge
from bootbench.server.truth import SessionTruth
from bootbench.server.turns import IdleTurnEnd, SilenceDetector
from bootbench.wire import AIVOCO_INPUT_RATE, AIVOCO_OUTPUT_RATE, VAD_SILENCE_MS

from . import socketio_tuning
from .checks import check_audio_data, check_start_call
from .faults import AUTH_MESSAGE, echo, ended_event, error_event, malformed_reply

PROTOCOL = "aivoco"
REPLY_CHUNK_MS = 40
REPLY_RATE = AIVOCO_OUTPUT_RATE
REPLY_TEXT = "Hello, this is the bootbench reference server."
TEXT_FRACTION = 0.5
"""The answer's ``text_response`` (its first text, the one service stage) goes out this fraction of the way from the
turn's end to its first audio: a distinct, known time."""
CREDITS = 1000
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
MID_REPLY_DROP_S = 0.002
NEW_TURN_PAUSE_MS = 200
"""Input after a finished reply begins a new turn only after a pause this long: 3 times the 64 ms chunk spacing
of a clip streamed at real-time pace (a clip still streaming after a short reply is the same turn), and well
below the VAD_SILENCE_MS the client leaves between its turns."""

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
    greeting_task: asyncio.Task[None] | None = None
    reply_chunks: Chunks = field(default_factory=list)
    """The answer's chunks (with this session's leading silence), once it started."""
    judge: SpeechJudge | None = None
    turn: SilenceDetector | None = None
    idle: IdleTurnEnd | None = None
    fault: FaultSpec | None = None
    replies: list[int] = field(default_factory=list)
    """The turns a reply was started for (one per turn: a turn's input while its reply streams is not a new turn)."""
    key_echo: str = ""
    """For an ``error`` fault with ``echo=yes``: the key quoted back in its message (never logged)."""

    def cancel_tasks(self) -> None:
        """Stop setting up, waiting for the end of the turn, and streaming the reply and the greeting."""
        for task in (self.setup_task, self.reply_task, self.greeting_task):
            if task is not None and not task.done():
                task.cancel()
        if self.idle is not None:
            self.idle.cancel()


@dataclass
class AivocoConnection:
    """One Socket.IO connection: its current session (sessions are sequential) and stray violations."""

    sid: str
    outside: SessionTruth
    session: AivocoSession | None = None
    transport: asyncio.BaseTransport | None = None
    """The TCP transport under the WebSocket, for the ``drop`` fault."""
    strays: list[str] = field(default_factory=list)
    """Reply chunks of an ended session held back by the ``stray`` fault, sent when the next session starts."""

    def violation_target(self) -> SessionTruth:
        """The record a violation belongs to: the live session, else the connection."""
        return self.session.record if self.session is not None else self.outside


class AivocoProtocol:
    """Serves Aivoco's Socket.IO protocol on ``/socket.io/`` of an aiohttp app.

        protocol = AivocoProtocol(ProtocolContext(scheduler, ServerConfig()))
        protocol.attach(app)

    ``reply_after`` is when the reply timer starts: ``first-input`` (the first
    ``audio_data``) or ``end-of-turn`` (after speech, 500 ms of near-silent
    samples or no chunk for that long; see :mod:`.turns`). ``vad_needs_speech``
    answers only a speech-like turn (:mod:`.speechlike`), which implies
    ``end-of-turn``: the turn must be heard before it is judged.
    """

    def __init__(self, context: ProtocolContext) -> None:
        self.scheduler = context.scheduler
        self.socketio_path = context.config.socketio_path
        self.vad_needs_speech = context.vad_needs_speech
        self.reply_after = "end-of-turn" if context.vad_needs_speech else context.reply_after
        self._api_key = context.api_key
        self.reply = ReplyAudio(context.reply_ms, REPLY_RATE, REPLY_CHUNK_MS)
        self.greeting = ReplyAudio(GREETING_MS, REPLY_RATE, REPLY_CHUNK_MS, tone_hz=GREETING_HZ)
        # Packets written by the coroutine that emits them: a ground-truth stamp and its message's write are one
        # step of the event loop (socketio_tuning).
        self.sio = socketio_tuning.inline_server(async_mode="aiohttp", async_handlers=False, cors_allowed_origins="*",
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
        """Mount the Socket.IO endpoint (``/socket.io/`` unless the server was given another path)."""
        self.sio.attach(app, socketio_path=self.socketio_path.strip("/"))

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        conn = AivocoConnection(sid, outside=self.scheduler.connection_record(PROTOCOL, sid))
        request = environ.get("aiohttp.request")
        conn.transport = request.transport if request is not None else None
        self.connections[sid] = conn
        self.scheduler.connections += 1
        if auth:
            # Socket.IO hands it over and the service does not look at it: a note, not a violation.
            self.scheduler.note(conn.outside, "connect: auth data sent at connect (the key belongs in start_call)")

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
        if conn.strays:
            await self._send_strays(conn)
        record = self.scheduler.open(PROTOCOL, sid, received)
        fault = self.scheduler.fault_for(record)
        for problem in check_start_call(args):
            self.scheduler.violation(record, problem)
        payload = args[0] if len(args) == 1 and isinstance(args[0], dict) else {}
        key = payload.get("auth_key")
        if not isinstance(key, str) or not key:
            await self._fail_auth(record, "Missing API key")
        elif self._api_key is not None and key != self._api_key:
            await self._fail_auth(record, "Invalid API key")
        elif fault is not None and fault.kind == "auth":
            await self._fail_auth(record, AUTH_MESSAGE, echo(fault, key))
        else:
            injected = self.scheduler.accept(record)
            if fault is not None and fault.kind == "slow":
                record.injected = fault.slowed(injected)
            session = conn.session = AivocoSession(record, fault=fault, key_echo=echo(fault, key))
            session.setup_task = _spawn(self._set_up(session))

    async def _fail_auth(self, record: SessionTruth, message: str, key_echo: str = "") -> None:
        """Refuse a start_call; ``key_echo`` (the ``echo=yes`` fault) goes on the wire only, never into the log."""
        record.t_ns["ended_sent"] = time.perf_counter_ns()
        await self.sio.emit("auth_failed", {"message": message + key_echo, "credits": 0}, to=record.sid)
        log.info("session %s %s: auth failed: %s", record.session, record.sid, message)
        self.scheduler.finish(record, "auth_failed")

    async def _set_up(self, session: AivocoSession) -> None:
        record = session.record
        assert record.injected is not None
        await self.scheduler.admit(record)
        await sleep_until(time.perf_counter_ns() + int(record.injected.total_setup_ms * 1e6))
        if session.fault is not None and await self._fault_before_ready(session, session.fault):
            return
        await self.sio.emit("auth_success", {"credits": CREDITS}, to=record.sid)
        session.phase = Phase.READY
        record.t_ns["ready_sent"] = ready = time.perf_counter_ns()
        await self.sio.emit("session_ready", {"message": "Session ready", "credits_available": CREDITS,
                                              "cost_per_minute": 1, "functions_loaded": 0}, to=record.sid)
        ready = self._restamp(record, "ready_sent", ready)
        if record.injected.greeting_ms is not None:
            session.greeting_task = _spawn(self._greet(session, ready + int(record.injected.greeting_ms * 1e6)))

    async def _greet(self, session: AivocoSession, start_ns: int) -> None:
        """``--greeting-ms``: audio the caller did not ask for, sent that long after session_ready."""
        await sleep_until(start_ns)
        if session.reply_task is not None and session.record.t_ns["first_audio_sent"] is not None:
            return   # the answer came first

        async def send(index: int, chunk: str) -> None:
            await self.sio.emit("audio_response", {"audio_data": chunk}, to=session.record.sid)

        await self.greeting.stream(session.record, start_ns, send, greeting=True)

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
        valid = check.pcm is not None and check.peak is not None
        began = record.note_input(len(check.pcm) // 2 if valid else 0, check.peak if valid else 0.0, received,
                                  min_pause_ms=NEW_TURN_PAUSE_MS)
        if began and self.reply_after == "first-input":  # every turn's first audio_data starts its reply
            session.reply_task = _spawn(self._stream_reply(session, received))
        if self.reply_after == "end-of-turn" and check.pcm is not None:
            self._watch_turn(session, check.pcm, received)

    def _watch_turn(self, session: AivocoSession, pcm: bytes, received: int) -> None:
        """``--reply-after end-of-turn``: start the reply when trailing silence (or no audio) follows speech."""
        if session.reply_task is not None:
            if session.record.current_turn().turn in session.replies:
                return  # this turn is answered; listen again once the next one begins
            session.reply_task = None
            if session.turn is not None:
                session.turn.rearm()
        if session.turn is None or session.idle is None:
            session.turn = SilenceDetector(AIVOCO_INPUT_RATE, VAD_SILENCE_MS)
            session.idle = IdleTurnEnd(VAD_SILENCE_MS, lambda end_ns: self._turn_ended(session, end_ns))
        if self.vad_needs_speech:
            session.judge = session.judge or SpeechJudge(AIVOCO_INPUT_RATE)
            session.judge.add(pcm)
        if session.turn.feed(pcm).stopped_ms is not None:
            self._turn_ended(session, received)
        elif session.turn.speaking:
            session.idle.audio_received(received)

    def _turn_ended(self, session: AivocoSession, end_ns: int) -> None:
        if session.idle is not None:
            session.idle.cancel()
        if session.reply_task is None and self.vad_needs_speech and not self._speech_ok(session):
            return
        if session.reply_task is None:
            session.reply_task = _spawn(self._stream_reply(session, end_ns))

    def _speech_ok(self, session: AivocoSession) -> bool:
        """``--vad-needs-speech``: judge the turn (into the ground truth); a turn that is not speech starts over."""
        speech = session.judge is not None and session.judge.is_speech()
        session.record.input_speech = speech
        if session.judge is not None:
            session.judge.reset()
        if not speech:
            log.info("session %s %s: the turn's audio is not speech-like; not answered (--vad-needs-speech)",
                     session.record.session, session.record.sid)
            if session.turn is not None:
                session.turn.rearm()
        return speech

    async def _stream_reply(self, session: AivocoSession, turn_end_ns: int) -> None:
        record = session.record
        assert record.injected is not None
        turn = record.current_turn()
        session.replies.append(turn.turn)
        fault = session.fault if turn.turn == 1 else None  # faults strike a session's first turn
        if fault is not None and await self._fault_at_turn_end(session, fault):
            return
        start = turn_end_ns + int(self.scheduler.first_audio_delay(record) * 1e6)
        # the answer's text before its audio (TEXT_FRACTION), stamped in the ground truth as its frame is written
        await sleep_until(turn_end_ns + int((start - turn_end_ns) * TEXT_FRACTION))
        record.note_stage("first_text", text := time.perf_counter_ns())
        await self.sio.emit("text_response", {"text": REPLY_TEXT}, to=record.sid)
        self._restamp(record, "first_text_sent", text)
        out = record.audio_out
        session.reply_chunks = self.reply.chunks_for(record.injected.leading_silence_ms)
        for index, (chunk, samples) in enumerate(session.reply_chunks):
            due = start + index * REPLY_CHUNK_MS * 1_000_000
            await sleep_until(due)
            sent = time.perf_counter_ns()
            if index == 0:
                if session.greeting_task is not None and not session.greeting_task.done():
                    session.greeting_task.cancel()   # the answer cuts a greeting still being sent short
                    if record.greeting is not None:
                        record.greeting.interrupted = True
                record.note_first_audio(sent)
            late_ms = round((sent - due) / 1e6, 3)
            out.max_late_ms = late_ms if out.max_late_ms is None else max(out.max_late_ms, late_ms)
            out.chunks += 1
            out.samples += samples
            if index == 0 and fault is not None and fault.kind == "malformed":
                await self._send_malformed(record.sid, fault, chunk)
                return
            if index == len(session.reply_chunks) - 1:
                record.note_reply_end(sent)  # no end-of-reply event: the silence after this chunk ends the reply
            if fault is not None and fault.kind == "silent_audio":
                chunk = silenced(chunk)
            await self.sio.emit("audio_response", {"audio_data": chunk}, to=record.sid)
            if index == 0:
                self._restamp(record, "first_audio_sent", sent)
            if index == len(session.reply_chunks) - 1:
                self._restamp(record, "reply_end_sent", sent)
            if index == 0 and fault is not None and fault.kind == "drop" and fault.option("when") == "mid_reply":
                _spawn(self._drop_soon(record.sid))

    def _restamp(self, record: SessionTruth, name: str, taken_ns: int) -> int:
        """Ground-truth stamp ``name``, taken at ``taken_ns`` before its message was emitted, moved to the moment the
        message's frame was written (socketio_tuning.written_ns), when it was written inline; the stamp it has now."""
        written = socketio_tuning.written_ns(self.sio, record.sid)
        record.restamp(name, taken_ns, written)
        return taken_ns if written is None else written

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
        if session.fault is not None and session.fault.kind == "stray":
            sent = record.audio_out.chunks
            chunks = session.reply_chunks or self.reply.chunks
            conn.strays = [chunk for chunk, _ in chunks[sent:sent + session.fault.option("chunks")]]
        if session.fault is not None and session.fault.kind == "malformed":
            outcome = "malformed_reply"
        elif record.t_ns["first_audio_sent"] is not None:
            outcome = "ok"
        elif record.t_ns["ready_sent"] is not None:
            outcome = "stopped_before_audio"
        else:
            outcome = "stopped_before_ready"
        record.t_ns["ended_sent"] = ended = time.perf_counter_ns()
        await self.sio.emit("session_ended", {"reason": "user_requested", "message": "Call ended",
                                              "total_credits_used": 1, "remaining_credits": CREDITS - 1},
                            to=sid)
        self._restamp(record, "ended_sent", ended)
        self.scheduler.finish(record, outcome)

    # ------------------------------------------------------------ injected faults (see bootbench.server.faults, .faults)

    async def _fault_before_ready(self, session: AivocoSession, fault: FaultSpec) -> bool:
        """Faults striking where session_ready would be sent; True when the session goes no further."""
        record = session.record
        if fault.kind == "error" and fault.option("when") == "before_ready":
            self._end_here(session, "error")
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            await self.sio.emit("error", error_event(fault, session.key_echo), to=record.sid)
            self.scheduler.finish(record, "error")
            return True
        if fault.kind == "never_ready":
            await self.sio.emit("auth_success", {"credits": CREDITS}, to=record.sid)
            return True
        if fault.kind == "drop" and fault.option("when") == "before_ready":
            await self._drop(record.sid)
            return True
        return False

    async def _fault_at_turn_end(self, session: AivocoSession, fault: FaultSpec) -> bool:
        """Faults striking where the reply would start; True when no reply is sent."""
        record = session.record
        if fault.kind == "silence":
            return True
        if fault.kind == "error" and fault.option("when") == "after_input":
            self._end_here(session, "error")
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            await self.sio.emit("error", error_event(fault, session.key_echo), to=record.sid)
            self.scheduler.finish(record, "error")
            return True
        if fault.kind == "end":
            self._end_here(session, "ended_by_server")
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            await self.sio.emit("session_ended", ended_event(fault), to=record.sid)
            self.scheduler.finish(record, "ended_by_server")
            return True
        if fault.kind == "drop" and fault.option("when") == "after_input":
            await self._drop(record.sid)
            return True
        return False

    def _end_here(self, session: AivocoSession, why: str) -> None:
        """The server ends ``session`` by itself: the connection carries no session any more."""
        conn = self.connections.get(session.record.sid)
        if conn is not None and conn.session is session:
            conn.session = None
        log.info("session %s %s: ended by the server (%s)", session.record.session, session.record.sid, why)

    async def _send_malformed(self, sid: str, fault: FaultSpec, chunk: str) -> None:
        reply = malformed_reply(fault, chunk)
        if reply.raw is not None:
            await self.sio.eio.send(self.sio.manager.eio_sid_from_sid(sid, "/"), reply.raw)
        else:
            await self.sio.emit("audio_response", reply.payload, to=sid)

    async def _drop(self, sid: str) -> None:
        """The ``drop`` fault: close the TCP connection under the client, with no Socket.IO or WebSocket goodbye.

        The connection is forgotten at once, so what the client sent before it noticed is not held against it.
        """
        conn = self.connections.get(sid)
        if conn is None:
            return
        session, conn.session = conn.session, None
        if session is not None:
            self.scheduler.finish(session.record, "dropped")
        log.info("dropping connection %s", sid)
        await self.on_disconnect(sid)
        if conn.transport is not None:
            conn.transport.abort()
        if session is not None:
            session.cancel_tasks()  # last: it may cancel the task running this

    async def _drop_soon(self, sid: str) -> None:
        """``drop:when=mid_reply``: drop once the first reply chunk has left (the writer task sends it)."""
        await asyncio.sleep(MID_REPLY_DROP_S)
        await self._drop(sid)

    async def _send_strays(self, conn: AivocoConnection) -> None:
        """``stray``: the held-back chunks of the previous session, sent as the next session starts."""
        strays, conn.strays = conn.strays, []
        for chunk in strays:
            await self.sio.emit("audio_response", {"audio_data": chunk}, to=conn.sid)
        log.info("sent %d stray reply chunk(s) of an ended session to %s", len(strays), conn.sid)

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
