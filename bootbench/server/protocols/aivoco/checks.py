"""Checks of Aivoco client messages against docs/protocols/aivoco.md; each deviation is one violation string.

Client audio must be raw PCM16 LE mono 16 kHz in base64; ``max_amplitude``
must be the chunk peak (``max |sample| / 32768``) within
:data:`AMPLITUDE_TOLERANCE`, and ``has_audio`` must be
``peak > SILENCE_THRESHOLD`` (either value is accepted within two LSBs of
the threshold).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from typing import Any

from bootbench.server.json_checks import json_type
from bootbench.server.pcm import pcm16_peak
from bootbench.wire import SILENCE_THRESHOLD

AMPLITUDE_TOLERANCE = 0.01
"""``max_amplitude`` may differ from the chunk's ``max |sample| / 32768`` by at most this."""
START_CALL_TYPES: dict[str, type] = {"auth_key": str, "system_message": str, "voice_choice": str,
                                     "custom_functions": list}
AUDIO_DATA_KEYS = ("audio_data", "has_audio", "max_amplitude")
_THRESHOLD_BAND = 2 / 32768


def _single_payload(event: str, args: tuple[Any, ...], problems: list[str]) -> Any:
    if len(args) != 1:
        problems.append(f"{event}: expected one payload argument, got {len(args)}")
    return args[0] if args else None


def _check_keys(event: str, payload: dict[str, Any], expected: tuple[str, ...], problems: list[str]) -> None:
    problems.extend(f"{event}: missing key {k!r}" for k in expected if k not in payload)
    problems.extend(f"{event}: unexpected key {k!r}" for k in payload if k not in expected)


def check_start_call(args: tuple[Any, ...]) -> list[str]:
    """Protocol violations in a ``start_call`` message's arguments."""
    problems: list[str] = []
    payload = _single_payload("start_call", args, problems)
    if not isinstance(payload, dict):
        problems.append(f"start_call: payload must be an object, got {json_type(payload)}")
        return problems
    _check_keys("start_call", payload, tuple(START_CALL_TYPES), problems)
    for key, expected in START_CALL_TYPES.items():
        if key in payload and not isinstance(payload[key], expected):
            want = "a string" if expected is str else "an array"
            problems.append(f"start_call: {key!r} must be {want}, got {json_type(payload[key])}")
    return problems


@dataclass
class AudioCheck:
    """Result of checking one ``audio_data`` message: violations and the decoded PCM if usable."""

    problems: list[str] = field(default_factory=list)
    pcm: bytes | None = None
    peak: float | None = None


def _decode_pcm(value: Any, problems: list[str]) -> bytes | None:
    if not isinstance(value, str):
        problems.append(f"audio_data: 'audio_data' must be a base64 string, got {json_type(value)}")
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        problems.append("audio_data: 'audio_data' is not valid base64")
        return None
    if not raw:
        problems.append("audio_data: 'audio_data' is empty")
        return None
    if raw.startswith(b"RIFF"):
        problems.append("audio_data: 'audio_data' starts with a RIFF header (send raw PCM16, not a WAV container)")
        return None
    if len(raw) % 2:
        problems.append(f"audio_data: odd byte length {len(raw)} (PCM16 needs whole 2-byte samples)")
        return None
    return raw


def check_audio_data(args: tuple[Any, ...]) -> AudioCheck:
    """Check an ``audio_data`` message: shape, PCM encoding, and ``has_audio``/``max_amplitude`` against the PCM."""
    check = AudioCheck()
    problems = check.problems
    payload = _single_payload("audio_data", args, problems)
    if not isinstance(payload, dict):
        problems.append(f"audio_data: payload must be an object, got {json_type(payload)}")
        return check
    _check_keys("audio_data", payload, AUDIO_DATA_KEYS, problems)
    if "audio_data" in payload:
        check.pcm = _decode_pcm(payload["audio_data"], problems)
    has_audio = payload.get("has_audio")
    if "has_audio" in payload and not isinstance(has_audio, bool):
        problems.append(f"audio_data: 'has_audio' must be a boolean, got {json_type(has_audio)}")
        has_audio = None
    amplitude = payload.get("max_amplitude")
    if "max_amplitude" in payload:
        if isinstance(amplitude, bool) or not isinstance(amplitude, (int, float)):
            problems.append(f"audio_data: 'max_amplitude' must be a number, got {json_type(amplitude)}")
            amplitude = None
        elif not (math.isfinite(amplitude) and 0.0 <= amplitude <= 1.0):
            problems.append(f"audio_data: 'max_amplitude' {amplitude!r} is outside 0..1")
            amplitude = None
    if check.pcm is None:
        return check
    peak = check.peak = pcm16_peak(check.pcm)
    if amplitude is not None and abs(amplitude - peak) > AMPLITUDE_TOLERANCE:
        problems.append(f"audio_data: 'max_amplitude' {amplitude:.4f} does not match the chunk peak {peak:.4f} "
                        f"(tolerance {AMPLITUDE_TOLERANCE})")
    if (has_audio is not None and has_audio != (peak > SILENCE_THRESHOLD)
            and abs(peak - SILENCE_THRESHOLD) > _THRESHOLD_BAND):
        problems.append(f"audio_data: 'has_audio' is {str(has_audio).lower()} but the chunk peak is {peak:.4f} "
                        f"(has_audio means peak > {SILENCE_THRESHOLD})")
    return check
