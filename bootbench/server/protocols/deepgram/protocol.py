"""Deepgram Voice Agent (Agent API v1) over a raw WebSocket at ``/v1/agent/converse`` (docs/protocols/deepgram.md).

    ws://HOST/v1/agent/converse          Authorization: Token KEY

A bad or missing key fails the upgrade with HTTP 401 and the service's JSON
body (``INVALID_AUTH``). On open the server sends ``Welcome``; the client's
``Settings`` starts the session (capacity slot, setup delay) and is answered
by ``SettingsApplied``; audio (binary linear16) or messages arriving between
the two wait for the session to be ready and are processed in order then
(a note: bootbench's driver waits). The agent hears the user: at the first
sound above the silence threshold of a turn (with ``--vad-needs-speech``:
once the turn's audio is speech-like) it says ``UserStartedSpeaking`` and
cuts a greeting short; the turn ends at ``ForceEndTurn`` (a Flux, ``v2``,
listen provider only; without a turn in progress it is ignored) or when the
audio shows :data:`~bootbench.wire.VAD_SILENCE_MS` of trailing silence after
speech. The answer is ``ConversationText`` (user), ``AgentThinking``,
``ConversationText`` (assistant), each at its own share of the first-audio
delay after the turn end (:data:`STAGE_SHARES`; the ground truth stamps
them as the service's stages), with ``experimental`` set
``AgentStartedSpeaking``, the audio as binary frames at real-time pace, then
``AgentAudioDone`` and ``LatencyReport`` (its ``total_latency`` is the
measured turn end to first audio; the stages split it 20/50/30, the
emulation's own choice). A greeting (``--greeting-ms``, or
``Settings.agent.greeting``) is an utterance of its own before the user's
turn. A client silent for :data:`~bootbench.wire.DEEPGRAM_IDLE_TIMEOUT_S`
after ``SettingsApplied`` gets ``CLIENT_MESSAGE_TIMEOUT``. The service's
``Error`` answers what it refuses (:mod:`.checks`), followed by a close
(1008 for the client's mistakes, 1011 for the server's, the code as the
reason: the emulation's choice, the close codes are not documented). The
client's close frame ends the session.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, web

from bootbench.server.faults import FaultSpec
from bootbench.server.json_checks import Problem, note, parse_object
from bootbench.server.pcm import pcm16_peak
from bootbench.server.reply import silenced
from bootbench.server.scheduler import sleep_until
from bootbench.server.turns import SilenceDetector
from bootbench.server.ws_protocol import WebSocketConnection, WebSocketProtocol, spawn
from bootbench.wire import DEEPGRAM_AGENT_PATH, DEEPGRAM_IDLE_TIMEOUT_S, VAD_SILENCE_MS

from .checks import UNPARSABLE, Checked, Settings, check_message
from .faults import AUTH_ERROR, UNSUPPORTED, echo, error_message, fault_error, malformed_frame

PROTOCOL = "deepgram"
USER_TEXT = "Hello."
REPLY_TEXT = "Hello, this is the bootbench reference server."
GREETING_TEXT = "Hi, this is the bootbench reference server."
REPORT_SPLIT = {"stt_latency": 0.2, "ttt_token_latency": 0.5, "ttt_text_latency": 0.5, "tts_latency": 0.3}
"""Each stage's share of ``total_latency`` in a ``LatencyReport`` (stt + ttt + tts = total)."""
STAGE_SHARES = {"input_transcript": REPORT_SPLIT["stt_latency"], "response_start": 0.4,
                "first_text": REPORT_SPLIT["stt_latency"] + REPORT_SPLIT["ttt_text_latency"]}
"""When the answer's stage events go, as shares of the turn's first-audio delay after the turn end: the user's
``ConversationText`` when speech-to-text is done (the report's stt share), ``AgentThinking``, the agent's
``ConversationText`` when the LLM's text is (stt + ttt); the audio after text-to-speech (the rest)."""
CLIENT_ERROR_CLOSE = int(WSCloseCode.POLICY_VIOLATION)
SERVER_ERROR_CLOSE = int(WSCloseCode.INTERNAL_ERROR)
MID_REPLY_DROP_S = 0.01
SETTINGS_GREETING_MS = 20.0
"""How long after SettingsApplied the agent starts a greeting asked for in ``Settings.agent.greeting``."""
SPEECH_REPORT_MS = 100.0
"""How long after the chunk in which it hears speech the agent says UserStartedSpeaking (the emulation's stand-in
for the service's speech detection; a turn that ends sooner says it at its end). It is why a ``ForceEndTurn`` sent
right behind a burst of audio finds no turn in progress, and why a greeting can start before the user is heard."""

