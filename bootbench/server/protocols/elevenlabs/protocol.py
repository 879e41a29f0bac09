"""ElevenLabs Agents over a raw WebSocket (docs/protocols/elevenlabs.md), server side.

    GET  /v1/convai/conversation/get-signed-url?agent_id=ID     xi-api-key: KEY   -> {"signed_url": ...}
    ws://HOST/v1/convai/conversation?agent_id=ID&conversation_signature=TOKEN

The emulated agent is private: its conversation is joined through a signed
URL, valid for 15 minutes, which the REST request returns to a client
with a key (a bad key: HTTP 401 with ElevenLabs' error body). The session
starts with ``conversation_initiation_client_data`` (capacity slot, setup
delay) and is ready at ``conversation_initiation_metadata`` (input
``pcm_16000``, output ``pcm_24000``); messages before it wait for it and are
processed in order then, timed from the ready time (each a note: bootbench's
driver waits). The agent pings right after the metadata and every
:data:`PING_INTERVAL_S`; a pong must carry a ping's ``event_id``. The
agent numbers turns (``event_id``): a greeting (``--greeting-ms``) takes the
first id; a user turn takes the next id when its speech starts, and speech
while the greeting plays interrupts it (``interruption`` with the turn's
id). The turn ends by itself after :data:`~bootbench.wire.VAD_SILENCE_MS` of
trailing silence (there is no client end of turn): ``user_transcript``,
then ``agent_response``, each at its own share of the first-audio delay
(:data:`STAGE_SHARES`; the ground truth stamps them as the service's
stages), and the reply as ``audio`` events of the turn's id at real-time
pace; no end-of-reply event. The client's close frame ends the
session. Every client message is checked (:mod:`.checks`); a refused one is
answered with the service's ``error`` event and close 1008.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bootbench.server.context import ProtocolContext
from bootbench.server.faults import FaultSpec
from bootbench.server.reply import silenced
from bootbench.server.json_checks import Problem, note, parse_object
from bootbench.server.pcm import pcm16_peak
from bootbench.server.scheduler import sleep_until
from bootbench.server.turns import SilenceDetector
from bootbench.server.ws_protocol import WebSocketConnection, WebSocketProtocol, spawn
from bootbench.wire import (ELEVENLABS_CONVERSATION_PATH, ELEVENLABS_SIGNED_URL_PATH, SILENCE_THRESHOLD,
                            VAD_SILENCE_MS)

from .checks import INITIATION, Checked, check_message
from .faults import END_MESSAGES, echo, error_event, fault_error, malformed_audio

PROTOCOL = "elevenlabs"
INPUT_RATE = 16_000
INPUT_FORMAT = "pcm_16000"
OLD_SIGNED_URL_PATH = "/v1/convai/conversation/get_signed_url"
"""The path ElevenLabs' curl example still shows (the SDK uses :data:`~bootbench.wire.ELEVENLABS_SIGNED_URL_PATH`)."""
SIGNATURE_TTL_S = 15 * 60
PING_INTERVAL_S = 2.0
"""ElevenLabs documents no ping interval: the emulation's choice (a first ping right after the metadata)."""
PONG_GRACE_NS = 1_000_000_000
"""A ping still unanswered this long when the session ends is a note."""
NEW_TURN_PAUSE_MS = 200
"""Input after a finished reply begins a new turn only after a pause this long (as Aivoco's emulation: a clip
still streaming after a short reply is the same turn)."""
MID_REPLY_DROP_S = 0.01
REPLY_TEXT = "Hello, this is the bootbench reference server."
GREETING_TEXT = "Hi, you are talking to the bootbench reference agent."
TRANSCRIPT_TEXT = "(what the user said)"
STAGE_SHARES = {"input_transcript": 0.3, "first_text": 0.7}
"""When the answer's stage events go, as shares of the turn's first-audio delay after the turn end:
``user_transcript``, then ``agent_response``. (The service sends ``agent_response`` with the first audio; the
emulation sends it earlier, at a time of its own, so that a client's first text can be told from its first
audio.)"""
NO_KEY = {"detail": {"status": "needs_authorization",
                     "message": "Neither authorization header nor xi-api-key received, please provide one."}}
BAD_KEY = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}
BAD_SIGNATURE = {"detail": {"status": "invalid_conversation_signature",
                            "message": "The conversation signature is missing, invalid or expired."}}

log = logging.getLogger("bootbench.server")


