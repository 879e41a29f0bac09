"""Checks of OpenAI Realtime (GA) client events against docs/protocols/openai-realtime.md; each deviation is one :class:`Problem`.

Unknown parameters are problems (the real service rejects them with
``unknown_parameter``), and so are the retired beta's session fields, with a
hint to where GA moved them. The reference server emulates PCM16 at 24 kHz
only, so other audio formats count too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bootbench.server.json_checks import Problem, check_keys, decode_pcm16, expect_type, json_type
from bootbench.wire import OPENAI_AUDIO_RATE

CLIENT_EVENTS = frozenset({
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
    "output_audio_buffer.clear", "response.create", "response.cancel", "conversation.item.create",
    "conversation.item.retrieve", "conversation.item.truncate", "conversation.item.delete",
})
"""Every client event type of the GA API (``openai.types.realtime.RealtimeClientEvent``)."""

EVENT_KEYS = {
    "session.update": {"type", "event_id", "session"},
    "input_audio_buffer.append": {"type", "event_id", "audio"},
    "input_audio_buffer.commit": {"type", "event_id"},
    "input_audio_buffer.clear": {"type", "event_id"},
    "response.create": {"type", "event_id", "response"},
    "response.cancel": {"type", "event_id", "response_id"},
}
SESSION_KEYS = frozenset({
    "type", "model", "instructions", "output_modalities", "audio", "tools", "tool_choice", "max_output_tokens",
    "tracing", "truncation", "prompt", "include", "reasoning", "parallel_tool_calls",
})
BETA_SESSION_KEYS = {
    "modalities": "GA: session.output_modalities",
    "voice": "GA: session.audio.output.voice",
    "input_audio_format": "GA: session.audio.input.format",
    "output_audio_format": "GA: session.audio.output.format",
    "turn_detection": "GA: session.audio.input.turn_detection",
    "input_audio_transcription": "GA: session.audio.input.transcription",
    "input_audio_noise_reduction": "GA: session.audio.input.noise_reduction",
    "max_response_output_tokens": "GA: session.max_output_tokens",
    "temperature": "not a GA session field",
}
AUDIO_INPUT_KEYS = frozenset({"format", "noise_reduction", "transcription", "turn_detection"})
AUDIO_OUTPUT_KEYS = frozenset({"format", "voice", "speed"})
TURN_DETECTION_KEYS = {
    "server_vad": frozenset({"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response",
                             "interrupt_response", "idle_timeout_ms"}),
    "semantic_vad": frozenset({"type", "eagerness", "create_response", "interrupt_response"}),
}


@dataclass
class Checked:
    """One client event after checking: the event (None if unusable), its problems, and decoded audio."""

    event: dict[str, Any] | None
    problems: list[Problem] = field(default_factory=list)
    pcm: bytes | None = None

    @property
    def kind(self) -> str | None:
        return self.event.get("type") if self.event is not None else None


def check_event(event: dict[str, Any], session_check: Callable[[Any, list[Problem]], None] | None = None,
                unsupported: frozenset[str] = frozenset()) -> Checked:
    """Check one decoded client event; ``Checked.event`` is None when its ``type`` is unusable.

    ``session_check`` checks a ``session.update``'s session (default: the GA shape, :func:`check_session`; the
    other services' shapes are in :mod:`.shapes`); ``unsupported`` are event types the service refuses.
    """
    problems: list[Problem] = []
    kind = event.get("type")
    if not isinstance(kind, str):
        problems.append(Problem(f"event without a string 'type' (got {json_type(kind)})", "missing_required_parameter",
                                "type"))
        return Checked(None, problems)
    if kind not in CLIENT_EVENTS or kind in unsupported:
        problems.append(Problem(f"unknown client event type {kind!r}", "invalid_value", "type"))
        return Checked(None, problems)
    checked = Checked(event, problems)
    if kind in EVENT_KEYS:
        check_keys(event, kind, EVENT_KEYS[kind], problems)
    expect_type(event, "event_id", kind, (str,), problems)
    if kind == "session.update":
        (session_check or check_session)(event.get("session"), problems)
    elif kind == "input_audio_buffer.append":
        if "audio" not in event:
            problems.append(Problem("input_audio_buffer.append: missing required parameter 'audio'",
                                    "missing_required_parameter", "audio"))
        else:
            checked.pcm = decode_pcm16(event["audio"], "input_audio_buffer.append.audio", problems)
    elif kind == "response.create":
        expect_type(event, "response", kind, (dict,), problems)
    return checked


def check_session(session: Any, problems: list[Problem]) -> None:
    """The ``session`` object of a ``session.update`` (GA shape)."""
    if not isinstance(session, dict):
        problems.append(Problem(f"session.update.session: must be an object, got {json_type(session)}",
                                "invalid_type", "session"))
        return
    check_keys(session, "session", SESSION_KEYS, problems,
               required=("type",), hints=BETA_SESSION_KEYS)
    if "type" in session and session["type"] != "realtime":
        problems.append(Problem(f"session.type: {session['type']!r} is not emulated (use 'realtime')",
                                "invalid_value", "session.type"))
    for key in ("instructions", "model"):
        expect_type(session, key, "session", (str,), problems)
    modalities = session.get("output_modalities")
    if "output_modalities" in session and modalities != ["audio"]:
        problems.append(Problem(f"session.output_modalities: {modalities!r} (the reference server answers with "
                                "audio only: ['audio'])", "invalid_value", "session.output_modalities"))
    audio = session.get("audio")
    if "audio" not in session or not expect_type(session, "audio", "session", (dict,), problems):
        return
    check_keys(audio, "session.audio", {"input", "output"}, problems)
    if expect_type(audio, "input", "session.audio", (dict,), problems) and "input" in audio:
        audio_input = audio["input"]
        check_keys(audio_input, "session.audio.input", AUDIO_INPUT_KEYS, problems)
        _check_format(audio_input, "session.audio.input", problems)
        if "turn_detection" in audio_input:
            check_turn_detection(audio_input["turn_detection"], problems)
    if expect_type(audio, "output", "session.audio", (dict,), problems) and "output" in audio:
        output = audio["output"]
        check_keys(output, "session.audio.output", AUDIO_OUTPUT_KEYS, problems)
        _check_format(output, "session.audio.output", problems)
        expect_type(output, "voice", "session.audio.output", (str, dict), problems)
        if expect_type(output, "speed", "session.audio.output", (int, float), problems) and "speed" in output:
            if not 0.25 <= output["speed"] <= 1.5:
                problems.append(Problem(f"session.audio.output.speed: {output['speed']} is outside 0.25..1.5",
                                        "invalid_value", "session.audio.output.speed"))


def check_turn_detection(value: Any, problems: list[Problem]) -> None:
    """``session.audio.input.turn_detection``: null (manual turns) or a server/semantic VAD object."""
    path = "session.audio.input.turn_detection"
    if value is None:
        return
    if not isinstance(value, dict):
        problems.append(Problem(f"{path}: must be an object or null, got {json_type(value)}", "invalid_type", path))
        return
    kind = value.get("type")
    if kind not in TURN_DETECTION_KEYS:
        problems.append(Problem(f"{path}.type: {kind!r} is not server_vad or semantic_vad", "invalid_value",
                                f"{path}.type"))
        return
    check_keys(value, path, TURN_DETECTION_KEYS[kind], problems)
    for key in ("create_response", "interrupt_response"):
        expect_type(value, key, path, (bool,), problems)
    for key in ("prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"):
        if expect_type(value, key, path, (int,), problems, nullable=key == "idle_timeout_ms") \
                and isinstance(value.get(key), int) and value[key] < 0:
            problems.append(Problem(f"{path}.{key}: must not be negative", "invalid_value", f"{path}.{key}"))
    if expect_type(value, "threshold", path, (int, float), problems) and "threshold" in value:
        if not 0 <= value["threshold"] <= 1:
            problems.append(Problem(f"{path}.threshold: {value['threshold']} is outside 0..1", "invalid_value",
                                    f"{path}.threshold"))


def _check_format(obj: dict[str, Any], path: str, problems: list[Problem]) -> None:
    if "format" not in obj or not expect_type(obj, "format", path, (dict,), problems):
        return
    fmt = obj["format"]
    check_keys(fmt, f"{path}.format", {"type", "rate"}, problems)
    if fmt.get("type", "audio/pcm") != "audio/pcm":
        problems.append(Problem(f"{path}.format.type: {fmt.get('type')!r} is not emulated (the reference server "
                                "speaks audio/pcm)", "invalid_value", f"{path}.format.type"))
    if fmt.get("rate", OPENAI_AUDIO_RATE) != OPENAI_AUDIO_RATE:
        problems.append(Problem(f"{path}.format.rate: {fmt.get('rate')!r} (audio/pcm is {OPENAI_AUDIO_RATE} Hz)",
                                "invalid_value", f"{path}.format.rate"))


def effective_session(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """The session after applying ``update`` to ``current``: nested objects merge, ``null`` clears."""
    merged = dict(current)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key not in ("turn_detection", "format"):
            merged[key] = effective_session(merged[key], value)
        else:
            merged[key] = value
    return merged
