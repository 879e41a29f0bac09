"""The OpenAI Realtime driver: the cycle over Realtime (GA) events on a raw WebSocket (docs/protocols/openai-realtime.md).

One WebSocket is one session: ``session.update`` -> ``session.updated``
(session ready) -> ``input_audio_buffer.append`` (24 kHz PCM16) -> either
``input_audio_buffer.commit`` + ``response.create`` (manual turn, the
default) or trailing silence with server VAD -> first
``response.output_audio.delta`` (first audio), decoded until audible or
``response.done`` -> close (stop). With ``--turns`` > 1, the answer's
``response.done`` ends each reply and the next turn follows.

Greetings: a response the client did not ask for (created before the
``committed`` of its own commit, which the service sends before it takes the
``response.create`` that follows; with server VAD before its input was
committed) is a greeting: its audio is noted, never taken as the answer. A greeting still
speaking when the client ends its turn is cancelled (``response.cancel``), as
a caller who has finished talking interrupts it; a ``response.create`` refused
with ``conversation_already_has_active_response`` cancels it and asks again
once it is done. Both the GA and the beta event names are received.

Stages (:meth:`~bootbench.providers.base.SessionState.stage`, docs/protocols/openai-realtime.md): the first
``input_audio_buffer.speech_stopped`` or ``committed`` is the turn end; the first input transcription event of
the committed item is the transcript (sent only when the session asks for one: provider option
``transcription``; xAI always sends it); the answer's ``response.created`` is the response start, and its first
transcript or text delta the first text. A greeting's response stamps nothing.

Services that speak the same events at other URLs are configurations of this
driver (subclasses that change the endpoint, headers, keys, defaults and
options): Azure (:mod:`.azure`) and xAI (:mod:`.xai`). Where their wire differs,
a class attribute says so and this driver acts on it: :attr:`session_shape`
(how ``session.update`` is laid out) and :attr:`auth_refusal_words` (an upgrade
refused with another status than 401/403 that still means a bad key).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from bootbench.audio import Chunk
from bootbench.providers.base import CycleError, ProviderOption
from bootbench.providers.websocket import WebSocketDriver, oversized_audio, websocket_url
from bootbench.samples import ErrorKind
from bootbench.wire import OPENAI_AUDIO_RATE, OPENAI_REALTIME_PATH, VAD_SILENCE_MS

AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
"""GA name first; the retired beta's name is still accepted."""
AUDIO_DONE = ("response.output_audio.done", "response.audio.done")
TEXT_DELTAS = ("response.output_audio_transcript.delta", "response.audio_transcript.delta",
               "response.output_text.delta", "response.text.delta")
"""The answer's text as it comes: its audio's transcript (GA, preview names) or a text part (GA; preview and xAI)."""
TURN_END_EVENTS = ("input_audio_buffer.speech_stopped", "input_audio_buffer.committed")
INPUT_TRANSCRIPTS = ("conversation.item.input_audio_transcription.delta",
                     "conversation.item.input_audio_transcription.completed")
"""The transcription of the caller's audio: OpenAI and Azure send deltas then one ``completed``; xAI sends its
partials as ``completed`` events with ``status: "in_progress"``."""
ACTIVE_RESPONSE = "conversation_already_has_active_response"
CANCEL_NOT_ACTIVE = "response_cancel_not_active"
PREAMBLE_PHASE = "commentary"
"""An output item's ``phase`` that marks a preamble spoken before the answer (``gpt-realtime-2``)."""
AUTH_CODES = ("invalid_api_key", "invalid_authentication", "unauthorized")
DEFAULT_VOICE = "alloy"
SESSION_SHAPES = ("ga", "preview", "voice-live", "xai")
"""The layouts of ``session.update``: OpenAI's GA; the preview's flat fields (Azure OpenAI's preview endpoint);
the same with Voice Live's voice object and input rate; xAI's (docs/protocols/azure.md, xai.md)."""
PREVIEW_PCM = "pcm16"
"""The preview shape's audio format: PCM16 at 24 kHz."""
AZURE_VOICE_NAME = re.compile(r"[a-z]{2,3}-[A-Za-z]{2,4}-\w")
"""An Azure text-to-speech voice name (``en-US-AvaNeural``, ``en-US-Ava:DragonHDLatestNeural``): a locale first."""


