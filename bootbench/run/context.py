"""What the users of one process read for the current run: its settings, driver configuration, clips.

A worker (or the single local process) sets the context in ``test_start``;
users that start before it (a worker's first spawn can race its
``test_start``) build it on first use (:func:`current`). The context lives on
the environment's :class:`~bootbench.run.harness.Harness`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from locust.runners import WorkerRunner

from bootbench import options, providers
from bootbench.options import Settings
from bootbench.providers import DriverConfig
from bootbench.providers.network import redacted_url
from bootbench.stimuli import ClipSet

log = logging.getLogger("bootbench")


@dataclass(frozen=True)
class RunContext:
    """The current run as the users of this process see it."""

    settings: Settings
    driver_config: DriverConfig
    clips: ClipSet
    """The clips of ``--audio``; iteration k sends ``clips.clip_for(k)``."""
    worker: str
    """This process's name in samples: the worker's Locust client id, or ``local``."""

    @classmethod
    def for_settings(cls, settings: Settings, worker: str) -> RunContext:
        key = settings.api_key(required=False)
        if key is None and worker != "local" and not options.is_loopback(settings.target):
            # the master checked its own environment, not this worker's: say so here, once per run
            names = " or ".join(providers.get(settings.provider).key_variables)
            log.warning("bootbench: %s is not set on this worker (in the environment or ./.env); it sends a "
                        "placeholder key to %s, which the service will likely refuse", names,
                        redacted_url(settings.target))
        return cls(settings, settings.driver_config(key), settings.clips(), worker)


def start(harness: Any, settings: Settings | None = None) -> RunContext:
    """Set ``harness``'s context for a run starting now (on a worker from the options the master just sent)."""
    environment = harness.environment
    if settings is None:
        settings = options.resolve(environment.parsed_options, environment.host)
    harness.context = RunContext.for_settings(settings, worker_name(environment.runner))
    return harness.context


def current(harness: Any) -> RunContext:
    """The current run's context, built on first use when users start before ``test_start``."""
    return harness.context if harness.context is not None else start(harness)


def worker_name(runner: Any) -> str:
    return runner.client_id if isinstance(runner, WorkerRunner) else "local"