log = logging.getLogger("bootbench.server")


@dataclass(eq=False)
class AgentConnection(WebSocketConnection):
    """An agent WebSocket: its key, settings, turn state and fault."""

    key: str = ""
    transport: Any = None
    """The TCP transport under the WebSocket, for the ``drop`` fault."""
    settings: Settings | None = None
    fault: FaultSpec | None = None
    key_echo: str = ""
    """For an ``auth``/``error`` fault with ``echo=yes``: the key quoted back in its description (never logged)."""
    detector: SilenceDetector | None = None
    user_speaking: bool = False
    """UserStartedSpeaking went out and the turn has not ended: a user turn is in progress."""
    responding: bool = False
    """The turn ended and its answer is on its way (until AgentAudioDone)."""
    backlog: list[tuple[str | bytes, Checked | None, int]] | None = field(default_factory=list)
    """What arrived after Settings, before SettingsApplied (frame, its check, arrival); None once processed."""
    last_client_ns: int = 0
    idle_task: asyncio.Task[None] | None = None
    report_task: asyncio.Task[None] | None = None
    """Speech was heard and UserStartedSpeaking is due (:data:`SPEECH_REPORT_MS`)."""

    def cancel_tasks(self) -> None:
        super().cancel_tasks()
        for task in (self.idle_task, self.report_task):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()


