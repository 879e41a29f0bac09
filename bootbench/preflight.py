"""The checks before a run starts: bad input is refused before anything is started or written.

:func:`check` is everything the command line is checked for (the options,
through :func:`bootbench.options.resolve`, then the host URL, Locust's own
options, the sweep's largest level, the results folder, the audio files, the pace against the timeout,
a burst message against the provider's message limit and the API key); :func:`check_web_run` the same for a run the web UI's start
form asks for. Both raise a :class:`~bootbench.errors.UserError` subclass
(:class:`~bootbench.options.ConfigError`, :class:`~bootbench.audio.AudioError`)
whose ``str()`` is the one sentence to show; they never exit: the entry point
(Locust's ``init`` hook in :mod:`bootbench.events`) writes the sentence and
exits with :data:`bootbench.errors.EXIT_CODE`.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bootbench import providers
from bootbench.providers import kernel_clock
from bootbench.options import ConfigError, Settings, resolve
from bootbench.run import master_watch, sweep
from bootbench.server import protocols as server_protocols
from bootbench.stimuli import ClipSet

log = logging.getLogger("bootbench")


@dataclass(frozen=True)
class Checked:
    """Input that passed every check: the settings, the host the run targets, and warnings to show."""

    settings: Settings
    host: str
    """``-H``; with no ``-H`` but the provider's key set, the provider's public endpoint; else empty (the
    embedded reference server)."""
    warnings: tuple[str, ...] = ()
    """Sentences about input that works but may not be what was meant (a silent clip), each once."""


def check(options: Any, host: str | None) -> Checked:
    """Check the command line before anything starts; raises a UserError subclass with the one sentence to show.

    ``options`` are Locust's parsed options (bootbench's among them) and
    ``host`` is ``-H``. With no host but the provider's key set, the run goes
    to the provider's public endpoint (:attr:`Checked.host`).
    """
    host = _host(host)
    settings = resolve(options, host)
    if settings.embedded_server and settings.api_key(required=False):
        driver = providers.get(settings.provider)
        try:
            host = driver.public_endpoint(driver.option_values(settings.provider_options))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        settings = resolve(options, host)
        log.info("no host given and the %s key is set: benchmarking %s", settings.provider, host)
    check_locust_options(options)
    metrics_warnings = check_metrics(settings, options)
    clips = _check_world(settings, options)
    return Checked(settings, host, tuple(dict.fromkeys([*clips.warnings, *metrics_warnings,
                                                        *clock_warnings(settings, options)])))


def clock_warnings(settings: Settings, options: Any) -> list[str]:
    """The one sentence for a run that asked for kernel arrival stamps where the kernel gives none."""
    why = kernel_clock.available()
    if settings.clock == "process" and (getattr(options, "clock", None) or "kernel") == "kernel" and why:
        return [f"kernel arrival stamps are not available here ({why}): the receive stamps are the process's "
                "own (run.clock is process)"]
    return []


def check_web_run(options: Any, host: str | None, users: str | None = None) -> Settings:
    """Everything :func:`check` checks of bootbench's input, for a run the web UI is about to start.

    ``users`` is the form's user count (Locust checks that it is a number;
    bootbench, as for ``-u``, that it starts a user). Raises a UserError subclass.
    """
    settings = resolve(options, _host(host))
    check_web_users(users, settings)
    _check_world(settings, options)
    return settings


def _check_world(settings: Settings, options: Any) -> ClipSet:
    """What both kinds of start check beyond the values: the embedded server's protocols, the sweep, the results
    folder, the clips (loaded, and sendable at the pace), the API key; the loaded clips."""
    check_emulated(settings)
    check_sweep(settings, options)
    check_results_dir(settings.results_dir)
    clips = settings.clips()
    check_pace(settings, clips)
    check_burst_message(settings, clips)
    settings.api_key(required=True)
    return clips


def _host(host: str | None) -> str:
    """``host`` stripped, checked by :func:`check_url` when given."""
    host = (host or "").strip()
    if host:
        check_url(host)
    return host


def check_emulated(settings: Settings) -> None:
    """Raise :class:`ConfigError` for a run against the embedded reference server of a provider it does not emulate.

    A plugin's provider is emulated when its package also adds a protocol of the same name (entry point group
    ``bootbench.server_protocols``); without one, every connect would meet a 404.
    """
    if not settings.embedded_server:
        return
    try:
        emulated = server_protocols.names()
    except server_protocols.ProtocolError as exc:
        raise ConfigError(str(exc)) from None
    if providers.get(settings.provider).emulated_by() not in emulated:
        raise ConfigError(f"the embedded reference server does not emulate the provider {settings.provider!r} (it "
                          f"emulates {', '.join(emulated)}); give the service's URL with -H")


def check_locust_options(options: Any) -> None:
    """Raise :class:`ConfigError` for Locust options with which a run could never make progress.

    Locust takes ``-u 0`` (or a negative count) and then waits forever for
    iterations that no user will run; ``--spawn-rate`` it checks itself.
    """
    users = getattr(options, "num_users", None)
    starts_at_once = bool(getattr(options, "headless", False) or getattr(options, "autostart", False))
    if users is not None and users < 0:
        raise ConfigError(f"-u/--users cannot be negative ({users})")
    if users == 0 and starts_at_once:
        raise ConfigError("-u 0 starts no user, so the run would never make progress; give -u 1 or more")


def check_metrics(settings: Settings, options: Any) -> list[str]:
    """Raise :class:`ConfigError` for a ``--metrics-linger`` with nothing to linger on; the warnings of the metrics
    options that a run with the web UI does not use (``--pushgateway`` pushes at the end of a headless run)."""
    headless = bool(getattr(options, "headless", False))
    if settings.metrics_linger > 0 and not settings.metrics_port:
        raise ConfigError(f"--metrics-linger {settings.metrics_linger:g} keeps serving --metrics-port after the run, "
                          "but no --metrics-port is given; give one (like --metrics-port 9646) or leave "
                          "--metrics-linger out")
    warnings = []
    if settings.pushgateway and not headless:
        warnings.append("--pushgateway pushes at the end of a headless run only; with the web UI, "
                        "let Prometheus scrape its /metrics")
    if settings.metrics_linger > 0 and not headless:
        warnings.append("--metrics-linger applies to a headless run only; the web UI serves /metrics "
                        "until it is stopped")
    return warnings


def check_sweep(settings: Settings, options: Any) -> None:
    """Raise :class:`ConfigError` for a ``--sweep`` level no run can start (:func:`bootbench.run.sweep.level_refusal`).

    Users run on workers with ``--processes`` or ``--master``, and a worker's
    user waits for its ticket ``--master-silence-s`` + 5 s; in one process, 60 s.
    """
    levels = settings.sweep_levels()
    if not levels:
        return
    on_worker = bool(getattr(options, "master", False) or getattr(options, "processes", None))
    wait = master_watch.ticket_wait_s(on_worker=on_worker, silence_s=settings.master_silence_s)
    reason = (f" (--master-silence-s {settings.master_silence_s:g} + {master_watch.TICKET_SLACK:g} on a worker)"
              if on_worker else "")
    refusal = sweep.level_refusal(levels, wait, reason)
    if refusal is not None:
        raise ConfigError(refusal + ("; raise --master-silence-s for larger levels" if on_worker else ""))


def check_web_users(users: str | None, settings: Settings) -> None:
    """Raise :class:`ConfigError` for a web UI start of no user (``-u 0``'s refusal); a sweep sets its own users."""
    if users is None or settings.sweep_levels():
        return
    try:
        count = int(str(users).strip())
    except ValueError:
        return  # not a number: Locust's own handler refuses it
    if count < 1:
        raise ConfigError(f"{count} users start no user, so the run would never make progress; give 1 user or more")


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


ENVELOPE_BYTES = 256
"""What a burst message adds around its base64 audio (the JSON or Socket.IO envelope, at most about 100 bytes)."""


def burst_message_bytes(clips: ClipSet, rate: int, trailing_silence_ms: float) -> int:
    """Bytes of the largest message ``--pace burst`` sends: the longest clip as PCM16 at ``rate`` with its trailing
    silence, base64 as the drivers send it, and its envelope (:data:`ENVELOPE_BYTES`); computed, nothing encoded."""
    samples = max(round(clip.stimulus.samples.size * rate / clip.stimulus.rate) for clip in clips)
    samples += round(max(trailing_silence_ms, 0) * rate / 1000)
    return 4 * math.ceil(2 * samples / 3) + ENVELOPE_BYTES


def check_burst_message(settings: Settings, clips: ClipSet) -> None:
    """Raise :class:`ConfigError` when ``--pace burst`` would send a message larger than the service accepts.

    At burst pace a clip and its trailing silence go in one message; over the provider's limit
    (:attr:`~bootbench.providers.Driver.max_message_bytes`) the service drops the connection and every
    iteration fails as ``disconnected``. Real-time pace sends 64 ms chunks, far below any limit.
    """
    if settings.pace != "burst":
        return
    driver = providers.get(settings.provider)
    size = burst_message_bytes(clips, driver.input_rate, settings.trailing_silence_ms)
    if size > driver.max_message_bytes:
        raise ConfigError(f"at --pace burst the longest clip goes to {settings.provider} in one {_mib(size)} message, "
                          f"over the {_mib(driver.max_message_bytes)} a message may carry ({driver.max_message_source}); "
                          "use --pace realtime (64 ms chunks) or a shorter clip")


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def check_url(url: str) -> None:
    """Raise :class:`ConfigError` unless ``url`` is an http(s):// or ws(s):// URL with a host."""
    shown = url.split("?", 1)[0] + ("?***" if "?" in url else "")  # a key can hide in the query string
    try:
        parsed = urlparse(url)
    except ValueError:  # an unclosed [ of an IPv6 address
        raise ConfigError(f"host {shown!r} is not a URL like wss://example.com or http://127.0.0.1:8080") from None
    if parsed.scheme not in ("http", "https", "ws", "wss") or not parsed.hostname:
        raise ConfigError(f"host {shown!r} is not a URL like wss://example.com or http://127.0.0.1:8080")
    try:
        parsed.port
    except ValueError:
        raise ConfigError(f"host {shown!r} has an invalid port") from None


def check_results_dir(path: str) -> None:
    """Raise :class:`ConfigError` unless ``path`` is (or can become) a writable folder; creates nothing."""
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
