"""Ultravox, server side: the HTTPS create endpoint and the call's raw WebSocket (docs/protocols/ultravox.md).

    POST http://HOST/api/calls      X-API-Key: KEY      {"medium": {"serverWebSocket": {...}}, ...}
      -> 201 {"callId", "joinUrl": "ws://HOST/calls/<id>/join?token=<secret>", ...}
    GET  <joinUrl> (WebSocket)  -> {"type": "state", "state": "listening"} once set up: the session is ready

A create request opens the session (``start_received``; its capacity slot, delays and fault are drawn
there) and is answered at once (``created_sent``); the setup delay runs from the join
(``join_received``) to the first ``state`` (``ready_sent``). A call not joined within its ``joinTimeout``
(the service's default: 30 s) ends ``unjoined``. The user's audio arrives as raw PCM16 in binary
frames at the call's ``inputSampleRate``; the turn ends when it shows ``vadSettings.turnEndpointDelay``
(default 384 ms) of trailing silence after speech. The answer is ``state`` ``thinking``, the caller's
``transcript`` and the agent's first ``transcript`` delta (each at its own share of the first-audio delay,
:data:`STAGE_SHARES`; the ground truth stamps them as the service's stages), then after the first-audio
delay ``speaking``, the reply as raw PCM16 binary frames at ``outputSampleRate`` in real time, the agent's
final ``transcript``, and ``state`` ``listening`` (the end of the reply). A call whose agent
speaks first (``firstSpeakerSettings.agent``, the service's default) is greeted when the server has
``--greeting-ms``; the caller's speech interrupts the greeting (``playback_clear_buffer``, ``listening``).
The client's close frame ends the call. Faults: :mod:`.faults`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from bootbench.server.context import ProtocolContext
from bootbench.server.faults import FaultSpec
from bootbench.server.json_checks import Problem, note, parse_object
from bootbench.server.pcm import pcm16_peak
from bootbench.server.reply import GREETING_HZ, GREETING_MS, ReplyAudio, silenced
from bootbench.server.scheduler import sleep_until
from bootbench.server.truth import SessionTruth
from bootbench.server.turns import SilenceDetector
from bootbench.server.ws_protocol import WebSocketConnection, WebSocketProtocol, spawn, stop_outcome
from bootbench.wire import ULTRAVOX_CALLS_PATH

from .checks import CallSettings, check_call, check_data_message
from .faults import (APPLIES, AUTH_DETAIL, END_REASONS, ERROR_CLOSE_CODE, ERRORS, NO_KEY_DETAIL, echo, error_reply,
                     malformed_frame)

PROTOCOL = "ultravox"
JOIN_PATH = "/calls/{call_id}/join"
"""Where the emulation's join URLs point (the real service's join URLs are its own; the client follows either)."""
DEFAULT_MODEL = "fixie-ai/ultravox"
"""The schema's default ``model``, reported when a create request names none."""
REPLY_TEXT = "Hello, this is the bootbench reference server."
USER_TEXT = "Hello."
STAGE_SHARES = {"input_transcript": 0.3, "first_text": 0.7}
"""When the answer's transcripts go, as shares of the turn's first-audio delay after the turn end (``state``
``thinking`` goes at the turn end): the caller's final ``transcript``, then the agent's first ``transcript``
delta; its audio (and ``speaking``) at the end of the delay."""

log = logging.getLogger("bootbench.server")


@dataclass(eq=False)
class Call:
    """A created call, until it is joined (or its join timeout ends it)."""

    call_id: str
    token: str
    settings: CallSettings
    record: SessionTruth
    fault: FaultSpec | None
    expiry: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class CallConnection(WebSocketConnection):
    """A joined call's socket: its settings, turn detection, and what the agent is saying."""

    call: Call | None = None
    transport: Any = None
    """The TCP transport under the WebSocket, for the ``drop`` fault."""
    detector: SilenceDetector | None = None
    backlog: list[tuple[bytes, int]] | None = field(default_factory=list)
    """Audio that arrived before the call was ready, processed in order once it is; None after."""
    speaking: str | None = None
    """``"greeting"`` or ``"answer"`` while the agent speaks."""


