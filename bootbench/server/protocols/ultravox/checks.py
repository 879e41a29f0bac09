"""What the Ultravox emulation accepts in a create request and in a call's data messages (docs/protocols/ultravox.md).

:func:`check_call` reads a ``POST /api/calls`` body against the documented ``StartCallRequest``: every
problem with a ``code`` is refused with HTTP 400, as the service refuses a body it cannot parse (a
protobuf-backed API: unknown fields, wrong types). It returns the few settings the emulation acts on.
:func:`check_data_message` reads a client's JSON text frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bootbench.server.json_checks import Problem, check_keys, expect_type, note
from bootbench.wire import ULTRAVOX_TURN_END_MS

CALL_FIELDS = frozenset({
    "systemPrompt", "temperature", "model", "voice", "externalVoice", "languageHint", "initialMessages",
    "joinTimeout", "maxDuration", "timeExceededMessage", "inactivityMessages", "selectedTools", "medium",
    "recordingEnabled", "firstSpeaker", "transcriptOptional", "initialOutputMedium", "vadSettings",
    "firstSpeakerSettings", "experimentalSettings", "metadata", "initialState", "dataConnection",
})
"""``ultravox.v1.StartCallRequest``'s fields (the Create Call API reference, checked 2026-12-03)."""
MEDIUMS = frozenset({"webRtc", "twilio", "serverWebSocket", "telnyx", "plivo", "exotel", "sip"})
WEBSOCKET_FIELDS = frozenset({"inputSampleRate", "outputSampleRate", "clientBufferSizeMs", "dataMessages"})
FIRST_SPEAKERS = {"FIRST_SPEAKER_AGENT": "agent", "FIRST_SPEAKER_USER": "user", "FIRST_SPEAKER_UNSPECIFIED": None}
AGENT_GREETING_FIELDS = frozenset({"uninterruptible", "text", "prompt", "delay"})
USER_GREETING_FIELDS = frozenset({"fallback"})
VAD_FIELDS = frozenset({"turnEndpointDelay", "minimumTurnDuration", "minimumInterruptionDuration",
                        "frameActivationThreshold"})
DURATION = re.compile(r"^-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{1,9})?s$")
"""A protobuf JSON Duration ("0.384s"), the schema's pattern."""
CLIENT_MESSAGES = frozenset({"ping", "user_text_message", "set_output_medium", "client_tool_result",
                             "forced_agent_message", "hang_up", "data_connection_tool_result"})
"""The data messages a client may send (the Data Messages page, checked 2026-12-03)."""
RATES = range(8_000, 48_001)


@dataclass(frozen=True)
class CallSettings:
    """What the emulation acts on from a valid create request."""

    input_rate: int
    output_rate: int
    agent_first: bool
    """The agent opens the call (``firstSpeakerSettings.agent``, the service's default)."""
    turn_end_ms: float
    """``vadSettings.turnEndpointDelay``: the trailing silence that ends a user turn."""
    join_timeout_s: float = 30.0
    """``joinTimeout``: how long the call waits to be joined (the service's default 30 s)."""


def check_call(body: Any) -> tuple[list[Problem], CallSettings | None]:
    """The problems of a create request's body, and its settings when none is refused."""
    problems: list[Problem] = []
    if not isinstance(body, dict):
        return [Problem("the body is not a JSON object", "invalid")], None
    check_keys(body, "body", CALL_FIELDS, problems)
    for key in ("systemPrompt", "model", "voice", "languageHint", "timeExceededMessage", "joinTimeout",
                "maxDuration"):
        expect_type(body, key, "body", (str,), problems)
    for key in ("joinTimeout", "maxDuration"):
        if isinstance(body.get(key), str) and not DURATION.match(body[key]):
            problems.append(Problem(f"body.{key}: {body[key]!r} is not a duration like \"30s\"", "invalid"))
    if expect_type(body, "temperature", "body", (int, float), problems) and "temperature" in body:
        if not 0 <= body["temperature"] <= 1:
            problems.append(Problem(f"body.temperature: {body['temperature']} is not between 0 and 1", "invalid"))
    if "voice" in body and "externalVoice" in body:
        problems.append(Problem("body: set voice or externalVoice, not both", "invalid"))
    rates = _medium(body.get("medium"), problems)
    agent_first = _first_speaker(body, problems)
    turn_end_ms = _vad(body.get("vadSettings"), problems)
    if any(p.code for p in problems) or rates is None:
        return problems, None
    join_timeout = float(body["joinTimeout"][:-1]) if isinstance(body.get("joinTimeout"), str) else 30.0
    return problems, CallSettings(rates[0], rates[1], agent_first, turn_end_ms, max(join_timeout, 0.0))


