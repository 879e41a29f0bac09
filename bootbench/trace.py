"""The wire trace of one iteration (``--trace``): every message the driver sent and received, as it went.

A driver's transport hands each message to the :class:`WireTrace` it holds as ``driver.trace`` (None unless the
run traces: then the hook costs one attribute check): the WebSocket base's ``send`` and read loop, the Aivoco
driver's Socket.IO emits and handlers, Ultravox's create request. A hook only appends the message as it is,
with its stamp (taken after the driver's own receive stamp, or that stamp itself); nothing is decoded while
the cycle runs. After the stop, :meth:`WireTrace.record` summarises each message: time (ns from the cycle's
start, on the cycle's clock), direction, type (the protocol's own event name), size in bytes, and for an audio
payload its length and a hash. No content leaves it: no audio, text, key, token or URL, only the type names
(checked against the registered secrets), sizes and hashes.

    trace = WireTrace(); driver.trace = trace
    ... the cycle ...
    driver.trace = None
    record = trace.record([timeline, *warm_timelines])   # shipped with the sample (bootbench.run.messages)
"""

from __future__ import annotations

import binascii
import hashlib
import json
import re
import time
from dataclasses import fields
from typing import Any

from bootbench.samples import Timeline
from bootbench.secrets import redact

SENT, RECEIVED = "sent", "received"
OPCODE_TEXT, OPCODE_BINARY, OPCODE_CLOSE = 0x1, 0x2, 0x8
"""WebSocket frame opcodes (RFC 6455, section 5.2), as websocket-client's ``recv_data`` returns them."""
MAX_MESSAGES = 20_000
"""Messages one iteration's trace keeps (400 s of 20 ms chunks at real-time pace); later ones are only counted
(``dropped``), so one endless iteration cannot fill the memory of a worker."""
MIN_PAYLOAD_CHARS = 64
"""A base64 string of at least this many characters in a JSON message is taken as its audio payload."""
TYPE_CHARS = re.compile(r"[^A-Za-z0-9_.:+/ *-]")
MAX_TYPE_CHARS = 80
EXPANDED_KEYS = ("serverContent", "realtimeInput")
"""Gemini's messages named by their top-level key, whose parts name them further (``serverContent.modelTurn``)."""
IGNORED_KEYS = ("usageMetadata",)
"""Top-level keys that ride along with a Gemini message and do not name it."""
STAMPS = tuple(f.name for f in fields(Timeline))
"""The stamps of a cycle's timeline, in the order the record keeps them."""


class WireTrace:
    """The messages of one iteration, kept raw until :meth:`record` (called after the cycle)."""

    __slots__ = ("_raw", "dropped")

    def __init__(self) -> None:
        self._raw: list[tuple[int, str, str, Any, Any]] = []
        self.dropped = 0
        """Messages beyond :data:`MAX_MESSAGES`, counted only."""

    def _keep(self, entry: tuple[int, str, str, Any, Any]) -> None:
        if len(self._raw) < MAX_MESSAGES:
            self._raw.append(entry)
        else:
            self.dropped += 1

    # ---- the hooks (each appends; nothing is decoded here)

    def sent(self, frame: str | bytes) -> None:
        """A WebSocket frame that just went out: JSON text, or bytes for a binary frame."""
        self._keep((time.perf_counter_ns(), SENT, "ws", OPCODE_BINARY if isinstance(frame, bytes) else OPCODE_TEXT,
                    frame))

    def received(self, opcode: int, data: bytes, received_ns: int) -> None:
        """A WebSocket frame that arrived at ``received_ns`` (the read loop's own stamp)."""
        self._keep((received_ns, RECEIVED, "ws", opcode, data))

    def event(self, direction: str, name: str, data: Any = None, stamp_ns: int | None = None,
              encoded: str | None = None) -> None:
        """A Socket.IO event sent or received (``stamp_ns``: the handler's own stamp, else now); ``encoded``: its
        packet as it went, when the sender had it (a prepared event)."""
        self._keep((stamp_ns or time.perf_counter_ns(), direction, "sio", name, (data, encoded)))

    def http(self, direction: str, what: str, size: int, stamp_ns: int) -> None:
        """A REST request or response (Ultravox's create): ``what`` names it without its query (``POST /api/calls``,
        ``HTTP 201``), ``size`` is its body's bytes."""
        self._keep((stamp_ns, direction, "http", what, size))

    # ---- after the cycle

    def record(self, timelines: list[Timeline], known: SentSummaries | None = None) -> dict[str, Any]:
        """What the iteration exchanged, for the master: plain types only (it crosses msgpack).

        ``timelines``: the cycle's own, then each warm turn's. Times are ns relative to the cycle's start
        (negative before it: a connect opened ahead of the cycle); ``cycle_start_ns`` is the cycle's start on
        this process's clock and ``wall_ns`` the same moment on the wall clock (where the iteration sits on a
        run's time axis). ``known``: the summaries of messages this user sent before (the same clip every cycle).
        """
        known = known if known is not None else SentSummaries()
        origin = timelines[0].cycle_start or 0
        now_perf, now_wall = time.perf_counter_ns(), time.time_ns()
        return {
            "cycle_start_ns": origin,
            "wall_ns": now_wall - (now_perf - origin),
            "turns": [{name: stamp - origin for name in STAMPS if (stamp := getattr(tl, name)) is not None}
                      for tl in timelines],
            "messages": [[stamp - origin, direction, *(known.summary(form, a, b) if direction == SENT else
                                                       summary(form, a, b))]
                         for stamp, direction, form, a, b in self._raw],
            "dropped": self.dropped,
        }


