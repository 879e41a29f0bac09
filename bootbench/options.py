"""bootbench's options and the one :class:`Settings` object they resolve to, once per process.

Every option is a normal Locust option (command line, ``LOCUST_*``
variable, config file) and its default is defined here only. ``Settings``
is their checked, typed form; the driver's configuration, the API-key
policy and the configuration part of metrics.json's ``run`` block are
derived from it. Bad input raises :class:`ConfigError`, one sentence for the user.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import logging
import math
import sys
import tempfile
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bootbench import providers
from bootbench.audible import DEFAULT_AUDIBLE_DBFS
from bootbench.audio import AudioError
from bootbench.checks import Check, CheckError, expressions, parse_checks
from bootbench.providers.network import redacted_url
from bootbench.samples import HEADLINE, PHASE_BY_NAME, PHASES
from bootbench.secrets import load_key
from bootbench.stimuli import ClipSet, load_clips

log = logging.getLogger("bootbench")

PACES = ("burst", "realtime")
DEFAULT_REPLY_GAP_MS = 500.0
"""Quiet after which an Aivoco reply has ended: 12 times the 40 ms spacing of the reference server's chunks,
several times that of real streams (20-100 ms chunks, sent at or faster than real time), and the 500 ms of
silence server VAD takes as the end of a user's turn. It never enters a figure (the end is the last chunk's
arrival); too short a gap would split a reply that stalls mid-way and take its rest as the next turn's answer."""
AUDIBLE_DBFS_RANGE = (-120.0, 0.0)
"""``--audible-dbfs`` lies in [-120, 0): below -120 dBFS is under PCM16's own noise floor, 0 is full scale."""
DEFAULT_SWEEP_TOLERANCE = 1.5
"""See :mod:`bootbench.levels` for why 1.5."""
LOOPBACK_KEY = "bootbench-reference"
"""The key sent to a reference server on this machine when no key is configured (not a secret)."""


class ConfigError(ValueError):
    """A user-caused configuration problem; ``str()`` is the one sentence to show."""


