"""How the faults of :mod:`bootbench.server.faults` look on Ultravox's wire (docs/protocols/ultravox.md).

A call is refused where the service refuses one: at its create request, with an HTTP status and a
``{"detail": ...}`` body (the service's Django REST API shape; the words are the emulation's, Ultravox
documents none). A call the agent ends is closed with a close frame whose reason names the end; an error
after the input (``error:when=after_input``) closes the call with code 1011 and the error's detail as the
reason (the emulation's choice: Ultravox documents no mid-call error message). Audio
is raw PCM16 in binary frames, so ``malformed:what=bad_base64`` is a binary frame of an odd length
(not whole 16-bit samples). ``stray`` does not apply: every call has a socket of its own.
"""

from __future__ import annotations

from typing import Any

from bootbench.server.faults import FaultForms, FaultSpec

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
ERROR_CLOSE_CODE = 1011
"""The close code of a call ended by an error after the input (WebSocket's "internal error")."""
HUGE_BYTES = 8 * 1024 * 1024
APPLIES = ("auth", "error", "never_ready", "silence", "silent_audio", "drop", "end", "malformed", "slow")
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


def fault_forms() -> FaultForms:
    """Ultravox's forms: its create request's refusals (:data:`ERRORS`, the default first), its end reasons, no
    ``stray`` (a socket per call)."""
    return FaultForms(
        words={"type": ("rate_limit_exceeded", "insufficient_credits", "invalid_api_key"),
               "reason": tuple(END_REASONS)},
        missing={"stray": "every call has a socket of its own: no next session can receive held-back audio"},
        message=said)


def said(spec: FaultSpec) -> str:
    """Ultravox's words a session struck by ``spec`` receives (its key shown as bootbench masks it, ***)."""
    if spec.kind in ("auth", "error"):
        detail = AUTH_DETAIL if spec.kind == "auth" else ERRORS[spec.option("type")][1]
        if spec.kind == "error" and spec.option("when") == "after_input":
            return detail   # a close reason: the key is never quoted there
        return detail + echo(spec, "***")
    if spec.kind == "end":
        return END_REASONS[spec.option("reason")]
    return ""
