"""Google Gemini Live (BidiGenerateContent) over a raw WebSocket (docs/protocols/gemini-live.md), server side.

    ws://HOST/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent
    x-goog-api-key: KEY        (or ?key=KEY)

The first message must be ``setup``; it starts the session (capacity slot,
setup delay) and is answered by ``{"setupComplete": {}}`` (ready). Messages
after ``setup`` that arrive before the session is ready wait for it and are
processed in order then, timed from the ready time (a note: bootbench's
drivers wait for ``setupComplete``). Field names may be proto names
(``realtime_input``) or JSON names (``realtimeInput``), at every level, as
the service's protobuf JSON parser takes both (a note too). A bad key
closes the socket after ``setup`` with 1007 and the service's reason, a
missing one with 1008; a malformed message with 1007, as the service does
(it has no JSON error message). The user's turn ends at ``activityEnd``
when the setup disabled automatic activity detection, otherwise when the
audio shows ``silenceDurationMs`` (default 500) of trailing silence after
speech, or at ``audioStreamEnd``. The reply is
``serverContent.modelTurn.parts[].inlineData`` audio chunks at real-time
pace, then ``generationComplete`` and ``turnComplete``. Messages go out in
binary frames (as the real service sends them) and in text frames, the
first ``setupComplete`` and first audio of odd sessions binary, of even ones
text, so a client must take JSON from both. The client's close frame ends the session.

Service stages (stamped in the ground truth with ``note_stage`` right before
each send): between the end of the caller's turn and the answer's first
audio, at known fractions of the first-audio delay, ``voiceActivity``
``ACTIVITY_END`` at the turn's end (automatic activity detection only: the
service's detector heard it), ``serverContent.inputTranscription`` a third
of the way (when the setup asked for ``inputAudioTranscription``) and
``serverContent.outputTranscription`` two thirds of the way (when it asked
for ``outputAudioTranscription``; a greeting's transcription comes before
its audio and is never stamped).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bootbench.server.json_checks import Problem, note, parse_object
from bootbench.server.pcm import pcm16_peak
from bootbench.server.scheduler import sleep_until
from bootbench.server.turns import SilenceDetector
from bootbench.server.ws_faults import MISSING
from bootbench.server.ws_protocol import WebSocketConnection, WebSocketProtocol, spawn
from bootbench.wire import GEMINI_INPUT_RATE, GEMINI_LIVE_PATH, GEMINI_OUTPUT_RATE, VAD_SILENCE_MS

from .checks import Checked, check_message, silence_ms, uses_manual_activity
from .faults import GeminiFaults

PROTOCOL = "gemini"
BAD_KEY = (1007, "API key not valid. Please pass a valid API key.")
NO_KEY = (1008, "Method doesn't allow unregistered callers. Please use API Key or other form of API consumer "
                "identity to call this API.")
INVALID_MESSAGE = 1007
OUTPUT_MIME = f"audio/pcm;rate={GEMINI_OUTPUT_RATE}"
INPUT_TEXT = "Hello?"
"""What the emulation's input transcription says the caller said (it transcribes nothing)."""
REPLY_TEXT = "Hello, this is the bootbench reference server."
GREETING_TEXT = "Hi there."
STAGE_FRACTIONS = {"turn_end": 0.0, "input_transcript": 1 / 3, "first_text": 2 / 3}
"""When each stage's event goes out: this fraction of the way from the end of the caller's turn to the answer's
first audio (distinct and known, so a test can tell each from the others and from the first audio)."""

log = logging.getLogger("bootbench.server")


