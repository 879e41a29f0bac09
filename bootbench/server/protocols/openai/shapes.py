"""The session layouts other than OpenAI's GA one: their checks, default sessions and turn detection.

    check = SESSION_CHECKS["voice-live"]      # check(session, problems): one Problem per deviation
    turn_detection(session, "xai")            # where the shape keeps it

Three services speak OpenAI Realtime's events with another ``session`` object
(docs/protocols/azure.md, xai.md): the **preview** shape (Azure OpenAI's
preview endpoint: the flat fields OpenAI's retired beta had), **voice-live**
(the same fields plus Voice Live's: a voice object, the input sampling rate,
Azure's noise suppression, echo cancellation and semantic VAD types; the field
list is ``azure.ai.voicelive.models.RequestSession``'s, azure-ai-voicelive
1.3.1), and **xai** (``voice`` and ``turn_detection`` at the top, the formats
under ``audio``). The GA shape's checks stay in :mod:`.checks`.

As for GA, unknown parameters are refused (``unknown_parameter``) and the
reference server emulates PCM16 at 24 kHz only, so another format or rate is
a problem too (the service would take it; the emulation cannot serve it).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from bootbench.server.json_checks import Problem, check_keys, expect_type, json_type, note
from bootbench.wire import OPENAI_AUDIO_RATE, VAD_SILENCE_MS

PREVIEW_KEYS = frozenset({
    "model", "modalities", "instructions", "voice", "input_audio_format", "output_audio_format",
    "input_audio_transcription", "input_audio_noise_reduction", "turn_detection", "tools", "tool_choice",
    "temperature", "max_response_output_tokens", "speed", "tracing",
})
"""The session fields of the preview (beta) protocol Azure OpenAI's preview endpoint serves."""
VOICE_LIVE_KEYS = frozenset({
    "model", "modalities", "animation", "voice", "instructions", "input_audio_sampling_rate", "input_audio_format",
    "output_audio_format", "turn_detection", "input_audio_noise_reduction", "input_audio_echo_cancellation",
    "avatar", "input_audio_transcription", "output_audio_timestamp_types", "tools", "tool_choice",
    "parallel_tool_calls", "temperature", "max_response_output_tokens", "reasoning_effort", "interim_response",
    "include", "metadata",
})
"""``RequestSession``'s fields (azure-ai-voicelive 1.3.1, the Voice Live reference's RealtimeRequestSession)."""
XAI_KEYS = frozenset({"instructions", "voice", "turn_detection", "audio", "tools"})
"""The session parameters of xAI's Voice Agent guide."""
GA_HINTS = {
    "type": "a GA field; this endpoint speaks the preview protocol",
    "output_modalities": "preview: session.modalities",
    "audio": "preview: session.voice, session.input_audio_format, session.output_audio_format, session.turn_detection",
    "max_output_tokens": "preview: session.max_response_output_tokens",
}
XAI_HINTS = {
    "modalities": "not an xAI session field",
    "input_audio_format": "xAI: session.audio.input.format",
    "output_audio_format": "xAI: session.audio.output.format",
}
PREVIEW_PCM = "pcm16"
VOICE_LIVE_RATES = (16000, 24000)
VOICE_TYPES = ("openai", "azure-standard", "azure-custom", "azure-personal", "azure-realtime-native")
VAD_KEYS = frozenset({"type", "threshold", "prefix_padding_ms", "silence_duration_ms", "create_response",
                      "interrupt_response"})
VOICE_LIVE_VAD_KEYS = {
    "server_vad": VAD_KEYS | {"speech_duration_ms", "end_of_utterance_detection", "auto_truncate"},
    "semantic_vad": frozenset({"type", "eagerness", "create_response", "interrupt_response"}),
    "azure_semantic_vad": VAD_KEYS | {"speech_duration_ms", "end_of_utterance_detection", "remove_filler_words",
                                      "languages", "auto_truncate"},
    "azure_semantic_vad_multilingual": VAD_KEYS | {"speech_duration_ms", "end_of_utterance_detection",
                                                   "remove_filler_words", "languages", "auto_truncate"},
}
"""Voice Live's turn detection types (the emulation ends every one on silence, as ``server_vad``)."""
PREVIEW_VAD_KEYS = {"server_vad": VAD_KEYS, "semantic_vad": VOICE_LIVE_VAD_KEYS["semantic_vad"]}
XAI_VAD_KEYS = {"server_vad": frozenset({"type", "threshold", "silence_duration_ms", "prefix_padding_ms"})}
XAI_VAD_RANGES = {"threshold": (0.1, 0.9), "silence_duration_ms": (0, 10000), "prefix_padding_ms": (0, 10000)}


