"""How the faults of :mod:`bootbench.server.faults` look on Ultravox's wire (docs/protocols/ultravox.md).

A call is refused where the service refuses one: at its create request, with an HTTP status and a
``{"detail": ...}`` body (the service's Django REST API shape; the words are the emulation's, Ultravox
documents none). A call the agent ends is closed with a close frame whose reason names the end. Audio
is raw PCM16 in binary frames, so ``malformed:what=bad_base64`` is a binary frame of an odd length
(not whole 16-bit samples). ``stray`` does not apply: every call has a socket of its own.
"""

from __future__ import annotations

from typing import Any

from bootbench.server.faults import FaultSpec

AUTH_DETAIL = "Invalid API key."
NO_KEY_DETAIL = "Authentication credentials were not provided."
ERRORS: dict[str, tuple[int, str]] = {
    "insufficient_credits": (402, "Your account has no call time left."),
    "invalid_api_key": (401, AUTH_DETAIL),
    "rate_limit_exceeded": (429, "Request was throttled. Expected available in 1 second."),
}
"""The ``error`` fault's ``type`` -> the create request's status and detail."""
END_REASONS = {
    "insufficient_user_credits": "system_error: the account ran out of call time",
    "insufficient_admin_units": "system_error: the account's concurrency limit was reached",
}
"""The ``end`` fault's ``reason`` -> the close reason of the call the agent ends (code 1000)."""
HUGE_BYTES = 8 * 1024 * 1024
APPLIES = ("auth", "error", "never_ready", "silence", "drop", "end", "malformed", "slow")
"""The fault kinds this wire has (``stray`` has no next session on a call's socket)."""


def echo(fault: FaultSpec | None, key: str) -> str:
    """The tail quoting the client's key that ``fault`` adds to its message ("" without ``echo=yes``)."""
    if fault is not None and dict(fault.options).get("echo") == "yes":
        return f" (key: {key})"
    return ""


def error_reply(fault: FaultSpec, key_echo: str = "") -> tuple[int, dict[str, Any]]:
    """The status and body an ``error`` fault answers the create request with."""
    status, detail = ERRORS[fault.option("type")]
    return status, {"detail": detail + key_echo}


def malformed_frame(fault: FaultSpec) -> str | bytes:
    """The frame a ``malformed`` fault sends instead of the answer's first audio."""
    what = fault.option("what")
    if what == "not_json":
        return '{"type": "state", "state": "speak'
    if what == "not_object":
        return '["state", "speaking"]'
    if what == "wrong_type":
        return '{"type": "state", "state": 12345}'
    if what == "missing_field":
        return '{"state": "speaking"}'
    if what == "bad_base64":
        return b"\x00\x01\x02"   # raw PCM16 has no base64: a frame of an odd length is its malformed form
    return bytes(HUGE_BYTES)