@dataclass(eq=False)
class LiveConnection(WebSocketConnection):
    """A Live WebSocket: its model, turn mode and turn state."""

    model: str = ""
    setup_seen: bool = False
    manual: bool = False
    detector: SilenceDetector | None = None
    input_transcription: bool = False
    """The setup asked for ``inputAudioTranscription``: the answer's turn gets an ``inputTranscription``."""
    output_transcription: bool = False
    """The setup asked for ``outputAudioTranscription``: each model turn gets an ``outputTranscription``."""
    in_activity: bool = False
    activity_samples: int = 0
    responding: bool = False
    backlog: list[tuple[Checked, int]] | None = field(default_factory=list)
    """Messages (with their arrival) waiting for the session to be ready; None once it is and they are processed."""


class GeminiLiveProtocol(GeminiFaults, WebSocketProtocol):
    """Serves the Live API's BidiGenerateContent messages.

        protocol = GeminiLiveProtocol(scheduler, api_key=None, reply_ms=600)
        protocol.attach(app)
    """

    protocol = PROTOCOL
    path = GEMINI_LIVE_PATH

    def new_connection(self, ws: web.WebSocketResponse, request: web.Request, sid: str) -> LiveConnection:
        key = request.headers.get("x-goog-api-key") or request.query.get("key") or ""
        return LiveConnection(ws, sid, self.scheduler.connection_record(PROTOCOL, sid), key=key.strip())

    async def on_frame(self, conn: WebSocketConnection, data: str | bytes, binary: bool, received_ns: int) -> None:
        assert isinstance(conn, LiveConnection)
        problems: list[Problem] = []
        message = parse_object(data, "client frame", problems)
        checked = check_message(message) if message is not None else None
        if checked is not None:
            problems += checked.problems
        kind = checked.kind if checked is not None else None
        if kind == "setup" and not conn.setup_seen:
            conn.setup_seen = True
            conn.record = self.scheduler.open(PROTOCOL, conn.sid, received_ns)
            self.violations(conn, problems)
            await self._setup(conn, checked.message["setup"] if checked and checked.message else {}, problems)
            return
        if not conn.setup_seen:
            problems.append(Problem(f"{kind or 'a message'} before setup (setup must be the first message)", None))
        elif kind == "setup":
            problems.append(Problem("a second setup message (one per session)", None))
        rejected = [p for p in problems if p.code]
        if conn.setup_seen and conn.backlog is not None and not rejected and checked is not None:
            if not conn.ready:
                problems.append(note(f"{kind} before setupComplete"))
            self.violations(conn, problems)
            conn.backlog.append((checked, received_ns))
            return
        self.violations(conn, problems)
        if rejected:
            await self.close_with(conn, INVALID_MESSAGE, rejected[0].message, "rejected")
            return
        if checked is not None and conn.setup_seen:
            await self._process(conn, checked, received_ns)

    async def _process(self, conn: LiveConnection, checked: Checked, at_ns: int) -> None:
        """Act on one checked message as of ``at_ns``."""
        if checked.kind == "realtimeInput":
            assert checked.message is not None
            await self._realtime_input(conn, checked.message["realtimeInput"], checked.pcm, checked.rate, at_ns)
        elif checked.kind in ("clientContent", "toolResponse"):
            log.debug("%s: %s is not emulated; ignored", conn.sid, checked.kind)

    async def _setup(self, conn: LiveConnection, setup: dict[str, Any], problems: list[Problem]) -> None:
        record = conn.record
        assert record is not None
        if not conn.key or (self.api_key is not None and conn.key != self.api_key):
            code, reason = NO_KEY if not conn.key else BAD_KEY
            log.info("session %s %s: auth failed: %s", record.session, record.sid, reason)
            await self.close_with(conn, code, reason, "auth_failed")
            return
        rejected = [p for p in problems if p.code]
        if rejected:
            await self.close_with(conn, INVALID_MESSAGE, rejected[0].message, "rejected")
            return
        if (fault := self.strike(conn)) is not None and fault.kind == "auth":
            await self.end_session(conn, "auth_failed", self.play_auth(conn, fault))
            return
        conn.model = str(setup.get("model") or "")
        conn.manual = uses_manual_activity(setup)
        conn.input_transcription = setup.get("inputAudioTranscription") is not None
        conn.output_transcription = setup.get("outputAudioTranscription") is not None
        if not conn.manual:
            conn.detector = SilenceDetector(GEMINI_INPUT_RATE, silence_ms(setup, VAD_SILENCE_MS))
        self.accept_session(conn)
        conn.setup_task = spawn(self._set_up(conn))

    async def _set_up(self, conn: LiveConnection) -> None:
        record = conn.record
        assert record is not None and record.injected is not None
        await self.scheduler.admit(record)
        await sleep_until(time.perf_counter_ns() + int(record.injected.total_setup_ms * 1e6))
        if await self.fault_before_ready(conn):
            return
        conn.ready = True
        ready = record.t_ns["ready_sent"] = time.perf_counter_ns()
        await self.send_json(conn, {"setupComplete": {}}, binary=self._binary(record, 0))
        # The messages that waited, in order, as of the ready time; those arriving meanwhile join the backlog.
        while conn.backlog:
            checked, received_ns = conn.backlog.pop(0)
            await self._process(conn, checked, max(received_ns, ready))
            if conn.ws.closed:
                return
        conn.backlog = None
        self.schedule_greeting(conn, ready)

    async def _realtime_input(self, conn: LiveConnection, value: dict[str, Any], pcm: bytes | None, rate: int,
                              received_ns: int) -> None:
        record = conn.record
        assert record is not None and conn.ready
        if "activityStart" in value:
            if not conn.manual:
                await self._reject(conn, "activityStart while automatic activity detection is enabled "
                                         "(disable it in setup.realtimeInputConfig)")
                return
            if conn.in_activity:
                self.violations(conn, [note("activityStart inside an activity (no activityEnd before it)")])
            conn.in_activity, conn.activity_samples = True, 0
        if pcm is not None:
            await self._audio(conn, pcm, rate, received_ns)
        if "activityEnd" in value:
            if not conn.manual:
                await self._reject(conn, "activityEnd while automatic activity detection is enabled")
                return
            if not conn.in_activity:
                self.violations(conn, [note("activityEnd without activityStart")])
                return
            conn.in_activity = False
            record.note_last_input(received_ns)
            if conn.activity_samples == 0:
                self.violations(conn, [note("activityEnd of an activity without audio (nothing to answer)")])
            else:
                await self._end_turn(conn, received_ns)
        if value.get("audioStreamEnd") is True:
            if conn.manual:
                self.violations(conn, [note("audioStreamEnd with automatic activity detection disabled "
                                            "(end the turn with activityEnd)")])
                return
            record.note_last_input(received_ns)
            if conn.detector is not None and conn.detector.speaking and not conn.detector.stopped:
                conn.detector.stopped = True
                if self.speech_ok(conn):
                    await self._end_turn(conn, received_ns)

    async def _audio(self, conn: LiveConnection, pcm: bytes, rate: int, received_ns: int) -> None:
        record = conn.record
        assert record is not None
        if conn.manual and not conn.in_activity:
            self.violations(conn, [note("audio outside activityStart/activityEnd (with manual activity "
                                        "detection the service ignores it)")])
            return
        samples = len(pcm) // 2
        record.note_input(samples, pcm16_peak(pcm), received_ns)
        conn.activity_samples += samples
        if conn.detector is not None:
            if conn.detector.rate != rate:
                conn.detector = SilenceDetector(rate, conn.detector.silence_ms)
            self.hear(conn, pcm, rate)
            if conn.detector.feed(pcm).stopped_ms is not None:
                if self.speech_ok(conn):
                    await self._end_turn(conn, received_ns)
                else:
                    conn.detector.rearm()

    async def _reject(self, conn: LiveConnection, message: str) -> None:
        self.violations(conn, [Problem(message)])
        await self.close_with(conn, INVALID_MESSAGE, message, "rejected")

    async def _end_turn(self, conn: LiveConnection, turn_end_ns: int) -> None:
        record = conn.record
        assert record is not None and record.injected is not None
        if conn.responding:
            return
        conn.responding = True
        if self.stop_greeting(conn):
            await self.send_json(conn, {"serverContent": {"interrupted": True}})
        if await self.fault_at_turn_end(conn):
            return
        start = turn_end_ns + int(self.scheduler.first_audio_delay(record) * 1e6)
        conn.reply_task = spawn(self._respond(conn, start, turn_end_ns=turn_end_ns))

    @staticmethod
    def _binary(record: Any, index: int) -> bool:
        """Binary or text frame: alternating within a reply, and the first message's kind alternating per session."""
        return (index + (record.session or 0)) % 2 == 1

    async def greet(self, conn: WebSocketConnection, start_ns: int) -> None:
        """A model turn before the client ended its own: the greeting's audio, then ``turnComplete``."""
        assert isinstance(conn, LiveConnection)
        await sleep_until(start_ns)
        if conn.responding:
            return   # the answer came first
        await self._respond(conn, start_ns, greeting=True)

    async def _send_stages(self, conn: LiveConnection, turn_end_ns: int, start_ns: int) -> None:
        """The answer's stage events (:data:`STAGE_FRACTIONS`) between the turn's end and the first audio, each
        stamped in the ground truth right before its send."""
        record = conn.record
        assert record is not None
        events = []
        if not conn.manual:   # with manual activity the client ended the turn: the service detected nothing
            events.append(("turn_end", {"voiceActivity": {"type": "ACTIVITY_END"}}))
        if conn.input_transcription:
            events.append(("input_transcript", {"serverContent": {"inputTranscription": {"text": INPUT_TEXT}}}))
        if conn.output_transcription:
            events.append(("first_text", {"serverContent": {"outputTranscription": {"text": REPLY_TEXT}}}))
        for stage, message in events:
            await sleep_until(turn_end_ns + int((start_ns - turn_end_ns) * STAGE_FRACTIONS[stage]))
            record.note_stage(stage, time.perf_counter_ns())
            await self.send_json(conn, message)

    async def _respond(self, conn: LiveConnection, start_ns: int, greeting: bool = False,
                       turn_end_ns: int | None = None) -> None:
        record = conn.record
        assert record is not None and record.injected is not None

        def content(audio: Any) -> dict[str, Any]:
            inline = {"mimeType": OUTPUT_MIME, "data": audio}
            if audio is MISSING:
                del inline["data"]
            return {"serverContent": {"modelTurn": {"parts": [{"inlineData": inline}]}}}

        async def send_chunk(index: int, chunk: str) -> None:
            await self.send_json(conn, content(chunk), binary=self._binary(record, index))

        if greeting:
            if conn.output_transcription:   # the greeting's text, just before its audio: no stage of the answer
                await self.send_json(conn, {"serverContent": {"outputTranscription": {"text": GREETING_TEXT}}})
            await self.greeting.stream(record, start_ns, send_chunk, greeting=True)
        else:
            if turn_end_ns is not None:
                await self._send_stages(conn, turn_end_ns, start_ns)
            if not await self.stream_answer(conn, start_ns, send_chunk, content):
                return   # a fault spoilt the answer: nothing follows
        if not greeting:
            record.note_reply_end(time.perf_counter_ns(), over=False)
        await self.send_json(conn, {"serverContent": {"generationComplete": True}})
        samples = record.greeting.samples if greeting and record.greeting is not None else record.audio_out.samples
        if not greeting:
            record.note_reply_end(time.perf_counter_ns())
        await self.send_json(conn, {"serverContent": {"turnComplete": True}, "usageMetadata": {
            "promptTokenCount": record.audio_in.samples // 640, "responseTokenCount": samples // 960,
            "totalTokenCount": record.audio_in.samples // 640 + samples // 960}}, binary=True)
        if greeting:
            return
        conn.responding = False
        if conn.detector is not None:
            conn.detector.rearm()