def add_arguments(parser: Any) -> None:
    """Register bootbench's options on Locust's argument parser, in a group of their own ("bootbench options").

    ``bootbench options`` prints the group's help: Locust prints ``--help``
    before it imports a locustfile, so ``locust --help`` cannot list them.
    """
    group = parser.add_argument_group(
        HELP_GROUP, "Options of the bootbench user class (locustfile.py); also LOCUST_* variables and config-file keys.")
    _option(group, "-i", "--iterations", type=int, default=100, env_var="LOCUST_ITERATIONS",
            help="Total iterations (call cycles) of the whole run, over all users and workers; "
                 "the run ends by itself after them. 0 = no limit. With --sweep: per level. Default 100.")
    _option(group, "--provider", default="", env_var="LOCUST_PROVIDER",
            help=f"Wire protocol: {', '.join(providers.NAMES)}. Default: inferred from the host, else aivoco.")
    _option(group, "--timeout", type=float, default=10.0, env_var="LOCUST_TIMEOUT",
            help="Seconds an iteration may take from its start to the first audible audio back (at most 3600). "
                 "Default 10.")
    _option(group, "--results-dir", default="results", env_var="LOCUST_RESULTS_DIR",
            help="Folder that receives one sub-folder per run. Default ./results.")
    _option(group, "--audio", action="append", default=None, env_var="LOCUST_AUDIO",
            help="What to say (repeatable): sine (the default, 1 s 440 Hz), speech (a recorded "
                 "sentence shipped with bootbench), an audio file (WAV, FLAC, OGG, MP3; any rate and "
                 "channels) or a folder of them. Iteration k sends clip (k-1) mod n. Default sine.")
    _option(group, "--audible-dbfs", type=float, default=DEFAULT_AUDIBLE_DBFS, env_var="LOCUST_AUDIBLE_DBFS",
            help="Level (10 ms RMS, dBFS) above which reply audio counts as audible, for "
                 f"first_audible_ms. Default {DEFAULT_AUDIBLE_DBFS:g}.")
    _option(group, "--headline", default=HEADLINE, env_var="LOCUST_HEADLINE",
            help=f"The phase the console summary and progress line lead with ({', '.join(PHASES)}). "
                 f"Default {HEADLINE}.")
    _option(group, "--connect-per-call", action="store_true", default=False, env_var="LOCUST_CONNECT_PER_CALL",
            help="Open a new connection in every cycle, so connect time counts in cold_start_ms. Default off.")
    _option(group, "--pace", choices=PACES, default="burst", env_var="LOCUST_PACE",
            help="burst: the whole clip in one message; realtime: 64 ms chunks at real-time pace. Default burst.")
    _option(group, "--trailing-silence-ms", type=float, default=0.0, env_var="LOCUST_TRAILING_SILENCE_MS",
            help="Silence appended after the clip, in ms (for services that detect the end of a turn; at most "
                 "60000). Default 0.")
    _option(group, "--system-message", default="You are a helpful voice assistant.", env_var="LOCUST_SYSTEM_MESSAGE",
            help="System prompt sent when a session starts. Default: 'You are a helpful voice assistant.'")
    _option(group, "--voice", default="", env_var="LOCUST_VOICE",
            help="Voice of the reply. Default: the provider's (aivoco: female, openai: alloy, gemini: Puck).")
    _option(group, "--model", default="", env_var="LOCUST_MODEL",
            help="Model of the session. Default: the provider's (openai: gpt-realtime, gemini: "
                 "models/gemini-2.5-flash-native-audio-preview-12-2025; aivoco has none).")
    _option(group, "--turn", default="", env_var="LOCUST_TURN",
            help="How the user's turn ends: manual (commit / activityEnd, the default for openai and "
                 "gemini) or vad (the service detects it; needs --trailing-silence-ms; aivoco's only mode).")
    _option(group, "--ca-bundle", default="", env_var="LOCUST_CA_BUNDLE",
            help="PEM file of CA certificates to verify the service's TLS certificate with "
                 "(default: the system's). Certificates are always verified.")
    _option(group, "--wait-ms", type=float, default=100.0, env_var="LOCUST_WAIT_MS",
            help="Pause after each cycle, in ms (at most 3600000). Default 100.")
    _option(group, "--master-silence-s", type=float, default=10.0, env_var="LOCUST_MASTER_SILENCE_S",
            help="On a worker: seconds without a heartbeat reply from the master, during a run, "
                 "after which the worker stops (its iterations in flight are lost). Set on the master: "
                 "workers receive it with the run. Default 10.")
    _option(group, "--check", dest="checks", action="append", default=None, env_var="LOCUST_CHECK",
            web_ui=False, metavar="EXPR",
            help="A pass/fail check on the final statistics, repeatable: PHASE:STAT OP VALUE "
                 "(first_response_ms:p95<=800) or success_rate OP VALUE (success_rate>=95%%). "
                 "LOCUST_CHECK takes several separated by ';'. Exit code 3 when one fails. Default: none.")
    _option(group, "--sweep", default="", env_var="LOCUST_SWEEP", web_ui=False,
            help="Concurrency sweep: comma-separated numbers of users (e.g. 1,2,4,8), run one level "
                 "after another, -i iterations each, in rounds of calls that start at once; -u is "
                 "ignored. Reports the capacity: the highest level within --sweep-tolerance. Default: no sweep.")
    _option(group, "--sweep-tolerance", type=float, default=DEFAULT_SWEEP_TOLERANCE,
            env_var="LOCUST_SWEEP_TOLERANCE", web_ui=False,
            help="A sweep level is within capacity while its cold-start p95 is at most this many times "
                 f"the lowest level's (and 99 %% of its calls succeed). Default {DEFAULT_SWEEP_TOLERANCE:g}.")
    _option(group, "--turns", type=int, default=1, env_var="LOCUST_TURNS",
            help="Turns per session: turn 1 is the cold one; turns 2..N are sent in the same session, "
                 "each after the previous reply has ended, to measure warm latency and the cold "
                 "penalty. Default 1 (no warm turns).")
    _option(group, "--reply-gap-ms", type=float, default=DEFAULT_REPLY_GAP_MS, env_var="LOCUST_REPLY_GAP_MS",
            help="Aivoco with --turns > 1: a reply has ended when no audio_response came for this long "
                 f"(the protocol has no end-of-reply event; at most 60000). Default {DEFAULT_REPLY_GAP_MS:g}.")
    bind_to_loopback_by_default(parser)


