"""The service's side of each built-in protocol, for the conformance kit (and as examples for a plugin's script).

    check(OpenAIRealtimeDriver, script_for("openai"), "server_error")

Each script is only what the kit needs of its service (docs/protocols/ has the
wire facts): the start and ready messages, an answer, an error, the refusal
of a key, and the protocol's own handshakes. A provider bootbench ships
needs one here (:data:`SCRIPTS`); the suite runs the kit over every built-in
and :func:`script_for` fails loudly for one without.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from bootbench.wire import (DEEPGRAM_OUTPUT_RATE, ELEVENLABS_SIGNED_URL_PATH, OPENAI_AUDIO_RATE, ULTRAVOX_CALLS_PATH,
                            ULTRAVOX_OUTPUT_RATE)

from .script import Close, Frame, HttpRefusal, HttpReply, HttpRequest, Pause, Script, Send

THINKING_MS = 50.0
"""Deepgram's fake agent: from UserStartedSpeaking to its answer (a real agent takes longer still)."""


def _b64(pcm: bytes) -> str:
    return base64.b64encode(pcm).decode("ascii")


class OpenAIRealtimeScript(Script):
    """OpenAI Realtime (GA events): ``session.update`` -> ``session.updated``; a response with its ids."""

    answer_rate = OPENAI_AUDIO_RATE
    auth_words = "Incorrect API key provided"
    error_words = "The server had an error while processing your request"

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def opened(self) -> list[Send]:
        return [{"type": "session.created", "event_id": "event_kit_0", "session": {"type": "realtime"}}]

    def starts_session(self, frame: Frame) -> bool:
        return _type(frame) == "session.update"

    def ready(self, frame: Frame) -> list[Send]:
        return [{"type": "session.updated", "event_id": "event_kit_1", "session": (frame.json() or {}).get("session")}]

    def answer(self, pcm: bytes) -> list[Send]:
        number = next(self._ids)
        response, item = f"resp_kit_{number}", f"item_kit_{number}"
        return [
            {"type": "input_audio_buffer.committed", "item_id": f"item_in_{number}"},  # server VAD heard the turn end
            {"type": "response.created", "response": {"id": response, "status": "in_progress"}},
            {"type": "response.output_item.added", "response_id": response, "item": {"id": item, "type": "message"}},
            {"type": "response.output_audio.delta", "response_id": response, "item_id": item, "delta": _b64(pcm)},
            {"type": "response.output_audio.done", "response_id": response, "item_id": item},
            {"type": "response.done", "response": {"id": response, "status": "completed"}},
        ]

    def error(self) -> list[Send]:
        return [{"type": "error", "event_id": "event_kit_9", "error": {
            "type": "server_error", "code": "server_error", "param": None,
            "message": "The server had an error while processing your request. Sorry about that!"}}]

    def refuse_auth(self) -> HttpRefusal:
        return HttpRefusal(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                           "param": None, "code": "invalid_api_key"}})


class AzureScript(OpenAIRealtimeScript):
    """Azure Voice Live / Azure OpenAI: OpenAI's events; a bad key refused with Azure's body."""

    auth_words = "Access denied due to invalid subscription key"

    def refuse_auth(self) -> HttpRefusal:
        return HttpRefusal(401, {"error": {"code": "401", "message": (
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
            "for an active subscription and use a correct regional API endpoint for your resource.")}})


class XAIScript(OpenAIRealtimeScript):
    """xAI's voice agent: OpenAI's events, ``conversation.created`` first; a bad key refused with HTTP 400."""

    auth_words = "Incorrect API key provided"

    def opened(self) -> list[Send]:
        return [{"type": "conversation.created", "event_id": "event_kit_0", "conversation": {"id": "conv_kit"}}]

    def refuse_auth(self) -> HttpRefusal:
        return HttpRefusal(400, {"code": "invalid-argument", "error": "Incorrect API key provided. You can obtain an "
                                                                     "API key from https://console.x.ai."})


