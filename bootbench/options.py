"""bootbench's options, declared once in :data:`OPTIONS`, and the checked :class:`Settings` they resolve to.

Every option is a normal Locust option (command line, ``LOCUST_*``
variable, config file). Each row of :data:`OPTIONS` says everything about
one: its flags, type, default, range, help, whether the web UI shows it and
how metrics.json's ``run`` block records it. From the table come the
argparse registration (:func:`add_arguments`), the reading and checking of
the values (:func:`resolve`: bad input raises :class:`ConfigError`, one
sentence for the user) and :meth:`Settings.run_block`.
**Adding an option is one edit: a row in OPTIONS** (tests/test_options.py
adds one in-process and sees it parsed, checked and recorded).

The checks that look at the world rather than at the values (the results
folder, the audio files, the API key, Locust's own options) are
:mod:`bootbench.preflight`'s.
"""

from __future__ import annotations

import argparse
import functools
import ipaddress
import math
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urlparse

from bootbench import providers
from bootbench.audible import DEFAULT_AUDIBLE_DBFS
from bootbench.argv import keep_dash_values
from bootbench.checks import CAPACITY, CheckError, expressions, parse_checks
from bootbench.errors import UserError
from bootbench.providers import kernel_clock
from bootbench.providers.kernel_clock import CLOCKS
from bootbench.providers.network import redacted_url
from bootbench.replies import parse_keep
from bootbench.samples import HEADLINE, PHASE_BY_NAME, PHASES, TURN_PHASES
from bootbench.secrets import load_key
from bootbench.secrets import register as register_secret
from bootbench.stimuli import ClipSet, load_clips
from bootbench.trace_events import MAX_EVENTS

PACES = ("burst", "realtime")
DEFAULT_REPLY_GAP_MS = 500.0
"""Quiet after which an Aivoco reply has ended: 12 times the 40 ms spacing of the reference server's chunks,
several times that of real streams (20-100 ms chunks, sent at or faster than real time), and the 500 ms of
silence server VAD takes as the end of a user's turn. It never enters a figure (the end is the last chunk's
arrival); too short a gap would split a reply that stalls mid-way and take its rest as the next turn's answer."""
MIN_REPLY_GAP_MS = 200.0
"""The shortest ``--reply-gap-ms``: twice the longest chunk spacing of real streams (100 ms chunks at real time), so a
late chunk does not end its reply either. A shorter quiet falls between two chunks of one reply, whose rest would be
timed as the next turn's answer (a gap of 1 ms made warm turns 56 ms instead of ~104 against the reference server)."""
AUDIBLE_DBFS_RANGE = (-120.0, 0.0)
"""``--audible-dbfs`` lies in [-120, 0): below -120 dBFS is under PCM16's own noise floor, 0 is full scale."""
DEFAULT_SWEEP_TOLERANCE = 1.5
"""See :mod:`bootbench.levels` for why 1.5."""
MAX_TURNS = 50
MAX_TURNS_WHY = ("Gemini Live ends a connection after about 10 minutes, and a turn (a clip, its reply, the pause "
                 "before the next) takes about 12 s")
"""``--turns`` is bounded by the shortest session a provider documents: Gemini Live closes a connection after about
10 minutes (OpenAI Realtime sessions last 30 minutes or more), and a turn of the 4 s speech clip, a reply of a few seconds and
the reply gap takes about 12 s, so 50 turns fill one connection. A session cut short loses its warm turns (and an
iteration of 10000 turns would take more than a day)."""
LOOPBACK_KEY = "bootbench-reference"
"""The key sent to a reference server on this machine when no key is configured (not a secret)."""
HELP_GROUP = "bootbench options"


