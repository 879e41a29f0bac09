"""The master's (or the single local process's) state for one run, with no Locust in it.

A :class:`MasterRun` holds the iteration budget, the one
:class:`~bootbench.exporters.RunRecorder`, the early-stop policy and the
flush handshake's bookkeeping. It decides when the run is over (once: every
planned iteration finished or lost, or stopped early) and calls the
``end`` it was given; the Locust glue in :mod:`bootbench.run.lifecycle`
turns that into stopping the runner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from bootbench.exporters import RunRecorder
from bootbench.options import Settings
from bootbench.run.budget import IterationBudget
from bootbench.run.early_stop import EarlyStop
from bootbench.samples import Sample

log = logging.getLogger("bootbench")


@dataclass
class MasterRun:
    """One run as the master sees it: which iterations went where, every sample, and whether it is over."""

    settings: Settings
    recorder: RunRecorder
    end: Callable[[], None]
    """Called once, when the run is over (all planned iterations accounted for, or stopped early)."""
    users: int = 0
    mode: str = "local"
    audio: str = ""
    locust_options: dict[str, Any] = field(default_factory=dict)
    reference_server: dict[str, Any] | None = None
    """The embedded reference server's latency model and seed (its ``GET /stats`` config), when the run used it."""
    live_workers: Callable[[], set[str]] | None = None
    """The workers the master still hears from (on a master); the early stop needs every one of them to fail."""
    budget: IterationBudget = field(init=False)
    early_stop: EarlyStop = field(default_factory=EarlyStop)
    aborted: str | None = None
    """Why the run stopped early, or None."""
    ended: bool = False
    metrics: dict[str, Any] | None = None
    """The final metrics.json document, once the run is closed."""
    flushed: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.budget = IterationBudget(planned=self.settings.iterations)

    # ---- what the web UI tab reads

    @property
    def samples(self) -> list[Sample]:
        """Every finished sample so far, in arrival order (the recorder's live list)."""
        return self.recorder.samples

    @property
    def planned(self) -> int:
        return self.budget.planned

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    @property
    def started_at(self) -> str:
        return self.recorder.started.isoformat(timespec="milliseconds")

    def run_block(self) -> dict[str, Any]:
        """metrics.json's ``run`` block so far (the recorder adds id, times and versions)."""
        return {
            **self.settings.run_block(),
            "iterations": self.budget.accounting(),
            "users": self.users,
            "mode": self.mode,
            "audio": self.audio,
            "locust_options": self.locust_options,
            "reference_server": self.reference_server,
            "aborted": self.aborted,
        }

    # ---- what users and workers report

    def grant(self, worker: str) -> int | None:
        """The next iteration number for a user on ``worker``; None once the budget is spent or closed."""
        return self.budget.grant(worker)

    def receive(self, worker: str, sample: Sample) -> bool:
        """Record a finished sample; False (and not recorded) if its iteration was not in flight on ``worker``."""
        if not self.budget.finish(worker, sample.iteration):
            log.warning("iteration %s from %s was not in flight; not counted twice", sample.iteration, worker)
            return False
        self.recorder.add(sample)
        reason = self.early_stop.reason_to_stop(sample, self.live_workers() if self.live_workers else None)
        if reason and not self.aborted:
            self.aborted = reason
            self.budget.close()
            log.error("stopping early: %s (the first %d iterations%s all failed this way)",
                      reason, self.early_stop.streak_needed, " of every worker" if self.mode == "master" else "")
        self._end_if_settled()
        return True

    def abandon(self, worker: str, iteration: int) -> bool:
        """A user on ``worker`` was stopped mid-cycle: ``iteration`` will never finish; count it lost."""
        if not self.budget.abandon(worker, iteration):
            return False
        log.warning("iteration %s lost in flight: its user on %s was stopped mid-cycle", iteration, worker)
        self._end_if_settled()
        return True

    def write_off_missing(self, alive: set[str]) -> dict[str, list[int]]:
        """Every iteration in flight on a worker not in ``alive`` is lost; the unused budget stays for the others."""
        lost = {}
        for worker in list(self.budget.in_flight):
            if worker not in alive and self.budget.in_flight[worker]:
                lost[worker] = self.budget.write_off(worker)
                log.error("worker %s is gone; iterations %s lost in flight", worker, lost[worker])
        self._end_if_settled()
        return lost

    # ---- the flush handshake at the end of a distributed run

    def expect_flushes(self) -> None:
        """A flush request goes out now; confirmations from an earlier round no longer count."""
        self.flushed.clear()

    def confirm_flush(self, worker: str) -> None:
        """``worker`` has sent everything it had (its messages arrive in order)."""
        self.flushed.add(worker)

    def unflushed(self, workers: set[str]) -> set[str]:
        """Which of ``workers`` have not confirmed their flush yet."""
        return workers - self.flushed

    # ---- stopping and closing

    def stop_granting(self) -> None:
        """The run is stopping: grant no further iterations."""
        self.budget.close()

    @property
    def interrupted(self) -> bool:
        """The run planned N iterations and has not finished them all."""
        return bool(self.budget.planned) and not self.budget.complete

    @property
    def incomplete(self) -> bool:
        """The run stopped early or did not finish every planned iteration (the process exits with 1)."""
        return bool(self.aborted) or self.interrupted

    def close(self) -> dict[str, Any]:
        """Write off what is still in flight, write the run's files; the final metrics.json document."""
        for worker in list(self.budget.in_flight):
            lost = self.budget.write_off(worker)
            if lost:
                log.warning("run stopped with iterations %s of %s unfinished", lost, worker)
        self.metrics = self.recorder.finish(self.run_block(), self.settings.checks)
        return self.metrics

    def _end_if_settled(self) -> None:
        """Call ``end`` once: when every planned iteration has finished or been lost, or the run was aborted."""
        if self.ended or not (self.aborted or self.budget.done):
            return
        self.ended = True
        if not self.aborted:
            log.info("all %d iterations accounted for", self.budget.planned)
        self.end()