class GeminiLiveScript(Script):
    """Gemini Live (BidiGenerateContent): ``setup`` -> ``setupComplete``; errors and refusals are close frames."""

    answer_rate = 24_000
    auth_words = "API key not valid"
    error_words = "Internal error encountered"

    def starts_session(self, frame: Frame) -> bool:
        message = frame.json()
        return isinstance(message, dict) and "setup" in message

    def ready(self, frame: Frame) -> list[Send]:
        return [{"setupComplete": {}}]

    def answer(self, pcm: bytes) -> list[Send]:
        part = {"inlineData": {"mimeType": f"audio/pcm;rate={self.answer_rate}", "data": _b64(pcm)}}
        return [{"serverContent": {"modelTurn": {"parts": [part]}}},
                {"serverContent": {"generationComplete": True}},
                {"serverContent": {"turnComplete": True}}]

    def error(self) -> list[Send]:
        return [Close(1011, "Internal error encountered.")]

    def refuse_auth(self) -> list[Send]:
        return [Close(1007, "API key not valid. Please pass a valid API key.")]


class AivocoScript(Script):
    """Aivoco over Socket.IO (Engine.IO 4 on a WebSocket): ``start_call`` -> ``session_ready``; ``audio_response``."""

    answer_rate = 24_000
    auth_words = "Invalid API key"
    error_words = "Rate limit exceeded"

    def opened(self) -> list[Send]:
        handshake = {"sid": "kit-engine", "upgrades": [], "pingInterval": 300_000, "pingTimeout": 300_000,
                     "maxPayload": 100_000_000}
        return ["0" + json.dumps(handshake)]  # Engine.IO's open packet

    def starts_session(self, frame: Frame) -> bool:
        return _event(frame) == "start_call"

    def ready(self, frame: Frame) -> list[Send]:
        return [_emit("session_ready", {"message": "Session ready"})]

    def answer(self, pcm: bytes) -> list[Send]:
        return [_emit("audio_response", {"audio_data": _b64(pcm)})]

    def error(self) -> list[Send]:
        return [_emit("error", {"type": "rate_limit_exceeded", "message": "Rate limit exceeded, retry later"})]

    def refuse_auth(self) -> list[Send]:
        return [_emit("auth_failed", {"message": "Invalid API key", "credits": 0})]

    def respond(self, frame: Frame) -> list[Send] | None:
        if frame.text.startswith("40"):  # Socket.IO's connect to the default namespace
            return ['40{"sid":"kit-socket"}']
        if _event(frame) == "stop_call":
            return [_emit("session_ended", {"reason": "client_stop"})]
        return None


class ElevenLabsScript(Script):
    """ElevenLabs Agents: a signed URL over REST, then ``conversation_initiation_client_data`` -> ``..._metadata``;
    the answer is audio with the id of the turn the agent's ``user_transcript`` names."""

    answer_rate = 24_000
    auth_words = "Invalid API key"
    error_words = "Internal server error"

    def __init__(self) -> None:
        self._ids = itertools.count(1)

    def http(self, request: HttpRequest) -> HttpReply | None:
        if request.method == "GET" and request.path == ELEVENLABS_SIGNED_URL_PATH:
            return HttpReply(200, {"signed_url": f"{request.websocket_base}/v1/convai/conversation?agent_id="
                                                 f"{request.query.get('agent_id', '')}&conversation_signature=kit"})
        return None

    def starts_session(self, frame: Frame) -> bool:
        return _type(frame) == "conversation_initiation_client_data"

    def ready(self, frame: Frame | None) -> list[Send]:
        return [{"type": "conversation_initiation_metadata", "conversation_initiation_metadata_event": {
            "conversation_id": "conv_kit", "agent_output_audio_format": f"pcm_{self.answer_rate}",
            "user_input_audio_format": "pcm_16000"}}]

    def answer(self, pcm: bytes) -> list[Send]:
        turn = next(self._ids)
        return [{"type": "user_transcript", "user_transcription_event": {"user_transcript": "hello", "event_id": turn}},
                {"type": "agent_response", "agent_response_event": {"agent_response": "Hi!", "event_id": turn}},
                {"type": "audio", "audio_event": {"audio_base_64": _b64(pcm), "event_id": turn}}]

    def error(self) -> list[Send]:
        return [Close(1011, "Internal server error")]

    def refuse_auth(self) -> HttpRefusal:
        return HttpRefusal(401, {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}})