class ConfigError(UserError, ValueError):
    """A user-caused configuration problem; ``str()`` is the one sentence to show."""


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Range:
    """The values a number option may take; each refusal is one sentence naming the flag and the value.

    A float must also be finite. ``positive`` names the unit of an option that
    must be above 0 ("--timeout must be a positive number of seconds");
    ``below`` replaces "cannot be negative" for a value under ``low``;
    ``refusal`` replaces every sentence (a value outside, or not finite).
    """

    low: float = -math.inf
    high: float = math.inf
    high_open: bool = False
    """``high`` itself is outside."""
    low_open: bool = False
    """``low`` itself is outside."""
    positive: str = ""
    below: str = ""
    above: str = ""
    """Why ``high`` is the bound, appended to the refusal of a value above it."""
    refusal: str = ""

    def check(self, flag: str, value: float) -> None:
        """Raise :class:`ConfigError` unless ``value`` lies in the range."""
        shown = str(value) if isinstance(value, int) else f"{value:g}"
        inside = ((self.low < value if self.low_open else self.low <= value)
                  and (value < self.high if self.high_open else value <= self.high))
        if self.refusal:
            if not (math.isfinite(value) and inside):
                raise ConfigError(f"{flag} {self.refusal}, not {shown}")
            return
        if not math.isfinite(value):
            raise ConfigError(f"{flag} must be a finite number, not {shown}")
        if self.positive and not value > 0:
            raise ConfigError(f"{flag} must be a positive number of {self.positive}, not {shown}")
        if value < self.low:
            if self.below:
                raise ConfigError(f"{flag} {self.below}, not {shown}")
            raise ConfigError(f"{flag} cannot be {'negative' if self.low == 0 else f'below {self.low:g}'} ({shown})")
        if not inside:
            why = f": {self.above}" if self.above else ""
            raise ConfigError(f"{flag} must be at most {self.high:.10g}, not {value:.10g}{why}")


def none_when_empty(value: Any) -> Any:
    """How metrics.json records an option whose empty value means "the provider's own": null."""
    return value or None


@dataclass(frozen=True)
class Option:
    """One row of :data:`OPTIONS`: one option, from its flags to its key in metrics.json.

    ``kind`` is the type of the value: ``int``, ``float``, ``str``, ``bool``
    (a switch) or ``tuple`` (repeatable: the values given, in order). Its
    ``name`` (the argparse ``dest``, the :class:`Settings` attribute) comes
    from the long flag unless given; its variable is ``LOCUST_`` and the long
    flag in capitals. ``check`` takes the converted value and returns it
    checked (and normalised), raising :class:`ConfigError`.
    """

    flags: tuple[str, ...]
    kind: type
    default: Any
    help: str
    name: str = ""
    range: Range | None = None
    choices: tuple[str, ...] | None = None
    check: Callable[[Any], Any] | None = None
    metavar: str | None = None
    web_ui: bool = True
    """Shown in the web UI's start form (Locust's own options are, unless marked otherwise)."""
    recorded: bool = True
    """Recorded in metrics.json's ``run`` block (the measurement's definition)."""
    recorded_as: str = ""
    """The key in the ``run`` block, when it is not the name (a unit in the key)."""
    record: Callable[[Any], Any] | None = None
    """How the ``run`` block shows the value, when not as it is."""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.flag[2:].replace("-", "_"))

    @property
    def flag(self) -> str:
        """The long flag, as sentences name the option."""
        return self.flags[-1]

    @property
    def env_var(self) -> str:
        return "LOCUST_" + self.flag[2:].upper().replace("-", "_")

    @property
    def key(self) -> str:
        """The key of the ``run`` block."""
        return self.recorded_as or self.name

    def read(self, value: Any) -> Any:
        """The parsed (or web form) ``value`` converted to ``kind`` and checked; raises :class:`ConfigError`."""
        if self.kind is tuple:
            value = () if value is None else tuple(str(v) for v in ([value] if isinstance(value, str) else value))
        elif self.kind is str:
            value = "" if value is None else str(value)
        elif self.kind is bool:
            value = bool(value)
        elif self.default is None and value in (None, ""):
            return None  # a number not given, defaulted later from what it depends on (resolve)
        else:
            try:
                value = self.kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{self.flag} must be a number, not {value!r}") from None
        if self.range is not None:
            self.range.check(self.flag, value)
        if self.check is not None:
            value = self.check(value)
        return value


