"""Every Locust event hook of bootbench, and the little process state Locust's event model needs.

Importing this module registers the hooks (``locustfile.py`` does). Roles:

- every process: options, the per-run :class:`ProcessContext` users read;
- the master, or the single local process ("the office"): input checks,
  the embedded reference server, the global iteration budget, the one
  :class:`~bootbench.exporters.RunRecorder`, ending the run;
- workers, or the single local process ("the floor"): asking for tickets,
  shipping finished samples to the office.

On a ``LocalRunner`` ``send_message`` calls the local handler directly, so
local and distributed runs take the same code path.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent.event import AsyncResult
from locust import events
from locust.runners import STATE_MISSING, LocalRunner, MasterRunner, WorkerRunner

from bootbench import options as bootopts
from bootbench import providers
from bootbench.views import progress, webui
from bootbench.audio import AudioError, Stimulus
from bootbench.run.budget import TicketOffice
from bootbench.exporters import RunRecorder, console_summary
from bootbench.providers import DriverConfig
from bootbench.providers.base import public_url
from bootbench.samples import Sample
from bootbench.secrets import install_log_redaction, load_key

log = logging.getLogger("bootbench")

MSG_TICKET_REQUEST = "bootbench_ticket_request"
MSG_TICKET = "bootbench_ticket"
MSG_SAMPLES = "bootbench_samples"
MSG_ABANDONED = "bootbench_abandoned"
MSG_FLUSH = "bootbench_flush"
MSG_FLUSHED = "bootbench_flushed"

TICKET_WAIT = 60.0
FLUSH_WAIT = 10.0
WATCH_INTERVAL = 1.0
FATAL_STREAK = 3
"""A run whose first iterations all fail this many times in a row to connect or to authenticate stops early."""
FATAL_KINDS = {"connect_failed": "{message}", "auth_failed": "authentication failed: {message}"}
LOOPBACK_KEY = "bootbench-reference"
"""The key sent to a reference server on this machine when no key is configured (not a secret)."""


@dataclass
class ProcessContext:
    """What users of this process need for the current run."""

    settings: bootopts.Settings
    driver_config: DriverConfig
    stimulus: Stimulus
    worker: str


@dataclass
class _Office:
    """The master's (or local process's) state for one run."""

    settings: bootopts.Settings
    tickets: TicketOffice
    recorder: RunRecorder
    users: int
    mode: str
    audio: str
    locust_options: dict[str, Any]
    finished: bool = False
    metrics: dict[str, Any] | None = None
    flushed: set[str] = field(default_factory=set)
    watcher: Any = None
    progress: Any = None
    aborted: str | None = None
    any_success: bool = False
    streak: list[str] = field(default_factory=list)

    def hopeless(self, sample: Sample) -> str | None:
        """The sentence that ends the run when every attempt so far failed to connect or authenticate."""
        if sample.ok or self.any_success:
            self.any_success = True
            return None
        if sample.error_kind not in FATAL_KINDS or (self.streak and self.streak[-1] != sample.error_kind):
            self.streak.clear()
        if sample.error_kind in FATAL_KINDS:
            self.streak.append(sample.error_kind)
        if len(self.streak) >= FATAL_STREAK:
            return FATAL_KINDS[sample.error_kind].format(message=sample.error)
        return None

    def describe(self) -> dict[str, Any]:
        """The ``run`` block of metrics.json (the recorder adds id and times): what was measured, and how."""
        settings = self.settings
        return {
            "provider": settings.provider,
            "target": public_url(settings.target),
            "embedded_server": settings.embedded_server,
            "iterations": self.tickets.report(),
            "users": self.users,
            "mode": self.mode,
            "timeout_s": settings.timeout,
            "delay_ms": settings.wait_ms,
            "audio": self.audio,
            "pace": settings.pace,
            "trailing_silence_ms": settings.trailing_silence_ms,
            "connect_per_call": settings.connect_per_call,
            "system_message": settings.system_message,
            "voice": settings.voice or "default",
            "model": settings.model or None,
            "turn": settings.turn,
            "locust_options": self.locust_options,
            "aborted": self.aborted,
        }


class _State:
    """Process-wide state, kept here and nowhere else."""

    def __init__(self) -> None:
        self.context: ProcessContext | None = None
        self.office: _Office | None = None
        self.last_office: _Office | None = None
        self.server = None
        self.pending: dict[int, AsyncResult] = {}
        self.request_ids = itertools.count(1)
        self.user_numbers = itertools.count(1)


state = _State()


# ---------------------------------------------------------------- every process


@events.init_command_line_parser.add_listener
def _add_options(parser, **_kwargs) -> None:
    bootopts.add_arguments(parser)


@events.init.add_listener
def _on_init(environment, runner, **_kwargs) -> None:
    install_log_redaction()
    if isinstance(runner, (MasterRunner, LocalRunner)):
        if environment.parsed_options is not None:
            _check_input_or_exit(environment)
        runner.register_message(MSG_TICKET_REQUEST, _grant_ticket)
        runner.register_message(MSG_SAMPLES, _receive_samples)
        runner.register_message(MSG_ABANDONED, _ticket_abandoned)
        runner.register_message(MSG_FLUSHED, _worker_flushed)
        webui.install(environment, lambda: state.office or state.last_office)
    if isinstance(runner, (WorkerRunner, LocalRunner)):
        runner.register_message(MSG_TICKET, _ticket_granted)
        runner.register_message(MSG_FLUSH, _flush_requested, concurrent=True)


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    runner = environment.runner
    if isinstance(runner, (MasterRunner, LocalRunner)):
        _open_office(environment)
    if isinstance(runner, (WorkerRunner, LocalRunner)):
        state.context = _build_context(environment)


@events.test_stopping.add_listener
def _on_test_stopping(environment, **_kwargs) -> None:
    office = state.office
    if office is None:
        return
    office.tickets.close()
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        _collect_worker_flushes(runner, office)


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if isinstance(environment.runner, (MasterRunner, LocalRunner)):
        _close_office(environment)


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    """Ctrl-C / SIGTERM mid-run: Locust picks the exit code before the run's files are written."""
    office = state.office
    if office is not None and office.tickets.planned and not office.tickets.complete:
        if environment.process_exit_code is None:
            environment.process_exit_code = 1


