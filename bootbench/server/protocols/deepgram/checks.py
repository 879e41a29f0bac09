"""Checks of Deepgram Voice Agent client messages (docs/protocols/deepgram.md); each deviation is one :class:`Problem`.

A problem's ``code`` is the ``Error`` code the service answers with: a
message that is not of the schema (not JSON, an unknown ``type``, a field of
the wrong JSON type, a required field missing) is
``UNPARSABLE_CLIENT_MESSAGE``; a ``Settings`` that parses but has values the
emulation cannot serve is ``INVALID_SETTINGS``. The field sets follow the
``deepgram-sdk`` 7.x models (``deepgram.agent.v1.types``); a field they do not
declare is a **note** (the models accept undeclared fields, and so, the
emulation assumes, does the service). The reference server hears and speaks
linear16 only, at any input rate from 8 to 48 kHz and a 24 kHz output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootbench.server.json_checks import Problem, json_type, note
from bootbench.wire import DEEPGRAM_OUTPUT_RATE

UNPARSABLE = "UNPARSABLE_CLIENT_MESSAGE"
INVALID_SETTINGS = "INVALID_SETTINGS"
CLIENT_TYPES = frozenset({
    "Settings", "UpdateListen", "UpdatePrompt", "UpdateSpeak", "UpdateThink", "UpdateThink_Live",
    "InjectAgentMessage", "InjectUserMessage", "FunctionCallResponse", "KeepAlive", "ForceEndTurn",
    "__customToThinkProvider",
})
"""Every client message type of ``deepgram.agent.v1`` (the SDK's ``send_*`` methods)."""
BARE_TYPES = frozenset({"KeepAlive", "ForceEndTurn"})
"""Client messages with no field but ``type``."""
SETTINGS_KEYS = frozenset({"type", "tags", "experimental", "flags", "mip_opt_out", "audio", "agent"})
AUDIO_KEYS = frozenset({"input", "output"})
INPUT_KEYS = frozenset({"encoding", "sample_rate"})
OUTPUT_KEYS = frozenset({"encoding", "sample_rate", "bitrate", "container"})
AGENT_KEYS = frozenset({"language", "context", "listen", "think", "think_live", "speak", "greeting", "messages"})
LISTEN_PROVIDER_KEYS = {
    "v1": frozenset({"type", "version", "model", "language", "keyterms", "smart_format"}),
    "v2": frozenset({"type", "version", "model", "language_hints", "language_hint", "eot_threshold",
                     "eager_eot_threshold", "eot_timeout_ms", "keyterms"}),
}
THINK_KEYS = frozenset({"provider", "endpoint", "functions", "prompt", "context_length"})
THINK_PROVIDER_TYPES = frozenset({"open_ai", "aws_bedrock", "anthropic", "google", "groq", "deepgram", "nvidia"})
THINK_PROVIDER_KEYS = frozenset({"type", "version", "model", "temperature", "reasoning_mode", "credentials",
                                 "voice_prompt_opt_out"})
SPEAK_KEYS = frozenset({"provider", "endpoint"})
SPEAK_PROVIDER_TYPES = frozenset({"deepgram", "eleven_labs", "cartesia", "open_ai", "aws_polly"})
SPEAK_PROVIDER_KEYS = frozenset({"type", "version", "model", "model_id", "voice", "speed", "expressivity", "language",
                                 "language_code", "volume", "engine", "credentials"})
MIN_RATE, MAX_RATE = 8_000, 48_000
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean"}


@dataclass
class Settings:
    """What the emulation takes from a valid ``Settings``."""

    input_rate: int = 24_000
    listen_version: str = "v1"
    greeting: str | None = None
    experimental: bool = False


@dataclass
class Checked:
    """One client text message after checking: its type (None when unusable), its problems, and its settings."""

    kind: str | None
    problems: list[Problem] = field(default_factory=list)
    settings: Settings | None = None


def check_message(message: dict[str, Any]) -> Checked:
    """Check one decoded client message."""
    kind = message.get("type")
    if not isinstance(kind, str):
        return Checked(None, [Problem(f"a message without a string 'type' (got {json_type(kind)})", UNPARSABLE)])
    if kind not in CLIENT_TYPES:
        return Checked(None, [Problem(f"unknown client message type {kind!r}", UNPARSABLE)])
    if kind in BARE_TYPES:
        return Checked(kind, [note(f"{kind}: field {key!r}, which the SDK's model does not declare (ignored)")
                              for key in message if key != "type"])
    if kind == "Settings":
        problems: list[Problem] = []
        settings = check_settings(message, problems)
        return Checked(kind, problems, settings)
    return Checked(kind)


def check_settings(message: dict[str, Any], problems: list[Problem]) -> Settings:
    """The settings the emulation uses; ``problems`` gets every deviation."""
    settings = Settings()
    _undeclared(message, "Settings", SETTINGS_KEYS, problems)
    for key in ("audio", "agent"):
        if key not in message:
            problems.append(Problem(f"Settings: missing required field {key!r}", UNPARSABLE))
    _expect(message, "tags", "Settings", (list,), problems)
    _expect(message, "experimental", "Settings", (bool,), problems)
    _expect(message, "mip_opt_out", "Settings", (bool,), problems)
    _expect(message, "flags", "Settings", (dict,), problems)
    settings.experimental = message.get("experimental") is True
    audio = message.get("audio")
    if _expect(message, "audio", "Settings", (dict,), problems) and isinstance(audio, dict):
        _check_audio(audio, settings, problems)
    agent = message.get("agent")
    if isinstance(agent, str):
        problems.append(note("Settings.agent: an agent id (a configuration stored at Deepgram; the emulation "
                             "answers with its own)"))
    elif _expect(message, "agent", "Settings", (dict, str), problems) and isinstance(agent, dict):
        _check_agent(agent, settings, problems)
    return settings


def _check_audio(audio: dict[str, Any], settings: Settings, problems: list[Problem]) -> None:
    _undeclared(audio, "Settings.audio", AUDIO_KEYS, problems)
    source = audio.get("input")
    if _expect(audio, "input", "Settings.audio", (dict,), problems) and isinstance(source, dict):
        path = "Settings.audio.input"
        _undeclared(source, path, INPUT_KEYS, problems)
        for key in ("encoding", "sample_rate"):
            if key not in source:
                problems.append(Problem(f"{path}: missing required field {key!r}", UNPARSABLE))
        if _expect(source, "encoding", path, (str,), problems) and source.get("encoding", "linear16") != "linear16":
            problems.append(Problem(f"{path}.encoding {source['encoding']!r}: the reference server hears linear16 "
                                    "only", INVALID_SETTINGS))
        rate = source.get("sample_rate")
        if _expect(source, "sample_rate", path, (int,), problems) and isinstance(rate, int):
            if not MIN_RATE <= rate <= MAX_RATE:
                problems.append(Problem(f"{path}.sample_rate {rate}: not a rate from {MIN_RATE} to {MAX_RATE} Hz",
                                        INVALID_SETTINGS))
            else:
                settings.input_rate = rate
    output = audio.get("output")
    if _expect(audio, "output", "Settings.audio", (dict,), problems) and isinstance(output, dict):
        path = "Settings.audio.output"
        _undeclared(output, path, OUTPUT_KEYS, problems)
        if _expect(output, "encoding", path, (str,), problems) and output.get("encoding", "linear16") != "linear16":
            problems.append(Problem(f"{path}.encoding {output['encoding']!r}: the reference server speaks linear16 "
                                    "only", INVALID_SETTINGS))
        if _expect(output, "container", path, (str,), problems) and output.get("container", "none") != "none":
            problems.append(Problem(f"{path}.container {output['container']!r}: the reference server sends raw "
                                    "audio only (container none)", INVALID_SETTINGS))
        _expect(output, "bitrate", path, (int,), problems)
        rate = output.get("sample_rate", DEEPGRAM_OUTPUT_RATE)
        if _expect(output, "sample_rate", path, (int,), problems) and rate != DEEPGRAM_OUTPUT_RATE:
            problems.append(Problem(f"{path}.sample_rate {rate}: the reference server speaks at "
                                    f"{DEEPGRAM_OUTPUT_RATE} Hz only", INVALID_SETTINGS))


def _check_agent(agent: dict[str, Any], settings: Settings, problems: list[Problem]) -> None:
    _undeclared(agent, "Settings.agent", AGENT_KEYS, problems)
    if _expect(agent, "greeting", "Settings.agent", (str,), problems):
        settings.greeting = agent.get("greeting") or None
    _expect(agent, "language", "Settings.agent", (str,), problems)
    listen = agent.get("listen")
    if _expect(agent, "listen", "Settings.agent", (dict,), problems) and isinstance(listen, dict):
        _undeclared(listen, "Settings.agent.listen", frozenset({"provider"}), problems)
        provider = listen.get("provider")
        if _expect(listen, "provider", "Settings.agent.listen", (dict,), problems) and isinstance(provider, dict):
            settings.listen_version = _check_listen_provider(provider, problems)
    for key, check in (("think", _check_think), ("speak", _check_speak)):
        value = agent.get(key)
        if _expect(agent, key, "Settings.agent", (dict, list), problems):
            for index, item in enumerate(value if isinstance(value, list) else [value] if value is not None else []):
                path = f"Settings.agent.{key}" + (f"[{index}]" if isinstance(value, list) else "")
                if isinstance(item, dict):
                    check(item, path, problems)
                else:
                    problems.append(Problem(f"{path}: must be an object, got {json_type(item)}", UNPARSABLE))


def _check_listen_provider(provider: dict[str, Any], problems: list[Problem]) -> str:
    """Check ``agent.listen.provider``; its ``version`` (the discriminator, default v1)."""
    path = "Settings.agent.listen.provider"
    version = provider.get("version", "v1")
    if version not in LISTEN_PROVIDER_KEYS:
        problems.append(Problem(f"{path}.version {version!r}: not v1 or v2", UNPARSABLE))
        return "v1"
    if provider.get("type", "deepgram") != "deepgram":
        problems.append(Problem(f"{path}.type {provider.get('type')!r}: the listen provider is deepgram", UNPARSABLE))
    _undeclared(provider, path, LISTEN_PROVIDER_KEYS[version], problems)
    if version == "v2" and "model" not in provider:
        problems.append(Problem(f"{path}: missing required field 'model' (a v2 provider names its Flux model)",
                                UNPARSABLE))
    _expect(provider, "model", path, (str,), problems)
    _expect(provider, "keyterms", path, (list,), problems)
    return version


def _check_think(think: dict[str, Any], path: str, problems: list[Problem]) -> None:
    _undeclared(think, path, THINK_KEYS, problems)
    _expect(think, "prompt", path, (str,), problems)
    provider = think.get("provider")
    if "provider" not in think:
        problems.append(Problem(f"{path}: missing required field 'provider'", UNPARSABLE))
    elif _expect(think, "provider", path, (dict,), problems) and isinstance(provider, dict):
        _provider(provider, f"{path}.provider", THINK_PROVIDER_TYPES, THINK_PROVIDER_KEYS, problems)
        _expect(provider, "temperature", f"{path}.provider", (int, float), problems)


def _check_speak(speak: dict[str, Any], path: str, problems: list[Problem]) -> None:
    _undeclared(speak, path, SPEAK_KEYS, problems)
    provider = speak.get("provider")
    if "provider" not in speak:
        problems.append(Problem(f"{path}: missing required field 'provider'", UNPARSABLE))
    elif _expect(speak, "provider", path, (dict,), problems) and isinstance(provider, dict):
        _provider(provider, f"{path}.provider", SPEAK_PROVIDER_TYPES, SPEAK_PROVIDER_KEYS, problems)
        if provider.get("type") == "deepgram" and "model" not in provider:
            problems.append(Problem(f"{path}.provider: missing required field 'model' (the Deepgram voice)",
                                    UNPARSABLE))


def _provider(provider: dict[str, Any], path: str, types: frozenset[str], keys: frozenset[str],
              problems: list[Problem]) -> None:
    kind = provider.get("type")
    if kind not in types:
        problems.append(Problem(f"{path}.type {kind!r}: not one of {', '.join(sorted(types))}", UNPARSABLE))
    _undeclared(provider, path, keys, problems)
    _expect(provider, "model", path, (str,), problems)


def _undeclared(obj: dict[str, Any], path: str, declared: frozenset[str], problems: list[Problem]) -> None:
    for key in obj:
        if key not in declared:
            problems.append(note(f"{path}: field {key!r}, which the SDK's model does not declare (ignored)"))


def _expect(obj: dict[str, Any], key: str, path: str, kinds: tuple[type, ...], problems: list[Problem]) -> bool:
    """True when ``obj[key]`` is absent or of one of ``kinds`` (a bool is no number); else an unparsable problem."""
    if key not in obj:
        return True
    value = obj[key]
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        want = " or ".join(dict.fromkeys(_JSON_NAMES[k] for k in kinds))
        problems.append(Problem(f"{path}.{key}: must be {want}, got {json_type(value)}", UNPARSABLE))
    return ok