class SentSummaries:
    """The summaries of messages one user sent, by content: a clip goes out the same every cycle, and its summary
    (a JSON parse, a base64 decode and a hash of tens of KB) is made once. Bounded: emptied when full."""

    LIMIT = 256

    def __init__(self) -> None:
        self._known: dict[tuple[str, Any, Any], list[Any]] = {}

    def summary(self, form: str, a: Any, b: Any) -> list[Any]:
        """:func:`summary` of a sent message, made once per content (a WebSocket frame, a prepared Socket.IO packet)."""
        payload = b if form == "ws" else b[1] if form == "sio" and b[0] is None else None
        if payload is None:
            return summary(form, a, b)
        key = (form, a, payload)
        found = self._known.get(key)
        if found is None:
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            found = self._known[key] = summary(form, a, b)
        return list(found)


def summary(form: str, a: Any, b: Any) -> list[Any]:
    """``[type, size, audio_bytes, audio_hash]`` of one kept message (the last two None without audio)."""
    if form == "http":
        return [safe_type(a), int(b), None, None]
    if form == "sio":
        # the size of the WebSocket frame: Engine.IO's "4" + the Socket.IO packet ("2" + its JSON arguments, as
        # python-socketio encodes them; a prepared event's packet as it went)
        data, encoded = b
        if encoded is None:
            encoded = "2" + json.dumps([a] if data is None else [a, data], separators=(",", ":"))
        elif data is None:
            try:
                data = json.loads(encoded.lstrip("0123456789"))
            except ValueError:
                data = None
        return [safe_type(a), 1 + _byte_length(encoded), *_audio_of(data)]
    if a == OPCODE_CLOSE:
        return ["close", len(b or b""), None, None]
    if a == OPCODE_BINARY and not (isinstance(b, bytes) and b[:1] == b"{"):
        return ["audio", len(b), len(b), _hash(b)]
    size = len(b) if isinstance(b, bytes) else _byte_length(b)
    try:
        message = json.loads(b)
    except (ValueError, UnicodeDecodeError):
        if a == OPCODE_BINARY:
            return ["audio", size, size, _hash(b)]
        return ["undecodable", size, None, None]
    return [message_type(message), size, *_audio_of(message)]


def message_type(message: Any) -> str:
    """The protocol's own name of a JSON message: its ``type`` field (OpenAI, Deepgram, ElevenLabs, Ultravox), else
    its top-level key (Gemini; ElevenLabs' ``user_audio_chunk``), a Gemini ``serverContent`` by its parts."""
    if not isinstance(message, dict):
        return "json"
    kind = message.get("type")
    if isinstance(kind, str):
        return safe_type(kind)
    names = []
    for key, value in message.items():
        if key in IGNORED_KEYS and len(message) > 1:
            continue
        if key in EXPANDED_KEYS and isinstance(value, dict) and value:
            names.append(f"{key}." + "+".join(value))
        else:
            names.append(key)
    return safe_type("+".join(names) or "json")


def safe_type(name: str) -> str:
    """A type name as the trace may show it: a few plain characters, never a registered secret."""
    return TYPE_CHARS.sub("?", redact(str(name)))[:MAX_TYPE_CHARS]   # redacted whole: a cut key would not be


def _byte_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _audio_of(message: Any) -> tuple[int | None, str | None]:
    """The length (decoded bytes) and hash of the longest base64 string in ``message``: its audio payload."""
    payload = _longest_base64(message, 0)
    if payload is None:
        return None, None
    try:
        audio = binascii.a2b_base64(payload, strict_mode=True)   # checks and decodes in one pass (no regex)
    except (binascii.Error, ValueError):
        return None, None
    return len(audio), _hash(audio)


def _longest_base64(value: Any, depth: int) -> str | None:
    """The longest string of ``value`` that may be base64 (its decoding, in :func:`_audio_of`, decides)."""
    if isinstance(value, str):
        # a registered secret (a key in a start message) is never hashed
        if len(value) >= MIN_PAYLOAD_CHARS and " " not in value and redact(value) == value:
            return value
        return None
    if depth > 6:
        return None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    best = None
    for item in items:
        found = _longest_base64(item, depth + 1)
        if found is not None and (best is None or len(found) > len(best)):
            best = found
    return best


def _hash(data: bytes | str) -> str:
    """A short fingerprint of a payload (BLAKE2b, 64 bits): equal payloads have equal hashes; nothing else is kept."""
    return hashlib.blake2b(data.encode() if isinstance(data, str) else data, digest_size=8).hexdigest()