def parse_levels(text: str) -> tuple[int, ...]:
    """The levels of ``--sweep``: positive, strictly increasing user counts; raises :class:`ConfigError`."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 1 and not all(parts):  # "1,,2" or "1,2,4,": a level lost to a typo (or an unset variable)
        raise ConfigError(f"--sweep has an empty level in {text!r}: write the users of each level, like 1,2,4,8")
    try:
        levels = tuple(int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--sweep must be comma-separated numbers of users like 1,2,4,8, not {text!r}") from None
    if not levels or any(n < 1 for n in levels):
        raise ConfigError(f"--sweep levels must be positive numbers of users, not {text!r}")
    if any(b <= a for a, b in zip(levels, levels[1:])):
        raise ConfigError(f"--sweep levels must increase from one to the next, like 1,2,4,8 (not {text!r})")
    return levels


def _sweep(text: str) -> str:
    if text.strip():
        parse_levels(text)
    return text


def _sweep_levels(text: str) -> list[int] | None:
    return list(parse_levels(text)) if text.strip() else None


def _headline(name: str) -> str:
    name = name.strip() or HEADLINE
    if name not in PHASE_BY_NAME:
        raise ConfigError(f"--headline must name a phase ({', '.join(PHASES)}), not {name!r}")
    return name


def _pace(pace: str) -> str:
    pace = pace or PACES[0]
    if pace not in PACES:
        raise ConfigError(f"--pace must be one of {', '.join(PACES)}, not {pace!r}")
    return pace


def _clock(clock: str) -> str:
    """The clock the receive stamps are on: ``kernel`` falls back to ``process`` where the kernel gives no
    arrival stamps (:func:`bootbench.providers.kernel_clock.available`; preflight says so once)."""
    clock = clock or CLOCKS[0]
    if clock not in CLOCKS:
        raise ConfigError(f"--clock must be one of {', '.join(CLOCKS)}, not {clock!r}")
    return clock if clock == "process" or kernel_clock.available() is None else "process"


def _ca_bundle(path: str) -> str:
    if path and not Path(path).is_file():
        raise ConfigError(f"CA bundle {path} does not exist")
    return path


def _record_replies(text: str) -> int | str:
    try:
        return parse_keep(text)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _provider_options(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` texts as (key, value) pairs (checked against the provider's options in :func:`resolve`)."""
    pairs = []
    for value in values:
        key, equals, text = value.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"--provider-option must be KEY=VALUE, not {value!r}")
        pairs.append((key.strip(), text.strip()))
    return tuple(pairs)


def _checks(values: tuple[str, ...]) -> tuple[Any, ...]:
    if any(not expressions(value) for value in values):  # --check "$GATE" with GATE unset: the gate would go
        raise ConfigError("empty --check: it names no check (is a variable unset?); give an expression like "
                          "first_response_ms:p95<=800, or leave --check out")
    try:
        return tuple(parse_checks(expressions(values)))
    except CheckError as exc:
        raise ConfigError(str(exc)) from None


def _pushgateway(url: str) -> str:
    url = url.strip()
    if not url:
        return url
    parsed = urlparse(url)
    shown = redacted_url(url) if "://" in url else url  # credentials or a query may hide in a URL
    try:
        valid = parsed.scheme in ("http", "https") and bool(parsed.hostname) and (parsed.port or 1) > 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise ConfigError(f"--pushgateway must be an http:// or https:// URL like http://127.0.0.1:9091, not {shown!r}")
    return url


def _pushgateway_job(job: str) -> str:
    job = job.strip()
    if not job:
        raise ConfigError("--pushgateway-job cannot be empty: it names the job the metrics are pushed under")
    return job