class UltravoxScript(Script):
    """Ultravox: a call created over REST, joined at its URL (the session starts as the socket opens); raw PCM
    both ways, the agent's ``state`` framing its turn."""

    answer_rate = ULTRAVOX_OUTPUT_RATE
    session_starts_on_open = True
    auth_words = "Invalid API key"
    error_words = "the agent hung up"

    def http(self, request: HttpRequest) -> HttpReply | None:
        if request.method == "POST" and request.path.endswith(ULTRAVOX_CALLS_PATH):
            return HttpReply(201, {"callId": "call_kit", "joinUrl": f"{request.websocket_base}/calls/call_kit/"
                                                                     f"server_web_socket?token=kit"})
        return None

    def ready(self, frame: Frame | None) -> list[Send]:
        return [{"type": "state", "state": "listening"}]

    def answer(self, pcm: bytes) -> list[Send]:
        return [{"type": "state", "state": "thinking"}, {"type": "state", "state": "speaking"}, pcm,
                {"type": "state", "state": "listening"}]

    def error(self) -> list[Send]:
        return [Close(1011, "the agent hung up")]

    def refuse_auth(self) -> HttpRefusal:
        return HttpRefusal(401, {"detail": "Invalid API key."})


class DeepgramScript(Script):
    """Deepgram Voice Agent: ``Welcome`` on open, ``Settings`` -> ``SettingsApplied``; raw PCM both ways; the agent
    says it heard the user (``UserStartedSpeaking``, which a manual turn's ``ForceEndTurn`` waits for) before it
    answers, and ``AgentAudioDone`` ends the reply."""

    answer_rate = DEEPGRAM_OUTPUT_RATE
    auth_words = "Invalid credentials."
    error_words = "The agent could not think"

    def opened(self) -> list[Send]:
        return [{"type": "Welcome", "request_id": "kit"}]

    def starts_session(self, frame: Frame) -> bool:
        return _type(frame) == "Settings"

    def ready(self, frame: Frame | None) -> list[Send]:
        return [{"type": "SettingsApplied"}]

    def respond(self, frame: Frame) -> list[Send] | None:
        return [] if _type(frame) in ("ForceEndTurn", "KeepAlive") else None  # audio is the input

    def answer(self, pcm: bytes) -> list[Send]:
        # the agent hears the user before it speaks: a manual turn's ForceEndTurn (sent on UserStartedSpeaking)
        # goes out before the answer arrives, as it does from the real service (its arrival is the kernel's stamp)
        return [{"type": "UserStartedSpeaking"}, Pause(THINKING_MS),
                {"type": "AgentStartedSpeaking", "total_latency": 0.2, "tts_latency": 0.1, "ttt_latency": 0.1},
                pcm, {"type": "AgentAudioDone"}]

    def error(self) -> list[Send]:
        return [{"type": "Error", "code": "THINK_REQUEST_FAILED", "description": "The agent could not think."}]

    def refuse_auth(self) -> HttpRefusal:
        return HttpRefusal(401, {"category": "INVALID_AUTH", "err_code": "INVALID_AUTH",
                                 "err_msg": "Invalid credentials."})


SCRIPTS: dict[str, type[Script]] = {
    "aivoco": AivocoScript,
    "openai": OpenAIRealtimeScript,
    "gemini": GeminiLiveScript,
    "azure": AzureScript,
    "xai": XAIScript,
    "elevenlabs": ElevenLabsScript,
    "ultravox": UltravoxScript,
    "deepgram": DeepgramScript,
}
"""The script of each provider bootbench ships, by provider name."""


def script_for(provider: str) -> Script:
    """A new script of the built-in ``provider``; LookupError (saying where to add one) when it has none."""
    try:
        return SCRIPTS[provider]()
    except KeyError:
        raise LookupError(f"no conformance script for the provider {provider!r}: add its service's side to "
                          f"bootbench/testing/scripts.py (SCRIPTS)") from None


def _type(frame: Frame) -> Any:
    message = frame.json()
    return message.get("type") if isinstance(message, dict) else None


def _event(frame: Frame) -> str | None:
    """The event name of a Socket.IO event packet (``42["name", ...]``), else None."""
    text = frame.text
    if not text.startswith("42"):
        return None
    try:
        packet = json.loads(text[2:])
    except ValueError:
        return None
    return packet[0] if isinstance(packet, list) and packet and isinstance(packet[0], str) else None


def _emit(event: str, data: Any) -> str:
    """A Socket.IO event packet to the default namespace."""
    return "42" + json.dumps([event, data])
