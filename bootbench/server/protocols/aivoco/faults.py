"""How the faults of :mod:`.faults` look on Aivoco's Socket.IO wire (docs/protocols/aivoco.md).

The messages are the reference server's words; a client is expected to pass
them on. With ``echo=yes`` (``auth``, ``error``) the message quotes the key
the client sent, as some services do, so tests can prove the client never
lets it out; the server itself never logs or records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bootbench.server.faults import FaultSpec

AUTH_MESSAGE = "Invalid API key"
ERROR_MESSAGES = {
    "insufficient_credits": "Insufficient credits to start a call",
    "invalid_api_key": "Invalid API key",
    "rate_limit_exceeded": "Rate limit exceeded, retry later",
}
END_MESSAGES = {
    "insufficient_user_credits": "Call ended: the user has no credits left",
    "insufficient_admin_units": "Call ended: the account has no units left",
}
HUGE_BYTES = 8 * 1024 * 1024
"""Size of the ``malformed:what=huge`` reply: one 8 MiB base64 string (6 MiB of PCM silence)."""


def echo(fault: FaultSpec | None, key: str) -> str:
    """The tail quoting the client's key that ``fault`` adds to its message ("" without ``echo=yes``)."""
    if fault is not None and dict(fault.options).get("echo") == "yes":
        return f" (key: {key})"
    return ""


def error_event(fault: FaultSpec, key_echo: str = "") -> dict[str, Any]:
    """The ``error`` payload of an ``error`` fault (``key_echo`` from :func:`echo`)."""
    error_type = fault.option("type")
    return {"message": ERROR_MESSAGES[error_type] + key_echo, "type": error_type}


def ended_event(fault: FaultSpec) -> dict[str, Any]:
    """The ``session_ended`` payload of an ``end`` fault."""
    reason = fault.option("reason")
    return {"reason": reason, "message": END_MESSAGES[reason], "total_credits_used": 0, "remaining_credits": 0}


@dataclass(frozen=True)
class MalformedReply:
    """What to send instead of the first ``audio_response``: a raw Engine.IO message, or a bad payload."""

    raw: str | None = None
    payload: Any = None


def malformed_reply(fault: FaultSpec, chunk: str) -> MalformedReply:
    """The malformed first reply of a ``malformed`` fault; ``chunk`` is the good first chunk."""
    what = fault.option("what")
    if what == "not_json":
        return MalformedReply(raw='2["audio_response",{"audio_data":"' + chunk[:64])
    if what == "not_object":
        return MalformedReply(payload="audio follows")
    if what == "wrong_type":
        return MalformedReply(payload={"audio_data": 12345})
    if what == "missing_field":
        return MalformedReply(payload={"audio": chunk})
    if what == "bad_base64":
        return MalformedReply(payload={"audio_data": "%%not*base64%%" + chunk[:32]})
    return MalformedReply(payload={"audio_data": _huge()})


@lru_cache(maxsize=1)
def _huge() -> str:
    return "A" * HUGE_BYTES
