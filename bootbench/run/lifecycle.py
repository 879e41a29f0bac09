"""A run's lifetime on the master (or the single local process): open it, stop it, close it, print it.

The hooks in :mod:`bootbench.events` call these at Locust's ``test_start``,
``test_stopping``, ``test_stop``, ``quitting`` and ``quit``, each with the
environment's :class:`~bootbench.run.harness.Harness`, which keeps the current
and last :class:`~bootbench.run.master.MasterRun` (the web UI tab shows the
last one until the next run starts).

A run stopped before it ended by itself records why (``run.interrupted``):
the signal (SIGINT, SIGTERM: :func:`note_signals` takes SIGTERM the way
Locust takes Ctrl-C, so Locust shuts down once and prints its tables once),
the web UI's stop, Locust's ``-t`` limit, or the loss of every worker.
"""

from __future__ import annotations

import atexit
import gc
import logging
import signal
import sys
from typing import Any, Mapping

import gevent
import greenlet
from locust.runners import MasterRunner

from bootbench import checks, options, preflight, providers
from bootbench.errors import UserError
from bootbench.exporters import RunRecorder
from bootbench.providers.network import redacted_url
from bootbench.replies import ReplySpool
from bootbench.run import messages, workers
from bootbench.run.harness import Harness
from bootbench.run.workers import live_workers
from bootbench.run.master import MasterRun
from bootbench.run.sweep import Sweep
from bootbench.views import progress
from bootbench.views.text import console_summary, counted

log = logging.getLogger("bootbench")

LOCUST_OPTIONS = ("num_users", "spawn_rate", "run_time", "processes", "expect_workers", "stop_timeout", "headless")
"""Locust's own options recorded in metrics.json."""

EVERY_WORKER_GONE = "every worker went missing (no heartbeat); the run ended without them"
"""The abort reason of a master's run that Locust stopped because its last worker went missing."""


def spare_final_collection() -> None:
    """At the interpreter's exit, skip its full garbage collection of everything this process imported.

    A Locust process that ran bootbench holds Locust, gevent, numpy, pandas and matplotlib; after the last atexit
    handler the interpreter's finalization collects every one of their objects, 0.3 to 0.5 s of CPU at the end of
    every run (py-spy: gc_collect_main). ``gc.freeze`` at exit moves them to the permanent generation, which that
    collection skips; they are freed by their reference counts as the modules are cleared, or not at all where
    only a cycle holds them (the process is ending). Nothing bootbench writes waits for that: its files are closed
    by the run's end (samples.jsonl flushed per line), the run log's handler by ``logging.shutdown``, an atexit
    handler that runs after this one (handlers run last registered, first). Registered at exit only, so a web UI
    process between runs, or a test process, collects as before. Idempotent: one registration per process.
    """
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)


def open_run(harness: Harness) -> MasterRun:
    """Start a run at ``test_start``: the embedded server if no host was given, the run folder, the watchers."""
    environment = harness.environment
    opts = environment.parsed_options
    # A run without -H sets environment.host to the embedded server's URL, and the web UI then offers
    # it as the next run's host. That URL is not a host the user gave: the next run targets the
    # embedded server again (it is blanked), and its settings say so.
    host = "" if environment.host and environment.host == harness.embedded.url() else environment.host
    settings = options.resolve(opts, host)
    if settings.embedded_server:
        environment.host = harness.embedded.ensure_started(settings.pace).url
        settings = settings.retarget(environment.host, embedded=True)
    runner = environment.runner
    levels = settings.sweep_levels()
    sent_rate = providers.get(settings.provider).input_rate  # what run.clips and run.audio record
    sweep = Sweep(levels, settings.iterations, straggler_s=settings.wait_ms / 1000 + 1.0) if levels else None
    run = MasterRun(
        settings=settings,
        recorder=RunRecorder(settings.results_dir, settings.provider),
        # A sweep's load shape ends the run itself once its last level is done (Locust's way for shapes).
        end=(lambda: None) if sweep else lambda: gevent.spawn(_end_run, environment),
        users=max(levels) if levels else int(getattr(opts, "num_users", 0) or 0),
        sweep=sweep,
        mode="master" if isinstance(runner, MasterRunner) else "local",
        audio=settings.clips().summary(sent_rate),
        clips=settings.clips().describe(sent_rate),
        locust_options={k: getattr(opts, k, None) for k in LOCUST_OPTIONS} if opts is not None else {},
        reference_server=harness.embedded.config() if settings.embedded_server else None,
        live_workers=(lambda: workers.live_workers(runner)) if isinstance(runner, MasterRunner) else None,
    )
    if settings.record_replies:
        run.replies = ReplySpool(run.recorder.folder, settings.record_replies)
    harness.current = harness.last = run
    run.recorder.describe(run.run_block())
    planned = planned_text(levels, settings.iterations)
    log.info("run %s: %s at %s, %s, results in %s", run.run_id, settings.provider,
             redacted_url(settings.target), planned,
             run.recorder.folder)
    harness.watcher = workers.watch(runner, run, lambda: harness.current is run)
    harness.progress = (progress.start(run.samples, run.planned, headline=settings.headline,
                                       level=run.progress_label, ended=lambda: run.ended)
                        if getattr(opts, "headless", False) else None)
    return run


