"""The OpenAI Realtime driver: the cycle over Realtime (GA) events on a raw WebSocket (PROTOCOLS.md section 2).

One WebSocket is one session: ``session.update`` -> ``session.updated``
(session ready) -> ``input_audio_buffer.append`` (24 kHz PCM16) -> either
``input_audio_buffer.commit`` + ``response.create`` (manual turn, the
default) or trailing silence with server VAD -> first
``response.output_audio.delta`` (first audio) -> close (stop).
"""

from __future__ import annotations

import time
from typing import Any

from bootbench.audio import Chunk
from bootbench.providers.base import CycleError
from bootbench.providers.websocket import WebSocketDriver, websocket_url
from bootbench.samples import ErrorKind
from bootbench.wire import OPENAI_AUDIO_RATE, OPENAI_REALTIME_PATH, VAD_SILENCE_MS

AUDIO_DELTAS = ("response.output_audio.delta", "response.audio.delta")
"""GA name first; the retired beta's name is still accepted."""
AUTH_CODES = ("invalid_api_key", "invalid_authentication", "unauthorized")
DEFAULT_VOICE = "alloy"


class OpenAIRealtimeDriver(WebSocketDriver):
    """OpenAI Realtime, Azure OpenAI and other services speaking the same events."""

    name = "openai"
    input_rate = OPENAI_AUDIO_RATE
    known_hosts = ("api.openai.com",)
    public_url = "wss://api.openai.com/v1/realtime"
    key_variables = ("OPENAI_API_KEY",)
    default_model = "gpt-realtime"
    default_voice = DEFAULT_VOICE
    turn_modes = ("manual", "vad")
    vad_silence_ms = VAD_SILENCE_MS

    def endpoint(self) -> str:
        url = websocket_url(self.config.url, OPENAI_REALTIME_PATH)
        if "model=" in url:
            return url
        return f"{url}{'&' if '?' in url else '?'}model={self.config.model or self.default_model}"

    def headers(self) -> list[str]:
        return [f"Authorization: Bearer {self.config.api_key}"]

    def start_message(self) -> dict[str, Any]:
        turn_detection = None if self.config.turn == "manual" else {
            "type": "server_vad", "silence_duration_ms": VAD_SILENCE_MS, "create_response": True}
        session: dict[str, Any] = {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": OPENAI_AUDIO_RATE}, "turn_detection": turn_detection},
                "output": {"format": {"type": "audio/pcm", "rate": OPENAI_AUDIO_RATE},
                           "voice": self.config.voice or self.default_voice},
            },
        }
        if self.config.system_message:
            session["instructions"] = self.config.system_message
        return {"type": "session.update", "session": session}

    def audio_message(self, chunk: Chunk) -> dict[str, Any]:
        return {"type": "input_audio_buffer.append", "audio": chunk.base64}

    def _end_turn(self) -> int | None:
        if self.config.turn != "manual":
            return None
        sent = time.perf_counter_ns()
        self._send({"type": "input_audio_buffer.commit"})
        self._send({"type": "response.create"})
        return sent

    def _on_message(self, message: dict[str, Any], received_ns: int) -> None:
        kind = message.get("type")
        session = self._session
        if kind in AUDIO_DELTAS:
            if session.ready_ns is None:
                self.anomalies["audio_before_ready"] += 1
            elif session.first_audio_ns is None and session.open:
                if not isinstance(message.get("delta"), str) or not message["delta"]:
                    self._fail(session, ErrorKind.PROTOCOL_ERROR, f"{kind} without base64 audio in 'delta'")
                    return
                session.first_audio_ns = received_ns
                session.audio.set()
        elif kind == "session.updated":
            if session.ready_ns is None and session.open:
                session.ready_ns = received_ns
                session.ready.set()
        elif kind == "error":
            error = message.get("error") if isinstance(message.get("error"), dict) else {}
            code = error.get("code") or error.get("type") or "error"
            text = f"{code}: {error.get('message') or 'error'}"
            self._fail(session, ErrorKind.AUTH_FAILED if code in AUTH_CODES else ErrorKind.SERVER_ERROR, text)
        elif not isinstance(kind, str):
            self._fail(session, ErrorKind.PROTOCOL_ERROR, "a server event without a 'type'")

    def _close_error(self, code: int | None, reason: str) -> CycleError:
        if code == 1008 and "auth" in reason.lower():
            return CycleError(ErrorKind.AUTH_FAILED, f"connection closed (code {code}): {reason}")
        return super()._close_error(code, reason)