def parse_levels(text: str) -> tuple[int, ...]:
    """The levels of ``--sweep``: positive, strictly increasing user counts; raises :class:`ConfigError`."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        levels = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--sweep must be comma-separated numbers of users like 1,2,4,8, not {text!r}") from None
    if not levels or any(n < 1 for n in levels):
        raise ConfigError(f"--sweep levels must be positive numbers of users, not {text!r}")
    if any(b <= a for a, b in zip(levels, levels[1:])):
        raise ConfigError(f"--sweep levels must increase from one to the next, like 1,2,4,8 (not {text!r})")
    return levels


HELP_GROUP = "bootbench options"


def _option(group: Any, *flags: str, web_ui: bool = True, **kwargs: Any) -> None:
    """Add one option to bootbench's group; like Locust's own options it is shown in the web UI's form unless not ``web_ui``.

    An argument group's ``add_argument`` is configargparse's (``env_var`` works)
    and not Locust's, which would have marked the option for the web UI.
    """
    action = group.add_argument(*flags, **kwargs)
    action.include_in_web_ui = web_ui
    action.is_secret = action.is_required = action.is_multiple = False


def bind_to_loopback_by_default(parser: Any) -> None:
    """Locust's web UI and master port listen on every interface by default; bootbench's listen on 127.0.0.1.

    The web UI can start runs that spend the API key's credits, so reaching it
    from the network is something to ask for: ``--web-host 0.0.0.0``,
    ``--master-bind-host 0.0.0.0`` (or their ``LOCUST_*`` variables).
    """
    parser.set_defaults(web_host="127.0.0.1", master_bind_host="127.0.0.1")


@dataclass(frozen=True)
class Settings:
    """What a run measures and how: the checked form of the options.

    Every field but ``target`` and ``embedded_server`` is the option of the
    same name (its argparse ``dest``), read and checked by :func:`resolve`:
    adding an option is its ``add_argument`` and its field here.
    """

    provider: str
    target: str
    """The URL benchmarked: ``-H``, or the embedded reference server's (empty until it has started)."""
    embedded_server: bool
    """No ``-H`` was given: the run targets the reference server bootbench starts itself."""
    iterations: int
    timeout: float
    wait_ms: float
    pace: str
    trailing_silence_ms: float
    connect_per_call: bool
    system_message: str
    voice: str
    model: str
    turn: str
    audio: tuple[str, ...]
    """The ``--audio`` values as given (empty: the sine); :meth:`clips` loads them."""
    audible_dbfs: float
    headline: str
    results_dir: str
    ca_bundle: str
    master_silence_s: float
    checks: tuple[Check, ...] = ()
    """The ``--check`` expressions, parsed; evaluated once on the final statistics (by the master)."""
    sweep: str = ""
    """``--sweep`` as given, checked; :meth:`sweep_levels` is its levels (empty: no sweep)."""
    sweep_tolerance: float = DEFAULT_SWEEP_TOLERANCE
    turns: int = 1
    reply_gap_ms: float = DEFAULT_REPLY_GAP_MS

    def sweep_levels(self) -> tuple[int, ...]:
        """The users of each level of ``--sweep``; empty for a plain run."""
        return parse_levels(self.sweep) if self.sweep.strip() else ()

    def retarget(self, url: str, *, embedded: bool) -> Settings:
        """The same settings aimed at ``url`` (the embedded server once it has started, or a public endpoint)."""
        return replace(self, target=url, embedded_server=embedded)

    def api_key(self, *, required: bool) -> str | None:
        """The provider's API key from the environment or ./.env (registered for redaction).

        Required only for a target that is neither the embedded server nor on
        this machine; then a missing key raises :class:`ConfigError`.
        """
        names = providers.DRIVERS[self.provider].key_variables
        key = load_key(*names)
        if key or not required or self.embedded_server or is_loopback(self.target):
            return key
        raise ConfigError(
            f"{' or '.join(names)} is not set (in the environment or ./.env); it is needed for {redacted_url(self.target)}")

    def driver_config(self, api_key: str | None) -> providers.DriverConfig:
        """The driver's configuration: every DriverConfig field is the Settings field of the same name.

        Without a key (a reference server here needs none) the placeholder
        :data:`LOOPBACK_KEY` is sent.
        """
        same_name = {f.name: getattr(self, f.name) for f in fields(providers.DriverConfig)
                     if f.name not in ("url", "api_key")}
        return providers.DriverConfig(url=self.target, api_key=api_key or LOOPBACK_KEY, **same_name)

    def clips(self) -> ClipSet:
        """The clips of ``--audio`` (the sine when none is given), loaded once per process; raises AudioError."""
        return _load_clips(self.audio)

    def run_block(self) -> dict[str, Any]:
        """The configuration part of metrics.json's ``run`` block: what was measured, and how.

        The master adds the iteration accounting, users, mode, the clips'
        description, Locust's options and the abort reason.
        """
        block: dict[str, Any] = {}
        for f in fields(self):
            if f.name in NOT_RECORDED:
                continue
            value = getattr(self, f.name)
            if f.name == "target":
                value = redacted_url(value)
            elif f.name == "voice":
                value = value or None
            elif f.name == "model":
                value = value or None
            elif f.name == "sweep":
                value = list(self.sweep_levels()) or None
            block[RECORDED_AS.get(f.name, f.name)] = value
        return block