def _medium(medium: Any, problems: list[Problem]) -> tuple[int, int] | None:
    """The call's input and output rates from ``medium.serverWebSocket``; None with a problem otherwise."""
    if medium is None:
        # The service would create a WebRTC call (its default medium); this emulation serves raw WebSockets only.
        problems.append(Problem("body.medium: not set (a WebRTC call, which this emulation does not serve; "
                                "set medium.serverWebSocket)", "invalid"))
        return None
    if not isinstance(medium, dict):
        problems.append(Problem("body.medium: must be an object", "invalid"))
        return None
    check_keys(medium, "body.medium", MEDIUMS, problems)
    if len(medium) > 1:
        problems.append(Problem("body.medium: at most one call medium may be set", "invalid"))
    socket = medium.get("serverWebSocket")
    if not isinstance(socket, dict):
        if not any(p.code for p in problems):
            problems.append(Problem(f"body.medium: {', '.join(medium) or 'none'} is not serverWebSocket (this "
                                    f"emulation serves raw WebSocket calls only)", "invalid"))
        return None
    path = "body.medium.serverWebSocket"
    check_keys(socket, path, WEBSOCKET_FIELDS, problems, required=("inputSampleRate",))
    rates = []
    for key in ("inputSampleRate", "outputSampleRate", "clientBufferSizeMs"):
        if expect_type(socket, key, path, (int,), problems) and key in socket:
            value = socket[key]
            if key != "clientBufferSizeMs" and value not in RATES:
                problems.append(Problem(f"{path}.{key}: {value} Hz is not a sample rate from 8000 to 48000",
                                        "invalid"))
            elif key == "clientBufferSizeMs" and value <= 0:
                problems.append(Problem(f"{path}.{key}: {value} is not a positive number of ms", "invalid"))
    if isinstance(socket.get("inputSampleRate"), int):
        rates = [socket["inputSampleRate"], socket.get("outputSampleRate", socket["inputSampleRate"])]
    return (rates[0], rates[1]) if len(rates) == 2 and all(isinstance(r, int) for r in rates) else None


def _first_speaker(body: dict[str, Any], problems: list[Problem]) -> bool:
    """True when the agent speaks first (the default); problems for a bad or contradictory choice."""
    legacy = body.get("firstSpeaker")
    legacy_side = None
    if legacy is not None:
        if legacy not in FIRST_SPEAKERS:
            problems.append(Problem(f"body.firstSpeaker: {legacy!r} is not one of {', '.join(FIRST_SPEAKERS)}",
                                    "invalid"))
        else:
            legacy_side = FIRST_SPEAKERS[legacy]
            problems.append(note("body.firstSpeaker is deprecated (use firstSpeakerSettings)"))
    settings = body.get("firstSpeakerSettings")
    if settings is None:
        return legacy_side != "user"
    if not isinstance(settings, dict):
        problems.append(Problem("body.firstSpeakerSettings: must be an object", "invalid"))
        return True
    sides = [side for side in ("user", "agent") if side in settings]
    check_keys(settings, "body.firstSpeakerSettings", {"user", "agent"}, problems)
    if len(sides) != 1:
        problems.append(Problem("body.firstSpeakerSettings: set exactly one of user and agent", "invalid"))
        return True
    side = sides[0]
    greeting = settings[side]
    if not isinstance(greeting, dict):
        problems.append(Problem(f"body.firstSpeakerSettings.{side}: must be an object", "invalid"))
    else:
        check_keys(greeting, f"body.firstSpeakerSettings.{side}",
                   AGENT_GREETING_FIELDS if side == "agent" else USER_GREETING_FIELDS, problems)
    if legacy_side is not None and legacy_side != side:
        problems.append(Problem(f"body: firstSpeaker {legacy!r} and firstSpeakerSettings.{side} do not match",
                                "invalid"))
    return side == "agent"


def _vad(settings: Any, problems: list[Problem]) -> float:
    """``turnEndpointDelay`` in ms (the service's 384 when not set)."""
    if settings is None:
        return float(ULTRAVOX_TURN_END_MS)
    if not isinstance(settings, dict):
        problems.append(Problem("body.vadSettings: must be an object", "invalid"))
        return float(ULTRAVOX_TURN_END_MS)
    check_keys(settings, "body.vadSettings", VAD_FIELDS, problems)
    delay = float(ULTRAVOX_TURN_END_MS)
    for key in ("turnEndpointDelay", "minimumTurnDuration", "minimumInterruptionDuration"):
        value = settings.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not DURATION.match(value) or value.startswith("-"):
            problems.append(Problem(f"body.vadSettings.{key}: {value!r} is not a duration like \"0.384s\"",
                                    "invalid"))
        elif key == "turnEndpointDelay":
            delay = 1000 * float(value[:-1])
    return delay


def check_data_message(message: dict[str, Any]) -> list[Problem]:
    """Problems of a client data message (a JSON text frame)."""
    kind = message.get("type")
    if not isinstance(kind, str):
        return [Problem("data message: no 'type'", "invalid")]
    if kind not in CLIENT_MESSAGES:
        return [Problem(f"data message: unknown type {kind!r}", "invalid")]
    return []
