"""Checks of Gemini Live (BidiGenerateContent) client messages against docs/protocols/gemini-live.md.

The service parses messages as protobuf JSON, which takes a field by its
proto name (``realtime_input``, what the google-genai SDK sends) as well as
by its lowerCamelCase JSON name (``realtimeInput``), at every level: keys are
normalised to the JSON names (:func:`json_names`) before the checks, and the
proto names used are a note. A problem with a ``code`` is one the real
service answers by closing the socket with 1007 (an unknown field, a wrong
type); a note is what the service accepts but bootbench's cycle does not do.
The reference server emulates audio replies only (``responseModalities:
["AUDIO"]``) and PCM16 input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from bootbench.server.json_checks import Problem, check_keys, decode_pcm16, expect_type, json_type, note
from bootbench.wire import GEMINI_INPUT_RATE

CLIENT_KEYS = frozenset({"setup", "clientContent", "realtimeInput", "toolResponse"})
SETUP_KEYS = frozenset({
    "model", "generationConfig", "systemInstruction", "tools", "realtimeInputConfig", "sessionResumption",
    "contextWindowCompression", "inputAudioTranscription", "outputAudioTranscription", "proactivity",
})
GENERATION_CONFIG_KEYS = frozenset({
    "responseModalities", "speechConfig", "temperature", "topP", "topK", "maxOutputTokens", "candidateCount",
    "presencePenalty", "frequencyPenalty", "mediaResolution", "seed", "enableAffectiveDialog", "thinkingConfig",
})
SPEECH_CONFIG_KEYS = frozenset({"voiceConfig", "languageCode", "multiSpeakerVoiceConfig"})
REALTIME_INPUT_CONFIG_KEYS = frozenset({"automaticActivityDetection", "activityHandling", "turnCoverage"})
ACTIVITY_DETECTION_KEYS = frozenset({"disabled", "startOfSpeechSensitivity", "endOfSpeechSensitivity",
                                     "prefixPaddingMs", "silenceDurationMs"})
REALTIME_INPUT_KEYS = frozenset({"audio", "video", "text", "activityStart", "activityEnd", "audioStreamEnd",
                                 "mediaChunks"})
AUDIO_MIME = re.compile(r"^audio/pcm(;\s*rate=(\d+))?$")
FREE_FORM_KEYS = frozenset({"args", "response", "parameters", "parametersJsonSchema", "responseJsonSchema",
                            "properties"})
"""Fields whose value is free-form JSON (a ``google.protobuf.Struct``, a JSON schema, a map): its keys are data."""


@dataclass
class Checked:
    """One client message after checking: which kind it is, its problems, and decoded audio (with its rate)."""

    message: dict[str, Any] | None
    kind: str | None = None
    problems: list[Problem] = field(default_factory=list)
    pcm: bytes | None = None
    rate: int = GEMINI_INPUT_RATE


def json_name(key: str) -> str:
    """The lowerCamelCase JSON name of a proto field name (``realtime_input`` -> ``realtimeInput``)."""
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def json_names(value: Any, proto_names: dict[str, None], problems: list[Problem], path: str = "message") -> Any:
    """``value`` with every object key as its JSON name (keys only, never values); ``proto_names`` collects those renamed.

    A field given twice (by both names) is the parser's error, as on the service.
    """
    if isinstance(value, list):
        return [json_names(item, proto_names, problems, path) for item in value]
    if not isinstance(value, dict):
        return value
    named: dict[str, Any] = {}
    for key, item in value.items():
        name = json_name(key) if "_" in key else key
        if name != key:
            proto_names[key] = None
        if name in named:
            problems.append(Problem(f"{path}: multiple {name!r} fields (a proto name and a JSON name of one field)",
                                    "invalid_argument"))
        named[name] = item if name in FREE_FORM_KEYS else json_names(item, proto_names, problems, f"{path}.{name}")
    return named


def check_message(message: dict[str, Any]) -> Checked:
    """Check one decoded client message (keys normalised to JSON names); ``kind`` is its one top-level field."""
    proto_names: dict[str, None] = {}
    problems: list[Problem] = []
    message = json_names(message, proto_names, problems)
    problems += [note(f"snake_case (proto) field name: {name}") for name in proto_names]
    checked = Checked(message, problems=problems)
    check_keys(message, "message", CLIENT_KEYS, problems)
    kinds = [key for key in message if key in CLIENT_KEYS]
    if len(kinds) != 1:
        problems.append(Problem(f"message: exactly one of {', '.join(sorted(CLIENT_KEYS))} must be set, "
                                f"got {len(kinds)}", "invalid_argument"))
        return checked
    checked.kind = kind = kinds[0]
    if not expect_type(message, kind, "message", (dict,), problems):
        checked.kind = None
        return checked
    if kind == "setup":
        check_setup(message["setup"], problems)
    elif kind == "realtimeInput":
        _check_realtime_input(message["realtimeInput"], checked)
    return checked


def check_setup(setup: dict[str, Any], problems: list[Problem]) -> None:
    """The ``setup`` message (first of every session)."""
    check_keys(setup, "setup", SETUP_KEYS, problems, required=("model",))
    if expect_type(setup, "model", "setup", (str,), problems) and "model" in setup:
        if not setup["model"].startswith("models/"):
            problems.append(Problem(f"setup.model: {setup['model']!r} must be 'models/NAME'", "invalid_argument",
                                    "setup.model"))
    config = setup.get("generationConfig")
    if "generationConfig" in setup and expect_type(setup, "generationConfig", "setup", (dict,), problems):
        check_keys(config, "setup.generationConfig", GENERATION_CONFIG_KEYS, problems)
        modalities = config.get("responseModalities")
        if "responseModalities" in config and modalities != ["AUDIO"]:
            problems.append(Problem(f"setup.generationConfig.responseModalities: {modalities!r} (the reference "
                                    "server answers with audio only: ['AUDIO'])", "invalid_argument"))
        speech = config.get("speechConfig")
        if "speechConfig" in config and expect_type(config, "speechConfig", "setup.generationConfig", (dict,),
                                                    problems):
            _check_speech_config(speech, problems)
    instruction = setup.get("systemInstruction")
    if "systemInstruction" in setup and expect_type(setup, "systemInstruction", "setup", (dict,), problems):
        check_keys(instruction, "setup.systemInstruction", {"parts", "role"}, problems, required=("parts",))
        parts = instruction.get("parts")
        if "parts" in instruction and (not isinstance(parts, list) or not all(
                isinstance(p, dict) and isinstance(p.get("text"), str) and set(p) == {"text"} for p in parts)):
            problems.append(Problem("setup.systemInstruction.parts: must be a list of {\"text\": ...} parts",
                                    "invalid_argument"))
    ric = setup.get("realtimeInputConfig")
    if "realtimeInputConfig" in setup and expect_type(setup, "realtimeInputConfig", "setup", (dict,), problems):
        check_keys(ric, "setup.realtimeInputConfig", REALTIME_INPUT_CONFIG_KEYS, problems)
        aad = ric.get("automaticActivityDetection")
        path = "setup.realtimeInputConfig.automaticActivityDetection"
        if "automaticActivityDetection" in ric and expect_type(ric, "automaticActivityDetection",
                                                               "setup.realtimeInputConfig", (dict,), problems):
            check_keys(aad, path, ACTIVITY_DETECTION_KEYS, problems)
            expect_type(aad, "disabled", path, (bool,), problems)
            for key in ("prefixPaddingMs", "silenceDurationMs"):
                if expect_type(aad, key, path, (int,), problems) and isinstance(aad.get(key), int) and aad[key] < 0:
                    problems.append(Problem(f"{path}.{key}: must not be negative", "invalid_argument"))


def _check_speech_config(speech: dict[str, Any], problems: list[Problem]) -> None:
    path = "setup.generationConfig.speechConfig"
    check_keys(speech, path, SPEECH_CONFIG_KEYS, problems)
    voice = speech.get("voiceConfig")
    if "voiceConfig" in speech and expect_type(speech, "voiceConfig", path, (dict,), problems):
        check_keys(voice, f"{path}.voiceConfig", {"prebuiltVoiceConfig"}, problems)
        prebuilt = voice.get("prebuiltVoiceConfig")
        if "prebuiltVoiceConfig" in voice and expect_type(voice, "prebuiltVoiceConfig", f"{path}.voiceConfig",
                                                          (dict,), problems):
            check_keys(prebuilt, f"{path}.voiceConfig.prebuiltVoiceConfig", {"voiceName"}, problems)
            expect_type(prebuilt, "voiceName", f"{path}.voiceConfig.prebuiltVoiceConfig", (str,), problems)


def _check_realtime_input(value: dict[str, Any], checked: Checked) -> None:
    problems = checked.problems
    check_keys(value, "realtimeInput", REALTIME_INPUT_KEYS, problems)
    for marker in ("activityStart", "activityEnd"):
        if marker in value and value[marker] != {}:
            problems.append(Problem(f"realtimeInput.{marker}: must be an empty object, got "
                                    f"{json_type(value[marker])} {value[marker]!r}"[:200], "invalid_argument"))
    expect_type(value, "audioStreamEnd", "realtimeInput", (bool,), problems)
    blobs = []
    if "audio" in value and expect_type(value, "audio", "realtimeInput", (dict,), problems):
        blobs.append(("realtimeInput.audio", value["audio"]))
    if "mediaChunks" in value and expect_type(value, "mediaChunks", "realtimeInput", (list,), problems):
        # Deprecated, still accepted: its audio is heard as realtimeInput.audio's.
        problems.append(note("realtimeInput.mediaChunks: deprecated, send realtimeInput.audio"))
        for index, chunk in enumerate(value["mediaChunks"]):
            if isinstance(chunk, dict):
                blobs.append((f"realtimeInput.mediaChunks[{index}]", chunk))
            else:
                problems.append(Problem(f"realtimeInput.mediaChunks[{index}]: must be an object, got "
                                        f"{json_type(chunk)}", "invalid_argument"))
    pcm = b""
    for path, blob in blobs:
        check_keys(blob, path, {"mimeType", "data"}, problems, required=("mimeType", "data"))
        match = AUDIO_MIME.match(str(blob.get("mimeType", "")))
        if "mimeType" in blob and not match:
            problems.append(Problem(f"{path}.mimeType: {blob['mimeType']!r} is not audio/pcm;rate=N",
                                    "invalid_argument"))
        elif match and match.group(2):
            checked.rate = int(match.group(2))
        if "data" in blob:
            pcm += decode_pcm16(blob["data"], f"{path}.data", problems, proto_bytes=True) or b""
    checked.pcm = pcm or None


def uses_manual_activity(setup: dict[str, Any]) -> bool:
    """True when the setup disables automatic activity detection (the client brackets its turns)."""
    ric = setup.get("realtimeInputConfig")
    aad = ric.get("automaticActivityDetection") if isinstance(ric, dict) else None
    return isinstance(aad, dict) and aad.get("disabled") is True


def silence_ms(setup: dict[str, Any], default: float) -> float:
    """``automaticActivityDetection.silenceDurationMs`` of the setup, else ``default``."""
    ric = setup.get("realtimeInputConfig")
    aad = ric.get("automaticActivityDetection") if isinstance(ric, dict) else None
    value = aad.get("silenceDurationMs") if isinstance(aad, dict) else None
    return float(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default