class OpenAIRealtimeDriver(WebSocketDriver):
    """OpenAI Realtime, Azure OpenAI and other services speaking the same events."""

    name = "openai"
    input_rate = OPENAI_AUDIO_RATE
    known_hosts = ("api.openai.com",)
    public_url = "wss://api.openai.com/v1/realtime"
    max_message_bytes = 15 * 1024 * 1024
    """OpenAI's documented limit: ``input_audio_buffer.append`` carries "up to a maximum of 15 MiB" of audio per
    event (API reference, checked 2026-12-03); bootbench holds the whole event to it (stricter than the audio
    alone, as the base64 text is what is sent). The reference server allows 16 MiB per message."""
    max_message_source = "OpenAI's documented limit of input_audio_buffer.append"
    key_variables = ("OPENAI_API_KEY",)
    default_model = "gpt-realtime"
    default_voice = DEFAULT_VOICE
    turn_modes = ("manual", "vad")
    vad_silence_ms = VAD_SILENCE_MS
    vad_trailing_silence_ms = VAD_SILENCE_MS + 100  # a margin over the detector's silence
    session_shape: str = "ga"
    """How ``session.update`` is laid out, one of :data:`SESSION_SHAPES` (received events are the same
    for all: both the GA and the preview names are understood)."""
    auth_refusal_words: tuple[str, ...] = ()
    """Words of an upgrade refusal that mean a bad key whatever its HTTP status (xAI answers one with 400)."""
    options = (ProviderOption(
        "transcription", "Ask the service to transcribe the caller's speech with this model (e.g. "
        "gpt-4o-mini-transcribe; Voice Live also azure-speech), so that the transcript stage (transcript_ms) is "
        "measured. Off by default: transcription is billed, and the service runs it beside the answer."),)
    """Off by default: the measured session stays the one earlier runs measured (docs/protocols/openai-realtime.md);
    a configuration that transcribes unasked (xAI) has none."""

    def endpoint(self) -> str:
        url = websocket_url(self.config.url, OPENAI_REALTIME_PATH)
        if "model=" in url:
            return url
        return f"{url}{'&' if '?' in url else '?'}model={self.config.model or self.default_model}"

    def headers(self) -> list[str]:
        return [f"Authorization: Bearer {self.config.api_key}"]

    def start_message(self) -> dict[str, Any]:
        return {"type": "session.update", "session": self.session_config()}

    def session_config(self) -> dict[str, Any]:
        """The ``session`` of ``session.update`` in this service's :attr:`session_shape`."""
        vad = self.config.turn != "manual"
        voice = self.config.voice or self.default_voice
        shape = self.session_shape
        if shape == "ga":
            turn_detection = {"type": "server_vad", "silence_duration_ms": VAD_SILENCE_MS,
                              "create_response": True} if vad else None
            pcm = {"type": "audio/pcm", "rate": OPENAI_AUDIO_RATE}
            session: dict[str, Any] = {
                "type": "realtime",
                "output_modalities": ["audio"],
                "audio": {"input": {"format": dict(pcm), "turn_detection": turn_detection},
                          "output": {"format": dict(pcm), "voice": voice}},
            }
        elif shape in ("preview", "voice-live"):
            # The preview's flat fields; "text" must be among the modalities (audio alone is refused).
            session = {"modalities": ["text", "audio"], "voice": voice, "input_audio_format": PREVIEW_PCM,
                       "output_audio_format": PREVIEW_PCM,
                       "turn_detection": {"type": "server_vad", "silence_duration_ms": VAD_SILENCE_MS,
                                          "create_response": True} if vad else None}
            if shape == "voice-live":
                kind = "azure-standard" if AZURE_VOICE_NAME.match(voice) else "openai"
                session["voice"] = {"type": kind, "name": voice}
                session["input_audio_sampling_rate"] = OPENAI_AUDIO_RATE
        elif shape == "xai":
            # xAI: voice and turn detection at the top, the audio formats under "audio"; no type, no modalities.
            pcm = {"type": "audio/pcm", "rate": OPENAI_AUDIO_RATE}
            session = {"voice": voice,
                       "turn_detection": {"type": "server_vad", "silence_duration_ms": VAD_SILENCE_MS} if vad else None,
                       "audio": {"input": {"format": dict(pcm)}, "output": {"format": dict(pcm)}}}
        else:
            raise ValueError(f"session_shape {shape!r} is not one of {', '.join(SESSION_SHAPES)}")
        model = self.provider_options.get("transcription")   # xAI has no such option: it always transcribes
        if model and shape == "ga":
            session["audio"]["input"]["transcription"] = {"model": model}
        elif model and shape in ("preview", "voice-live"):
            session["input_audio_transcription"] = {"model": model}
        if self.config.system_message:
            session["instructions"] = self.config.system_message
        return session

    def audio_message(self, chunk: Chunk) -> dict[str, Any]:
        return {"type": "input_audio_buffer.append", "audio": chunk.base64}

    def connect(self, timeline) -> None:
        self._committing = False
        """Manual turns: the client sent its commit (and response.create) and waits for the service's committed."""
        self._asked = False
        """The client asked for a response: its input was committed (manual: the committed event of its own commit,
        which the service sends before it takes the response.create that follows: a greeting's response.created sent
        before that crossed our commit and is not the answer; vad: the service's own commit)."""
        self._answer: str | None = None
        """The id of the response that answers the client's turn."""
        self._unasked: set[str] = set()
        """Ids of responses the client did not ask for (greetings), until they are done."""
        self._retry_create = False
        """response.create was refused because a greeting was active: cancelled, re-sent once it is done."""
        self._phases: dict[str, Any] = {}
        self._input_item: str | None = None
        """The item the service committed the caller's turn as (its transcription is the transcript stage)."""
        try:
            super().connect(timeline)
        except CycleError as exc:
            if exc.kind != ErrorKind.AUTH_FAILED and any(word in exc.message for word in self.auth_refusal_words):
                raise CycleError(ErrorKind.AUTH_FAILED, exc.message) from None
            raise

    def reset_turn(self) -> None:
        self._committing = False
        self._asked = False
        self._answer = None
        self._input_item = None

    def end_user_turn(self) -> int | None:
        if self.config.turn != "manual":
            return None
        sent = time.perf_counter_ns()
        if self._unasked:
            # A greeting is still being spoken: a caller who has finished talking interrupts it.
            self.send({"type": "response.cancel"})
        self._committing = True
        self.send({"type": "input_audio_buffer.commit"})
        self.send({"type": "response.create"})
        return sent

    def on_message(self, message: dict[str, Any], received_ns: int) -> None:
        kind = message.get("type")
        session = self.session
        if kind in AUDIO_DELTAS:
            if session.ready_ns is None:
                self.anomalies["audio_before_ready"] += 1
                return
            response = message.get("response_id")
            if response is not None and response != self._answer:
                session.greeting_audio(received_ns)
                return
            if session.between_turns:
                self.anomalies["audio_between_turns"] += 1
                return
            if not session.open or not session.decoding:
                return
            delta = message.get("delta")
            if not isinstance(delta, str) or not delta:
                self.fail(session, ErrorKind.PROTOCOL_ERROR, f"{kind} without base64 audio in 'delta'")
                return
            if (too_big := oversized_audio(f"{kind} audio", delta)) is not None:
                self.fail(session, ErrorKind.PROTOCOL_ERROR, too_big)
                return
            if session.first_audio_ns is None:
                phase = self._phases.get(message.get("item_id"))
                session.preamble = None if phase is None else phase == PREAMBLE_PHASE
            try:
                pcm = base64.b64decode(delta, validate=True)
            except (binascii.Error, ValueError):
                self.fail(session, ErrorKind.PROTOCOL_ERROR, f"{kind} whose 'delta' is not base64")
                return
            session.answer_audio(pcm, received_ns)
        elif kind == "response.created":
            response = message.get("response") if isinstance(message.get("response"), dict) else {}
            rid = response.get("id")
            if self._asked and self._answer is None and not self._retry_create:
                self._answer = rid
                session.stage("response_start", received_ns)
            elif rid is not None:
                self._unasked.add(rid)
        elif kind == "response.output_item.added":
            item = message.get("item") if isinstance(message.get("item"), dict) else {}
            if item.get("phase") is not None:
                self._phases[item.get("id")] = item["phase"]
        elif kind in AUDIO_DONE or kind == "response.done":
            rid = message.get("response_id")
            if kind == "response.done":
                response = message.get("response") if isinstance(message.get("response"), dict) else {}
                rid = response.get("id")
            if rid is not None and rid == self._answer:
                if kind == "response.done" and response.get("status") == "failed":
                    # The service could not answer (a rate limit, the quota, a server error): its words, not a timeout.
                    self._fail_with(session, _status_error(response))
                session.answer_ended()
                if kind == "response.done":
                    session.end_reply(received_ns)
            elif kind == "response.done" and rid in self._unasked:
                self._unasked.discard(rid)
                if self._retry_create and not self._unasked and session.open:
                    self._retry_create = False
                    self.send_quietly({"type": "response.create"})
        elif kind in TEXT_DELTAS:
            if message.get("response_id") == self._answer and self._answer is not None:
                session.stage("first_text", received_ns)
        elif kind in TURN_END_EVENTS:
            session.stage("turn_end", received_ns)
            if kind == "input_audio_buffer.committed":
                self._input_item = message.get("item_id")
                if self.config.turn != "manual" or self._committing:
                    # our commit (manual) or server VAD's: the response the service creates next is the answer
                    self._asked = True
        elif kind in INPUT_TRANSCRIPTS:
            if self._input_item is not None and message.get("item_id") == self._input_item:
                session.stage("input_transcript", received_ns)
        elif kind == "session.updated":
            if session.ready_ns is None and session.open:
                session.ready_ns = received_ns
                session.ready.set()
        elif kind == "error":
            error = message.get("error")
            if not isinstance(error, dict):
                # {"error": {...}} is OpenAI's shape; xAI's own client also reads a string "error" and top-level
                # "code" and "message" (docs/protocols/xai.md).
                error = {"code": message.get("code"),
                         "message": message.get("message") or (error if isinstance(error, str) else None)}
            code = error.get("code") or error.get("type") or "error"
            if code == ACTIVE_RESPONSE and self._answer is None and self._asked:
                # Our response.create met a greeting the server had started meanwhile: cancel it, ask again
                # once it is done.
                self.anomalies["greeting_cancelled"] += 1
                if self._unasked:
                    self._retry_create = True
                    self.send_quietly({"type": "response.cancel"})
                else:
                    self.send_quietly({"type": "response.create"})
                return
            if code == CANCEL_NOT_ACTIVE:
                return   # our cancel of a greeting crossed its end: nothing to do
            self._fail_with(session, error)
        elif not isinstance(kind, str):
            self.fail(session, ErrorKind.PROTOCOL_ERROR, "a server event without a 'type'")

    def _fail_with(self, session, error: dict[str, Any]) -> None:
        """The session fails with the service's error object ``{type, code, message}`` (in its words)."""
        code = error.get("code") or error.get("type") or "error"
        text = f"{code}: {error.get('message') or 'error'}"
        self.fail(session, ErrorKind.AUTH_FAILED if code in AUTH_CODES else ErrorKind.SERVER_ERROR, text)

    def close_error(self, code: int | None, reason: str) -> CycleError:
        if code == 1008 and "auth" in reason.lower():
            return CycleError(ErrorKind.AUTH_FAILED, f"connection closed (code {code}): {reason}")
        return super().close_error(code, reason)


def _status_error(response: dict[str, Any]) -> dict[str, Any]:
    """The error object of a failed response's ``status_details`` (``{type, code, message}``), or a stand-in."""
    details = response.get("status_details") if isinstance(response.get("status_details"), dict) else {}
    error = details.get("error") if isinstance(details.get("error"), dict) else None
    return error or {"code": "response_failed", "message": f"response {response.get('id')} failed"}