def planned_text(levels: list[int] | None, iterations: int) -> str:
    """What a run plans, for its opening line: ``100 iterations``, ``2 levels of 1 iteration (1, 2 users)``."""
    if levels:
        return (f"{counted(len(levels), 'level')} of {counted(iterations, 'iteration')} "
                f"({', '.join(map(str, levels))} user{'' if levels == [1] else 's'})")
    return counted(iterations, "iteration") if iterations else "unlimited iterations"


def check_web_run(harness: Harness, form: Mapping[str, str]) -> str | None:
    """The sentence refusing the run the web UI's start form asks for, or None when it can start.

    The host is taken as Locust takes it (``<``, ``>`` removed); the embedded
    server's URL, offered by the form after a run without a host, means the
    embedded server again (as in :func:`open_run`).
    """
    environment = harness.environment
    host = str(form.get("host", environment.host or "")).replace("<", "").replace(">", "").strip()
    if host and host == harness.embedded.url():
        host = ""
    try:
        preflight.check_web_run(options.with_form(environment.parsed_options, form), host, form.get("user_count"))
    except UserError as exc:
        return str(exc)
    return None


def stop_run(harness: Harness) -> None:
    """At ``test_stopping``: grant nothing more, and on a master collect every worker's last samples."""
    run = harness.current
    if run is None:
        return
    environment = harness.environment
    for worker, request in run.stop_granting(stop_reason(harness), environment.runner.user_count):
        messages.answer(environment.runner, worker, request, None)
    messages.collect_flushes(environment.runner, run)


def stop_reason(harness: Harness) -> str:
    """Why Locust is stopping a run that has not ended by itself."""
    environment = harness.environment
    opts = environment.parsed_options
    runner = environment.runner
    if harness.signal:
        return harness.signal
    if isinstance(runner, MasterRunner) and not live_workers(runner):
        return "every worker was lost"
    if getattr(opts, "run_time", None):
        return f"run time limit reached (-t {opts.run_time:g} s)"
    return "stopped from the web UI" if not _headless(environment) else "stopped by Locust"


def note_signals(harness: Harness) -> None:
    """Record SIGINT and SIGTERM as the reason a run stops, and take both the way Locust takes Ctrl-C.

    Locust's own SIGTERM handler runs its shutdown in a new greenlet while the
    main greenlet, woken by the runner quitting, runs it a second time (two
    sets of tables, two summaries). Raising KeyboardInterrupt, as Python's
    SIGINT handler does, sends SIGTERM down the one Ctrl-C path. Called at
    ``test_start`` (after Locust installed its handlers), on the master or the
    single local process only. Signal handlers belong to the process: the
    last environment to start a run receives them.
    """

    def on_signal(number: int, _frame: Any) -> None:
        _interrupt(harness, number)

    try:
        for number in (signal.SIGINT, signal.SIGTERM):
            signal.signal(number, on_signal)
    except ValueError:  # not the main thread (Locust embedded in another program): keep its handlers
        log.debug("signal handlers not installed", exc_info=True)


def _interrupt(harness: Harness, number: int) -> None:
    """Python runs a signal handler in whatever greenlet is running; the interrupt goes to the main one.

    Raised anywhere else, a KeyboardInterrupt could end a library's worker
    "thread" (a greenlet whose ``run`` swallows it) instead of Locust; the hub
    throws it into the main greenlet, as gevent does for Ctrl-C. Only the
    first signal interrupts: a second one must not break the final write.
    """
    if harness.signal is not None:
        log.warning("%s: already stopping", signal.Signals(number).name)
        return
    harness.signal = signal.Signals(number).name
    hub = gevent.get_hub()
    if greenlet.getcurrent() is hub.parent:
        raise KeyboardInterrupt
    hub.loop.run_callback(hub.parent.throw, KeyboardInterrupt)


def close_run(harness: Harness) -> None:
    """At ``test_stop``: write the run's files and set the exit code.

    An incomplete or stopped-early run exits with 1. With checks, a complete
    run exits with 0 when every check passed and 3 otherwise (failed
    iterations count only through the checks); without, Locust's rule stays
    (1 when any iteration failed).
    """
    run, harness.current = harness.current, None
    if run is None:
        return
    environment = harness.environment
    if harness.watcher is not None:
        harness.watcher.kill(block=False)
    progress.stop(harness.progress)
    harness.watcher = harness.progress = None
    every_worker_gone = _every_worker_gone(environment, run)
    if every_worker_gone:
        run.aborted = EVERY_WORKER_GONE
    metrics = run.close()
    results = check_results(metrics)
    if (run.incomplete or results) and environment.process_exit_code is None:
        environment.process_exit_code = checks.exit_code(results, completed=not run.incomplete, failed_iterations=0)
    if every_worker_gone and _headless(environment):
        gevent.spawn(environment.runner.quit)  # Locust stops the run, but a headless master would wait forever
    if not _headless(environment):
        log.info("%s", console_summary(metrics))
        if results:
            log.info("%s", checks.text_table(results))
        log.info("results in %s", run.recorder.folder)


