"""How the faults of :mod:`bootbench.server.faults` look on the Deepgram Voice Agent wire (docs/protocols/deepgram.md).

Every fault strikes a numbered session, and a session exists from its
``Settings`` on, so the faults act from there: ``auth`` and ``error`` answer
the ``Settings`` with an ``Error`` (then close) instead of ``SettingsApplied``
(``error:when=after_input`` answers the user's turn with it instead);
``end`` answers the user's turn with ``SERVER_GOING_AWAY``; ``silent_audio``
sends the answer's binary audio with every sample zero. The codes
``INVALID_AUTH`` (the words of Deepgram's 401 body) and ``SERVER_GOING_AWAY``
are the service's; ``INSUFFICIENT_CREDITS`` and ``TOO_MANY_REQUESTS`` and
every description are the emulation's own words (Deepgram documents no agent
error for credits or rate limits). ``stray`` does not apply: one socket
carries one session, so no next session on the connection can receive held-back
audio. With ``echo=yes`` the description quotes the key the client sent
(never logged), so tests can prove the client never lets it out.
"""

from __future__ import annotations

from typing import Any

from bootbench.server.faults import FaultForms, FaultSpec

AUTH_ERROR = ("INVALID_AUTH", "Invalid credentials.")
ERRORS = {
    "invalid_api_key": AUTH_ERROR,
    "insufficient_credits": ("INSUFFICIENT_CREDITS", "Project does not have enough credits for an agent session."),
    "rate_limit_exceeded": ("TOO_MANY_REQUESTS", "Too many concurrent agent sessions for this project; retry later."),
}
"""``error:type=...``: the ``Error`` code and description sent instead of ``SettingsApplied``."""
END_ERROR = ("SERVER_GOING_AWAY", "The server running this agent session is shutting down.")
"""``end`` (whatever its ``reason``): the ``Error`` that ends the session instead of the answer."""
UNSUPPORTED = frozenset({"stray"})
"""Kinds that have no form on this wire (one session per socket): the session runs without a fault."""
HUGE_BYTES = 8 * 1024 * 1024
"""Size of the ``malformed:what=huge`` frame: 8 MiB of text where binary audio belongs."""


def echo(fault: FaultSpec | None, key: str) -> str:
    """The tail quoting the client's key that ``fault`` adds to its description ("" without ``echo=yes``)."""
    if fault is not None and dict(fault.options).get("echo") == "yes":
        return f" (key: {key})"
    return ""


def error_message(code: str, description: str) -> dict[str, Any]:
    return {"type": "Error", "description": description, "code": code}


def fault_error(fault: FaultSpec, key_echo: str = "") -> dict[str, Any]:
    """The ``Error`` of an ``auth``, ``error`` or ``end`` fault."""
    if fault.kind == "auth":
        code, description = AUTH_ERROR
    elif fault.kind == "error":
        code, description = ERRORS[fault.option("type")]
    else:
        code, description = END_ERROR
    return error_message(code, description + key_echo)


def malformed_frame(fault: FaultSpec, chunk_b64: str) -> str:
    """The text frame a ``malformed`` fault sends instead of the first reply audio (``chunk_b64``: that audio)."""
    what = fault.option("what")
    if what == "not_json":
        return '{"type": "AgentAudioDone"'
    if what == "not_object":
        return '["AgentAudioDone"]'
    if what == "wrong_type":
        return '{"type": 42}'
    if what == "missing_field":
        return '{"description": "a message without its type"}'
    if what == "bad_base64":
        return chunk_b64   # the audio as base64 text, where a binary frame belongs
    return "A" * HUGE_BYTES


def fault_forms() -> FaultForms:
    """Deepgram's forms: its ``Error`` words (:data:`ERRORS`, the default first), no ``stray`` (one session per
    socket)."""
    return FaultForms(
        words={"type": ("rate_limit_exceeded", "insufficient_credits", "invalid_api_key"),
               "reason": ("server_going_away",)},   # END_ERROR, the one way the service ends a session
        missing={"stray": "one socket carries one session: no next session can receive held-back audio"},
        message=said)


def said(spec: FaultSpec) -> str:
    """Deepgram's words a session struck by ``spec`` receives (its key shown as bootbench masks it, ***)."""
    if spec.kind in ("auth", "error"):
        code, description = AUTH_ERROR if spec.kind == "auth" else ERRORS[spec.option("type")]
        return f"{code}: {description}{echo(spec, '***')}"
    if spec.kind == "end":
        return f"{END_ERROR[0]}: {END_ERROR[1]}"
    return ""