OPTIONS: tuple[Option, ...] = (
    Option(("-i", "--iterations"), int, 100, recorded=False,  # the master records the iteration accounting
           range=Range(low=0, below="must be a positive number (or 0 for no limit)"),
           help="Total iterations (call cycles) of the whole run, over all users and workers; "
                "the run ends by itself after them. 0 = no limit. With --sweep: per level. Default 100."),
    Option(("--provider",), str, "",  # checked and defaulted with the host in resolve()
           help=f"Wire protocol: {', '.join(providers.registry.BUILTINS)} or an installed plugin's "
                "(`bootbench providers` lists them). Default: inferred from the host, else aivoco."),
    Option(("--timeout",), float, 10.0, range=Range(0.0, 3600.0, positive="seconds"), recorded_as="timeout_s",
           help="Seconds an iteration may take from its start to the first audible audio back (at most 3600). "
                "Default 10."),
    Option(("--results-dir",), str, "results", check=lambda path: path or "results", recorded=False,
           help="Folder that receives one sub-folder per run. Default ./results."),
    Option(("--audio",), tuple, None, recorded=False,  # the master records the clips' description instead
           help="What to say (repeatable): sine (the default, 1 s 440 Hz), speech (a recorded "
                "sentence shipped with bootbench), an audio file (WAV, FLAC, OGG, MP3; any rate and "
                "channels) or a folder of them. Iteration k sends clip (k-1) mod n. Default sine."),
    Option(("--audible-dbfs",), float, DEFAULT_AUDIBLE_DBFS,
           range=Range(*AUDIBLE_DBFS_RANGE, high_open=True,
                       refusal=f"must be a level from {AUDIBLE_DBFS_RANGE[0]:g} up to (not including) "
                               f"{AUDIBLE_DBFS_RANGE[1]:g} dBFS"),
           help="Level (10 ms RMS, dBFS) above which reply audio counts as audible, for "
                f"first_audible_ms. Default {DEFAULT_AUDIBLE_DBFS:g}."),
    Option(("--record-replies",), str, "", check=_record_replies, metavar="N|all",
           record=none_when_empty,
           help="Keep the answer's audio of N iterations (the slowest, the median and an even sample of the rest "
                "by first_audible_ms, chosen at the end) or of all, as WAV files in the run folder's replies/ "
                "(what arrived until the session was stopped), for report.html's players and bootbench verify. "
                "Default: none."),
    Option(("--headline",), str, HEADLINE, check=_headline,
           help=f"The phase the console summary and progress line lead with ({', '.join(PHASES)}). "
                f"Default {HEADLINE}."),
    Option(("--connect-per-call",), bool, False,
           help="Open a new connection in every cycle, so connect time counts in cold_start_ms. Default off."),
    Option(("--pace",), str, "burst", choices=PACES, check=_pace,
           help="burst: the whole clip in one message; realtime: 64 ms chunks at real-time pace. Default burst."),
    Option(("--trailing-silence-ms",), float, None, range=Range(0.0, 60_000.0),  # it is sent with every clip
           help="Silence appended after the clip, in ms (for services that detect the end of a turn; at most "
                "60000). Default: with --turn vad the provider's (enough for its voice activity detection to end "
                "the turn; `bootbench providers` shows it), else 0."),
    Option(("--system-message",), str, "You are a helpful voice assistant.",
           help="System prompt sent when a session starts. Default: 'You are a helpful voice assistant.'"),
    Option(("--voice",), str, "", record=none_when_empty,  # defaulted with the provider in resolve()
           help="Voice of the reply. Default: the provider's (`bootbench providers` shows it)."),
    Option(("--model",), str, "", record=none_when_empty,  # defaulted with the provider in resolve()
           help="Model of the session (for an agent platform, the agent's LLM where the protocol names one). "
                "Default: the provider's (`bootbench providers` shows it)."),
    Option(("--turn",), str, "",  # checked and defaulted with the provider in resolve()
           help="How the user's turn ends: manual (the client says so: commit / activityEnd / ForceEndTurn) or "
                "vad (the service's voice activity detection hears the trailing silence). Default: the "
                "provider's first mode (`bootbench providers` shows its modes)."),
    Option(("--ca-bundle",), str, "", check=_ca_bundle, recorded=False,  # does not change what is measured
           help="PEM file of CA certificates to verify the service's TLS certificate with "
                "(default: the system's). Certificates are always verified."),
    Option(("--clock",), str, CLOCKS[0], choices=CLOCKS, check=_clock,
           help="Whose receive stamps time the phases: kernel (the kernel's arrival time of the bytes that completed "
                "each message, on Linux; elsewhere the process clock, said once) or process (when the harness "
                "handled the message: includes its own delays). Recorded as run.clock. Default kernel."),
    Option(("--wait-ms",), float, 100.0, range=Range(0.0, 3_600_000.0),
           help="Pause after each cycle, in ms (at most 3600000). Default 100."),
    Option(("--master-silence-s",), float, 10.0, range=Range(0.0, 3600.0, positive="seconds"),
           recorded=False,  # how long a worker waits for a silent master does not change what is measured
           help="On a worker: seconds without a heartbeat reply from the master, during a run, "
                "after which the worker stops (its iterations in flight are lost). Set on the master: "
                "workers receive it with the run. Default 10."),
    Option(("--provider-option",), tuple, None, name="provider_options", check=_provider_options,
           metavar="KEY=VALUE", recorded=False,  # recorded by run_block, secrets redacted (the driver says which)
           help="A setting of the provider's own, KEY=VALUE (repeatable), such as an agent id; each provider "
                "declares its options (`bootbench providers` lists them). Secret ones are redacted in metrics.json. "
                "Default: none (each option its default)."),
    Option(("--check",), tuple, None, name="checks", check=_checks, metavar="EXPR", web_ui=False,
           recorded=False,  # the checks and their outcome are metrics.json's "checks"
           help="A pass/fail check on the final statistics, repeatable: PHASE:STAT OP VALUE "
                "(first_response_ms:p95<=800), success_rate OP VALUE (success_rate>=95%%) or, with "
                "--sweep, capacity OP USERS (capacity>=4). "
                "LOCUST_CHECK takes several separated by ';'. Exit code 3 when one fails. Default: none."),
    Option(("--sweep",), str, "", check=_sweep, web_ui=False, record=_sweep_levels,
           help="Concurrency sweep: comma-separated numbers of users (e.g. 1,2,4,8), run one level "
                "after another, -i iterations each, in rounds of calls that start at once; -u is "
                "ignored. Reports the capacity: the highest level within --sweep-tolerance. Default: no sweep."),
    Option(("--sweep-tolerance",), float, DEFAULT_SWEEP_TOLERANCE, web_ui=False,
           range=Range(low=1.0, low_open=True, refusal="must be a factor above 1"),
           help="A sweep level is within capacity while its cold-start p95 is at most this many times "
                f"the lowest level's (and 99 %% of its calls succeed). Default {DEFAULT_SWEEP_TOLERANCE:g}."),
    Option(("--turns",), int, 1, range=Range(low=1, high=MAX_TURNS, below="must be at least 1", above=MAX_TURNS_WHY),
           help="Turns per session: turn 1 is the cold one; turns 2..N are sent in the same session, "
                "each after the previous reply has ended, to measure warm latency and the cold "
                 f"penalty (at most {MAX_TURNS}). Default 1 (no warm turns)."),
    Option(("--reply-gap-ms",), float, DEFAULT_REPLY_GAP_MS,
           range=Range(MIN_REPLY_GAP_MS, 60_000.0, positive="ms",
                       below=f"must be at least {MIN_REPLY_GAP_MS:g} ms, twice the longest chunk spacing of real "
                             "streams (100 ms): a shorter quiet falls between two chunks of one reply, and its rest "
                             "would be timed as the next turn's answer"),
           help="Aivoco: a reply has ended when no audio_response came for this long (the protocol has no "
                "end-of-reply event): with --turns > 1 the next turn starts then, and a reply never audible is "
                f"waited for no longer (at least {MIN_REPLY_GAP_MS:g}, at most 60000). "
                f"Default {DEFAULT_REPLY_GAP_MS:g}."),
    Option(("--trace",), bool, False,
           help="Write trace.json: every message of every iteration (time, direction, type, size; audio as its "
                "length and a hash, never its content; no key, token or URL query) with each iteration's phases "
                "and service stages, in Chrome's Trace Event Format (open it in ui.perfetto.dev or "
                f"chrome://tracing). At most {MAX_EVENTS} events; later iterations are not traced. Default off."),
    Option(("--metrics-port",), int, 0, web_ui=False,
           range=Range(0, 65535, refusal="must be a TCP port from 1 to 65535 (or 0 for none)"),
           recorded=False,  # where the numbers are shown does not change them
           help="Serve the run's Prometheus metrics at /metrics on this port of the master (bound to "
                "--web-host's address); with the web UI they are at its /metrics as well. Default 0: off."),
    Option(("--metrics-linger",), float, 0.0, range=Range(0.0, 3600.0), web_ui=False, recorded=False,
           help="Headless, with --metrics-port: seconds the process keeps serving the final metrics after "
                "the run, so a last scrape sees them (at most 3600). Default 0."),
    Option(("--pushgateway",), str, "", check=_pushgateway, metavar="URL", web_ui=False, recorded=False,
           help="Headless: push the final metrics once at the end of the run to the Prometheus Pushgateway at "
                "this URL (user:password@ for basic auth); a failed push is a warning, never a lost result "
                "or another exit code. Default: none."),
    Option(("--pushgateway-job",), str, "bootbench", check=_pushgateway_job, web_ui=False, recorded=False,
           help="The job the metrics are pushed under (with the provider as a grouping label). Default bootbench."),
)
"""Every bootbench option, in the order ``bootbench options`` lists them. The ranges: an hour at most for
--timeout, --wait-ms and --master-silence-s, a minute of trailing silence (it is sent with every clip)."""
OPTION_FIELDS: tuple[str, ...] = tuple(option.name for option in OPTIONS)
"""The names of the options (their :class:`Settings` attributes), for readers of the table."""