class DeepgramAgentProtocol(WebSocketProtocol):
    """Serves the Voice Agent API's messages on ``/v1/agent/converse``."""

    protocol = PROTOCOL
    path = DEEPGRAM_AGENT_PATH

    def refuse(self, request: web.Request, sid: str, received_ns: int) -> web.StreamResponse | None:
        key = _key(request.headers.get("Authorization", ""))
        if not key or (self.api_key is not None and key != self.api_key):
            record = self.scheduler.open(PROTOCOL, sid, received_ns)
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            log.info("session %s %s: auth failed: %s", record.session, record.sid, "no key" if not key else "bad key")
            self.scheduler.finish(record, "auth_failed")
            code, message = AUTH_ERROR
            return web.json_response({"err_code": code, "err_msg": message, "request_id": str(uuid.uuid4())},
                                     status=401)
        return None

    def new_connection(self, ws: web.WebSocketResponse, request: web.Request, sid: str) -> AgentConnection:
        return AgentConnection(ws, sid, self.scheduler.connection_record(PROTOCOL, sid),
                               key=_key(request.headers.get("Authorization", "")), transport=request.transport)

    async def on_open(self, conn: WebSocketConnection) -> None:
        await self.send_json(conn, {"type": "Welcome", "request_id": str(uuid.uuid4())})

    # ---- client frames

    async def on_frame(self, conn: WebSocketConnection, data: str | bytes, binary: bool, received_ns: int) -> None:
        assert isinstance(conn, AgentConnection)
        conn.last_client_ns = received_ns
        checked: Checked | None = None
        if not binary:
            problems: list[Problem] = []
            message = parse_object(data, "client frame", problems)
            if message is None:
                await self._refuse(conn, Problem(problems[0].message, UNPARSABLE))
                return
            checked = check_message(message)
            if checked.kind is None:   # not a client message at all
                await self._refuse(conn, checked.problems[0])
                return
            if checked.kind == "Settings" and conn.record is None:
                await self._settings(conn, checked, received_ns)
                return
        if conn.record is None:
            what = "audio" if binary else (checked.kind if checked and checked.kind else "a message")
            await self._refuse(conn, Problem(f"{what} before Settings (Settings must be the first message)",
                                             "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS"))
            return
        if checked is not None and checked.kind == "Settings":
            await self._refuse(conn, Problem("a second Settings (one per session)", "SETTINGS_ALREADY_APPLIED"))
            return
        if checked is not None and any(p.code for p in checked.problems):
            self.violations(conn, checked.problems)
            refused = [p for p in checked.problems if p.code][0]
            await self._error(conn, error_message(refused.code or UNPARSABLE, refused.message), CLIENT_ERROR_CLOSE,
                              "rejected")
            return
        if conn.backlog is not None:
            what = "audio" if binary else checked.kind if checked else "a message"
            self.violations(conn, [note(f"{what} before SettingsApplied (held until the session is ready)")])
            conn.backlog.append((data, checked, received_ns))
            return
        await self._process(conn, data, checked, received_ns)

    async def _process(self, conn: AgentConnection, data: str | bytes, checked: Checked | None, at_ns: int) -> None:
        """Act on one frame of a ready session as of ``at_ns`` (``checked`` None: binary audio)."""
        if checked is None:
            assert isinstance(data, bytes)
            await self._audio(conn, data, at_ns)
            return
        self.violations(conn, checked.problems)
        if checked.kind == "KeepAlive":
            if conn.user_speaking:
                self.violations(conn, [note("KeepAlive while the user's audio is streaming (send it only when "
                                            "idle)")])
        elif checked.kind == "ForceEndTurn":
            await self._force_end_turn(conn, at_ns)
        else:
            log.debug("%s: %s is not emulated; ignored", conn.sid, checked.kind)

    async def _settings(self, conn: AgentConnection, checked: Checked, received_ns: int) -> None:
        record = conn.record = self.scheduler.open(PROTOCOL, conn.sid, received_ns)
        fault = self.scheduler.fault_for(record)
        if fault is not None and fault.kind in UNSUPPORTED:
            log.info("session %s %s: fault %s has no form on this wire; none injected", record.session, conn.sid,
                     fault.text)
            record.fault, fault = None, None
        self.violations(conn, checked.problems)
        rejected = [p for p in checked.problems if p.code]
        if rejected:   # answered with the first one's error (each is counted above)
            await self._error(conn, error_message(rejected[0].code or UNPARSABLE, rejected[0].message),
                              CLIENT_ERROR_CLOSE, "rejected")
            return
        if fault is not None and fault.kind == "auth":
            await self._error(conn, fault_error(fault, echo(fault, conn.key)), CLIENT_ERROR_CLOSE, "auth_failed")
            return
        conn.settings, conn.fault, conn.key_echo = checked.settings, fault, echo(fault, conn.key)
        injected = self.scheduler.accept(record)
        if fault is not None and fault.kind == "slow":
            record.injected = fault.slowed(injected)
        conn.detector = SilenceDetector(conn.settings.input_rate, VAD_SILENCE_MS)
        conn.setup_task = spawn(self._set_up(conn))

    async def _set_up(self, conn: AgentConnection) -> None:
        record = conn.record
        assert record is not None and record.injected is not None
        await self.scheduler.admit(record)
        await sleep_until(time.perf_counter_ns() + int(record.injected.total_setup_ms * 1e6))
        fault = conn.fault
        if fault is not None and fault.kind == "error" and fault.option("when") == "before_ready":
            await self._error(conn, fault_error(fault, conn.key_echo), SERVER_ERROR_CLOSE, "error")
            return
        if fault is not None and fault.kind == "never_ready":
            return
        if fault is not None and fault.kind == "drop" and fault.option("when") == "before_ready":
            self._drop(conn)
            return
        conn.ready = True
        ready = record.t_ns["ready_sent"] = time.perf_counter_ns()
        await self.send_json(conn, {"type": "SettingsApplied"})
        conn.last_client_ns = max(conn.last_client_ns, ready)
        conn.idle_task = spawn(self._watch_idle(conn))
        # What waited, in order, as of the ready time; frames arriving meanwhile join the backlog.
        while conn.backlog:
            data, checked, received_ns = conn.backlog.pop(0)
            await self._process(conn, data, checked, max(received_ns, ready))
            if conn.ws.closed:
                return
        conn.backlog = None
        assert conn.settings is not None
        if conn.settings.greeting is not None and record.injected.greeting_ms is None:
            # asked for in Settings, none configured (--greeting-ms): spoken at once, before the user is heard
            conn.greeting_task = spawn(self.greet(conn, ready + int(SETTINGS_GREETING_MS * 1e6)))
        else:
            self.schedule_greeting(conn, ready)

    # ---- the user's turn

    async def _audio(self, conn: AgentConnection, pcm: bytes, received_ns: int) -> None:
        record = conn.record
        assert record is not None and conn.detector is not None and conn.settings is not None
        if not pcm:
            self.violations(conn, [note("an empty binary frame (ignored)")])
            return
        record.note_input(len(pcm) // 2, pcm16_peak(pcm), received_ns)
        if conn.responding:
            return   # the agent is answering; bootbench never talks over it
        rate = conn.settings.input_rate
        self.hear(conn, pcm, rate)
        edges = conn.detector.feed(pcm)
        if conn.detector.speaking and not conn.user_speaking and conn.report_task is None:
            if not self.vad_needs_speech or (conn.judge is not None and conn.judge.is_speech()):
                conn.report_task = spawn(self._report_speech(conn, received_ns + int(SPEECH_REPORT_MS * 1e6)))
        if edges.stopped_ms is not None:
            if self.speech_ok(conn):
                await self._end_turn(conn, received_ns)
            else:
                await self._reset_speech(conn)
                conn.detector.rearm()

    async def _report_speech(self, conn: AgentConnection, at_ns: int) -> None:
        await sleep_until(at_ns)
        conn.report_task = None
        await self._user_started_speaking(conn)

    async def _user_started_speaking(self, conn: AgentConnection) -> None:
        """The agent says it hears the user: a user turn is in progress, and a greeting being spoken stops."""
        if conn.user_speaking or conn.responding:
            return
        conn.user_speaking = True
        await self._interrupt_greeting(conn)
        await self.send_json(conn, {"type": "UserStartedSpeaking"})

    async def _reset_speech(self, conn: AgentConnection) -> None:
        """No turn after all (not speech-like): forget what was heard."""
        if conn.report_task is not None:
            conn.report_task.cancel()
            conn.report_task = None
        conn.user_speaking = False

    async def _force_end_turn(self, conn: AgentConnection, received_ns: int) -> None:
        record = conn.record
        assert record is not None and conn.settings is not None and conn.detector is not None
        if conn.settings.listen_version != "v2":
            problem = Problem("ForceEndTurn with a listen provider that is not Flux (version v2): the turn goes on",
                              "FORCE_END_TURN_UNSUPPORTED")
            self.violations(conn, [problem])
            await self.send_json(conn, {"type": "Warning", "code": problem.code,
                                        "description": "ForceEndTurn requires a Deepgram V2 (Flux) listen provider; "
                                                       "the current turn was not ended."})
            return
        if not conn.user_speaking:
            self.violations(conn, [note("ForceEndTurn with no turn in progress (ignored)")])
            return
        record.note_last_input(received_ns)
        conn.detector.stopped = True
        if conn.judge is not None:
            conn.judge.reset()
        await self._end_turn(conn, received_ns)

    async def _end_turn(self, conn: AgentConnection, turn_end_ns: int) -> None:
        record = conn.record
        assert record is not None and record.injected is not None
        if conn.responding:
            return
        if conn.report_task is not None:   # the turn ended before the agent said it heard it: it says so now
            conn.report_task.cancel()
            conn.report_task = None
            await self._user_started_speaking(conn)
        conn.responding, conn.user_speaking = True, False
        await self._interrupt_greeting(conn)
        fault = conn.fault if record.current_turn().turn == 1 else None  # faults strike a session's first turn
        if fault is not None and fault.kind == "silence":
            return
        if fault is not None and fault.kind == "end":
            await self._error(conn, fault_error(fault), SERVER_ERROR_CLOSE, "ended_by_server")
            return
        if fault is not None and fault.kind == "error" and fault.option("when") == "after_input":
            await self._error(conn, fault_error(fault, conn.key_echo), SERVER_ERROR_CLOSE, "error")
            return
        if fault is not None and fault.kind == "drop" and fault.option("when") == "after_input":
            self._drop(conn)
            return
        start = turn_end_ns + int(self.scheduler.first_audio_delay(record) * 1e6)
        conn.reply_task = spawn(self._respond(conn, start, turn_end_ns))

    # ---- the agent's utterances

    async def _respond(self, conn: AgentConnection, start_ns: int, turn_end_ns: int) -> None:
        record = conn.record
        assert record is not None and record.injected is not None and conn.settings is not None
        fault = conn.fault if record.current_turn().turn == 1 else None
        stages = (("input_transcript", {"type": "ConversationText", "role": "user", "content": USER_TEXT}),
                  ("response_start", {"type": "AgentThinking", "content": ""}),
                  ("first_text", {"type": "ConversationText", "role": "assistant", "content": REPLY_TEXT}))
        for stage, message in stages:   # each at its known time between the turn end and the first audio
            await sleep_until(turn_end_ns + int((start_ns - turn_end_ns) * STAGE_SHARES[stage]))
            record.note_stage(stage, time.perf_counter_ns())
            await self.send_json(conn, message)
        total_s = (start_ns - turn_end_ns) / 1e9
        started = {"type": "AgentStartedSpeaking", "total_latency": total_s, "tts_latency": total_s * 0.3,
                   "ttt_latency": total_s * 0.5}
        malformed = fault is not None and fault.kind == "malformed"

        async def send_chunk(index: int, chunk: str) -> None:
            if index == 0 and conn.settings is not None and conn.settings.experimental:
                await self.send_json(conn, started)
            if malformed and index == 0:
                assert fault is not None
                await self._send_text(conn, malformed_frame(fault, chunk))
                raise _Stop
            if fault is not None and fault.kind == "silent_audio":
                chunk = silenced(chunk)
            await self._send_bytes(conn, base64.b64decode(chunk))
            if index == 0 and fault is not None and fault.kind == "drop" and fault.option("when") == "mid_reply":
                await asyncio.sleep(MID_REPLY_DROP_S)
                self._drop(conn)
                raise _Stop

        try:
            await self.reply.stream(record, start_ns, send_chunk, leading_silence_ms=record.injected.leading_silence_ms)
        except _Stop:
            return
        record.note_reply_end(time.perf_counter_ns())
        await self.send_json(conn, {"type": "AgentAudioDone"})
        first = record.current_turn().t_ns["first_audio_sent"]
        total_s = ((first or start_ns) - turn_end_ns) / 1e9
        await self.send_json(conn, {"type": "LatencyReport", "total_latency": round(total_s, 6),
                                    **{k: round(total_s * share, 6) for k, share in REPORT_SPLIT.items()}})
        conn.responding = False
        if conn.detector is not None:
            conn.detector.rearm()

    async def greet(self, conn: WebSocketConnection, start_ns: int) -> None:
        """An utterance before the user's turn: its text, its audio, then ``AgentAudioDone``."""
        assert isinstance(conn, AgentConnection)
        await sleep_until(start_ns)
        if conn.responding or conn.user_speaking:
            return   # the user spoke first
        record = conn.record
        assert record is not None and conn.settings is not None
        text = conn.settings.greeting or GREETING_TEXT
        await self.send_json(conn, {"type": "ConversationText", "role": "assistant", "content": text})
        if conn.settings.experimental:
            await self.send_json(conn, {"type": "AgentStartedSpeaking", "total_latency": 0.0, "tts_latency": 0.0,
                                        "ttt_latency": 0.0})

        async def send_chunk(index: int, chunk: str) -> None:
            await self._send_bytes(conn, base64.b64decode(chunk))

        await self.greeting.stream(record, start_ns, send_chunk, greeting=True)
        await self.send_json(conn, {"type": "AgentAudioDone"})

    async def _interrupt_greeting(self, conn: AgentConnection) -> None:
        """The user speaks: a greeting still being sent stops (no AgentAudioDone follows it)."""
        self.stop_greeting(conn)

    # ---- the end of a session

    async def _watch_idle(self, conn: AgentConnection) -> None:
        """``CLIENT_MESSAGE_TIMEOUT`` once the client has sent nothing for the idle timeout."""
        while not conn.ws.closed:
            due = conn.last_client_ns + int(DEEPGRAM_IDLE_TIMEOUT_S * 1e9)
            if time.perf_counter_ns() >= due:
                await self._error(conn, error_message("CLIENT_MESSAGE_TIMEOUT", "No message from the client for "
                                                      f"{DEEPGRAM_IDLE_TIMEOUT_S:g} s (send audio or KeepAlive)."),
                                  SERVER_ERROR_CLOSE, "client_message_timeout")
                return
            await sleep_until(due)

    async def _refuse(self, conn: AgentConnection, problem: Problem, outcome: str | None = "rejected") -> None:
        """A client message the service refuses: counted, answered with its ``Error``, and the socket closed."""
        self.violations(conn, [problem])
        assert problem.code is not None
        await self._error(conn, error_message(problem.code, problem.message), CLIENT_ERROR_CLOSE, outcome)

    async def _error(self, conn: AgentConnection, error: dict[str, Any], code: int, outcome: str | None) -> None:
        """Send an ``Error`` and close (the service: "the connection often closes shortly after")."""
        conn.cancel_tasks()
        await self.send_json(conn, error)
        await self.close_with(conn, code, error["code"], outcome)

    def _drop(self, conn: AgentConnection) -> None:
        """The ``drop`` fault: close the TCP connection under the client, no close frame."""
        record = conn.record
        if record is not None and record.outcome is None:
            self.scheduler.finish(record, "dropped")
        log.info("dropping connection %s", conn.sid)
        if conn.transport is not None:
            conn.transport.abort()
        conn.cancel_tasks()

    async def _send_bytes(self, conn: AgentConnection, data: bytes) -> None:
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_bytes(data)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s: audio dropped, socket closing (%s)", conn.sid, exc)

    async def _send_text(self, conn: AgentConnection, text: str) -> None:
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s: message dropped, socket closing (%s)", conn.sid, exc)


class _Stop(Exception):
    """A fault ended the reply after its first chunk."""


def _key(header: str) -> str:
    """The key of ``Authorization: Token KEY`` (or ``Bearer TOKEN``); "" for anything else."""
    scheme, _, key = header.strip().partition(" ")
    return key.strip() if scheme.lower() in ("token", "bearer") else ""