def check_preview_session(session: Any, problems: list[Problem]) -> None:
    """The ``session`` of a ``session.update`` on Azure OpenAI's preview endpoint."""
    _check_flat_session(session, problems, PREVIEW_KEYS, PREVIEW_VAD_KEYS, voice_live=False)


def check_voice_live_session(session: Any, problems: list[Problem]) -> None:
    """The ``session`` of a ``session.update`` on Voice Live."""
    _check_flat_session(session, problems, VOICE_LIVE_KEYS, VOICE_LIVE_VAD_KEYS, voice_live=True)


def _check_flat_session(session: Any, problems: list[Problem], keys: frozenset[str],
                        vad_keys: dict[str, frozenset[str]], voice_live: bool) -> None:
    if not _is_session(session, problems):
        return
    check_keys(session, "session", keys, problems, hints=GA_HINTS)
    for key in ("instructions", "model"):
        expect_type(session, key, "session", (str,), problems)
    if "modalities" in session:
        modalities = session["modalities"]
        if not isinstance(modalities, list) or sorted(modalities) != ["audio", "text"]:
            # "You can't enable only audio" (Voice Live); text alone is not emulated (the server answers with audio)
            problems.append(Problem(f"session.modalities: {modalities!r} (supported: ['text', 'audio']; audio alone "
                                    "is refused, and the reference server answers with audio)", "invalid_value",
                                    "session.modalities"))
    for key in ("input_audio_format", "output_audio_format"):
        if key in session and session[key] != PREVIEW_PCM:
            problems.append(Problem(f"session.{key}: {session[key]!r} is not emulated (the reference server speaks "
                                    f"{PREVIEW_PCM}, PCM16 at {OPENAI_AUDIO_RATE} Hz)", "invalid_value",
                                    f"session.{key}"))
    if voice_live and expect_type(session, "input_audio_sampling_rate", "session", (int,), problems) \
            and "input_audio_sampling_rate" in session:
        rate = session["input_audio_sampling_rate"]
        if rate not in VOICE_LIVE_RATES:
            problems.append(Problem(f"session.input_audio_sampling_rate: {rate} is not one of 16000, 24000",
                                    "invalid_value", "session.input_audio_sampling_rate"))
        elif rate != OPENAI_AUDIO_RATE:
            problems.append(Problem(f"session.input_audio_sampling_rate: {rate} is not emulated (the reference "
                                    f"server takes {OPENAI_AUDIO_RATE} Hz)", "invalid_value",
                                    "session.input_audio_sampling_rate"))
    if "voice" in session:
        _check_voice(session["voice"], problems, objects=voice_live)
    if "turn_detection" in session:
        _check_vad(session["turn_detection"], "session.turn_detection", vad_keys, {}, problems)


def check_xai_session(session: Any, problems: list[Problem]) -> None:
    """The ``session`` of a ``session.update`` on xAI's Voice Agent API."""
    if not _is_session(session, problems):
        return
    compatible = {key: session[key] for key in ("type", "model") if key in session}
    for key, value in compatible.items():
        # Not in xAI's parameter table; OpenAI-compatible clients send them and xAI calls itself compatible.
        problems.append(note(f"session.{key} ({value!r}): not an xAI session parameter (OpenAI's; accepted)"))
    check_keys({k: v for k, v in session.items() if k not in compatible}, "session", XAI_KEYS, problems,
               hints=XAI_HINTS)
    expect_type(session, "instructions", "session", (str,), problems)
    if "voice" in session:
        _check_voice(session["voice"], problems, objects=False)
    if "turn_detection" in session:
        _check_vad(session["turn_detection"], "session.turn_detection", XAI_VAD_KEYS, XAI_VAD_RANGES, problems)
    if "audio" not in session or not expect_type(session, "audio", "session", (dict,), problems):
        return
    audio = session["audio"]
    check_keys(audio, "session.audio", {"input", "output"}, problems)
    for side in ("input", "output"):
        if side not in audio or not expect_type(audio, side, "session.audio", (dict,), problems):
            continue
        path = f"session.audio.{side}"
        check_keys(audio[side], path, {"format"}, problems)
        if "format" in audio[side] and expect_type(audio[side], "format", path, (dict,), problems):
            fmt = audio[side]["format"]
            check_keys(fmt, f"{path}.format", {"type", "rate"}, problems)
            if fmt.get("type", "audio/pcm") != "audio/pcm" or fmt.get("rate", OPENAI_AUDIO_RATE) != OPENAI_AUDIO_RATE:
                problems.append(Problem(f"{path}.format: {fmt!r} is not emulated (the reference server speaks "
                                        f"audio/pcm at {OPENAI_AUDIO_RATE} Hz)", "invalid_value", f"{path}.format"))


