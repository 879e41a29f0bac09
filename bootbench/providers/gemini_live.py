"""The Gemini Live driver: the cycle over BidiGenerateContent messages on a raw WebSocket (docs/protocols/gemini-live.md).

One WebSocket is one session: ``setup`` -> ``setupComplete`` (session ready)
-> ``realtimeInput.audio`` (16 kHz PCM16), bracketed by ``activityStart`` /
``activityEnd`` (manual turn, automatic activity detection disabled: the
default) or followed by trailing silence and ``audioStreamEnd`` (automatic
detection) -> first ``serverContent.modelTurn.parts[].inlineData`` audio ->
close (stop). The key travels in the ``x-goog-api-key`` header, never in the
URL. The server may send JSON in binary frames; both are accepted.

Greetings: a model turn that began before the client ended its own
(``activityEnd``; with automatic activity detection, before its first input)
is a greeting: noted, never taken as the answer. The answer's audio is
decoded until audible or until ``generationComplete`` / ``turnComplete``.
With ``--turns`` > 1 a reply ends at ``generationComplete`` (or
``turnComplete`` when it comes first) and the next turn follows ``turnComplete``.

Service stages (docs/protocols/gemini-live.md): the setup asks for input and
output transcription; the first ``inputTranscription`` (or
``interimInputTranscription``) is the input transcript, the first
``outputTranscription`` or text part of the answer's model turn (never a
greeting's) its first text, and a ``voiceActivity`` ``ACTIVITY_END`` the
turn end. The protocol has no response-start event.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from bootbench.audio import Chunk
from bootbench.providers.base import CycleError
from bootbench.providers.websocket import WebSocketDriver, oversized_audio, websocket_url
from bootbench.samples import ErrorKind
from bootbench.wire import GEMINI_INPUT_RATE, GEMINI_LIVE_PATH

DEFAULT_VOICE = "Puck"
CLOSE_KINDS = {1007: ErrorKind.PROTOCOL_ERROR, 1008: ErrorKind.SERVER_ERROR, 1011: ErrorKind.SERVER_ERROR}
"""1007 bad argument (or key), 1008 model/feature unavailable, 1011 internal error or quota."""


class GeminiLiveDriver(WebSocketDriver):
    """Gemini Live API sessions with audio responses."""

    name = "gemini"
    input_rate = GEMINI_INPUT_RATE
    known_hosts = ("generativelanguage.googleapis.com",)
    public_url = "wss://generativelanguage.googleapis.com"
    max_message_bytes = 16 * 1024 * 1024
    """Google documents no per-message limit for the Live API (searched 2026-12-03): this is the reference
    server's own limit (``bootbench.server.ws_protocol.MAX_MESSAGE_BYTES``)."""
    max_message_source = "the reference server's limit (Google documents none for the Live API)"
    key_variables = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    default_model = "models/gemini-2.5-flash-native-audio-preview-12-2025"
    """The documented replacement of the Live models shut down on 9 Dec 2025 (see the README for current names)."""
    default_voice = DEFAULT_VOICE
    turn_modes = ("manual", "vad")

    def endpoint(self) -> str:
        return websocket_url(self.config.url, GEMINI_LIVE_PATH)

    def headers(self) -> list[str]:
        return [f"x-goog-api-key: {self.config.api_key}"]

    def start_message(self) -> dict[str, Any]:
        model = self.config.model or self.default_model
        setup: dict[str, Any] = {
            "model": model if model.startswith("models/") else f"models/{model}",
            "generationConfig": {
                "responseModalities": ["AUDIO"],
                "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {
                    "voiceName": self.config.voice or self.default_voice}}},
            },
            "realtimeInputConfig": {"automaticActivityDetection": {"disabled": self.config.turn == "manual"}},
            # Transcripts of both sides: without them the service sends no text at all, and the input transcript
            # and first text stages stay empty (docs/protocols/gemini-live.md says why bootbench asks).
            "inputAudioTranscription": {},
            "outputAudioTranscription": {},
        }
        if self.config.system_message:
            setup["systemInstruction"] = {"parts": [{"text": self.config.system_message}]}
        return {"setup": setup}

    def audio_message(self, chunk: Chunk) -> dict[str, Any]:
        return {"realtimeInput": {"audio": {"mimeType": f"audio/pcm;rate={chunk.rate}", "data": chunk.base64}}}

    def connect(self, timeline) -> None:
        self._turn_over = False
        """Manual turns: activityEnd is going out; automatic detection: the first input is (see module doc)."""
        self._model_turn: str | None = None
        """The model turn being received: "greeting", "answer", or None between turns."""
        super().connect(timeline)

    def reset_turn(self) -> None:
        self._turn_over = False

    def input_starting(self) -> None:
        if self.config.turn != "manual":
            self._turn_over = True

    def begin_user_turn(self) -> None:
        if self.config.turn == "manual":
            self.send({"realtimeInput": {"activityStart": {}}})

    def end_user_turn(self) -> int | None:
        sent = time.perf_counter_ns()
        self._turn_over = True
        if self.config.turn == "manual":
            self.send({"realtimeInput": {"activityEnd": {}}})
        else:
            self.send({"realtimeInput": {"audioStreamEnd": True}})
        return sent

    def on_message(self, message: dict[str, Any], received_ns: int) -> None:
        session = self.session
        if "serverContent" in message:
            content = message["serverContent"]
            if isinstance(content, dict) and session.ready_ns is not None and session.open:
                self._stages(content, received_ns)
            audio = _audio_parts(content)
            if audio:
                if session.ready_ns is None:
                    self.anomalies["audio_before_ready"] += 1
                    return
                if self._model_turn is None:
                    self._model_turn = "answer" if self._turn_over else "greeting"
                if self._model_turn == "greeting":
                    session.greeting_audio(received_ns)
                elif session.between_turns:
                    self.anomalies["audio_between_turns"] += 1
                elif session.open:
                    for data in audio:
                        if not session.decoding:
                            break
                        if isinstance(data, str) and (too_big := oversized_audio("a modelTurn audio part", data)):
                            self.fail(session, ErrorKind.PROTOCOL_ERROR, too_big)
                            return
                        pcm = _pcm(data)
                        if pcm is None:
                            what = "not base64" if isinstance(data, str) else f"{type(data).__name__}, not base64 text"
                            self.fail(session, ErrorKind.PROTOCOL_ERROR, f"a modelTurn audio part whose data is {what}")
                            return
                        session.answer_audio(pcm, received_ns)
            if isinstance(content, dict) and (content.get("turnComplete") or content.get("interrupted")
                                              or content.get("generationComplete")):
                if self._model_turn == "answer":
                    session.answer_ended()
                    # The reply's content ends at generationComplete (absent after an interruption); the
                    # model's turn, after which the next input may follow, at turnComplete.
                    session.end_reply(received_ns, turn_over=bool(content.get("turnComplete")
                                                                  or content.get("interrupted")))
                if content.get("turnComplete") or content.get("interrupted"):
                    self._model_turn = None
        elif "setupComplete" in message:
            if session.ready_ns is None and session.open:
                session.ready_ns = received_ns
                session.ready.set()
        elif "voiceActivity" in message:
            activity = message["voiceActivity"]
            if (isinstance(activity, dict) and activity.get("type") == "ACTIVITY_END"
                    and session.ready_ns is not None and session.open):
                session.stage("turn_end", received_ns)   # the service's detector heard the caller stop
        elif "goAway" in message:
            self.anomalies["go_away"] += 1

    def _stages(self, content: dict[str, Any], received_ns: int) -> None:
        """Stamp the service stages a ``serverContent`` carries: the caller's transcript, and the first text of
        the answer's model turn (a text part, or the transcript of its audio; a greeting's is not the answer's)."""
        if _has_text(content.get("inputTranscription")) or _has_text(content.get("interimInputTranscription")):
            self.session.stage("input_transcript", received_ns)
        if _has_text(content.get("outputTranscription")) or _text_parts(content):
            if self._model_turn is None:   # the text may come before the turn's audio: it tells the turn the same way
                self._model_turn = "answer" if self._turn_over else "greeting"
            if self._model_turn == "answer":
                self.session.stage("first_text", received_ns)

    def close_error(self, code: int | None, reason: str) -> CycleError:
        lowered = reason.lower()
        if "api key" in lowered or "api_key" in lowered or "permission" in lowered or "unauthenticated" in lowered:
            return CycleError(ErrorKind.AUTH_FAILED, f"connection closed (code {code}): {reason}")
        if code in CLOSE_KINDS:
            return CycleError(CLOSE_KINDS[code], f"connection closed (code {code}): {reason or 'no reason given'}")
        return super().close_error(code, reason)