NOT_RECORDED = frozenset({"iterations", "audio", "results_dir", "ca_bundle", "checks", "master_silence_s"})
"""Settings that ``run_block`` leaves out: the master records the iteration accounting and the clips'
description (``audio``, ``clips``) instead; where results go, which CA file verified TLS and how long a worker
waits for a silent master do not change what is measured; the checks and their outcome are metrics.json's
``checks``."""
RECORDED_AS = {"timeout": "timeout_s"}
"""Keys of metrics.json's ``run`` block that differ from the option's name (the unit is in the key)."""
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "timeout": (0.0, 3600.0),
    "wait_ms": (0.0, 3_600_000.0),
    "trailing_silence_ms": (0.0, 60_000.0),
    "master_silence_s": (0.0, 3600.0),
    "reply_gap_ms": (0.0, 60_000.0),
}
"""The allowed range of each numeric option (every one must also be finite): an hour at most for
--timeout, --wait-ms and --master-silence-s, a minute of trailing silence (it is sent with every clip)."""
_FROM_HOST = ("target", "embedded_server")
OPTION_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Settings) if f.name not in _FROM_HOST)
"""The Settings fields read from an option of the same name."""
_KINDS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "tuple[str, ...]": tuple}


@functools.lru_cache(maxsize=4)
def _load_clips(values: tuple[str, ...]) -> ClipSet:
    return load_clips(values)