@dataclass(eq=False)
class AgentConnection(WebSocketConnection):
    """One conversation's WebSocket: its turn state, pings and fault."""

    key: str = ""
    """The key the client gave its signed-URL request (for ``echo=yes`` only; never logged)."""
    transport: asyncio.BaseTransport | None = None
    initiated: bool = False
    backlog: list[tuple[Checked, list[Problem], int]] | None = field(default_factory=list)
    """Messages (with their notes and arrival) waiting for the session to be ready; None once it is."""
    detector: SilenceDetector = field(default_factory=lambda: SilenceDetector(INPUT_RATE, VAD_SILENCE_MS))
    ids: Any = field(default_factory=lambda: itertools.count(1))
    """The conversation's event ids: the greeting's, then one per user turn."""
    turn_id: int | None = None
    """The id of the user turn whose speech is in progress or being answered."""
    answering: bool = False
    greeting_id: int | None = None
    """The id the agent's first message takes (reserved at ready, before any user turn, as it comes first)."""
    greeting_started: bool = False
    ping_ids: Any = field(default_factory=lambda: itertools.count(1))
    pings: dict[int, int] = field(default_factory=dict)
    """Pings sent and not answered yet: event_id -> sent at."""
    round_trip_ms: int | None = None
    ping_task: asyncio.Task[None] | None = None
    fault: FaultSpec | None = None
    strays: list[str] = field(default_factory=list)
    """Reply chunks of turn 1 held back by the ``stray`` fault, sent when the next turn begins."""
    stray_id: int | None = None

    def cancel_tasks(self) -> None:
        super().cancel_tasks()
        if self.ping_task is not None and not self.ping_task.done() and self.ping_task is not asyncio.current_task():
            self.ping_task.cancel()


