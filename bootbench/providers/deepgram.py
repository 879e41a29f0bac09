"""The Deepgram Voice Agent driver: the cycle over the Agent API v1 on a raw WebSocket (docs/protocols/deepgram.md).

One WebSocket is one session: the server's ``Welcome`` -> ``Settings`` (start
sent) -> ``SettingsApplied`` (session ready) -> the user's linear16 in binary
frames (16 kHz), then either ``ForceEndTurn`` (manual turn, the default; it
needs a Flux listen model) or trailing silence the agent detects itself
(``--turn vad``) -> the agent's linear16 in binary frames (24 kHz): the first
of the answer is the first audio -> ``AgentAudioDone`` ends the reply ->
close (stop). The key travels in ``Authorization: Token <key>``.

``ForceEndTurn`` is ignored while no user turn is in progress, and a turn is
in progress once the service has heard speech, which it says with
``UserStartedSpeaking``: so it goes out after the last chunk if that message
has already come, else from the receive thread as soon as it comes (and
**input sent** is its send time).

Greetings: an agent utterance (binary frames up to ``AgentAudioDone``) that
began before the user's turn could have been heard (before
``UserStartedSpeaking``; under VAD also before the first input chunk) is a
greeting: noted, never the answer. ``UserStartedSpeaking`` ends a greeting
utterance (the user talks over it).

Stages (:meth:`~bootbench.providers.base.SessionState.stage`), from the answer's events only: the user's
``ConversationText`` is the transcript, ``AgentThinking`` the response start, the agent's first
``ConversationText`` after the user's the first text; Deepgram sends no turn-end event.

The service's own latency figures (``LatencyReport``, and the experimental
``AgentStartedSpeaking``) are kept per turn in milliseconds
(:meth:`DeepgramDriver.service_latency`). While the client sends nothing for
:data:`~bootbench.wire.DEEPGRAM_KEEPALIVE_S` after the session is ready
(waiting for a long answer), it sends ``KeepAlive``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from bootbench.audio import Chunk
from bootbench.providers.base import CycleError, ProviderOption, SessionState, remaining
from bootbench.providers.websocket import WebSocketDriver, websocket_url
from bootbench.samples import ErrorKind, Timeline
from bootbench.stimuli import SINE
from bootbench.wire import (DEEPGRAM_AGENT_PATH, DEEPGRAM_INPUT_RATE, DEEPGRAM_KEEPALIVE_S, DEEPGRAM_OUTPUT_RATE,
                            VAD_SILENCE_MS)

DEFAULT_VOICE = "aura-2-thalia-en"
DEFAULT_THINK_MODEL = "gpt-4o-mini"
MANUAL_LISTEN_MODEL = "flux-general-en"
"""Flux, the only listen provider (``version: "v2"``) that honours ``ForceEndTurn``."""
VAD_LISTEN_MODEL = "nova-3"
THINK_PROVIDERS = ("open_ai", "anthropic", "google", "nvidia")
"""The ``agent.think.provider.type`` values Deepgram runs managed models of (no ``endpoint`` needed)."""
FORCE_END_TURN_UNSUPPORTED = "FORCE_END_TURN_UNSUPPORTED"
AUTH_CODES = frozenset({"INVALID_AUTH"})
"""``Error`` codes that mean the key was refused (the code of Deepgram's 401 body)."""
REPORT_FIELDS = ("stt_latency", "ttt_token_latency", "ttt_text_latency", "ttt_tool_latency", "ttt_thinking_latency",
                 "tts_latency", "total_latency")
"""``LatencyReport``'s figures (seconds); recorded as ``<name>_ms`` without ``_latency``."""
STARTED_FIELDS = ("total_latency", "tts_latency", "ttt_latency")
"""``AgentStartedSpeaking``'s figures (seconds), recorded when no ``LatencyReport`` came for the turn."""
IGNORED = frozenset({"History", "FunctionCallRequest", "FunctionCallCancelled", "PromptUpdated", "SpeakUpdated",
                     "ThinkUpdated", "ListenUpdated", "InjectionRefused", "FrustrationDetected", "ThinkLiveUpdated"})
"""Server messages a benchmark has no use for (history, function calls, acknowledgements)."""
UNASKED_TEXT = frozenset({"backchannel", "presence_check"})
"""``ConversationText.conversational_behavior`` of an agent line that answers nothing (an acknowledgement while the
user holds the floor, a prompt after a long silence): never the answer's first text (Think Live only)."""
WELCOME_POLL_S = 0.05


def _flag(text: str) -> bool:
    return text == "true"


class DeepgramDriver(WebSocketDriver):
    """Deepgram Voice Agent sessions: Deepgram's speech-to-text, a managed LLM, Deepgram's text-to-speech."""

    name = "deepgram"
    input_rate = DEEPGRAM_INPUT_RATE
    known_hosts = ("agent.deepgram.com",)
    public_url = "wss://agent.deepgram.com"
    max_message_bytes = 16 * 1024 * 1024
    """Deepgram documents no per-message limit for the agent socket (searched 2026-12-03): this is the
    reference server's own limit (``bootbench.server.ws_protocol.MAX_MESSAGE_BYTES``)."""
    max_message_source = "the reference server's limit (Deepgram documents none for the agent socket)"
    key_variables = ("DEEPGRAM_API_KEY",)
    default_model = DEFAULT_THINK_MODEL
    """The LLM of ``agent.think`` (``--model``)."""
    default_voice = DEFAULT_VOICE
    """The Deepgram TTS model of ``agent.speak`` (``--voice``)."""
    turn_modes = ("manual", "vad")
    vad_silence_ms = VAD_SILENCE_MS
    vad_trailing_silence_ms = VAD_SILENCE_MS + 100  # a margin over the detector's silence
    keepalive_s = DEEPGRAM_KEEPALIVE_S
    options = (
        ProviderOption("listen_model", "the Deepgram speech-to-text model of agent.listen (flux-* is sent as "
                       f"version v2, others as v1); default {MANUAL_LISTEN_MODEL} with --turn manual (ForceEndTurn "
                       f"needs Flux), {VAD_LISTEN_MODEL} with --turn vad"),
        ProviderOption("think_provider", "agent.think.provider.type, the provider of the managed LLM --model names",
                       default="open_ai", choices=THINK_PROVIDERS),
        ProviderOption("greeting", "agent.greeting: what the agent says first, unasked (recorded as the greeting, "
                       "never the answer); default none"),
        ProviderOption("experimental", "send Settings.experimental (experimental features, AgentStartedSpeaking "
                       "among them)", default="false", choices=("false", "true"), check=_flag),
    )

    def __init__(self, config, stimulus) -> None:
        super().__init__(config, stimulus)
        self._pcm: dict[int, tuple[Chunk, bytes]] = {}
        """The raw bytes of each chunk sent (by id; a clip's chunks are the same objects every cycle)."""
        self._reset_connection()

    def _reset_connection(self) -> None:
        self._welcome = threading.Event()
        self._lock = threading.Lock()
        self._last_sent = time.monotonic()
        self._latency: dict[int, dict[str, dict[str, float]]] = {}
        """Turn -> {"report": LatencyReport figures, "started": AgentStartedSpeaking figures}, in ms."""
        self._answer_turn: int | None = None
        """The turn whose answer began last (a LatencyReport is that answer's)."""
        self._pending_started: dict[str, float] | None = None
        self._reset_turn_state()

    def _reset_turn_state(self) -> None:
        self._user_started = False
        """The service said UserStartedSpeaking in this turn: a user turn is in progress (or was)."""
        self._turn_over = False
        """An agent utterance starting now answers the user (UserStartedSpeaking came; VAD: input went out)."""
        self._force_pending = False
        """The last chunk went out before UserStartedSpeaking: ForceEndTurn goes when it comes."""
        self._force_deferred_ns: int | None = None
        """When a deferred ForceEndTurn went out (input sent of this turn)."""
        self._utterance: str | None = None
        """The agent utterance being received: "greeting", "answer", or None between utterances."""
        self._user_text = False
        """The user's ConversationText of this turn came: the agent's next ConversationText is the answer's."""

    # ---- the wire

    def endpoint(self) -> str:
        return websocket_url(self.config.url, DEEPGRAM_AGENT_PATH)

    def headers(self) -> list[str]:
        return [f"Authorization: Token {self.config.api_key}"]

    def listen_model(self) -> str:
        return self.option("listen_model") or (MANUAL_LISTEN_MODEL if self.config.turn == "manual"
                                               else VAD_LISTEN_MODEL)

    def start_message(self) -> dict[str, Any]:
        model = self.listen_model()
        listen = {"type": "deepgram", "version": "v2" if model.startswith("flux") else "v1", "model": model}
        think: dict[str, Any] = {"provider": {"type": self.option("think_provider"),
                                              "model": self.config.model or self.default_model}}
        if self.config.system_message:
            think["prompt"] = self.config.system_message
        agent: dict[str, Any] = {
            "listen": {"provider": listen},
            "think": think,
            "speak": {"provider": {"type": "deepgram", "model": self.config.voice or self.default_voice}},
        }
        if self.option("greeting"):
            agent["greeting"] = self.option("greeting")
        settings: dict[str, Any] = {
            "type": "Settings",
            "audio": {"input": {"encoding": "linear16", "sample_rate": DEEPGRAM_INPUT_RATE},
                      "output": {"encoding": "linear16", "sample_rate": DEEPGRAM_OUTPUT_RATE, "container": "none"}},
            "agent": agent,
        }
        if self.option("experimental"):
            settings["experimental"] = True
        return settings

    def audio_message(self, chunk: Chunk) -> bytes:
        held = self._pcm.get(id(chunk))
        if held is None or held[0] is not chunk:
            held = self._pcm[id(chunk)] = (chunk, chunk.pcm)
        return held[1]

    def send(self, message: dict[str, Any] | bytes) -> None:
        super().send(message)
        self._last_sent = time.monotonic()

    # ---- the verbs

    def connect(self, timeline: Timeline) -> None:
        self._reset_connection()
        super().connect(timeline)
        threading.Thread(target=self._keep_alive, args=(self.session,), name="bootbench-deepgram-keepalive",
                         daemon=True).start()

    def start(self, timeline: Timeline, deadline_ns: int) -> None:
        """Wait for the server's ``Welcome`` (the docs: send nothing before it), then send ``Settings``."""
        session = self.session
        if session is not None and self.connected:
            while not self._welcome.is_set() and not session.ended.is_set() and remaining(deadline_ns) > 0:
                self._welcome.wait(min(WELCOME_POLL_S, remaining(deadline_ns)))
            if not self._welcome.is_set():
                session.fail(ErrorKind.SESSION_TIMEOUT, f"no Welcome within {self.config.timeout:g} s")
                failure = session.failure  # the connection's failure when it closed, else the timeout
                self.close()               # no session can start on it
                assert failure is not None
                raise failure
        super().start(timeline, deadline_ns)

    def begin_user_turn(self) -> None:
        for chunk in self.chunks:  # decoded once per clip, before anything of the turn is stamped
            self.audio_message(chunk)

    def input_starting(self) -> None:
        if self.config.turn != "manual":
            self._turn_over = True

    def end_user_turn(self) -> int | None:
        if self.config.turn != "manual":
            return None
        with self._lock:
            now = self._user_started
            self._force_pending = not now
        if not now:
            return None   # sent by the receive thread on UserStartedSpeaking; first_audio() takes its time
        sent = time.perf_counter_ns()
        self.send({"type": "ForceEndTurn"})
        return sent

    def first_audio(self, timeline: Timeline, deadline_ns: int) -> None:
        try:
            super().first_audio(timeline, deadline_ns)
        except CycleError as exc:
            if exc.kind == ErrorKind.AUDIO_TIMEOUT and self._force_pending:
                tone = ", which a pure tone may never make it say: try --audio speech" if self.clip.name == SINE else ""
                raise CycleError(exc.kind, f"{exc.message}; the service never said UserStartedSpeaking, so "
                                           f"ForceEndTurn was never sent{tone}") from None
            raise
        finally:
            if self._force_deferred_ns is not None:
                timeline.input_sent = self._force_deferred_ns

    def reset_turn(self) -> None:
        with self._lock:
            self._reset_turn_state()

    def service_latency(self, turn: int) -> dict[str, float] | None:
        figures = self._latency.get(turn, {})
        return figures.get("report") or figures.get("started")

    # ---- the receive side

    def on_binary(self, data: bytes, received_ns: int) -> None:
        session = self.session
        if session is None:
            return
        if session.ready_ns is None:
            self.anomalies["audio_before_ready"] += 1
            return
        if not data:
            self.anomalies["empty_audio_frame"] += 1
            return
        if self._utterance is None:
            self._utterance = "answer" if self._turn_over else "greeting"
            started, self._pending_started = self._pending_started, None
            if self._utterance == "answer":
                self._answer_turn = session.turn
                if started is not None:
                    self._latency.setdefault(session.turn, {})["started"] = started
        if self._utterance == "greeting":
            session.greeting_audio(received_ns)
        elif session.between_turns:
            self.anomalies["audio_between_turns"] += 1
        elif session.open and session.decoding:
            session.answer_audio(data, received_ns)

    def on_message(self, message: dict[str, Any], received_ns: int) -> None:
        session = self.session
        kind = message.get("type")
        if kind == "Welcome":
            self._welcome.set()
        elif kind == "SettingsApplied":
            if session.ready_ns is None and session.open:
                session.ready_ns = received_ns
                session.ready.set()
        elif kind == "UserStartedSpeaking":
            self._user_started_speaking()
        elif kind == "ConversationText":
            if message.get("conversational_behavior") not in UNASKED_TEXT:
                self._conversation_text(message.get("role"), received_ns)
        elif kind == "AgentThinking":
            if self._turn_over:   # a greeting, spoken before the user's turn, is not the answer's
                session.stage("response_start", received_ns)
        elif kind == "AgentAudioDone":
            if self._utterance == "answer":
                session.answer_ended()
                session.end_reply(received_ns)
            self._utterance = None
        elif kind == "AgentStartedSpeaking":
            self._pending_started = _figures(message, STARTED_FIELDS)
        elif kind == "LatencyReport":
            if self._answer_turn is None:
                self.anomalies["latency_report_before_answer"] += 1
            else:
                self._latency.setdefault(self._answer_turn, {}).setdefault("report",
                                                                           _figures(message, REPORT_FIELDS))
        elif kind == "Error":
            self.fail(session, ErrorKind.AUTH_FAILED if message.get("code") in AUTH_CODES else ErrorKind.SERVER_ERROR,
                      _coded(message))
        elif kind == "Warning":
            if message.get("code") == FORCE_END_TURN_UNSUPPORTED:
                self.fail(session, ErrorKind.PROTOCOL_ERROR, _coded(message))
            else:
                self.anomalies[f"warning_{message.get('code') or 'unknown'}"] += 1
        elif kind is None:
            self.fail(session, ErrorKind.PROTOCOL_ERROR, "a server message without a 'type'")
        elif not isinstance(kind, str):
            self.fail(session, ErrorKind.PROTOCOL_ERROR,
                      f"a server message whose 'type' is {_json_type(kind)}, not a string")
        elif kind not in IGNORED:
            self.anomalies["unknown_message"] += 1

    def _conversation_text(self, role: Any, received_ns: int) -> None:
        """The user's text is the turn's transcript; the agent's first text after it is the answer's first text (a
        greeting's comes before the user's turn, and under VAD may come after the input began: never after the
        user's text)."""
        if not self._turn_over:
            return
        if role == "user":
            self._user_text = True
            self.session.stage("input_transcript", received_ns)
        elif role == "assistant" and self._user_text:
            self.session.stage("first_text", received_ns)

    def _user_started_speaking(self) -> None:
        """The service heard the user: a greeting being spoken is cut short, the next utterance answers."""
        if self._utterance == "greeting":
            self._utterance = None
        with self._lock:
            self._user_started = self._turn_over = True
            send, self._force_pending = self._force_pending, False
        if send:
            self._force_deferred_ns = time.perf_counter_ns()
            self.send_quietly({"type": "ForceEndTurn"})

    def close_error(self, code: int | None, reason: str) -> CycleError:
        lowered = reason.lower()
        if "credential" in lowered or "auth" in lowered:
            return CycleError(ErrorKind.AUTH_FAILED, f"connection closed (code {code}): {reason}")
        return super().close_error(code, reason)

    # ---- keep-alive

    def _keep_alive(self, session: SessionState) -> None:
        """``KeepAlive`` whenever the client has sent nothing for :attr:`keepalive_s` once the session is ready.

        Before ``SettingsApplied`` nothing may go (a message before ``Settings`` is an error); it ends with
        the connection.
        """
        while not session.ended.is_set():
            idle = time.monotonic() - self._last_sent
            if idle < self.keepalive_s:
                session.ended.wait(self.keepalive_s - idle)
                continue
            if self.session is not session or session.stopping:
                return
            if session.ready_ns is None:
                session.ended.wait(self.keepalive_s)
                continue
            self.send_quietly({"type": "KeepAlive"})


def _figures(message: dict[str, Any], names: tuple[str, ...]) -> dict[str, float]:
    """The figures of ``names`` present in ``message`` (seconds), as ``<name>_ms`` milliseconds."""
    return {name.replace("_latency", "_ms"): round(float(message[name]) * 1000, 3) for name in names
            if isinstance(message.get(name), (int, float)) and not isinstance(message.get(name), bool)}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "an object", list: "an array"}.get(type(value), "null" if value is None else type(value).__name__)


def _coded(message: dict[str, Any]) -> str:
    """An ``Error`` or ``Warning`` in the service's words: ``CODE: description``."""
    code = message.get("code") or "error"
    description = message.get("description") or "no description"
    return f"{code}: {description}"
