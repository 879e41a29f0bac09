"""Python's cyclic garbage collector while a process runs users: fewer and shorter pauses of every session.

A collection stops the whole process: every session's messages wait, their
handlers' stamps (``--clock process``) come late, and under the kernel clock a
message read after the connection's next segment arrived carries that
segment's stamp (docs/architecture.md, Timing). With the interpreter's
defaults a worker holding 500 sessions spent 0.9 to 1.1 s of a 4000-cycle run
in the collector (about 0.25 ms per cycle), in pauses of up to 170 to 200 ms
(bench/RESULTS.md, 2026-12-04). Two changes for the run's duration:

- :func:`settle` at ``test_start`` moves everything the process holds then
  (its imports: Locust, gevent, numpy; the environment) to the permanent
  generation with ``gc.freeze``, so no collection walks it again; and raises
  the youngest generation's threshold to :data:`RUN_THRESHOLDS` (a session's
  messages make short-lived objects that reference counting frees; fewer
  collections let more of them go before they are promoted to older
  generations, which full collections walk). The same level: 0.19 to 0.24 s
  in the collector, pauses of up to 43 to 52 ms.
- :func:`restore` at ``test_stop`` puts the thresholds back, so a web UI process
  between runs (or a test process) collects as before.

Nothing is collected at ``settle`` (a full collection there took 0.1 to 0.3 s):
cyclic garbage made before the run is never freed, which is bounded by what
one process start makes.
"""

from __future__ import annotations

import gc

RUN_THRESHOLDS = (10_000, 10, 10)
"""``gc.set_threshold`` while users run: the youngest generation collected every 10 000 allocations, not 700."""
DEFAULT_THRESHOLDS = gc.get_threshold()
"""The thresholds the process had when bootbench was imported (the interpreter's own), restored after a run."""


def settle() -> None:
    """At a run's start in a process that runs users: freeze what it holds, collect the young less often."""
    gc.freeze()
    gc.set_threshold(*RUN_THRESHOLDS)


def restore() -> None:
    """At the run's end: the interpreter's thresholds, nothing frozen."""
    gc.set_threshold(*DEFAULT_THRESHOLDS)
    gc.unfreeze()