def add_arguments(parser: Any) -> None:
    """Register every row of :data:`OPTIONS` on Locust's argument parser, in a group of their own ("bootbench options").

    ``bootbench options`` prints the group's help: Locust prints ``--help``
    before it imports a locustfile, so ``locust --help`` cannot list them.
    Like Locust's own options, each is shown in the web UI's form unless its
    row says not: an argument group's ``add_argument`` is configargparse's
    (``env_var`` works) and not Locust's, which would have marked it.
    """
    group = parser.add_argument_group(
        HELP_GROUP, "Options of the bootbench user class (locustfile.py); also LOCUST_* variables and config-file keys.")
    for option in OPTIONS:
        kwargs: dict[str, Any] = {"default": option.default, "help": option.help, "env_var": option.env_var}
        if option.kind is bool:
            kwargs["action"] = "store_true"
        elif option.kind is tuple:
            kwargs["action"] = "append"
        elif option.kind is not str:
            kwargs["type"] = option.kind
        if option.name != option.flag[2:].replace("-", "_"):
            kwargs["dest"] = option.name
        if option.choices is not None:
            kwargs["choices"] = option.choices
        if option.metavar is not None:
            kwargs["metavar"] = option.metavar
        action = group.add_argument(*option.flags, **kwargs)
        action.include_in_web_ui = option.web_ui
        action.is_secret = action.is_required = action.is_multiple = False
    keep_dash_values(parser, [flag for option in OPTIONS if option.kind is not bool for flag in option.flags],
                     lambda: sys.argv[1:])
    bind_to_loopback_by_default(parser)


