"""OpenAI Realtime (GA) over a raw WebSocket at ``/v1/realtime`` (docs/protocols/openai-realtime.md), server side,
and the services that speak its events at other URLs or in other layouts (:mod:`.flavours`).

    ws://HOST/v1/realtime?model=gpt-realtime      Authorization: Bearer KEY
    ws://HOST/v1/realtime?model=grok-voice-...    xAI (docs/protocols/xai.md)
    ws://HOST/voice-live/realtime?api-version=...&model=...,  /openai/v1/realtime?model=...,
    ws://HOST/openai/realtime?api-version=...&deployment=...  api-key: KEY      Azure (docs/protocols/azure.md)

A connection's :class:`~.flavours.Flavour` decides the service's words for a
refused upgrade, its first event, how its ``session`` is laid out and checked
(:mod:`.shapes`), and its audio events' names; everything else below is the
same for all.

A bad key fails the upgrade with HTTP 401 and the service's JSON error
body. On open the server sends ``session.created``; the first
client event (``session.update``, or any other from a client that keeps the
default session) starts the session (capacity slot, setup delay); a
``session.update`` is answered by ``session.updated`` once it is ready. As
on the real service, client events are processed in order: those that
arrive before the session is ready wait for it and are timed from then
(the ground truth's input and turn-end stamps are the ready time), each
noted in the session's ``notes`` since bootbench's drivers wait for
``session.updated``. The user's turn ends with
``input_audio_buffer.commit`` + ``response.create`` when turn detection is
null, or, with server VAD (the default, as on the real service), when the
appended audio itself shows ``silence_duration_ms`` of trailing silence
after speech: the server then sends ``speech_started``/``speech_stopped``/
``committed`` and starts the response. The answer's events between the turn
end and its first audio each go at a known share of the turn's first-audio
delay (:data:`STAGE_SHARES`), stamped in the ground truth as the service's
stages (``truth.note_stage``, just before each send): the input transcription
(when the session asks for one; xAI always), ``response.created`` (with
``output_item.added`` and ``content_part.added``), the first transcript delta;
``speech_stopped``/``committed`` go at the turn end itself. Then the audio as
``response.output_audio.delta`` chunks at real-time pace, then the ``done``
events. A greeting sends the same events, unstamped. The client's close frame ends the session. Every client event is
checked (:mod:`.checks`); violations are counted, and those the real
service rejects are answered with its ``error`` event.
"""

from __future__ import annotations

import logging
import secrets
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
from bootbench.wire import OPENAI_AUDIO_RATE, OPENAI_REALTIME_PATH, VAD_SILENCE_MS

from . import flavours, shapes
from .checks import Checked, check_event, check_session, effective_session
from .faults import OpenAIFaults, auth_refusal, presented_key
from .flavours import OPENAI, Flavour, flavour_of

PROTOCOL = "openai"
REPLY_TEXT = "Hello, this is the bootbench reference server."
USER_TEXT = "Hello."
"""The input transcription's words (the emulation hears no words: every turn says this)."""
MIN_COMMIT_MS = 100
STAGE_SHARES = {"input_transcript": 0.25, "response_start": 0.5, "first_text": 0.75}
"""When the answer's stage events go, as shares of the turn's first-audio delay after the turn end: the input
transcription (``conversation.item.input_audio_transcription.*``, when the session asks for one), then
``response.created``, then the first ``response.output_audio_transcript.delta``; the audio at the whole delay.
The turn end's own events (``speech_stopped``, ``committed``) go at the turn end. Distinct times, so that a driver
taking one stage's event for another's is off by a quarter of the delay (docs/protocols/openai-realtime.md)."""

log = logging.getLogger("bootbench.server")


def new_id(prefix: str) -> str:
    """An id in the service's style (``event_…``, ``resp_…``, ``item_…``)."""
    return f"{prefix}_{secrets.token_hex(10)}"


