"""How the faults of :mod:`bootbench.server.faults` look on the ElevenLabs Agents wire (docs/protocols/elevenlabs.md).

The service reports an error by sending ``{"type": "error", "error_event":
{"code", "message", "error_type"}}`` and closing with that code (1002
operational, 1008 input/contract/auth, 1011 internal; ElevenLabs' AsyncAPI
description); the agent ending a conversation closes with 1000. The
messages are the reference server's words for the situations ElevenLabs
names (its error types, its REST statuses ``invalid_api_key``,
``quota_exceeded``, ``too_many_concurrent_requests``). With ``echo=yes``
(``auth``, ``error``) the message quotes the key the client presented to
the signed-URL request, so tests can prove the client never lets it out;
the server itself never logs or records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bootbench.server.faults import FaultForms, FaultSpec

AUTH_ERROR = (1008, "value_error", "Authentication failed: the conversation signature is invalid or has expired")
"""The ``auth`` fault: the conversation is refused as unauthenticated (close 1008, an auth error)."""
ERRORS = {
    "insufficient_credits": (1002, "http_exception", "quota_exceeded: this conversation exceeds your credit quota"),
    "invalid_api_key": (1008, "value_error", "invalid_api_key: Invalid API key"),
    "rate_limit_exceeded": (1002, "http_exception",
                            "too_many_concurrent_requests: the workspace's concurrent conversation limit is reached"),
}
"""The ``error`` fault's types as the service would close the conversation: (code, error_type, message)."""
END_MESSAGES = {
    "insufficient_user_credits": "Conversation ended: the user has no credits left",
    "insufficient_admin_units": "Conversation ended: the workspace has no credits left",
}
"""The ``end`` fault: the agent ends the conversation (close 1000) with this reason."""
HUGE_BYTES = 8 * 1024 * 1024
"""Size of the ``malformed:what=huge`` audio event: 8 MiB of base64 (6 MiB of PCM silence), under the 16 MiB limit."""


def echo(fault: FaultSpec | None, key: str) -> str:
    """The tail quoting the client's key that ``fault`` adds to its message ("" without ``echo=yes``)."""
    if fault is not None and dict(fault.options).get("echo") == "yes" and key:
        return f" (key: {key})"
    return ""


def error_event(code: int, error_type: str, message: str) -> dict[str, Any]:
    """The service's error message, sent before it closes the socket with ``code``."""
    return {"type": "error", "error_event": {"code": code, "message": message, "error_type": error_type,
                                             "reason": message.split(":")[0], "debug_message": None, "details": None}}


def fault_error(fault: FaultSpec, key_echo: str) -> tuple[int, dict[str, Any]]:
    """The close code and error message of an ``auth`` or ``error`` fault."""
    code, error_type, message = AUTH_ERROR if fault.kind == "auth" else ERRORS[fault.option("type")]
    return code, error_event(code, error_type, message + key_echo)


@dataclass(frozen=True)
class Malformed:
    """What to send instead of the answer's first ``audio`` event: raw text, or a JSON value."""

    raw: str | None = None
    payload: Any = None


def malformed_audio(fault: FaultSpec, chunk: str, event_id: int) -> Malformed:
    """The malformed first audio event of a ``malformed`` fault; ``chunk`` is the good first chunk."""
    what = fault.option("what")
    if what == "not_json":
        return Malformed(raw='{"type": "audio", "audio_event": {"audio_base_64": "' + chunk[:64])
    if what == "not_object":
        return Malformed(payload=["audio", chunk[:64]])
    if what == "wrong_type":
        return Malformed(payload={"type": "audio", "audio_event": {"audio_base_64": chunk, "event_id": str(event_id)}})
    if what == "missing_field":
        return Malformed(payload={"type": "audio", "audio_event": {"audio_base_64": chunk}})
    if what == "bad_base64":
        return Malformed(payload={"type": "audio", "audio_event": {"audio_base_64": "%%not*base64%%" + chunk[:32],
                                                                   "event_id": event_id}})
    return Malformed(payload={"type": "audio", "audio_event": {"audio_base_64": _huge(), "event_id": event_id}})


@lru_cache(maxsize=1)
def _huge() -> str:
    return "A" * HUGE_BYTES


def fault_forms() -> FaultForms:
    """ElevenLabs' forms: its close codes and words (:data:`ERRORS`, the default first) and end reasons; an error
    after the input is the same ``error`` event and close, instead of the answer."""
    return FaultForms(
        words={"type": ("rate_limit_exceeded", "insufficient_credits", "invalid_api_key"),
               "reason": tuple(END_MESSAGES)},
        says={"stray": "holds back {chunks} reply chunks of turn 1, sends them as the next turn begins"},
        message=said)


def said(spec: FaultSpec) -> str:
    """ElevenLabs' words a session struck by ``spec`` receives (its key shown as bootbench masks it, ***)."""
    if spec.kind in ("auth", "error"):
        message = AUTH_ERROR[2] if spec.kind == "auth" else ERRORS[spec.option("type")][2]
        return message + echo(spec, "***")
    if spec.kind == "end":
        return END_MESSAGES[spec.option("reason")]
    return ""
