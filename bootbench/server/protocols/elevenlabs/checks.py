"""The strict checks of ElevenLabs Agents client messages (docs/protocols/elevenlabs.md).

What the service's own description of the wire allows (ElevenLabs'
AsyncAPI ``agent.asyncapi.yaml``, checked 2026-12-03): an audio message is
the object with ``user_audio_chunk`` (no ``type``), every other message
has a ``type`` from :data:`CLIENT_TYPES`; ``pong`` carries an integer
``event_id``. A refused message is answered as the service does: an
``error`` event with its ``error_type``, then close 1008.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootbench.server.json_checks import Problem, decode_pcm16, expect_type, json_type

CLIENT_TYPES = frozenset({"pong", "user_message", "user_activity", "feedback", "client_tool_result",
                          "mcp_tool_approval_result", "contextual_update", "conversation_initiation_client_data",
                          "multimodal_message"})
"""Every client message type of the AsyncAPI description (the audio message has none)."""
INITIATION = "conversation_initiation_client_data"
ALLOWED_OVERRIDES = frozenset({("agent", "prompt", "prompt"), ("agent", "prompt", "llm"), ("agent", "first_message"),
                               ("agent", "language"), ("tts", "voice_id")})
"""What the emulated agent lets a conversation override (an agent's owner chooses these on ElevenLabs' side)."""
OBJECT_FIELDS = ("conversation_config_override", "custom_llm_extra_body", "dynamic_variables", "source_info")


@dataclass
class Checked:
    """One client message: its kind (``audio`` or its ``type``), the message, the decoded PCM16 of an audio one."""

    kind: str | None
    message: dict[str, Any]
    pcm: bytes | None = None
    problems: list[Problem] = field(default_factory=list)


def check_message(message: dict[str, Any]) -> Checked:
    """Check one client message; the problems carry the service's ``error_type`` as their code."""
    problems: list[Problem] = []
    if "user_audio_chunk" in message:
        found: list[Problem] = []
        pcm = decode_pcm16(message["user_audio_chunk"], "user_audio_chunk", found)
        return Checked("audio", message, pcm, [Problem(p.message, "invalid_message") for p in found])
    kind = message.get("type")
    if kind is None:
        problems.append(Problem("a message with neither user_audio_chunk nor type", "missing_fields"))
        return Checked(None, message, None, problems)
    if not isinstance(kind, str) or kind not in CLIENT_TYPES:
        problems.append(Problem(f"unknown message type {kind!r}", "invalid_message"))
        return Checked(None, message, None, problems)
    if kind == "pong":
        event_id = message.get("event_id")
        if "event_id" not in message:
            problems.append(Problem("pong: missing required field event_id", "missing_fields"))
        elif not isinstance(event_id, int) or isinstance(event_id, bool):
            problems.append(Problem(f"pong: event_id must be an integer, got {json_type(event_id)}",
                                    "invalid_message"))
    elif kind == INITIATION:
        _check_initiation(message, problems)
    return Checked(kind, message, None, problems)


def _check_initiation(message: dict[str, Any], problems: list[Problem]) -> None:
    found: list[Problem] = []
    for key in OBJECT_FIELDS:
        expect_type(message, key, INITIATION, (dict,), found, nullable=True)
    expect_type(message, "user_id", INITIATION, (str,), found, nullable=True)
    problems += [Problem(p.message, "value_error") for p in found]
    override = message.get("conversation_config_override")
    if isinstance(override, dict):
        for path in _leaves(override, ()):
            if path not in ALLOWED_OVERRIDES:
                problems.append(Problem(f"Override for field '{'.'.join(path)}' is not allowed by config.",
                                        "override_error"))


def _leaves(value: dict[str, Any], path: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The paths of the values set in an override (an empty object sets nothing)."""
    found: list[tuple[str, ...]] = []
    for key, item in value.items():
        if isinstance(item, dict) and (*path, key) not in ALLOWED_OVERRIDES:
            found += _leaves(item, (*path, key))
        elif item is not None:
            found.append((*path, key))
    return found