class ElevenLabsProtocol(WebSocketProtocol):
    """Serves an ElevenLabs agent's conversation WebSocket and its signed-URL request."""

    protocol = PROTOCOL
    path = ELEVENLABS_CONVERSATION_PATH

    def __init__(self, context: ProtocolContext) -> None:
        super().__init__(context)
        self.signatures: dict[str, tuple[float, str]] = {}
        """Signed URLs handed out: token -> (expiry on the monotonic clock, the key that asked for it)."""

    def attach(self, app: web.Application) -> None:
        super().attach(app)
        app.router.add_get(ELEVENLABS_SIGNED_URL_PATH, self.signed_url)
        app.router.add_get(OLD_SIGNED_URL_PATH, self.signed_url)

    # ---- the signed URL (REST)

    async def signed_url(self, request: web.Request) -> web.Response:
        received = time.perf_counter_ns()
        key = request.headers.get("xi-api-key", "").strip()
        sid = f"{PROTOCOL}-rest-{next(self._numbers)}"
        if not key or (self.api_key is not None and key != self.api_key):
            record = self.scheduler.open(PROTOCOL, sid, received)
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            log.info("session %s %s: auth failed at the signed-URL request", record.session, sid)
            self.scheduler.finish(record, "auth_failed")
            return web.json_response(NO_KEY if not key else BAD_KEY, status=401)
        if request.path == OLD_SIGNED_URL_PATH:
            self.scheduler.note(self.scheduler.connection_record(PROTOCOL, sid),
                                f"{OLD_SIGNED_URL_PATH} (the SDKs ask {ELEVENLABS_SIGNED_URL_PATH})")
        agent = request.query.get("agent_id", "")
        if not agent:
            self.refused_violation(sid, "signed-URL request without agent_id")
            return web.json_response({"detail": [{"loc": ["query", "agent_id"], "msg": "field required",
                                                  "type": "value_error.missing"}]}, status=422)
        now = time.monotonic()
        for token in [t for t, (expiry, _) in self.signatures.items() if expiry < now]:
            del self.signatures[token]
        token = secrets.token_urlsafe(24)
        self.signatures[token] = (now + SIGNATURE_TTL_S, key)
        scheme = "wss" if request.secure else "ws"
        url = f"{scheme}://{request.host}{ELEVENLABS_CONVERSATION_PATH}?agent_id={agent}&conversation_signature={token}"
        return web.json_response({"signed_url": url})

    # ---- the upgrade

    def refuse(self, request: web.Request, sid: str, received_ns: int) -> web.StreamResponse | None:
        if not request.query.get("agent_id"):
            self.refused_violation(sid, "conversation upgrade without ?agent_id=")
            return web.json_response({"detail": {"status": "missing_agent_id", "message": "agent_id is required"}},
                                     status=400)
        signature = self.signatures.get(request.query.get("conversation_signature", ""))
        if signature is None or signature[0] < time.monotonic():
            record = self.scheduler.open(PROTOCOL, sid, received_ns)
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            log.info("session %s %s: auth failed: no valid conversation signature", record.session, sid)
            self.scheduler.finish(record, "auth_failed")
            return web.json_response(BAD_SIGNATURE, status=403)
        return None

    def new_connection(self, ws: web.WebSocketResponse, request: web.Request, sid: str) -> AgentConnection:
        _, key = self.signatures[request.query["conversation_signature"]]
        return AgentConnection(ws, sid, self.scheduler.connection_record(PROTOCOL, sid), key=key,
                               transport=request.transport)

    # ---- client messages

    async def on_frame(self, conn: WebSocketConnection, data: str | bytes, binary: bool, received_ns: int) -> None:
        assert isinstance(conn, AgentConnection)
        problems: list[Problem] = []
        if binary:
            problems.append(note("a binary frame (the conversation's messages are JSON text frames)"))
        message = parse_object(data, "client frame", problems)
        checked = check_message(message) if message is not None else None
        if checked is not None:
            problems += checked.problems
        rejected = [p for p in problems if p.code]
        if checked is not None and checked.kind == INITIATION and conn.initiated:
            rejected.append(Problem("a second conversation_initiation_client_data (one per conversation)",
                                    "invalid_message"))
            problems.append(rejected[-1])
        if rejected:
            self.violations(conn, problems)
            await self._close_with_error(conn, 1008, rejected[0].code or "invalid_message", rejected[0].message,
                                         "rejected")
            return
        assert checked is not None
        if checked.kind == INITIATION:
            self.violations(conn, problems)
            await self._initiate(conn, received_ns)
            return
        if conn.backlog is not None:
            waiting_for = "conversation_initiation_metadata" if conn.initiated else INITIATION
            problems.append(note(f"{_name(checked)} before {waiting_for}"))
            conn.backlog.append((checked, problems, received_ns))
            return
        self.violations(conn, problems)
        await self._process(conn, checked, received_ns)

    async def _process(self, conn: AgentConnection, checked: Checked, at_ns: int) -> None:
        if checked.kind == "audio":
            assert checked.pcm is not None
            await self._audio(conn, checked.pcm, at_ns)
        elif checked.kind == "pong":
            event_id = checked.message["event_id"]
            sent = conn.pings.pop(event_id, None)
            if sent is None:
                # Not documented what the service does; the emulation counts it and goes on.
                self.violations(conn, [Problem(f"pong with event_id {event_id}, which no ping carried", None)])
            else:
                conn.round_trip_ms = round((at_ns - sent) / 1e6)
        else:
            log.debug("%s: %s is not emulated; ignored", conn.sid, checked.kind)

    async def _initiate(self, conn: AgentConnection, received_ns: int) -> None:
        conn.initiated = True
        record = conn.record = self.scheduler.open(PROTOCOL, conn.sid, received_ns)
        # The messages that came before the initiation count in the session from now on.
        fault = conn.fault = self.scheduler.fault_for(record)
        injected = self.scheduler.accept(record)
        if fault is not None and fault.kind == "slow":
            record.injected = fault.slowed(injected)
        conn.setup_task = spawn(self._set_up(conn))

    async def _set_up(self, conn: AgentConnection) -> None:
        record, fault = conn.record, conn.fault
        assert record is not None and record.injected is not None
        await self.scheduler.admit(record)
        await sleep_until(time.perf_counter_ns() + int(record.injected.total_setup_ms * 1e6))
        if fault is not None and await self._fault_before_ready(conn, fault):
            return
        conn.ready = True
        ready = record.t_ns["ready_sent"] = time.perf_counter_ns()
        await self.send_json(conn, {"type": "conversation_initiation_metadata",
                                    "conversation_initiation_metadata_event": {
                                        "conversation_id": f"conv_{secrets.token_hex(12)}",
                                        "agent_output_audio_format": f"pcm_{self.reply.rate}",
                                        "user_input_audio_format": INPUT_FORMAT}})
        conn.ping_task = spawn(self._ping(conn))
        while conn.backlog:
            checked, problems, received_ns = conn.backlog.pop(0)
            self.violations(conn, problems)
            await self._process(conn, checked, max(received_ns, ready))
            if conn.ws.closed:
                return
        conn.backlog = None
        if record.injected.greeting_ms is not None:
            conn.greeting_id = next(conn.ids)
        self.schedule_greeting(conn, ready)

    async def _ping(self, conn: AgentConnection) -> None:
        while not conn.ws.closed:
            event_id = next(conn.ping_ids)
            conn.pings[event_id] = time.perf_counter_ns()
            await self.send_json(conn, {"type": "ping", "ping_event": {"event_id": event_id,
                                                                        "ping_ms": conn.round_trip_ms}})
            await asyncio.sleep(PING_INTERVAL_S)

    async def _client_closed(self, conn: WebSocketConnection, received_ns: int) -> None:
        assert isinstance(conn, AgentConnection)
        late = [event_id for event_id, sent in conn.pings.items() if received_ns - sent > PONG_GRACE_NS]
        if late and conn.record is not None and conn.record.outcome is None:
            self.violations(conn, [note(f"ping {late[0]} not answered with a pong")])
        await super()._client_closed(conn, received_ns)

    # ---- the user's turn

    async def _audio(self, conn: AgentConnection, pcm: bytes, received_ns: int) -> None:
        record = conn.record
        assert record is not None
        peak = pcm16_peak(pcm)
        if record.note_input(len(pcm) // 2, peak, received_ns, min_pause_ms=NEW_TURN_PAUSE_MS):
            await self._send_strays(conn)
        self.hear(conn, pcm, INPUT_RATE)
        edges = conn.detector.feed(pcm)
        if edges.started_ms is not None:
            conn.turn_id = next(conn.ids)
        if conn.detector.speaking and peak > SILENCE_THRESHOLD and conn.greeting_started \
                and self.stop_greeting(conn):
            # The user's speech interrupts the greeting: its audio (lower ids) is void from now on.
            await self.send_json(conn, {"type": "interruption", "interruption_event": {"event_id": conn.turn_id}})
        if edges.stopped_ms is None:
            return
        if not self.speech_ok(conn):
            conn.detector.rearm()
            return
        await self._end_turn(conn, received_ns)

    async def _end_turn(self, conn: AgentConnection, turn_end_ns: int) -> None:
        record = conn.record
        assert record is not None and conn.turn_id is not None
        if conn.answering:
            return
        conn.answering = True
        turn_id = conn.turn_id
        fault = conn.fault if record.current_turn().turn == 1 else None  # faults strike a session's first turn
        if fault is not None and await self._fault_at_turn_end(conn, fault):
            return
        start = turn_end_ns + int(self.scheduler.first_audio_delay(record) * 1e6)
        conn.reply_task = spawn(self._respond(conn, turn_id, turn_end_ns, start, fault))

    # ---- the agent's speech

    async def greet(self, conn: WebSocketConnection, start_ns: int) -> None:
        """The agent's first message, unasked, unless the user already finished a turn."""
        assert isinstance(conn, AgentConnection)
        await sleep_until(start_ns)
        if conn.answering:
            return
        record = conn.record
        assert record is not None and conn.greeting_id is not None
        greeting_id = conn.greeting_id
        conn.greeting_started = True
        await self.send_json(conn, {"type": "agent_response", "agent_response_event": {
            "agent_response": GREETING_TEXT, "event_id": greeting_id}})

        async def send_chunk(index: int, chunk: str) -> None:
            await self.send_json(conn, _audio_event(chunk, greeting_id))

        await self.greeting.stream(record, start_ns, send_chunk, greeting=True)

    async def _respond(self, conn: AgentConnection, turn_id: int, turn_end_ns: int, start_ns: int,
                       fault: FaultSpec | None) -> None:
        record = conn.record
        assert record is not None and record.injected is not None
        stages = (("input_transcript", {"type": "user_transcript", "user_transcription_event": {
                       "user_transcript": TRANSCRIPT_TEXT, "event_id": turn_id}}),
                  ("first_text", {"type": "agent_response", "agent_response_event": {
                      "agent_response": REPLY_TEXT, "event_id": turn_id}}))
        for stage, message in stages:   # each at its known time between the turn end and the first audio
            await sleep_until(turn_end_ns + int((start_ns - turn_end_ns) * STAGE_SHARES[stage]))
            record.note_stage(stage, time.perf_counter_ns())
            await self.send_json(conn, message)
        chunks = self.reply.chunks_for(record.injected.leading_silence_ms)
        hold = fault.option("chunks") if fault is not None and fault.kind == "stray" else 0
        last = len(chunks) - 1 - min(hold, len(chunks) - 1)

        async def send_chunk(index: int, chunk: str) -> None:
            if index == 0:
                if self.stop_greeting(conn):   # a greeting still speaking when the answer starts is cut short
                    await self.send_json(conn, {"type": "interruption", "interruption_event": {"event_id": turn_id}})
                if fault is not None and fault.kind == "malformed":
                    await self._send_malformed(conn, fault, chunk, turn_id)
                    raise _ReplyStopped
            if index > last:
                conn.strays.append(chunk)
                conn.stray_id = turn_id
                return
            if index == last:
                record.note_reply_end(time.perf_counter_ns())  # no end-of-reply event: quiet after this chunk
            if fault is not None and fault.kind == "silent_audio":
                chunk = silenced(chunk)
            await self.send_json(conn, _audio_event(chunk, turn_id))
            if index == 0 and fault is not None and fault.kind == "drop" and fault.option("when") == "mid_reply":
                spawn(self._drop_soon(conn))

        try:
            await self.reply.stream(record, start_ns, send_chunk, leading_silence_ms=record.injected.leading_silence_ms)
        except _ReplyStopped:
            return
        conn.answering = False
        conn.detector.rearm()

    async def _send_strays(self, conn: AgentConnection) -> None:
        """The ``stray`` fault: the held-back chunks of the previous reply go out as the next turn begins."""
        strays, conn.strays = conn.strays, []
        for chunk in strays:
            await self.send_json(conn, _audio_event(chunk, conn.stray_id or 0))

    # ---- injected faults (bootbench.server.faults, .faults)

    async def _fault_before_ready(self, conn: AgentConnection, fault: FaultSpec) -> bool:
        """Faults striking where the metadata would be sent; True when the session goes no further."""
        if fault.kind == "auth" or (fault.kind == "error" and fault.option("when") == "before_ready"):
            code, event = fault_error(fault, echo(fault, conn.key))
            await self.send_json(conn, event)
            outcome = "auth_failed" if fault.kind == "auth" else "error"
            await self.close_with(conn, code, event["error_event"]["reason"], outcome)
            return True
        if fault.kind == "never_ready":
            return True
        if fault.kind == "drop" and fault.option("when") == "before_ready":
            self._drop(conn)
            return True
        return False

    async def _fault_at_turn_end(self, conn: AgentConnection, fault: FaultSpec) -> bool:
        """Faults striking where the answer would start; True when no answer is sent."""
        if fault.kind == "silence":
            return True
        if fault.kind == "end":
            await self.close_with(conn, 1000, END_MESSAGES[fault.option("reason")], "ended_by_server")
            return True
        if fault.kind == "error" and fault.option("when") == "after_input":
            code, event = fault_error(fault, echo(fault, conn.key))
            await self.send_json(conn, event)
            await self.close_with(conn, code, event["error_event"]["reason"], "error")
            return True
        if fault.kind == "drop" and fault.option("when") == "after_input":
            self._drop(conn)
            return True
        return False

    async def _send_malformed(self, conn: AgentConnection, fault: FaultSpec, chunk: str, turn_id: int) -> None:
        """Instead of the answer's first audio event, one malformed message, then nothing."""
        bad = malformed_audio(fault, chunk, turn_id)
        if bad.raw is not None:
            await conn.ws.send_str(bad.raw)
        else:
            await self.send_json(conn, bad.payload)
        if conn.record is not None and conn.record.outcome is None:
            self.scheduler.finish(conn.record, "malformed_reply")

    def _drop(self, conn: AgentConnection) -> None:
        """The ``drop`` fault: close the TCP connection under the client, with no WebSocket goodbye."""
        record = conn.record
        if record is not None and record.outcome is None:
            self.scheduler.finish(record, "dropped")
        log.info("dropping connection %s", conn.sid)
        if conn.transport is not None:
            conn.transport.abort()
        conn.cancel_tasks()

    async def _drop_soon(self, conn: AgentConnection) -> None:
        await asyncio.sleep(MID_REPLY_DROP_S)
        self._drop(conn)

    async def _close_with_error(self, conn: AgentConnection, code: int, error_type: str, message: str,
                                outcome: str) -> None:
        await self.send_json(conn, error_event(code, error_type, message))
        await self.close_with(conn, code, message, outcome if conn.record is not None else None)


class _ReplyStopped(Exception):
    """The reply goes no further (a fault replaced it)."""


def _audio_event(chunk: str, event_id: int) -> dict[str, Any]:
    return {"type": "audio", "audio_event": {"audio_base_64": chunk, "event_id": event_id}}


def _name(checked: Checked) -> str:
    return "user_audio_chunk" if checked.kind == "audio" else str(checked.kind)