def resolve(options: Any, host: str | None) -> Settings:
    """Check the parsed options and the target host; raise :class:`ConfigError` on bad input.

    ``host`` is Locust's ``-H``; when it is empty the run targets the embedded
    reference server, whose URL is filled in by :meth:`Settings.retarget`
    once it has started. Most callers want :func:`settings_for`, which
    resolves once per process.
    """
    values = {name: _read(options, name) for name in OPTION_FIELDS}
    if values["iterations"] < 0:
        raise ConfigError(f"--iterations must be a positive number (or 0 for no limit), not {values['iterations']}")
    for name in (*NUMBER_RANGES, "sweep_tolerance"):
        if not math.isfinite(values[name]):
            raise ConfigError(f"--{name.replace('_', '-')} must be a finite number, not {values[name]:g}")
    if not values["timeout"] > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, not {values['timeout']:g}")
    if values["turns"] < 1:
        raise ConfigError(f"--turns must be at least 1, not {values['turns']}")
    if not values["reply_gap_ms"] > 0:
        raise ConfigError(f"--reply-gap-ms must be a positive number of ms, not {values['reply_gap_ms']:g}")
    if not values["master_silence_s"] > 0:
        raise ConfigError(f"--master-silence-s must be a positive number of seconds, not {values['master_silence_s']:g}")
    low, high = AUDIBLE_DBFS_RANGE
    if not (math.isfinite(values["audible_dbfs"]) and low <= values["audible_dbfs"] < high):
        raise ConfigError(f"--audible-dbfs must be a level from {low:g} up to (not including) {high:g} dBFS, "
                          f"not {values['audible_dbfs']:g}")
    values["headline"] = values["headline"].strip() or HEADLINE
    if values["headline"] not in PHASE_BY_NAME:
        raise ConfigError(f"--headline must name a phase ({', '.join(PHASES)}), not {values['headline']!r}")
    if values["sweep"].strip():
        parse_levels(values["sweep"])
        if values["iterations"] == 0:
            raise ConfigError("--sweep needs -i, the number of iterations of each level (not 0)")
        if not values["sweep_tolerance"] > 1:
            raise ConfigError(f"--sweep-tolerance must be a factor above 1, not {values['sweep_tolerance']:g}")
    for name, (low, high) in NUMBER_RANGES.items():
        _check_range(name, values[name], low, high)
    trailing = values["trailing_silence_ms"]
    values["pace"] = values["pace"] or PACES[0]
    if values["pace"] not in PACES:
        raise ConfigError(f"--pace must be one of {', '.join(PACES)}, not {values['pace']!r}")

    host = (host or "").strip()
    if host:
        check_url(host)
    provider = values["provider"] = values["provider"].strip().lower() or providers.infer(host)
    if provider not in providers.NAMES:
        raise ConfigError(f"unknown provider {provider!r}; choose one of {', '.join(providers.NAMES)}")
    driver = providers.DRIVERS[provider]
    turn = values["turn"] = values["turn"].strip().lower() or driver.turn_modes[0]
    if turn not in driver.turn_modes:
        raise ConfigError(f"--turn {turn} is not available for {provider}; choose {' or '.join(driver.turn_modes)}")
    if turn == "vad" and trailing < driver.vad_silence_ms:
        raise ConfigError(f"--turn vad needs --trailing-silence-ms of at least {driver.vad_silence_ms:g} for "
                          f"{provider} (its voice activity detection ends a turn after that much silence)")
    if values["ca_bundle"] and not Path(values["ca_bundle"]).is_file():
        raise ConfigError(f"CA bundle {values['ca_bundle']} does not exist")
    values["results_dir"] = values["results_dir"] or "results"
    values["model"] = values["model"] or driver.default_model
    values["voice"] = values["voice"].strip() or driver.default_voice
    return Settings(target=host, embedded_server=not host, **values)


_resolved: tuple[tuple[str, ...], Settings] | None = None


def settings_for(options: Any, host: str | None) -> Settings:
    """This process's settings for these options and host: resolved on first use, then reused.

    A worker receives the master's options with every spawn, and the web UI
    can change options and host between runs; only then are they resolved
    again. Raises :class:`ConfigError` like :func:`resolve`.
    """
    global _resolved
    key = ((host or "").strip(), *(repr(getattr(options, name, None)) for name in OPTION_FIELDS))
    if _resolved is None or _resolved[0] != key:
        _resolved = (key, resolve(options, host))
    return _resolved[1]


def check_or_exit(environment: Any) -> Settings:
    """Check the command line before anything starts: bad input is one sentence on stderr and exit code 2.

    Checks the options, the results folder, the audio file and the API key.
    With no ``-H`` but the provider's key set, the run goes to the
    provider's public endpoint (``environment.host`` is set to it).
    """
    opts = environment.parsed_options
    try:
        settings = settings_for(opts, environment.host)
        if settings.embedded_server and settings.api_key(required=False):
            public = providers.DRIVERS[settings.provider].public_url
            environment.host = public
            settings = settings_for(opts, public)
            log.info("no host given and the %s key is set: benchmarking %s", settings.provider, public)
        check_locust_options(opts)
        check_results_dir(settings.results_dir)
        clips = settings.clips()
        check_pace(settings, clips)
        settings.api_key(required=True)
    except (ConfigError, AudioError) as exc:
        sys.stderr.write(f"bootbench: {exc}\n")
        sys.exit(2)
    for warning in dict.fromkeys(clips.warnings):
        sys.stderr.write(f"bootbench: warning: {warning}\n")
    return settings


