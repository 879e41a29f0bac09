"""The ToyVoice driver: bootbench's cycle over the ToyVoice protocol (toyvoice.wire).

bootbench's :class:`~bootbench.providers.websocket.WebSocketDriver` owns the socket, the receive thread and
the stamps; a driver only says what goes on the wire (its public hooks) and what each message means for the
session (:attr:`session`: ready, the answer's audio, the end of a reply, a failure).
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from typing import Any

from bootbench.audio import Chunk
from bootbench.providers import ProviderOption
from bootbench.providers.websocket import WebSocketDriver, websocket_url
from bootbench.samples import ErrorKind

from . import wire


def _room(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9-]+", text):
        raise ValueError("a room is lower-case letters, digits and dashes")
    return text


class ToyVoiceDriver(WebSocketDriver):
    """ToyVoice: a JSON-over-WebSocket speech service (bootbench's example plugin)."""

    name = "toyvoice"
    api_version = 1
    """The driver contract this class was written for (bootbench.providers.base.API_VERSION)."""
    input_rate = wire.INPUT_RATE
    key_variables = ("TOYVOICE_API_KEY",)
    default_voice = "robot"
    turn_modes = ("manual",)
    options = (ProviderOption("room", "The room the call joins.", default="lobby", check=_room),)

    # ---- what goes on the wire

    def endpoint(self) -> str:
        return websocket_url(self.config.url, wire.PATH)

    def headers(self) -> list[str]:
        return [f"{wire.KEY_HEADER}: {self.config.api_key}"]

    def start_message(self) -> dict[str, Any]:
        return {"type": "hello", "room": self.option("room"), "voice": self.config.voice or self.default_voice}

    def audio_message(self, chunk: Chunk) -> dict[str, Any]:
        return {"type": "audio", "pcm16": chunk.base64}

    def end_user_turn(self) -> int | None:
        sent = time.perf_counter_ns()
        self.send({"type": "end_of_turn"})
        return sent

    # ---- what comes back (on the receive thread, each message stamped on arrival)

    def on_message(self, message: dict[str, Any], received_ns: int) -> None:
        session = self.session
        kind = message.get("type")
        if kind == "ready":
            if session.ready_ns is None and session.open:
                session.ready_ns = received_ns
                session.ready.set()
        elif kind == "audio":
            if message.get("turn") == wire.GREETING_TURN:
                session.greeting_audio(received_ns)  # a reply nobody asked for: never the answer
            elif session.between_turns:
                self.anomalies["audio_between_turns"] += 1
            elif session.open:
                pcm = None
                if session.decoding:  # until the answer is audible; after that only its arrival matters
                    pcm = self._pcm(message)
                    if pcm is None:
                        return
                session.answer_audio(pcm, received_ns)
        elif kind == "reply_done":
            if message.get("turn") != wire.GREETING_TURN:
                session.answer_ended()
                session.end_reply(received_ns)
        elif kind == "error":
            self.fail(session, ErrorKind.SERVER_ERROR, str(message.get("message") or "error"))
        else:
            self.anomalies[f"unknown_message:{kind}"] += 1

    def _pcm(self, message: dict[str, Any]) -> bytes | None:
        try:
            return base64.b64decode(message.get("pcm16") or "", validate=True)
        except (binascii.Error, ValueError):
            self.fail(self.session, ErrorKind.PROTOCOL_ERROR, "audio whose 'pcm16' is not base64")
            return None