@events.quit.add_listener
def _on_quit(exit_code: int, **_kwargs) -> None:
    _stop_server()
    office = state.last_office
    if office is not None and office.metrics is not None:
        print(console_summary(office.metrics), flush=True)
        if office.aborted:
            sys.stderr.write(f"bootbench: {office.aborted}\n")
            sys.stderr.flush()
        print(office.recorder.folder, flush=True)


# ---------------------------------------------------------------- the office (master / local)


def _check_input_or_exit(environment) -> None:
    """Bad input: one sentence on stderr and exit code 2, before anything starts."""
    opts = environment.parsed_options
    try:
        settings = bootopts.resolve(opts, environment.host)
        public = providers.DRIVERS[settings.provider].public_url
        if settings.embedded_server and _api_key(settings, required=False):
            environment.host = public
            settings = bootopts.resolve(opts, public)
            log.info("no host given and the %s key is set: benchmarking %s", settings.provider, public)
        bootopts.check_results_dir(settings.results_dir)
        _load_stimulus(settings)
        _api_key(settings, required=True)
    except (bootopts.ConfigError, AudioError) as exc:
        sys.stderr.write(f"bootbench: {exc}\n")
        sys.exit(2)


def _open_office(environment) -> None:
    opts = environment.parsed_options
    host = "" if state.server is not None and environment.host == state.server.url else environment.host
    settings = bootopts.resolve(opts, host)
    if settings.embedded_server:
        environment.host = _ensure_server().url
        settings = bootopts.resolve(opts, "", embedded_url=environment.host)
    recorder = RunRecorder(settings.results_dir, settings.provider)
    runner = environment.runner
    office = _Office(
        settings=settings,
        tickets=TicketOffice(planned=settings.iterations),
        recorder=recorder,
        users=int(getattr(opts, "num_users", 0) or 0),
        mode="master" if isinstance(runner, MasterRunner) else "local",
        audio=_load_stimulus(settings).description,
        locust_options=_locust_options(environment),
    )
    state.office = state.last_office = office
    log.info("run %s: %s at %s, %s iterations, results in %s", recorder.run_id, settings.provider,
             settings.target, settings.iterations or "unlimited", recorder.folder)
    office.watcher = gevent.spawn(_watch_workers, environment, office)
    if getattr(opts, "headless", False):
        office.progress = progress.start(recorder.samples, settings.iterations)


