"""What a plugin author writes for the conformance kit: the service's side of their protocol, as little as it needs.

    class ToyScript(Script):
        def starts_session(self, frame):  return (frame.json() or {}).get("type") == "start"
        def ready(self, frame):           return [{"type": "ready"}]
        def answer(self, pcm):            return [{"type": "audio", "data": base64(pcm)}, {"type": "done"}]
        def error(self):                  return [{"type": "error", "message": "overloaded"}]
        def refuse_auth(self):            return HttpRefusal(401, {"error": "bad key"})

The kit's fake service (:mod:`.fake_service`) opens the socket, sends
:meth:`Script.opened`, waits for the frame that :meth:`Script.starts_session`,
answers it with :meth:`Script.ready` (or, per scenario, not at all, with a
refusal, ...), and once the client's input has gone quiet sends
:meth:`Script.answer` (or :meth:`Script.error`, or drops the connection).
Every other client frame goes to :meth:`Script.respond` (handshakes, pings,
the stop, keep-alives); a frame it returns None for is input. A session that starts with
the socket itself (a call joined at a URL) sets
:attr:`Script.session_starts_on_open`; an HTTP request the driver makes besides
the upgrade (a signed URL, a call created over REST) goes to :meth:`Script.http`.

A reply is a list of what to send: ``str`` (a text frame), ``bytes`` (a binary
frame), a ``dict`` or ``list`` (JSON in a text frame), :class:`Close` (a close frame).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class Close:
    """A close frame with ``code`` and ``reason`` (the connection ends)."""

    code: int
    reason: str = ""


@dataclass(frozen=True)
class Pause:
    """The fake service waits ``ms`` before it sends what follows (a service thinking between two events)."""

    ms: float


@dataclass(frozen=True)
class HttpReply:
    """An HTTP answer: ``status`` and ``body`` (a dict or list is sent as JSON)."""

    status: int
    body: Any = ""
    headers: tuple[tuple[str, str], ...] = ()


HttpRefusal = HttpReply
"""An :class:`HttpReply` that refuses: in the ``refused_auth`` scenario it answers every HTTP request of the
driver (the WebSocket upgrade, or the REST request before it), before any socket exists."""


@dataclass(frozen=True)
class HttpRequest:
    """A plain HTTP request the driver made (not the WebSocket upgrade)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    websocket_base: str
    """``ws://127.0.0.1:PORT``: where a URL the reply hands out (a signed URL, a join URL) must point."""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


Send = Union[str, bytes, dict, list, Close, Pause]
"""One thing the fake service sends."""


@dataclass(frozen=True)
class Frame:
    """A frame the client sent: text or binary."""

    data: str | bytes

    @property
    def binary(self) -> bool:
        return isinstance(self.data, bytes)

    @property
    def text(self) -> str:
        """The frame as text (a binary frame decoded as UTF-8, with replacements)."""
        return self.data.decode("utf-8", "replace") if isinstance(self.data, bytes) else self.data

    def json(self) -> Any:
        """The frame's JSON value, or None when it holds none (raw audio, a Socket.IO packet)."""
        try:
            return json.loads(self.data)
        except (ValueError, UnicodeDecodeError):
            return None


class Script:
    """The service's side of one wire protocol, as the conformance kit plays it (override the methods it needs)."""

    subprotocols: tuple[str, ...] = ()
    """The ``Sec-WebSocket-Protocol`` values the service accepts (one the client offers is echoed)."""
    session_starts_on_open: bool = False
    """The session starts when the socket opens (no start frame): :meth:`ready` is called with None then."""
    answer_rate: int = 24_000
    """The sample rate of the answer audio the service sends (:meth:`answer` gets PCM16 at this rate)."""
    auth_words: str = ""
    """Words of the service's authentication refusal that must reach the driver's error message ("" : not checked)."""
    error_words: str = ""
    """Words of the service's error (:meth:`error`) that must reach the driver's error message ("" : not checked)."""

    def opened(self) -> list[Send]:
        """What the service sends as soon as the socket is open (a greeting event, a Socket.IO open packet)."""
        return []

    def starts_session(self, frame: Frame) -> bool:
        """True for the client frame that starts the session (the driver's ``start_message``)."""
        raise NotImplementedError

    def ready(self, frame: Frame | None) -> list[Send]:
        """The service's answer to the start ``frame`` that makes the session ready (None: the socket opened)."""
        raise NotImplementedError

    def answer(self, pcm: bytes) -> list[Send]:
        """A whole answer: the audio ``pcm`` (PCM16 LE, mono, :attr:`answer_rate`), then its end where the protocol
        says so."""
        raise NotImplementedError

    def error(self) -> list[Send]:
        """The service reporting an error of its own mid-session (the driver's ``server_error``)."""
        raise NotImplementedError

    def refuse_auth(self) -> HttpRefusal | list[Send]:
        """How the service refuses a bad key: the upgrade refused (:class:`HttpRefusal`), or what it sends in answer
        to the start frame."""
        raise NotImplementedError

    def respond(self, frame: Frame) -> list[Send] | None:
        """What the service answers to any other client frame (a handshake, a ping, the stop; [] for a frame that
        needs no answer, a keep-alive); None for input (its end, once it goes quiet, is answered per scenario)."""
        return None

    def http(self, request: HttpRequest) -> HttpReply | None:
        """The answer to a plain HTTP request of the driver (a signed URL, a call created); None: 404."""
        return None
