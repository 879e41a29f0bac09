"""What the users of one process read for the current run: its settings, driver configuration, clips.

A worker (or the single local process) sets the context in ``test_start``;
users that start before it (a worker's first spawn can race its
``test_start``) build it on first use. User numbers are counted per process.
"""

from __future__ import annotations

import itertools
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
            names = " or ".join(providers.DRIVERS[settings.provider].key_variables)
            log.warning("bootbench: %s is not set on this worker (in the environment or ./.env); it sends a "
                        "placeholder key to %s, which the service will likely refuse", names,
                        redacted_url(settings.target))
        return cls(settings, settings.driver_config(key), settings.clips(), worker)


_current: RunContext | None = None
_user_numbers = itertools.count(1)


def start(environment: Any, settings: Settings | None = None) -> RunContext:
    """Set the context of a run starting now (on a worker from the options the master just sent)."""
    global _current
    if settings is None:
        settings = options.settings_for(environment.parsed_options, environment.host)
    _current = RunContext.for_settings(settings, worker_name(environment.runner))
    return _current


def current(environment: Any) -> RunContext:
    """The current run's context, built on first use when users start before ``test_start``."""
    return _current if _current is not None else start(environment)


def next_user_number() -> int:
    """A number for a new user, unique within this process."""
    return next(_user_numbers)


def worker_name(runner: Any) -> str:
    return runner.client_id if isinstance(runner, WorkerRunner) else "local"