def default_session(model: str) -> dict[str, Any]:
    """The session the service reports in ``session.created``: server VAD on, PCM16 24 kHz both ways."""
    pcm = {"type": "audio/pcm", "rate": OPENAI_AUDIO_RATE}
    return {
        "type": "realtime", "object": "realtime.session", "id": new_id("sess"), "model": model,
        "output_modalities": ["audio"], "instructions": "", "tools": [], "tool_choice": "auto",
        "max_output_tokens": "inf", "tracing": None, "truncation": "auto", "prompt": None, "include": None,
        "expires_at": int(time.time()) + 3600,
        "audio": {
            "input": {"format": dict(pcm), "transcription": None, "noise_reduction": None,
                      "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                         "silence_duration_ms": VAD_SILENCE_MS, "idle_timeout_ms": None,
                                         "create_response": True, "interrupt_response": True}},
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
    }


def error_body(message: str, code: str | None, kind: str = "invalid_request_error",
               param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class Pending:
    """A client event that arrived before the session was ready, with its problems; processed in order once it is."""

    problems: list[Problem]
    checked: Checked | None
    client_event_id: Any
    received_ns: int


@dataclass(eq=False)
class RealtimeConnection(WebSocketConnection):
    """A Realtime WebSocket: its effective session configuration and input buffer."""

    flavour: Flavour = OPENAI
    """The service this connection speaks to (OpenAI, Azure, xAI)."""
    model: str = ""
    session: dict[str, Any] | None = None
    backlog: list[Pending] | None = field(default_factory=list)
    """Events waiting for the session to be ready; None once it is and they are processed."""
    detector: SilenceDetector | None = None
    create_response: bool = True
    buffered_samples: int = 0
    committed_samples: int = 0
    """The length of the last committed turn (its transcription's usage)."""
    samples_in: int = 0
    speech_item: str | None = None
    last_item: str | None = None
    response_id: str | None = None
    greeting_response: str | None = None
    """The id of the greeting response while it is being sent."""
    announced: str | None = None
    """The id of the last response whose ``response.created`` went out (the answer's goes a while after its turn
    end: a cancel before that announces it first)."""


class OpenAIRealtimeProtocol(OpenAIFaults, WebSocketProtocol):
    """Serves OpenAI Realtime's GA events on ``/v1/realtime``.

        protocol = OpenAIRealtimeProtocol(scheduler, api_key=None, reply_ms=600)
        protocol.attach(app)
    """

    protocol = PROTOCOL
    path = OPENAI_REALTIME_PATH

    def attach(self, app: web.Application) -> None:
        """Mount OpenAI's path and every other service's (:data:`.flavours.BY_PATH`)."""
        for path in dict.fromkeys((self.path, *flavours.BY_PATH)):
            app.router.add_get(path, self.handle)

    def refuse(self, request: web.Request, sid: str, received_ns: int) -> web.StreamResponse | None:
        flavour = flavour_of(request)
        refusal = flavour.refusal(request, self.api_key)
        if refusal is None:
            fault = self.scheduler.next_fault(flavour.name)
            if fault is None or fault.kind != "auth":
                return None
            # The service refuses a key at the upgrade, before any event could number the session: the session
            # the next number draws is opened here (faults.py; nothing awaits in between, so it gets that number).
            record = self.scheduler.open(flavour.name, sid, received_ns)
            self.scheduler.fault_for(record)
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            log.info("session %s %s: auth failed (injected fault)", record.session, record.sid)
            self.scheduler.finish(record, "auth_failed")
            return auth_refusal(flavour, fault, request)
        if refusal.auth:
            record = self.scheduler.open(flavour.name, sid, received_ns)
            record.t_ns["ended_sent"] = time.perf_counter_ns()
            log.info("session %s %s: auth failed: %s", record.session, record.sid, refusal.reason)
            self.scheduler.finish(record, "auth_failed")
        else:
            record = self.scheduler.connection_record(flavour.name, sid)
            self.scheduler.violation(record, refusal.reason)
            self.scheduler.finish(record, "outside_session")
        return refusal.response()

    def new_connection(self, ws: web.WebSocketResponse, request: web.Request, sid: str) -> RealtimeConnection:
        flavour = flavour_of(request)
        model = flavour.model(request)
        session = default_session(model) if flavour.shape == "ga" else \
            shapes.default_session(flavour.shape, model, flavour.default_voice)
        conn = RealtimeConnection(ws, sid, self.scheduler.connection_record(flavour.name, sid), flavour=flavour,
                                  model=model, session=session)
        conn.key = presented_key(request)
        self._configure_turns(conn)
        return conn

    async def on_open(self, conn: WebSocketConnection) -> None:
        assert isinstance(conn, RealtimeConnection)
        if conn.flavour.first_event == "conversation.created":
            await self.send_json(conn, {"type": "conversation.created", "event_id": new_id("event"),
                                        "conversation": {"id": new_id("conv"), "object": "realtime.conversation"}})
            return
        await self.send_json(conn, {"type": "session.created", "event_id": new_id("event"), "session": conn.session})

    # ---- client events

    async def on_frame(self, conn: WebSocketConnection, data: str | bytes, binary: bool, received_ns: int) -> None:
        assert isinstance(conn, RealtimeConnection)
        problems: list[Problem] = []
        if binary:
            # Not documented either way; the emulation parses it as the text it carries.
            problems.append(note("a binary frame (Realtime client events are JSON text frames)"))
        event = parse_object(data, "client frame", problems)
        flavour = conn.flavour
        session_check = check_session if flavour.shape == "ga" else shapes.SESSION_CHECKS[flavour.shape]
        checked = check_event(event, session_check, flavour.unsupported) if event is not None else None
        if checked is not None:
            problems += checked.problems
        kind = checked.kind if checked is not None else None
        client_event_id = event.get("event_id") if isinstance(event, dict) else None
        valid = kind is not None and not any(p.code for p in problems)
        if valid and conn.record is None:
            # The service has a session from the start; here it begins (slot, setup delay) with the first event.
            conn.record = self.scheduler.open(flavour.name, conn.sid, received_ns)
            if (fault := self.strike(conn)) is not None and fault.kind == "auth":
                await self.end_session(conn, "auth_failed", self.play_auth(conn, fault))
                return
            self.accept_session(conn)
            conn.setup_task = spawn(self._set_up(conn))
            if kind != "session.update":
                problems.append(note(f"{kind} without a session.update first (the default session: server VAD)"))
        if conn.backlog is not None and conn.record is not None:
            if valid and kind != "session.update" and not conn.ready:
                problems.append(note(f"{kind} before session.updated"))
            conn.backlog.append(Pending(problems, checked, client_event_id, received_ns))
            return
        await self._process(conn, problems, checked, client_event_id, received_ns)

    async def _process(self, conn: RealtimeConnection, problems: list[Problem], checked: Checked | None,
                       client_event_id: Any, at_ns: int) -> None:
        """Count one event's problems, answer the rejected ones, and act on it as of ``at_ns``."""
        self.violations(conn, problems)
        rejected = [p for p in problems if p.code]
        for problem in rejected:
            await self._error(conn, problem, client_event_id)
        if checked is None or checked.kind is None or rejected:
            return
        assert checked.event is not None
        kind = checked.kind
        if kind == "session.update":
            await self._session_update(conn, checked.event["session"])
        elif kind == "input_audio_buffer.append":
            assert checked.pcm is not None
            await self._append(conn, checked.pcm, at_ns)
        elif kind == "input_audio_buffer.commit":
            await self._commit(conn, at_ns, client_event_id)
        elif kind == "input_audio_buffer.clear":
            conn.buffered_samples = 0
            await self.send_json(conn, {"type": "input_audio_buffer.cleared", "event_id": new_id("event")})
        elif kind == "response.create":
            await self._response_create(conn, at_ns, client_event_id)
        elif kind == "response.cancel":
            await self._response_cancel(conn)
        else:
            log.debug("%s: %s is not emulated; ignored", conn.sid, kind)

    async def _session_update(self, conn: RealtimeConnection, update: dict[str, Any]) -> None:
        if "model" in update and update["model"] != conn.model:
            # Not documented; the emulation keeps the URL's model and goes on.
            self.violations(conn, [note(f"session.model {update['model']!r} differs from the URL's model "
                                        f"{conn.model!r} (the model cannot be changed)")])
        assert conn.session is not None
        conn.session = effective_session(conn.session, update)
        self._configure_turns(conn)
        await self._send_updated(conn)

    async def _set_up(self, conn: RealtimeConnection) -> None:
        record = conn.record
        assert record is not None and record.injected is not None
        await self.scheduler.admit(record)
        await sleep_until(time.perf_counter_ns() + int(record.injected.total_setup_ms * 1e6))
        if await self.fault_before_ready(conn):
            return
        conn.ready = True
        ready = record.t_ns["ready_sent"] = time.perf_counter_ns()
        # The events that waited, in order, as of now (the service could not act on them before);
        # events arriving meanwhile join the backlog, so the order holds.
        while conn.backlog:
            pending = conn.backlog.pop(0)
            await self._process(conn, pending.problems, pending.checked, pending.client_event_id,
                                max(pending.received_ns, ready))
        conn.backlog = None
        self.schedule_greeting(conn, ready)

    async def _send_updated(self, conn: RealtimeConnection) -> None:
        await self.send_json(conn, {"type": "session.updated", "event_id": new_id("event"), "session": conn.session})

    def _configure_turns(self, conn: RealtimeConnection) -> None:
        assert conn.session is not None
        detection = shapes.turn_detection(conn.session, conn.flavour.shape)
        if detection is None:
            conn.detector = None
            return
        # semantic VAD types end a turn on meaning; the emulation ends them on silence, as server_vad
        silence = detection.get("silence_duration_ms", VAD_SILENCE_MS) if detection.get("type") != "semantic_vad" \
            else VAD_SILENCE_MS
        conn.create_response = detection.get("create_response", True) is not False
        if conn.detector is None or conn.detector.silence_ms != silence:
            conn.detector = SilenceDetector(OPENAI_AUDIO_RATE, silence)
            conn.detector.position = conn.samples_in

    async def _append(self, conn: RealtimeConnection, pcm: bytes, received_ns: int) -> None:
        record = conn.record
        assert record is not None
        samples = len(pcm) // 2
        record.note_input(samples, pcm16_peak(pcm), received_ns)
        conn.buffered_samples += samples
        conn.samples_in += samples
        if conn.detector is None:
            return
        self.hear(conn, pcm, OPENAI_AUDIO_RATE)
        edges = conn.detector.feed(pcm)
        if edges.started_ms is not None:
            conn.speech_item = new_id("item")
            await self.send_json(conn, {"type": "input_audio_buffer.speech_started", "event_id": new_id("event"),
                                        "audio_start_ms": int(edges.started_ms), "item_id": conn.speech_item})
        if edges.stopped_ms is not None and not self.speech_ok(conn):
            conn.detector.rearm()
            return
        if edges.stopped_ms is not None:
            item = conn.speech_item or new_id("item")
            record.note_stage("turn_end", time.perf_counter_ns())
            await self.send_json(conn, {"type": "input_audio_buffer.speech_stopped", "event_id": new_id("event"),
                                        "audio_end_ms": int(edges.stopped_ms), "item_id": item})
            await self._committed(conn, item)
            conn.detector.rearm()
            if conn.create_response:
                await self._interrupt_greeting(conn)   # server VAD's interrupt_response: speech cuts a greeting short
            if conn.create_response and conn.response_id is None:
                await self._start_response(conn, received_ns)

    async def _commit(self, conn: RealtimeConnection, received_ns: int, client_event_id: Any) -> None:
        assert conn.record is not None
        buffered_ms = 1000 * conn.buffered_samples / OPENAI_AUDIO_RATE
        if buffered_ms < MIN_COMMIT_MS:
            problem = Problem(f"Error committing input audio buffer: buffer too small. Expected at least "
                              f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_ms:.2f}ms of audio.",
                              "input_audio_buffer_commit_empty")
            self.violations(conn, [problem])
            await self._error(conn, problem, client_event_id)
            return
        conn.record.note_last_input(received_ns)
        await self._committed(conn, new_id("item"))

    async def _committed(self, conn: RealtimeConnection, item_id: str) -> None:
        conn.committed_samples, conn.buffered_samples = conn.buffered_samples, 0
        if conn.record is not None:
            conn.record.note_stage("turn_end", time.perf_counter_ns())   # server VAD: speech_stopped went first
        await self.send_json(conn, {"type": "input_audio_buffer.committed", "event_id": new_id("event"),
                                    "previous_item_id": conn.last_item, "item_id": item_id})
        conn.last_item = item_id

    async def _response_create(self, conn: RealtimeConnection, received_ns: int, client_event_id: Any) -> None:
        assert conn.record is not None
        if conn.response_id is not None:
            problem = Problem(f"Conversation already has an active response in progress: {conn.response_id}. Wait "
                              "until the response is finished before creating a new one.",
                              "conversation_already_has_active_response")
            self.violations(conn, [problem])
            await self._error(conn, problem, client_event_id)
            return
        if conn.buffered_samples and conn.detector is None:
            # The service answers from the conversation and keeps the audio buffered.
            self.violations(conn, [note(f"response.create with {1000 * conn.buffered_samples / OPENAI_AUDIO_RATE:.0f}"
                                        " ms of uncommitted audio (send input_audio_buffer.commit first)")])
        conn.record.note_last_input(received_ns)
        await self._start_response(conn, received_ns)

    async def _response_cancel(self, conn: RealtimeConnection) -> None:
        if conn.reply_task is not None and not conn.reply_task.done():
            conn.reply_task.cancel()
        cancels_greeting = conn.greeting_response is not None
        if conn.greeting_response is not None:
            self.stop_greeting(conn)
            conn.greeting_response = None
        if conn.response_id is not None:
            if conn.record is not None and not cancels_greeting:
                conn.record.note_reply_end(time.perf_counter_ns())
            if conn.announced != conn.response_id:   # cancelled before its response.created was due
                await self._send_created(conn, conn.response_id)
            await self.send_json(conn, {"type": "response.done", "event_id": new_id("event"),
                                        "response": self._response(conn.response_id, "cancelled", [])})
            conn.response_id = None

    # ---- the reply

    async def _start_response(self, conn: RealtimeConnection, turn_end_ns: int) -> None:
        record = conn.record
        assert record is not None and record.injected is not None
        if await self.fault_at_turn_end(conn):
            return
        conn.response_id = new_id("resp")
        start = turn_end_ns + int(self.scheduler.first_audio_delay(record) * 1e6)
        conn.reply_task = spawn(self._respond(conn, conn.response_id, start, turn_end_ns=turn_end_ns,
                                              input_item=conn.last_item))

    def _created(self, response_id: str) -> dict[str, Any]:
        return {"type": "response.created", "event_id": new_id("event"),
                "response": self._response(response_id, "in_progress", [])}

    async def _send_created(self, conn: RealtimeConnection, response_id: str) -> None:
        conn.announced = response_id
        await self.send_json(conn, self._created(response_id))

    def _response(self, response_id: str, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": response_id, "object": "realtime.response", "status": status, "status_details": None,
                "output": output, "conversation_id": "conv_bootbench", "output_modalities": ["audio"],
                "max_output_tokens": "inf", "metadata": None, "usage": None}

    async def greet(self, conn: WebSocketConnection, start_ns: int) -> None:
        """A response the client did not create: ``response.created`` at the greeting's time, then its audio."""
        assert isinstance(conn, RealtimeConnection)
        await sleep_until(start_ns)
        if conn.response_id is not None:
            return   # the answer came first
        conn.response_id = new_id("resp")
        conn.greeting_response = conn.response_id
        await self._send_created(conn, conn.response_id)
        await self._respond(conn, conn.response_id, start_ns, greeting=True)
        conn.greeting_response = None

    async def _interrupt_greeting(self, conn: RealtimeConnection) -> None:
        """Cancel a greeting still being sent, as the service cancels a response interrupted by speech."""
        response_id = conn.greeting_response
        if not self.stop_greeting(conn) or response_id is None:
            return
        conn.greeting_response = None
        if conn.response_id == response_id:
            conn.response_id = None
        await self.send_json(conn, {"type": "response.done", "event_id": new_id("event"),
                                    "response": self._response(response_id, "cancelled", [])})

    async def _respond(self, conn: RealtimeConnection, response_id: str, start_ns: int, greeting: bool = False,
                       turn_end_ns: int | None = None, input_item: str | None = None) -> None:
        """A response's events: a greeting's from ``start_ns`` on (its ``response.created`` already sent); the
        answer's stage events at their shares of ``start_ns - turn_end_ns`` (:data:`STAGE_SHARES`), then its audio
        from ``start_ns``."""
        record = conn.record
        assert record is not None and record.injected is not None

        async def stage(name: str, *messages: dict[str, Any]) -> None:
            """The answer's events of stage ``name``, at its share of the delay, stamped just before the first."""
            if greeting or turn_end_ns is None:
                for message in messages:
                    await self.send_json(conn, message)
                return
            await sleep_until(turn_end_ns + int((start_ns - turn_end_ns) * STAGE_SHARES[name]))
            record.note_stage(name, time.perf_counter_ns())
            if name == "response_start":
                conn.announced = response_id
            for message in messages:
                await self.send_json(conn, message)

        if not greeting:
            transcription = self._input_transcription(conn, input_item)
            if transcription:
                await stage("input_transcript", *transcription)
            await stage("response_start", self._created(response_id))
        item_id = new_id("item")
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "assistant",
                "status": "in_progress", "content": []}
        await self.send_json(conn, {"type": "response.output_item.added", "event_id": new_id("event"),
                                    "response_id": response_id, "output_index": 0, "item": item})
        await self.send_json(conn, {"type": "response.content_part.added", "event_id": new_id("event"), **where,
                                    "part": {"type": "audio", "transcript": ""}})

        # the preview's names on Voice Live and Azure OpenAI's preview endpoint, GA's elsewhere
        audio = "response.audio" if conn.flavour.preview_events else "response.output_audio"
        await stage("first_text", {"type": f"{audio}_transcript.delta", "event_id": new_id("event"), **where,
                                   "delta": REPLY_TEXT})

        def delta(value: Any) -> dict[str, Any]:
            message = {"type": f"{audio}.delta", "event_id": new_id("event"), **where, "delta": value}
            if value is MISSING:
                del message["delta"]
            return message

        async def send_delta(index: int, chunk: str) -> None:
            await self.send_json(conn, delta(chunk))

        if greeting:
            await self.greeting.stream(record, start_ns, send_delta, greeting=True)
        elif not await self.stream_answer(conn, start_ns, send_delta, delta):
            return   # a fault spoilt the answer: nothing follows
        await self.send_json(conn, {"type": f"{audio}.done", "event_id": new_id("event"), **where})
        await self.send_json(conn, {"type": f"{audio}_transcript.done", "event_id": new_id("event"),
                                    **where, "transcript": REPLY_TEXT})
        await self.send_json(conn, {"type": "response.content_part.done", "event_id": new_id("event"), **where,
                                    "part": {"type": "audio", "transcript": REPLY_TEXT}})
        content_type = "audio" if conn.flavour.preview_events else "output_audio"
        done_item = {**item, "status": "completed", "content": [{"type": content_type, "transcript": REPLY_TEXT}]}
        await self.send_json(conn, {"type": "response.output_item.done", "event_id": new_id("event"),
                                    "response_id": response_id, "output_index": 0, "item": done_item})
        conn.response_id = None
        if not greeting:
            record.note_reply_end(time.perf_counter_ns())
        await self.send_json(conn, {"type": "response.done", "event_id": new_id("event"),
                                    "response": self._response(response_id, "completed", [done_item])})

    def _input_transcription(self, conn: RealtimeConnection, item_id: str | None) -> list[dict[str, Any]]:
        """The events transcribing the caller's turn (item ``item_id``), as this service sends them; none when the
        session asked for no transcription (xAI transcribes every session, partials as ``completed`` events whose
        ``status`` is ``in_progress``)."""
        if item_id is None or not shapes.transcribes(conn.session or {}, conn.flavour.shape):
            return []
        kind = "conversation.item.input_audio_transcription"
        if conn.flavour.shape == "xai":
            return [{"type": f"{kind}.completed", "event_id": new_id("event"), "item_id": item_id,
                     "transcript": USER_TEXT, "status": status} for status in ("in_progress", "completed")]
        return [{"type": f"{kind}.delta", "event_id": new_id("event"), "item_id": item_id, "content_index": 0,
                 "delta": USER_TEXT},
                {"type": f"{kind}.completed", "event_id": new_id("event"), "item_id": item_id, "content_index": 0,
                 "transcript": USER_TEXT,
                 "usage": {"type": "duration", "seconds": round(conn.committed_samples / OPENAI_AUDIO_RATE, 3)}}]

    async def _error(self, conn: RealtimeConnection, problem: Problem, client_event_id: Any) -> None:
        error = error_body(problem.message, problem.code, param=problem.param)["error"]
        error["event_id"] = client_event_id if isinstance(client_event_id, str) else None
        await self.send_json(conn, {"type": "error", "event_id": new_id("event"), "error": error})