def check_locust_options(opts: Any) -> None:
    """Raise :class:`ConfigError` for Locust options with which a run could never make progress.

    Locust takes ``-u 0`` (or a negative count) and then waits forever for
    iterations that no user will run; ``--spawn-rate`` it checks itself.
    """
    users = getattr(opts, "num_users", None)
    starts_at_once = bool(getattr(opts, "headless", False) or getattr(opts, "autostart", False))
    if users is not None and users < 0:
        raise ConfigError(f"-u/--users cannot be negative ({users})")
    if users == 0 and starts_at_once:
        raise ConfigError("-u 0 starts no user, so the run would never make progress; give -u 1 or more")


def check_pace(settings: Settings, clips: ClipSet) -> None:
    """Raise :class:`ConfigError` when the input alone, sent at real-time pace, takes longer than ``--timeout``.

    ``--timeout`` bounds an iteration from its start to the first audible audio, and at ``--pace
    realtime`` sending the longest clip and its trailing silence takes their duration:
    with a shorter timeout every iteration would time out.
    """
    if settings.pace != "realtime":
        return
    seconds = (clips.max_duration_ms + settings.trailing_silence_ms) / 1000
    if seconds >= settings.timeout:
        raise ConfigError(f"at --pace realtime the input takes {seconds:.1f} s to send (clip and trailing silence), "
                          f"which leaves nothing of --timeout {settings.timeout:g} s (an iteration's start to the first audible audio); "
                          f"raise --timeout above {seconds:.1f} or use --pace burst")


def check_run(options: Any, host: str | None) -> Settings:
    """Everything :func:`check_or_exit` checks, for a run the web UI is about to start; raises ConfigError, AudioError."""
    settings = resolve(options, host)
    check_results_dir(settings.results_dir)
    check_pace(settings, settings.clips())
    settings.api_key(required=True)
    return settings


def with_form(options: Any, form: Any) -> argparse.Namespace:
    """A copy of the parsed ``options`` with bootbench's options replaced by the web UI start form's text fields."""
    merged = argparse.Namespace(**vars(options)) if options is not None else argparse.Namespace()
    kinds = {f.name: f.type for f in fields(Settings)}
    for name in OPTION_FIELDS:
        if name in form:
            value = form[name]
            setattr(merged, name, value == "true" if kinds[name] == "bool" else value)
    return merged


def check_url(url: str) -> None:
    """Raise :class:`ConfigError` unless ``url`` is an http(s):// or ws(s):// URL with a host."""
    parsed = urlparse(url)
    shown = url.split("?", 1)[0] + ("?***" if "?" in url else "")  # a key can hide in the query string
    if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.hostname:
        raise ConfigError(f"host {shown!r} is not a URL like wss://example.com or http://127.0.0.1:8080")
    try:
        parsed.port
    except ValueError:
        raise ConfigError(f"host {shown!r} has an invalid port") from None


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


def _check_range(name: str, value: float, low: float, high: float) -> None:
    """Raise :class:`ConfigError` unless ``value`` (finite) lies from ``low`` to ``high``."""
    flag = "--" + name.replace("_", "-")
    if value < low:
        raise ConfigError(f"{flag} cannot be {'negative' if low == 0 else f'below {low:g}'} ({value:g})")
    if value > high:
        raise ConfigError(f"{flag} must be at most {high:.10g}, not {value:.10g}")


def _read(options: Any, name: str) -> Any:
    """The option ``name`` converted to its Settings field's type; a non-number raises :class:`ConfigError`."""
    value = getattr(options, name, None)
    if name == "checks":
        try:
            return tuple(parse_checks(expressions(value)))
        except CheckError as exc:
            raise ConfigError(str(exc)) from None
    kind = _KINDS[next(f.type for f in fields(Settings) if f.name == name)]
    if kind is tuple:
        if value is None:
            return ()
        return tuple(str(v) for v in ([value] if isinstance(value, str) else value))
    if kind is str:
        return "" if value is None else str(value)
    if kind is bool:
        return bool(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        flag = "--" + name.replace("_", "-")
        raise ConfigError(f"{flag} must be a number, not {value!r}") from None