def _grant_ticket(environment, msg, **_kwargs) -> None:
    office = state.office
    iteration = office.tickets.grant(msg.node_id) if office is not None else None
    environment.runner.send_message(MSG_TICKET, {"request": msg.data["request"], "iteration": iteration},
                                    client_id=msg.node_id)


def _receive_samples(environment, msg, **_kwargs) -> None:
    office = state.office
    if office is None:
        log.warning("%d sample(s) from %s arrived after the run ended; dropped", len(msg.data), msg.node_id)
        return
    for data in msg.data:
        sample = Sample.from_dict(data)
        if not office.tickets.finish(msg.node_id, sample.iteration):
            log.warning("iteration %s from %s was not in flight; not counted twice", sample.iteration, msg.node_id)
            continue
        office.recorder.add(sample)
        sentence = office.hopeless(sample)
        if sentence and not office.aborted:
            office.aborted = sentence
            office.tickets.close()
            log.error("stopping early: %s (the first %d iterations all failed this way)", sentence, FATAL_STREAK)
    _end_run_when_settled(environment, office)


def _ticket_abandoned(environment, msg, **_kwargs) -> None:
    office = state.office
    if office is None or not office.tickets.abandon(msg.node_id, msg.data["iteration"]):
        return
    log.warning("iteration %s lost in flight: its user on %s was stopped mid-cycle", msg.data["iteration"], msg.node_id)
    _end_run_when_settled(environment, office)


def _worker_flushed(environment, msg, **_kwargs) -> None:
    if state.office is not None:
        state.office.flushed.add(msg.node_id)


def _collect_worker_flushes(runner: MasterRunner, office: _Office) -> None:
    """Every worker's last samples reach the master before it stops listening (LOCUST_NOTES)."""
    workers = _live_workers(runner)
    if not workers:
        return
    office.flushed.clear()
    runner.send_message(MSG_FLUSH, None)
    with gevent.Timeout(FLUSH_WAIT, False):
        while not workers <= office.flushed:
            gevent.sleep(0.02)
    if not workers <= office.flushed:
        log.warning("no flush confirmation from %s", ", ".join(sorted(workers - office.flushed)))


def _watch_workers(environment, office: _Office) -> None:
    """Write off the tickets of workers that died, so the run still ends by itself."""
    runner = environment.runner
    if not isinstance(runner, MasterRunner):
        return
    while state.office is office:
        gevent.sleep(WATCH_INTERVAL)
        alive = _live_workers(runner)
        for worker in list(office.tickets.in_flight):
            if worker not in alive and office.tickets.in_flight[worker]:
                lost = office.tickets.write_off(worker)
                log.error("worker %s is gone; iterations %s lost in flight", worker, lost)
        _end_run_when_settled(environment, office)


def _live_workers(runner: MasterRunner) -> set[str]:
    return {c.id for c in runner.clients.values() if c.state != STATE_MISSING}


def _end_run_when_settled(environment, office: _Office) -> None:
    """End the run once: when every planned ticket has finished or been lost, or when it was aborted."""
    if office.finished or not (office.aborted or office.tickets.done):
        return
    office.finished = True
    if not office.aborted:
        log.info("all %d iterations accounted for", office.tickets.planned)
    gevent.spawn(_end_run, environment)


def _end_run(environment) -> None:
    """Quit a headless run, stop a web UI run."""
    if environment.parsed_options and environment.parsed_options.headless:
        environment.runner.quit()
    else:
        environment.runner.stop()


def _close_office(environment) -> None:
    office, state.office = state.office, None
    if office is None:
        return
    if office.watcher is not None:
        office.watcher.kill(block=False)
    progress.stop(office.progress)
    for worker in list(office.tickets.in_flight):
        lost = office.tickets.write_off(worker)
        if lost:
            log.warning("run stopped with iterations %s of %s unfinished", lost, worker)
    office.metrics = office.recorder.finish(office.describe())
    incomplete = office.aborted or (office.tickets.planned and not office.tickets.complete)
    if incomplete and environment.process_exit_code is None:
        environment.process_exit_code = 1
    if not (environment.parsed_options and environment.parsed_options.headless):
        log.info("%s", console_summary(office.metrics))
        log.info("results in %s", office.recorder.folder)


