"""Every Locust event hook of bootbench, each a few lines that delegate to :mod:`bootbench.run`.

:func:`register` adds bootbench's options and hooks to a Locust ``Events``;
importing this module registers them on Locust's global ``locust.events``
(what a locustfile's ``from bootbench import events`` relies on). A test
that builds its own ``Environment(events=Events())`` registers them on its
own events and gets a run of its own.

The ``init`` hook attaches the environment's
:class:`~bootbench.run.harness.Harness`, which every other hook reaches
through the environment. The master, or the single local process, checks the
input, owns the run (:mod:`bootbench.run.lifecycle`) and answers the users'
messages; workers, or the single local process, run the users
(:mod:`bootbench.run.context`, :mod:`bootbench.run.messages`).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import locust
from locust.event import Events
from locust.runners import WorkerRunner

from bootbench import options, preflight, providers
from bootbench.errors import EXIT_CODE, UserError
from bootbench.run import collector, context, harness, lifecycle, locust_fixes, master_watch, messages, shape
from bootbench.secrets import install_log_redaction
from bootbench.views import webui

log = logging.getLogger("bootbench")

def _add_options(parser: Any, **_kwargs: Any) -> None:
    options.add_arguments(parser)


def _on_init(environment: Any, runner: Any, **_kwargs: Any) -> None:
    install_log_redaction()
    lifecycle.spare_final_collection()
    bench = harness.of(environment)
    if bench.owns_runs:
        bench.exposition.install(environment, bench.current_or_last)
        if environment.parsed_options is not None:
            try:  # the entry point of a run: bad input is one sentence and exit code 2, nothing started
                checked = preflight.check(environment.parsed_options, environment.host)
                _serve_metrics(bench, checked.settings)
            except UserError as exc:
                sys.stderr.write(f"bootbench: {exc}\n")
                sys.exit(EXIT_CODE)
            sys.stderr.writelines(f"bootbench: warning: {warning}\n" for warning in checked.warnings)
            environment.host, settings = checked.host or environment.host, checked.settings
            if settings.sweep_levels():
                shape.install(environment, settings.sweep_levels())
        messages.serve_master(runner, lambda: bench.current)
        webui.install(environment, bench.current_or_last)
        webui.check_swarm(environment, lambda form: lifecycle.check_web_run(bench, form))
    if bench.runs_users:
        _serve_users(bench)
    if isinstance(runner, WorkerRunner):
        locust_fixes.cache_default_args()
    master_watch.watch(environment, bench.master_watch, lambda: _master_silence_s(bench))
    # Locust fires ``quit`` without the environment: this environment's listener knows its harness.
    environment.events.quit.add_listener(lambda **_kw: _on_quit(bench))


def _master_silence_s(bench: harness.Harness) -> float:
    """The current run's ``--master-silence-s`` (its default when this worker refused the run)."""
    ctx = context.current(bench)
    if ctx is not None:
        return ctx.settings.master_silence_s
    return next(option.default for option in options.OPTIONS if option.name == "master_silence_s")


def _serve_metrics(bench: harness.Harness, settings: options.Settings) -> None:
    """``/metrics`` on ``--metrics-port`` (the web UI's own is installed with the UI), bound as the web UI is."""
    if settings.metrics_port:
        host = getattr(bench.environment.parsed_options, "web_host", "127.0.0.1")
        log.info("Prometheus metrics at %s", bench.exposition.serve(host, settings.metrics_port))


def _serve_users(bench: harness.Harness) -> None:
    """Make the process ready to run users, once: websocket-client's tuning, the users' message handlers.

    From ``init``, or from ``test_start`` when it comes first: a worker that
    joins a running master gets its first spawn (and its users ask for
    tickets) before Locust's main has fired ``init``.
    """
    if bench.serving_users:
        return
    bench.serving_users = True
    providers.install_tuning()
    messages.serve_worker(bench.runner, bench.tickets, bench.master_watch.run_ending)


def _on_test_start(environment: Any, **_kwargs: Any) -> None:
    bench = harness.of(environment)
    run = lifecycle.open_run(bench) if bench.owns_runs else None
    if run is not None:
        lifecycle.note_signals(bench)
    if bench.runs_users:
        _serve_users(bench)
        context.start(bench, run.settings if run is not None else None)
        collector.settle()


def _on_test_stopping(environment: Any, **_kwargs: Any) -> None:
    lifecycle.stop_run(harness.of(environment))


def _on_test_stop(environment: Any, **_kwargs: Any) -> None:
    bench = harness.of(environment)
    try:
        if bench.owns_runs:
            lifecycle.close_run(bench)
    finally:
        if bench.runs_users:
            collector.restore()  # after the run's files: writing them is faster with the run's collector


def _on_quitting(environment: Any, **_kwargs: Any) -> None:
    lifecycle.mark_interrupted(harness.of(environment))


def _on_quit(bench: harness.Harness) -> None:
    bench.embedded.stop()
    lifecycle.print_last_run(bench)
    lifecycle.publish_last_run(bench)


def register(events: Events) -> None:
    """Add bootbench's options and run hooks to ``events`` (once per ``Events``)."""
    events.init_command_line_parser.add_listener(_add_options)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stopping.add_listener(_on_test_stopping)
    events.test_stop.add_listener(_on_test_stop)
    events.quitting.add_listener(_on_quitting)


register(locust.events)
