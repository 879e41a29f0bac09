"""Workarounds for Locust behaviour that breaks bootbench's distributed runs.

Locust 2.47's worker, for every ``spawn`` message, filters the master's
options with ``k not in argument_parser.default_args_dict()`` for each of
them: it builds and parses Locust's whole argument parser once per option
(about 20 ms each, ~70 options with bootbench's). That is over a second of
CPU per spawn message, seconds on a loaded machine, during which the worker
sends no heartbeat: the master marks it missing (after ~3 missed 1 s
heartbeats) and writes its iterations off. The defaults never change within a
process, so :func:`cache_default_args` computes them once.
tests/test_run_workers.py fails if Locust stops calling it this way.
"""

from __future__ import annotations

import functools

from locust import argument_parser


def cache_default_args() -> None:
    """Make ``locust.argument_parser.default_args_dict`` compute Locust's default options once per process."""
    current = argument_parser.default_args_dict
    if not isinstance(current, functools._lru_cache_wrapper):
        argument_parser.default_args_dict = functools.cache(current)