# ---------------------------------------------------------------- the floor (workers / local)


def worker_id(environment) -> str:
    runner = environment.runner
    return runner.client_id if isinstance(runner, WorkerRunner) else "local"


def next_user_number() -> int:
    return next(state.user_numbers)


def context(environment) -> ProcessContext:
    """The current run's context; built on first use when a worker's users start before its test_start."""
    if state.context is None:
        state.context = _build_context(environment)
    return state.context


def acquire_ticket(environment) -> int | None:
    """Block until the office grants the next iteration number; None when the budget is spent."""
    request = next(state.request_ids)
    result = state.pending[request] = AsyncResult()
    try:
        environment.runner.send_message(MSG_TICKET_REQUEST, {"request": request})
        return result.get(timeout=TICKET_WAIT)
    except gevent.Timeout:
        log.error("no iteration ticket from the master within %g s", TICKET_WAIT)
        return None
    finally:
        state.pending.pop(request, None)


def record_sample(environment, sample: Sample) -> None:
    """Ship a finished sample to the office (on a worker: to the master, in order, at once)."""
    environment.runner.send_message(MSG_SAMPLES, [sample.to_dict()])


def abandon_ticket(environment, iteration: int) -> None:
    """Tell the office an iteration will never finish (Locust stopped its user mid-cycle)."""
    try:
        environment.runner.send_message(MSG_ABANDONED, {"iteration": iteration})
    except Exception:  # noqa: BLE001 - a process going down may no longer reach the master
        log.debug("could not report abandoned iteration %s", iteration, exc_info=True)


def _ticket_granted(environment, msg, **_kwargs) -> None:
    waiter = state.pending.get(msg.data["request"])
    if waiter is not None:
        waiter.set(msg.data["iteration"])


def _flush_requested(environment, msg, **_kwargs) -> None:
    environment.runner.send_message(MSG_FLUSHED, None)


def _build_context(environment) -> ProcessContext:
    settings = bootopts.resolve(environment.parsed_options, environment.host,
                                embedded_url=environment.host)
    key = _api_key(settings, required=False) or LOOPBACK_KEY
    config = DriverConfig(
        url=settings.target,
        api_key=key,
        timeout=settings.timeout,
        system_message=settings.system_message,
        voice=settings.voice,
        pace=settings.pace,
        trailing_silence_ms=settings.trailing_silence_ms,
        ca_bundle=settings.ca_bundle,
        model=settings.model,
        turn=settings.turn,
    )
    return ProcessContext(settings, config, _load_stimulus(settings), worker_id(environment))


# ---------------------------------------------------------------- helpers


def _load_stimulus(settings: bootopts.Settings) -> Stimulus:
    return Stimulus.from_wav(settings.audio) if settings.audio else Stimulus.sine()


def _api_key(settings: bootopts.Settings, *, required: bool) -> str | None:
    names = providers.DRIVERS[settings.provider].key_variables
    key = load_key(*names)
    if key or not required or settings.embedded_server or bootopts.is_loopback(settings.target):
        return key
    raise bootopts.ConfigError(
        f"{' or '.join(names)} is not set (in the environment or ./.env); it is needed for {settings.target}")


def _locust_options(environment) -> dict[str, Any]:
    opts = environment.parsed_options
    if opts is None:
        return {}
    keep = ("num_users", "spawn_rate", "run_time", "processes", "expect_workers", "stop_timeout", "headless")
    return {k: getattr(opts, k, None) for k in keep}


def _ensure_server():
    """Start the embedded reference server once per process (reused by later web UI runs)."""
    if state.server is None:
        from bootbench.server.launcher import ReferenceServer

        state.server = ReferenceServer.start()
        atexit.register(_stop_server)
        log.info("embedded reference server at %s (pid %s)", state.server.url, state.server.pid)
    return state.server


def _stop_server() -> None:
    server, state.server = state.server, None
    if server is not None:
        server.stop()
