"""Every Locust event hook of bootbench, each a few lines that delegate to :mod:`bootbench.run`.

Importing this module registers bootbench's options and hooks
(``locustfile.py`` does). The master, or the single local process, checks
the input, owns the run (:mod:`bootbench.run.lifecycle`) and answers the
users' messages; workers, or the single local process, run the users
(:mod:`bootbench.run.context`, :mod:`bootbench.run.messages`).
"""

from __future__ import annotations

from typing import Any

from locust import events
from locust.runners import LocalRunner, MasterRunner, WorkerRunner

from bootbench import options, providers
from bootbench.run import context, embedded, lifecycle, locust_fixes, master_watch, messages, shape
from bootbench.secrets import install_log_redaction
from bootbench.views import webui

_MASTER = (MasterRunner, LocalRunner)
"""Runners that own the run: a master, or the single local process."""
_USERS = (WorkerRunner, LocalRunner)
"""Runners that run users: a worker, or the single local process."""


@events.init_command_line_parser.add_listener
def _add_options(parser: Any, **_kwargs: Any) -> None:
    options.add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Any, runner: Any, **_kwargs: Any) -> None:
    install_log_redaction()
    if isinstance(runner, _MASTER):
        if environment.parsed_options is not None:
            settings = options.check_or_exit(environment)
            if settings.sweep_levels():
                shape.install(environment, settings.sweep_levels())
        messages.serve_master(runner, lifecycle.current_run)
        webui.install(environment, lifecycle.current_or_last_run)
        webui.check_swarm(environment, lambda form: lifecycle.check_web_run(environment, form))
    if isinstance(runner, _USERS):
        providers.install_tuning()  # websocket-client's cheaper masking and reads, for this process's drivers
        messages.serve_worker(runner)
    if isinstance(runner, WorkerRunner):
        locust_fixes.cache_default_args()
    master_watch.watch(environment)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kwargs: Any) -> None:
    runner = environment.runner
    run = lifecycle.open_run(environment) if isinstance(runner, _MASTER) else None
    if run is not None:
        lifecycle.note_signals()
    if isinstance(runner, _USERS):
        context.start(environment, run.settings if run is not None else None)


@events.test_stopping.add_listener
def _on_test_stopping(environment: Any, **_kwargs: Any) -> None:
    lifecycle.stop_run(environment)


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kwargs: Any) -> None:
    if isinstance(environment.runner, _MASTER):
        lifecycle.close_run(environment)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kwargs: Any) -> None:
    lifecycle.mark_interrupted(environment)


@events.quit.add_listener
def _on_quit(exit_code: int, **_kwargs: Any) -> None:
    embedded.stop()
    lifecycle.print_last_run()
