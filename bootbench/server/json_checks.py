"""Building blocks of the strict checks of JSON client messages (OpenAI Realtime, Gemini Live).

A check appends :class:`Problem` records: ``message`` is what is counted and
logged; ``code`` is set when the real service rejects such a message (the
emulation then answers as the service does). A problem with ``note`` set is
one the real service accepts but a careful client does not commit (audio
before the session is ready, proto field names, ...): it goes into the
session's ``notes``, never its ``violations``, and the message is processed
as the service would.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One deviation: ``code`` is the service's error code for it (None: the service does not refuse it).

    ``note``: the service accepts it, a careful client does not do it (a note in the ground truth, not a violation).
    """

    message: str
    code: str | None = "invalid_value"
    param: str | None = None
    note: bool = False


def note(message: str) -> Problem:
    """A deviation the real service accepts: recorded as a note, never refused."""
    return Problem(message, None, note=True)


_TYPE_NAMES = {str: "a string", int: "a number", float: "a number", bool: "a boolean", dict: "an object",
               list: "an array"}


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (bytes, bytearray)):
        return "binary"
    return type(value).__name__


def parse_object(data: str | bytes, what: str, problems: list[Problem]) -> dict[str, Any] | None:
    """The JSON object in a frame, or None (with a problem) when the frame is not one."""
    try:
        message = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        problems.append(Problem(f"{what}: not valid JSON ({exc})", "invalid_json"))
        return None
    if not isinstance(message, dict):
        problems.append(Problem(f"{what}: a JSON {json_type(message)}, not an object", "invalid_json"))
        return None
    return message


def check_keys(obj: dict[str, Any], path: str, allowed: set[str] | frozenset[str], problems: list[Problem],
               required: tuple[str, ...] = (), hints: dict[str, str] | None = None) -> None:
    """Unknown and missing keys of ``obj`` (at ``path``) as problems; ``hints`` explains known mistakes."""
    for key in obj:
        if key not in allowed:
            hint = f" ({hints[key]})" if hints and key in hints else ""
            problems.append(Problem(f"{path}: unknown parameter {key!r}{hint}", "unknown_parameter", f"{path}.{key}"))
    for key in required:
        if key not in obj:
            problems.append(Problem(f"{path}: missing required parameter {key!r}", "missing_required_parameter",
                                    f"{path}.{key}"))


def expect_type(obj: dict[str, Any], key: str, path: str, kinds: tuple[type, ...], problems: list[Problem],
                nullable: bool = False) -> bool:
    """True when ``obj[key]`` (if present) has one of ``kinds``; else a problem."""
    if key not in obj or (nullable and obj[key] is None):
        return True
    value = obj[key]
    if isinstance(value, bool) and bool not in kinds:
        ok = False
    else:
        ok = isinstance(value, kinds)
    if not ok:
        want = " or ".join(dict.fromkeys(_TYPE_NAMES[k] for k in kinds))
        problems.append(Problem(f"{path}.{key}: must be {want}, got {json_type(value)}", "invalid_type",
                                f"{path}.{key}"))
    return ok


def decode_pcm16(value: Any, path: str, problems: list[Problem], proto_bytes: bool = False) -> bytes | None:
    """Raw PCM16 bytes from a base64 string, or None with the problem (not base64, empty, a WAV file, odd length).

    ``proto_bytes``: a protobuf JSON ``bytes`` field, which takes standard or URL-safe base64, padded or not.
    """
    if not isinstance(value, str):
        problems.append(Problem(f"{path}: must be a base64 string, got {json_type(value)}", "invalid_type", path))
        return None
    try:
        if proto_bytes:
            text = value.replace("-", "+").replace("_", "/")
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        else:
            raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        problems.append(Problem(f"{path}: not valid base64", "invalid_value", path))
        return None
    if not raw:
        problems.append(Problem(f"{path}: empty audio", "invalid_value", path))
        return None
    if raw.startswith(b"RIFF"):
        problems.append(Problem(f"{path}: starts with a RIFF header (send raw PCM16, not a WAV container)",
                                "invalid_value", path))
        return None
    if len(raw) % 2:
        problems.append(Problem(f"{path}: odd byte length {len(raw)} (PCM16 needs whole 2-byte samples)",
                                "invalid_value", path))
        return None
    return raw
