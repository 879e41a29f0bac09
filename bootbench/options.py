"""bootbench's command-line options and the settings they resolve to.

Every option is a normal Locust option: it works on the command line, as a
``LOCUST_*`` environment variable and in a config file (``conf/locust.conf``,
``locust.conf``, ``pyproject.toml``). :class:`Settings` is the checked,
typed form that the rest of bootbench reads; bad input raises
:class:`ConfigError` with one sentence for the user.
"""

from __future__ import annotations

import ipaddress
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bootbench import providers

PACES = ("burst", "realtime")


class ConfigError(ValueError):
    """A user-caused configuration problem; ``str()`` is the one sentence to show."""


def add_arguments(parser: Any) -> None:
    """Register bootbench's options on Locust's argument parser."""
    parser.add_argument("-i", "--iterations", type=int, default=100, env_var="LOCUST_ITERATIONS",
                        help="Total iterations (call cycles) of the whole run, over all users and workers; "
                             "the run ends by itself after them. 0 = no limit. Default 100.")
    parser.add_argument("--provider", default="", env_var="LOCUST_PROVIDER",
                        help=f"Wire protocol: {', '.join(providers.NAMES)}. Default: inferred from the host, else aivoco.")
    parser.add_argument("--timeout", type=float, default=10.0, env_var="LOCUST_TIMEOUT",
                        help="Seconds an iteration may take from session start to first audio. Default 10.")
    parser.add_argument("--results-dir", default="results", env_var="LOCUST_RESULTS_DIR",
                        help="Folder that receives one sub-folder per run. Default ./results.")
    parser.add_argument("--audio", default="", env_var="LOCUST_AUDIO",
                        help="WAV file to send (any rate/channels; converted to mono PCM16). Default: 1 s 440 Hz sine.")
    parser.add_argument("--connect-per-call", action="store_true", default=False, env_var="LOCUST_CONNECT_PER_CALL",
                        help="Open a new connection in every cycle, so connect time counts in cold_start_ms.")
    parser.add_argument("--pace", choices=PACES, default="burst", env_var="LOCUST_PACE",
                        help="burst: the whole clip in one message; realtime: 64 ms chunks at real-time pace.")
    parser.add_argument("--trailing-silence-ms", type=float, default=0.0, env_var="LOCUST_TRAILING_SILENCE_MS",
                        help="Silence appended after the clip (for services that detect the end of a turn). Default 0.")
    parser.add_argument("--system-message", default="You are a helpful voice assistant.", env_var="LOCUST_SYSTEM_MESSAGE",
                        help="System prompt sent when a session starts.")
    parser.add_argument("--voice", default="", env_var="LOCUST_VOICE",
                        help="Voice of the reply (provider default when empty).")
    parser.add_argument("--model", default="", env_var="LOCUST_MODEL",
                        help="Model of the session (openai: gpt-realtime, gemini: models/gemini-live-2.5-flash-preview).")
    parser.add_argument("--turn", default="", env_var="LOCUST_TURN",
                        help="How the user's turn ends: manual (commit / activityEnd, the default for openai and "
                             "gemini) or vad (the service detects it; needs --trailing-silence-ms; aivoco's only mode).")
    parser.add_argument("--ca-bundle", default="", env_var="LOCUST_CA_BUNDLE",
                        help="PEM file of CA certificates to verify the service's TLS certificate with "
                             "(default: the system's). Certificates are always verified.")
    parser.add_argument("--wait-ms", type=float, default=100.0, env_var="LOCUST_WAIT_MS",
                        help="Pause after each cycle, in ms. Default 100.")
    bind_to_loopback_by_default(parser)


def bind_to_loopback_by_default(parser: Any) -> None:
    """Locust's web UI and master port listen on every interface by default; bootbench's listen on 127.0.0.1.

    The web UI can start runs that spend the API key's credits, so reaching it
    from the network is something to ask for: ``--web-host 0.0.0.0``,
    ``--master-bind-host 0.0.0.0`` (or their ``LOCUST_*`` variables).
    """
    parser.set_defaults(web_host="127.0.0.1", master_bind_host="127.0.0.1")