def bind_to_loopback_by_default(parser: Any) -> None:
    """Locust's web UI and master port listen on every interface by default; bootbench's listen on 127.0.0.1.

    The web UI can start runs that spend the API key's credits, so reaching it
    from the network is something to ask for: ``--web-host 0.0.0.0``,
    ``--master-bind-host 0.0.0.0`` (or their ``LOCUST_*`` variables).
    """
    parser.set_defaults(web_host="127.0.0.1", master_bind_host="127.0.0.1")


# ---------------------------------------------------------------- the settings


@dataclass(frozen=True)
class Settings:
    """What a run measures and how: the checked form of the options.

    Every option of :data:`OPTIONS` is an attribute of its name
    (``settings.timeout``), read and checked by :func:`resolve`; ``target``
    and ``embedded_server`` come from the host.
    """

    target: str
    """The URL benchmarked: ``-H``, or the embedded reference server's (empty until it has started)."""
    embedded_server: bool
    """No ``-H`` was given: the run targets the reference server bootbench starts itself."""
    values: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)
    """Every option's checked value, by name (read it as attributes; not to be changed)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "values":  # copy and pickle look for these before __init__ ran
            raise AttributeError(name)
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(f"Settings has no option {name!r}") from None

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
        names = providers.get(self.provider).key_variables
        key = load_key(*names)
        if key or not required or self.embedded_server or is_loopback(self.target):
            return key
        raise ConfigError(
            f"{' or '.join(names)} is not set (in the environment or ./.env); it is needed for {redacted_url(self.target)}")

    def driver_config(self, api_key: str | None) -> providers.DriverConfig:
        """The driver's configuration: every DriverConfig field is the option of the same name.

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

        The target (its secrets redacted) and every option whose row is
        ``recorded``, under its ``key``. The master adds the iteration
        accounting, users, mode, the clips' description, Locust's options and
        the abort reason.
        """
        # the provider first, as metrics.json has always had it (the update keeps its place)
        block: dict[str, Any] = {"provider": self.provider, "target": redacted_url(self.target),
                                 "embedded_server": self.embedded_server}
        for option in OPTIONS:
            if option.recorded:
                value = self.values[option.name]
                block[option.key] = option.record(value) if option.record is not None else value
        block["provider_options"] = self.recorded_provider_options()
        return block

    def recorded_provider_options(self) -> dict[str, str]:
        """``--provider-option`` as metrics.json records it: every declared option's text, a secret's redacted."""
        driver = providers.get(self.provider)
        given = dict(self.provider_options)
        return {option.key: ("***" if option.secret and given.get(option.key) else
                             given.get(option.key, option.default)) for option in driver.options}


@functools.lru_cache(maxsize=4)
def _load_clips(values: tuple[str, ...]) -> ClipSet:
    return load_clips(values)


def resolve(options: Any, host: str | None) -> Settings:
    """The checked settings of the parsed options and the target host; raises :class:`ConfigError` on bad input.

    Each option is read and checked by its row of :data:`OPTIONS`; then the
    options that depend on each other and on the provider. ``host`` is
    Locust's ``-H`` (checked by :func:`bootbench.preflight.check_url`); when
    it is empty the run targets the embedded reference server, whose URL is
    filled in by :meth:`Settings.retarget` once it has started.
    """
    values = {option.name: option.read(getattr(options, option.name, None)) for option in OPTIONS}
    if values["sweep"].strip():
        if values["iterations"] == 0:
            raise ConfigError("--sweep needs -i, the number of iterations of each level (not 0)")
    check_measurable(values["checks"], sweep=bool(values["sweep"].strip()), turns=values["turns"])
    host = (host or "").strip()
    provider = values["provider"] = values["provider"].strip().lower() or providers.infer(host)
    driver = providers.get(provider)  # ProviderError (a UserError: one sentence, exit 2) for an unknown name
    try:
        driver.option_values(values["provider_options"])
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for option in driver.options:
        given = dict(values["provider_options"]).get(option.key)
        if option.secret and given:
            register_secret(given)  # masked in every log line from now on
        if option.required and not given and host and not is_loopback(host):
            raise ConfigError(f"the {provider} provider needs --provider-option {option.key}=... "
                              f"({option.help[:1].lower()}{option.help[1:].rstrip('.')})")
    turn = values["turn"] = values["turn"].strip().lower() or driver.turn_modes[0]
    if turn not in driver.turn_modes:
        raise ConfigError(f"--turn {turn} is not available for {provider}; choose {' or '.join(driver.turn_modes)}")
    if values["trailing_silence_ms"] is None:  # not given: what the turn mode needs
        values["trailing_silence_ms"] = driver.vad_trailing_silence_ms if turn == "vad" else 0.0
    if turn == "vad" and values["trailing_silence_ms"] < driver.vad_silence_ms:
        raise ConfigError(f"--turn vad needs --trailing-silence-ms of at least {driver.vad_silence_ms:g} for "
                          f"{provider} (its voice activity detection ends a turn after that much silence)")
    gap_ms, timeout = values["reply_gap_ms"], values["timeout"]
    if values["turns"] > 1 and driver.ends_reply_by_gap and gap_ms >= timeout * 1000:
        raise ConfigError(f"--reply-gap-ms {gap_ms:g} is not below --timeout {timeout:g} s: with --turns above 1 an "
                          f"{provider} reply ends only after that much quiet, and each reply must end within "
                          f"--timeout; give a gap below {timeout * 1000:g} ms (default {DEFAULT_REPLY_GAP_MS:g})")
    values["model"] = values["model"] or driver.default_model
    values["voice"] = values["voice"].strip() or driver.default_voice
    return Settings(target=host, embedded_server=not host, values=values)


def check_measurable(checks: Sequence[Any], *, sweep: bool, turns: int) -> None:
    """Raise :class:`ConfigError` for a ``--check`` the run can never measure (it could only fail "no data" at the end)."""
    for check in checks:
        if check.stat == CAPACITY and not sweep:
            raise ConfigError(f"--check {check.expr!r} needs --sweep: only a sweep measures a capacity")
        if check.phase in TURN_PHASES and turns < 2:
            raise ConfigError(f"--check {check.expr!r} needs --turns 2 or more: with one turn per session "
                              f"there is no warm turn to measure")


def with_form(options: Any, form: Any) -> argparse.Namespace:
    """A copy of the parsed ``options`` with bootbench's options replaced by the web UI start form's text fields."""
    merged = argparse.Namespace(**vars(options)) if options is not None else argparse.Namespace()
    for option in OPTIONS:
        if option.name in form:
            value = form[option.name]
            setattr(merged, option.name, value == "true" if option.kind is bool else value)
    return merged


def is_loopback(url: str) -> bool:
    """True when ``url`` points at this machine (where a placeholder key is fine)."""
    hostname = urlparse(url).hostname or ""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False