def mark_interrupted(harness: Harness) -> None:
    """At ``quitting`` (Ctrl-C, SIGTERM mid-run): exit code 1, set before Locust picks one and the files are written.

    Then one line saying why the exit code is not 0, logged before Locust's
    "Shutting down (exit code N)" (:func:`exit_reason`).
    """
    run, environment = harness.current, harness.environment
    if run is not None and run.unfinished and environment.process_exit_code is None:
        environment.process_exit_code = 1
    reason = exit_reason(harness)
    if reason:
        log.warning("%s", reason)


def exit_reason(harness: Harness) -> str | None:
    """Why the process is about to exit with a code other than 0, in one line; None for 0 or no run."""
    environment = harness.environment
    code = environment.process_exit_code
    run = harness.current or harness.last
    if run is None:
        return None
    if harness.current is not None and run.unfinished:
        return (f"exit code {code}: the run was interrupted with {run.budget.finished} of {run.budget.planned} "
                f"planned iterations finished (its files are written next)")
    metrics = run.metrics or {}
    incomplete = checks.incomplete_reason(metrics.get("run") or {}) if metrics else None
    if code == checks.EXIT_INCOMPLETE and incomplete:
        return f"exit code {code}: the run did not complete ({incomplete})"
    results = check_results(metrics)
    if code == checks.CHECK_FAILED_EXIT and results:
        failed = sum(not result.ok for result in results)
        return f"exit code {code}: {failed} of {counted(len(results), 'check')} failed"
    failures = (metrics.get("summary") or {}).get("failures") or 0
    if code in (None, checks.EXIT_INCOMPLETE) and failures and not results:
        return f"exit code 1: {failures} of {counted(metrics['summary']['iterations'], 'iteration')} failed"
    return None


def check_results(metrics: dict[str, Any]) -> list[checks.CheckResult]:
    """The checks evaluated on a finished run (metrics.json's ``checks``); empty without ``--check``."""
    return [checks.CheckResult(**result) for result in metrics.get("checks") or ()]


def print_last_run(harness: Harness) -> None:
    """At ``quit``: the last run's console summary, its checks, the early-stop reason, and the run folder last."""
    run = harness.last
    if run is None or run.metrics is None:
        return
    print(console_summary(run.metrics), flush=True)
    results = check_results(run.metrics)
    if results:
        print(checks.text_table(results), flush=True)
    if run.aborted:
        sys.stderr.write(f"bootbench: {run.aborted}\n")
        sys.stderr.flush()
    print(run.recorder.folder, flush=True)


def publish_last_run(harness: Harness) -> None:
    """At ``quit``, after the summary: a headless run's push (``--pushgateway``) and its ``--metrics-linger``; then
    ``--metrics-port`` stops. Neither changes the exit code (Locust chose it before ``quit``), and a process stopped
    by a signal does not linger."""
    run, exposition = harness.last, harness.exposition
    if exposition.published:  # Locust's own SIGTERM handler can run a second shutdown: push and linger once
        return
    exposition.published = True
    if run is not None and run.metrics is not None and _headless(harness.environment):
        settings = run.settings
        if settings.pushgateway:
            exposition.push(settings.pushgateway, job=settings.pushgateway_job, provider=run.provider)
        if harness.signal is None and settings.metrics_linger > 0:
            # Whoever holds SIGINT/SIGTERM now (Locust's own handler, after a sweep), they end the linger the one
            # Ctrl-C way: the KeyboardInterrupt ends the sleep, and the process exits with the code Locust chose.
            note_signals(harness)
            exposition.linger(settings.metrics_linger)
    exposition.stop()


def _every_worker_gone(environment: Any, run: MasterRun) -> bool:
    """Locust stopped this master's run because its last worker went missing (not bootbench, not the user)."""
    runner = environment.runner
    return (isinstance(runner, MasterRunner) and not run.ended and not run.aborted
            and bool(runner.clients) and not workers.live_workers(runner))


def _end_run(environment: Any) -> None:
    """Quit a headless run, stop a web UI run (the web UI stays up for the next one)."""
    if _headless(environment):
        environment.runner.quit()
    else:
        environment.runner.stop()


def _headless(environment: Any) -> bool:
    return bool(environment.parsed_options and environment.parsed_options.headless)
