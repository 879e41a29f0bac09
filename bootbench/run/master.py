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
from bootbench.run.sweep import Sweep
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
    """A one-line label of what was sent (the single clip's description, or the count and names)."""
    clips: list[dict[str, Any]] = field(default_factory=list)
    """Each clip sent (:meth:`bootbench.stimuli.ClipSet.describe`: name, source, duration_ms, rate, sha256)."""
    locust_options: dict[str, Any] = field(default_factory=dict)
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
    sweep: Sweep | None = None
    """The levels of a concurrency sweep (``--sweep``), which gate the budget; None for a plain run."""

    def __post_init__(self) -> None:
        if self.sweep is None:
            self.budget = IterationBudget(planned=self.settings.iterations)
        else:
            self.budget = IterationBudget(planned=self.sweep.planned, ceiling=0)

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
            "clips": self.clips,
            "locust_options": self.locust_options,
            "aborted": self.aborted,
        }

    def level_label(self) -> str:
        """The sweep's current level for people (the progress line, the web UI tab); "" for a plain run."""
        return self.sweep.label() if self.sweep is not None else ""

    def sweep_levels(self) -> list[dict[str, Any]] | None:
        """Each level's run facts (users, duration, CPU per process) for metrics.json; None for a plain run."""
        return self.sweep.records() if self.sweep is not None else None

    # ---- what users and workers report

    def grant(self, worker: str) -> int | None:
        """The next iteration number for a user on ``worker``; None once the budget is spent or closed."""
        return self.budget.grant(worker)

    def defer(self, worker: str, request: int) -> bool:
        """In a sweep, hold a ticket request the gate holds back (answered when its round starts); False otherwise."""
        if self.sweep is None or not self.budget.held_back:
            return False
        self.sweep.hold(worker, request)
        return True

    def give_back(self, worker: str, iteration: int) -> bool:
        """A granted ticket reached no user (its request was given up): it is granted again."""
        return self.budget.give_back(worker, iteration)

    def receive(self, worker: str, sample: Sample) -> bool:
        """Record a finished sample; False (and not recorded) if its iteration was not in flight on ``worker``."""
        if not self.budget.finish(worker, sample.iteration):
            log.warning("iteration %s from %s was not in flight; not counted twice", sample.iteration, worker)
            return False
        if self.sweep is not None:
            sample.level = self.sweep.level_of(sample.iteration)
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
        if self.sweep is not None:
            for worker in {w for w, _ in self.sweep.waiting} - alive:
                self.sweep.forget(worker)
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

    def stop_granting(self) -> list[tuple[str, int]]:
        """The run is stopping: grant no further iterations; the held ticket requests, to answer with none."""
        self.budget.close()
        return self.sweep.take_waiting() if self.sweep is not None else []

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
        if self.sweep is None:
            self.metrics = self.recorder.finish(self.run_block(), self.settings.checks)
        else:
            self.metrics = self.recorder.finish(self.run_block(), self.settings.checks, levels=self.sweep_levels())
        return self.metrics

    def _end_if_settled(self) -> None:
        """Call ``end`` once: when every planned iteration has finished or been lost, or the run was aborted."""
        if self.ended or not (self.aborted or self.budget.done):
            return
        self.ended = True
        if not self.aborted:
            log.info("all %d iterations accounted for", self.budget.planned)
        self.end()