def _is_session(session: Any, problems: list[Problem]) -> bool:
    if isinstance(session, dict):
        return True
    problems.append(Problem(f"session.update.session: must be an object, got {json_type(session)}", "invalid_type",
                            "session"))
    return False


def _check_voice(voice: Any, problems: list[Problem], objects: bool) -> None:
    """A voice name, or (Voice Live) an object ``{"type", "name", ...}``."""
    if isinstance(voice, str) and voice:
        return
    if objects and isinstance(voice, dict):
        if voice.get("type") not in VOICE_TYPES:
            problems.append(Problem(f"session.voice.type: {voice.get('type')!r} is not one of {', '.join(VOICE_TYPES)}",
                                    "invalid_value", "session.voice.type"))
        if not isinstance(voice.get("name"), str) or not voice.get("name"):
            problems.append(Problem("session.voice.name: must be a non-empty string", "invalid_value",
                                    "session.voice.name"))
        return
    want = "a voice name or a voice object" if objects else "a voice name"
    problems.append(Problem(f"session.voice: must be {want}, got {json_type(voice)}", "invalid_type", "session.voice"))


def _check_vad(value: Any, path: str, kinds: dict[str, frozenset[str]], ranges: dict[str, tuple[float, float]],
               problems: list[Problem]) -> None:
    """Null (manual turns) or a turn detection object of one of ``kinds``."""
    if value is None:
        return
    if not isinstance(value, dict):
        problems.append(Problem(f"{path}: must be an object or null, got {json_type(value)}", "invalid_type", path))
        return
    kind = value.get("type")
    if kind not in kinds:
        problems.append(Problem(f"{path}.type: {kind!r} is not one of {', '.join(kinds)}", "invalid_value",
                                f"{path}.type"))
        return
    check_keys(value, path, kinds[kind], problems)
    for key in ("create_response", "interrupt_response"):
        expect_type(value, key, path, (bool,), problems)
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        if expect_type(value, key, path, (int,), problems) and isinstance(value.get(key), int) and value[key] < 0:
            problems.append(Problem(f"{path}.{key}: must not be negative", "invalid_value", f"{path}.{key}"))
    expect_type(value, "threshold", path, (int, float), problems)
    for key, (low, high) in ranges.items():
        number = value.get(key)
        if isinstance(number, (int, float)) and not isinstance(number, bool) and not low <= number <= high:
            problems.append(Problem(f"{path}.{key}: {number} is outside {low:g}..{high:g}", "invalid_value",
                                    f"{path}.{key}"))


SESSION_CHECKS: dict[str, Callable[[Any, list[Problem]], None]] = {
    "preview": check_preview_session,
    "voice-live": check_voice_live_session,
    "xai": check_xai_session,
}
"""The session check of each shape other than GA's (:func:`.checks.check_session`)."""


def turn_detection(session: dict[str, Any], shape: str) -> dict[str, Any] | None:
    """The session's turn detection: GA keeps it under ``audio.input``, the others at the top."""
    if shape == "ga":
        return session.get("audio", {}).get("input", {}).get("turn_detection")
    return session.get("turn_detection")


def default_session(shape: str, model: str, voice: str) -> dict[str, Any]:
    """What ``session.created`` reports for a shape other than GA's: server VAD on, PCM16 24 kHz both ways."""
    vad = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": VAD_SILENCE_MS,
           "create_response": True}
    session: dict[str, Any] = {"id": f"sess_{secrets.token_hex(10)}", "object": "realtime.session", "model": model,
                               "instructions": "", "voice": voice, "turn_detection": vad, "tools": []}
    if shape == "xai":
        pcm = {"type": "audio/pcm", "rate": OPENAI_AUDIO_RATE}
        session["audio"] = {"input": {"format": dict(pcm)}, "output": {"format": dict(pcm)}}
        return session
    session.update({"modalities": ["text", "audio"], "input_audio_format": PREVIEW_PCM,
                    "output_audio_format": PREVIEW_PCM, "tool_choice": "auto", "temperature": 0.8,
                    "max_response_output_tokens": "inf", "expires_at": int(time.time()) + 3600})
    if shape == "voice-live":
        session["voice"] = {"type": "openai", "name": voice}
        session["input_audio_sampling_rate"] = OPENAI_AUDIO_RATE
    return session


def transcribes(session: dict[str, Any], shape: str) -> bool:
    """Whether the session asked for the transcription of the caller's audio (xAI transcribes every session)."""
    if shape == "xai":
        return True
    if shape == "ga":
        return bool(session.get("audio", {}).get("input", {}).get("transcription"))
    return bool(session.get("input_audio_transcription"))