def _audio_parts(content: Any) -> list[str]:
    """The base64 audio of every ``modelTurn.parts[].inlineData`` of a ``serverContent`` (none: empty)."""
    turn = content.get("modelTurn") if isinstance(content, dict) else None
    parts = turn.get("parts") if isinstance(turn, dict) else None
    if not isinstance(parts, list):
        return []
    found = []
    for part in parts:
        inline = part.get("inlineData") if isinstance(part, dict) else None
        if isinstance(inline, dict) and str(inline.get("mimeType", "")).startswith("audio/") and inline.get("data"):
            found.append(inline["data"])
    return found


def _has_text(transcription: Any) -> bool:
    """Whether a ``Transcription`` object carries some text."""
    return isinstance(transcription, dict) and bool(transcription.get("text"))


def _text_parts(content: dict[str, Any]) -> bool:
    """Whether a ``serverContent``'s model turn has a non-empty text part (a thought is not the answer's text)."""
    turn = content.get("modelTurn")
    parts = turn.get("parts") if isinstance(turn, dict) else None
    return isinstance(parts, list) and any(isinstance(part, dict) and part.get("text") and not part.get("thought")
                                           for part in parts)


def _pcm(data: Any) -> bytes | None:
    """PCM16 of one part's base64 ``data`` (standard or URL-safe, padded or not, as protobuf JSON allows); None when
    it is not base64 text."""
    if not isinstance(data, str):
        return None
    urlsafe = "-" in data or "_" in data
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        return None