@dataclass(frozen=True)
class Settings:
    """What a run measures and how: the checked form of the options."""

    provider: str
    target: str
    embedded_server: bool
    iterations: int
    timeout: float
    results_dir: str
    audio: str
    connect_per_call: bool
    pace: str
    trailing_silence_ms: float
    system_message: str
    voice: str
    wait_ms: float
    ca_bundle: str
    model: str
    turn: str

    def describe(self) -> dict[str, Any]:
        """The settings as recorded in metrics.json (no secrets are held here)."""
        return asdict(self)


def resolve(options: Any, host: str | None, *, embedded_url: str | None = None) -> Settings:
    """Check the parsed options and the target host; raise :class:`ConfigError` on bad input.

    ``host`` is Locust's ``-H``; when it is empty the run targets the embedded
    reference server at ``embedded_url`` (which may still be unknown at check time).
    """
    iterations = _number(options, "iterations", int)
    if iterations < 0:
        raise ConfigError(f"--iterations must be a positive number (or 0 for no limit), not {iterations}")
    timeout = _number(options, "timeout", float)
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {timeout:g}")
    trailing = _number(options, "trailing_silence_ms", float)
    if trailing < 0:
        raise ConfigError(f"--trailing-silence-ms cannot be negative ({trailing:g})")
    wait_ms = _number(options, "wait_ms", float)
    if wait_ms < 0:
        raise ConfigError(f"--wait-ms cannot be negative ({wait_ms:g})")
    pace = str(getattr(options, "pace", "burst") or "burst")
    if pace not in PACES:
        raise ConfigError(f"--pace must be one of {', '.join(PACES)}, not {pace!r}")

    host = (host or "").strip()
    if host:
        check_url(host)
    provider = str(getattr(options, "provider", "") or "").strip().lower() or providers.infer(host)
    if provider not in providers.NAMES:
        raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(providers.NAMES)}")
    driver = providers.DRIVERS[provider]
    turn = str(getattr(options, "turn", "") or "").strip().lower() or driver.turn_modes[0]
    if turn not in driver.turn_modes:
        raise ConfigError(f"--turn {turn} is not available for {provider}; choose {' or '.join(driver.turn_modes)}")
    if turn == "vad" and trailing < driver.vad_silence_ms:
        raise ConfigError(f"--turn vad needs --trailing-silence-ms of at least {driver.vad_silence_ms:g} for "
                          f"{provider} (its voice activity detection ends a turn after that much silence)")
    audio = str(getattr(options, "audio", "") or "")
    if audio and not Path(audio).exists():
        raise ConfigError(f"audio file {audio} does not exist")
    ca_bundle = str(getattr(options, "ca_bundle", "") or "")
    if ca_bundle and not Path(ca_bundle).is_file():
        raise ConfigError(f"CA bundle {ca_bundle} does not exist")
    return Settings(
        provider=provider,
        target=host or embedded_url or "",
        embedded_server=not host,
        iterations=iterations,
        timeout=timeout,
        results_dir=str(getattr(options, "results_dir", "results") or "results"),
        audio=audio,
        connect_per_call=bool(getattr(options, "connect_per_call", False)),
        pace=pace,
        trailing_silence_ms=trailing,
        system_message=str(getattr(options, "system_message", "") or ""),
        voice=str(getattr(options, "voice", "") or ""),
        wait_ms=wait_ms,
        ca_bundle=ca_bundle,
        model=str(getattr(options, "model", "") or "") or driver.default_model,
        turn=turn,
    )


def check_url(url: str) -> None:
    """Raise :class:`ConfigError` unless ``url`` is an http(s):// or ws(s):// URL with a host."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.hostname:
        raise ConfigError(f"host {url!r} is not a URL like wss://example.com or http://127.0.0.1:8080")
    try:
        parsed.port
    except ValueError:
        raise ConfigError(f"host {url!r} has an invalid port") from None


def is_loopback(url: str) -> bool:
    """True when ``url`` points at this machine (where a placeholder key is fine)."""
    hostname = urlparse(url).hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_results_dir(path: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` is (or can become) a writable folder."""
    target = Path(path)
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"results folder {path} is not writable ({probe} is not a folder)")
    try:  # a real write: permission bits alone say nothing for root or on a read-only file system
        with tempfile.TemporaryFile(dir=probe, prefix=".bootbench-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"results folder {path} is not writable ({exc.strerror or exc})") from None


def _number(options: Any, name: str, kind: type) -> Any:
    value = getattr(options, name)
    try:
        return kind(value)
    except (TypeError, ValueError):
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{flag} must be a number, not {value!r}") from None