class UltravoxProtocol(WebSocketProtocol):
    """Serves ``POST /api/calls`` and each created call's WebSocket.

        protocol = UltravoxProtocol(ProtocolContext(scheduler, config))
        protocol.attach(app)
    """

    protocol = PROTOCOL
    path = JOIN_PATH

    def __init__(self, context: ProtocolContext) -> None:
        super().__init__(context)
        self.calls: dict[str, Call] = {}
        self._joining: dict[str, Call] = {}
        self._replies: dict[tuple[int, bool], ReplyAudio] = {(self.reply.rate, False): self.reply,
                                                             (self.greeting.rate, True): self.greeting}
        self._pcm: dict[str, bytes] = {}

    def attach(self, app: web.Application) -> None:
        app.router.add_post(ULTRAVOX_CALLS_PATH, self.create_call)
        app.router.add_get(self.path, self.handle)

    # ---- the create request

    async def create_call(self, request: web.Request) -> web.Response:
        """``POST /api/calls``: check the key and the body, open the session, answer 201 with its ``joinUrl``."""
        received = time.perf_counter_ns()
        sid = f"{PROTOCOL}-{next(self._numbers)}"
        key = request.headers.get("X-API-Key") or request.headers.get("X-Unsafe-API-Key") or ""
        if not key or (self.api_key is not None and key != self.api_key):
            return self._refuse_call(sid, received, 401, NO_KEY_DETAIL if not key else AUTH_DETAIL, "auth_failed")
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            self.refused_violation(sid, f"create request: not valid JSON ({exc})")
            return web.json_response({"detail": f"JSON parse error - {exc}"}, status=400)
        problems, settings = check_call(body)
        rejected = [p for p in problems if p.code]
        if rejected or settings is None:
            record = self.scheduler.connection_record(PROTOCOL, sid)
            self.violations_of(record, problems)
            self.scheduler.finish(record, "outside_session")
            reasons = [p.message for p in rejected] or ["the call cannot be served"]
            return web.json_response({"detail": "; ".join(reasons)}, status=400)
        record = self.scheduler.open(PROTOCOL, sid, received)
        self.violations_of(record, problems)
        fault = self.scheduler.fault_for(record)
        if fault is not None and fault.kind not in APPLIES:
            log.info("session %s: fault %s has no form on this wire; not played", record.session, fault.text)
            fault = record.fault = None   # the record claims no fault that was not played
        if fault is not None and fault.kind == "auth":
            return self._refuse_call(sid, received, 401, AUTH_DETAIL + echo(fault, key), "auth_failed", record)
        if fault is not None and fault.kind == "error" and fault.option("when") == "before_ready":
            status, error = error_reply(fault, echo(fault, key))
            return self._refuse_call(sid, received, status, error["detail"], "error", record)
        injected = self.scheduler.accept(record)
        if fault is not None and fault.kind == "slow":
            record.injected = fault.slowed(injected)
        call = Call(str(uuid.uuid4()), secrets.token_urlsafe(18), settings, record, fault)
        self.calls[call.call_id] = call
        call.expiry = asyncio.get_running_loop().call_later(settings.join_timeout_s, self._expire, call.call_id)
        scheme = "wss" if request.secure else "ws"
        join_url = f"{scheme}://{request.host}{JOIN_PATH.format(call_id=call.call_id)}?token={call.token}"
        reply = self._call_object(call, body, join_url)
        record.t_ns["created_sent"] = time.perf_counter_ns()
        return web.json_response(reply, status=201)

    def _refuse_call(self, sid: str, received: int, status: int, detail: str, outcome: str,
                     record: SessionTruth | None = None) -> web.Response:
        """Refuse a create request in the service's shape; the detail (it may quote the key) is never logged."""
        record = record or self.scheduler.open(PROTOCOL, sid, received)
        record.t_ns["ended_sent"] = time.perf_counter_ns()
        log.info("session %s %s: call refused with HTTP %d (%s)", record.session, record.sid, status, outcome)
        self.scheduler.finish(record, outcome)
        return web.json_response({"detail": detail}, status=status)

    def _call_object(self, call: Call, body: dict[str, Any], join_url: str) -> dict[str, Any]:
        """The ``Call`` the service answers with (its read-only fields as they are before the join)."""
        agent = call.settings.agent_first
        return {
            "callId": call.call_id, "clientVersion": None,
            "created": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "joined": None, "ended": None, "endReason": None, "billedDuration": None,
            "firstSpeaker": "FIRST_SPEAKER_AGENT" if agent else "FIRST_SPEAKER_USER",
            "firstSpeakerSettings": body.get("firstSpeakerSettings") or {"agent": {}},
            "initialOutputMedium": "MESSAGE_MEDIUM_VOICE", "joinTimeout": body.get("joinTimeout", "30s"),
            "joinUrl": join_url, "languageHint": body.get("languageHint"),
            "maxDuration": body.get("maxDuration", "3600s"), "medium": body.get("medium"),
            "model": body.get("model", DEFAULT_MODEL), "recordingEnabled": bool(body.get("recordingEnabled")),
            "systemPrompt": body.get("systemPrompt"), "temperature": body.get("temperature", 0),
            "timeExceededMessage": body.get("timeExceededMessage"), "voice": body.get("voice"),
            "transcriptOptional": True, "errorCount": 0, "vadSettings": body.get("vadSettings"),
            "shortSummary": None, "summary": None, "experimentalSettings": None,
            "metadata": body.get("metadata") or {}, "initialState": body.get("initialState") or {},
            "requestContext": None,
        }

    def _expire(self, call_id: str) -> None:
        """The join timeout: a call nobody joined ends ``unjoined``."""
        call = self.calls.pop(call_id, None)
        if call is not None and call.record.outcome is None:
            call.record.t_ns["ended_sent"] = time.perf_counter_ns()
            self.scheduler.finish(call.record, "unjoined")

    # ---- the join

    def refuse(self, request: web.Request, sid: str, received_ns: int) -> web.StreamResponse | None:
        call = self.calls.get(request.match_info.get("call_id", ""))
        if call is None:
            self.refused_violation(sid, "join of a call that does not exist, ended or was joined already")
            return web.json_response({"detail": "Not found."}, status=404)
        if not secrets.compare_digest(request.query.get("token", ""), call.token):
            self.refused_violation(sid, "join without the call's token")
            return web.json_response({"detail": "You do not have permission to perform this action."}, status=403)
        del self.calls[call.call_id]
        if call.expiry is not None:
            call.expiry.cancel()
        call.record.t_ns["join_received"] = received_ns
        self._joining[sid] = call
        return None

    def new_connection(self, ws: web.WebSocketResponse, request: web.Request, sid: str) -> CallConnection:
        call = self._joining.pop(sid)
        settings = call.settings
        return CallConnection(ws, sid, self.scheduler.connection_record(PROTOCOL, sid), record=call.record,
                              call=call, transport=request.transport,
                              detector=SilenceDetector(settings.input_rate, settings.turn_end_ms))

    async def on_open(self, conn: WebSocketConnection) -> None:
        assert isinstance(conn, CallConnection)
        conn.setup_task = spawn(self._set_up(conn))

    async def _set_up(self, conn: CallConnection) -> None:
        record, call = conn.record, conn.call
        assert record is not None and call is not None and record.injected is not None
        fault = call.fault
        if fault is not None and fault.kind == "drop" and fault.option("when") == "before_ready":
            await self._drop(conn)
            return
        await self.scheduler.admit(record)
        await sleep_until(time.perf_counter_ns() + int(record.injected.total_setup_ms * 1e6))
        if fault is not None and fault.kind == "never_ready":
            log.info("%s: never ready (fault)", conn.sid)
            return
        conn.ready = True
        ready = record.t_ns["ready_sent"] = time.perf_counter_ns()
        await self._state(conn, "listening")
        while conn.backlog:   # audio that came before the call was ready, in order, as of now
            pcm, received = conn.backlog.pop(0)
            await self._audio(conn, pcm, max(received, ready))
        conn.backlog = None
        if call.settings.agent_first:
            self.schedule_greeting(conn, ready)

    # ---- what the client sends

    async def on_frame(self, conn: WebSocketConnection, data: str | bytes, binary: bool, received_ns: int) -> None:
        assert isinstance(conn, CallConnection)
        if binary:
            assert isinstance(data, bytes)
            if len(data) % 2:
                self.violations(conn, [Problem(f"a binary frame of {len(data)} bytes: not whole PCM16 samples")])
                return
            if conn.backlog is not None:
                self.violations(conn, [note("audio before the call was ready (its first state message)")])
                conn.backlog.append((data, received_ns))
                return
            await self._audio(conn, data, received_ns)
            return
        problems: list[Problem] = []
        message = parse_object(data, "data message", problems)
        if message is not None:
            problems += check_data_message(message)
        self.violations(conn, problems)
        if message is None or any(p.code for p in problems):
            return
        if message["type"] == "ping":
            await self.send_json(conn, {"type": "pong", "timestamp": message.get("timestamp")})
        elif message["type"] == "hang_up":
            await self.close_with(conn, 1000, "agent_hangup", stop_outcome(conn.record) if conn.record else None)
        else:
            log.debug("%s: %s is accepted, not emulated", conn.sid, message["type"])

    async def _audio(self, conn: CallConnection, pcm: bytes, at_ns: int) -> None:
        record, call = conn.record, conn.call
        assert record is not None and call is not None and conn.detector is not None
        if not pcm:
            return
        record.note_input(len(pcm) // 2, pcm16_peak(pcm), at_ns)
        self.hear(conn, pcm, call.settings.input_rate)
        edges = conn.detector.feed(pcm)
        if edges.started_ms is not None and conn.speaking == "greeting" and self.stop_greeting(conn):
            conn.speaking = None   # the caller's speech interrupts the greeting
            await self.send_json(conn, {"type": "playback_clear_buffer"})
            await self._state(conn, "listening")
        if edges.stopped_ms is None:
            return
        conn.detector.rearm()
        if self.speech_ok(conn):
            await self._turn_ended(conn, at_ns)

    async def _turn_ended(self, conn: CallConnection, end_ns: int) -> None:
        record, call = conn.record, conn.call
        assert record is not None and call is not None
        fault = call.fault if record.current_turn().turn == 1 else None   # faults strike a call's first turn
        if fault is not None and fault.kind == "silence":
            log.info("%s: takes the audio, never answers (fault)", conn.sid)
            return
        if fault is not None and fault.kind == "end":
            await self.close_with(conn, 1000, END_REASONS[fault.option("reason")], "ended_by_server")
            return
        if fault is not None and fault.kind == "error" and fault.option("when") == "after_input":
            await self.close_with(conn, ERROR_CLOSE_CODE, ERRORS[fault.option("type")][1], "error")
            return
        if fault is not None and fault.kind == "drop" and fault.option("when") == "after_input":
            await self._drop(conn)
            return
        thinking = time.perf_counter_ns()   # the service's turn end and response start, in one event
        record.note_stage("turn_end", thinking)
        record.note_stage("response_start", thinking)
        await self._state(conn, "thinking")
        start = end_ns + int(self.scheduler.first_audio_delay(record) * 1e6)
        conn.reply_task = spawn(self._respond(conn, end_ns, start, fault))

    # ---- what the agent says

    async def _respond(self, conn: CallConnection, end_ns: int, start_ns: int, fault: FaultSpec | None) -> None:
        record, call = conn.record, conn.call
        assert record is not None and call is not None and record.injected is not None
        ordinal = 2 * record.current_turn().turn
        stages = (("input_transcript", {"type": "transcript", "role": "user", "medium": "voice", "text": USER_TEXT,
                                        "delta": None, "final": True, "ordinal": ordinal - 1}),
                  ("first_text", {"type": "transcript", "role": "agent", "medium": "voice", "text": None,
                                  "delta": REPLY_TEXT.split()[0], "final": False, "ordinal": ordinal}))
        for stage, message in stages:   # each at its known time between the turn end and the first audio
            await sleep_until(end_ns + int((start_ns - end_ns) * STAGE_SHARES[stage]))
            record.note_stage(stage, time.perf_counter_ns())
            await self.send_json(conn, message)
        await sleep_until(start_ns)
        if conn.speaking == "greeting" and self.stop_greeting(conn):   # the answer cuts a greeting short
            conn.speaking = None
            await self.send_json(conn, {"type": "playback_clear_buffer"})
            await self._state(conn, "listening")
        if fault is not None and fault.kind == "malformed":
            frame = malformed_frame(fault)
            await (conn.ws.send_bytes(frame) if isinstance(frame, bytes) else conn.ws.send_str(frame))
            return
        conn.speaking = "answer"
        await self._state(conn, "speaking")
        drop_mid_reply = fault is not None and fault.kind == "drop" and fault.option("when") == "mid_reply"

        async def send(index: int, chunk: str) -> None:
            await self._send_pcm(conn, silenced(chunk) if fault is not None and fault.kind == "silent_audio" else chunk)
            if index == 0 and drop_mid_reply:
                await self._drop(conn)
                raise asyncio.CancelledError   # nothing more goes out on a dropped connection

        reply = self._reply_audio(call.settings.output_rate, greeting=False)
        await reply.stream(record, start_ns, send, leading_silence_ms=record.injected.leading_silence_ms)
        await self.send_json(conn, {"type": "transcript", "role": "agent", "medium": "voice", "text": REPLY_TEXT,
                                    "delta": None, "final": True, "ordinal": ordinal})
        conn.speaking = None
        record.note_reply_end(time.perf_counter_ns())
        await self._state(conn, "listening")

    async def greet(self, conn: WebSocketConnection, start_ns: int) -> None:
        """The agent speaks first: ``speaking``, the greeting's audio, ``listening``."""
        assert isinstance(conn, CallConnection) and conn.record is not None and conn.call is not None
        await sleep_until(start_ns)
        if conn.speaking is not None or conn.reply_task is not None:
            return   # the answer came first
        conn.speaking = "greeting"
        await self._state(conn, "speaking")
        greeting = self._reply_audio(conn.call.settings.output_rate, greeting=True)

        async def send(index: int, chunk: str) -> None:
            await self._send_pcm(conn, chunk)

        await greeting.stream(conn.record, start_ns, send, greeting=True)
        conn.speaking = None
        await self._state(conn, "listening")

    # ---- helpers

    async def _state(self, conn: CallConnection, state: str) -> None:
        await self.send_json(conn, {"type": "state", "state": state})

    async def _send_pcm(self, conn: CallConnection, chunk: str) -> None:
        """One reply chunk as a binary frame of raw PCM16 (the reply is kept as base64: decoded once per chunk)."""
        pcm = self._pcm.get(chunk)
        if pcm is None:
            pcm = base64.b64decode(chunk)
            if len(self._pcm) < 4096:
                self._pcm[chunk] = pcm
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_bytes(pcm)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s: audio dropped, socket closing (%s)", conn.sid, exc)

    def _reply_audio(self, rate: int, *, greeting: bool) -> ReplyAudio:
        """The reply (or greeting) tone at the call's output rate, encoded once per rate."""
        audio = self._replies.get((rate, greeting))
        if audio is None:
            audio = (ReplyAudio(GREETING_MS, rate, tone_hz=GREETING_HZ) if greeting
                     else ReplyAudio(self.reply.reply_ms, rate))
            self._replies[rate, greeting] = audio
        return audio

    async def _drop(self, conn: CallConnection) -> None:
        """The ``drop`` fault: close the TCP connection with no WebSocket close frame."""
        record = conn.record
        if record is not None and record.outcome is None:
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            self.scheduler.finish(record, "dropped")
        log.info("dropping connection %s", conn.sid)
        if conn.transport is not None:
            conn.transport.close()
        conn.cancel_tasks()

    def violations_of(self, record: SessionTruth, problems: list[Problem]) -> None:
        """Count a create request's problems against ``record``: notes and violations."""
        for problem in problems:
            if problem.note:
                self.scheduler.note(record, problem.message)
            else:
                self.scheduler.violation(record, problem.message)

    async def close(self) -> None:
        """Server shutdown: calls nobody joined end ``server_stopped``; joined ones close as on every protocol."""
        for call in list(self.calls.values()):
            if call.expiry is not None:
                call.expiry.cancel()
            if call.record.outcome is None:
                self.scheduler.finish(call.record, "server_stopped")
        self.calls.clear()
        await super().close()
