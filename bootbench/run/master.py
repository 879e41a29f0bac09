"""The master's (or the single local process's) state for one run, with no Locust in it.

A :class:`MasterRun` holds the iteration budget, the one
:class:`~bootbench.exporters.RunRecorder`, the early-stop policy and the
flush handshake's bookkeeping. It decides when the run is over (once: every
planned iteration finished or lost, or stopped early) and calls the
``end`` it was given; the Locust glue in :mod:`bootbench.run.lifecycle`
turns that into stopping the runner.

It also keeps what the run went through, for metrics.json and the console
summary: why it was stopped before its budget was spent (``interrupted``),
which workers it lost (``workers_lost``), the concurrency that actually ran
(``peak_users``; per sample ``users_active``) and ``warnings``.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from bootbench.exporters import RunRecorder, now_iso
from bootbench.options import Settings
from bootbench.replies import Reply, ReplySpool
from bootbench.run.budget import IterationBudget
from bootbench.run.early_stop import EarlyStop
from bootbench.run.sweep import SPAWN_RATE, Sweep
from bootbench.samples import ErrorKind, Sample
from bootbench.stats import answered_before_input_end
from bootbench.trace_events import TraceBook

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
    interrupted: str | None = None
    """Why the run was stopped before it ended by itself ("SIGINT", "stopped from the web UI", ...), or None."""
    unfinished_at_stop: list[int] = field(default_factory=list)
    """Iterations in flight when the run was stopped, that never finished."""
    workers_lost: list[dict[str, Any]] = field(default_factory=list)
    """Workers that disappeared mid-run: ``{worker, at, reason, in_flight}`` (+ ``back_at`` if one came back)."""
    peak_users: int = 0
    """The most users running at once over all workers, as the master counted them (see :meth:`grant`)."""
    warnings: list[str] = field(default_factory=list)
    _users_at_grant: dict[int, int] = field(default_factory=dict)
    _known_workers: set[str] = field(default_factory=set)
    _missing: set[str] = field(default_factory=set)
    sweep: Sweep | None = None
    """The levels of a concurrency sweep (``--sweep``), which gate the budget; None for a plain run."""
    replies: ReplySpool | None = None
    """With ``--record-replies``: the answers recorded so far, spooled to the run folder."""
    turns_reached: dict[int, int] = field(default_factory=dict)
    """With ``--turns`` > 1: the turn each session in flight has started (iteration -> turn), for the progress line."""
    trace: TraceBook | None = None
    """With ``--trace``: the iterations' wire traces kept for trace.json (within its cap)."""

    def __post_init__(self) -> None:
        if self.trace is None and self.settings.values.get("trace"):
            self.trace = TraceBook()
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

    @property
    def provider(self) -> str:
        return self.settings.provider

    @property
    def headline(self) -> str:
        """The phase the views lead with (``--headline``)."""
        return self.settings.headline

    @property
    def lost(self) -> int:
        """Iterations lost in flight with a worker that went missing."""
        return self.budget.lost_count

    def sweep_level(self) -> tuple[int, int] | None:
        """A sweep's level running now (its number from 1, its users); None for a plain run."""
        if self.sweep is None:
            return None
        return self.sweep.index + 1, self.sweep.users

    def run_block(self) -> dict[str, Any]:
        """metrics.json's ``run`` block so far (the recorder adds id, times and versions)."""
        return {
            **self.settings.run_block(),
            "iterations": {**self.budget.accounting(), "unfinished_at_stop": sorted(self.unfinished_at_stop)},
            "users": self.users,
            "mode": self.mode,
            "audio": self.audio,
            "clips": self.clips,
            "locust_options": self.locust_options,
            "reference_server": self.reference_server,
            "aborted": self.aborted,
            "interrupted": self.interrupted,
            "peak_users": self.peak_users,
            "workers_lost": [dict(entry) for entry in self.workers_lost],
            "warnings": list(self.warnings),
        }

    def level_label(self) -> str:
        """The sweep's current level for people (the progress line, the web UI tab); "" for a plain run."""
        return self.sweep.label() if self.sweep is not None else ""

    def note_turn(self, worker: str, iteration: int, turn: int) -> None:
        """``iteration``'s session on ``worker`` starts turn ``turn`` (``--turns`` > 1); kept while it is in flight."""
        if iteration in self.budget.in_flight.get(worker, ()):
            self.turns_reached[iteration] = turn

    def turn_label(self) -> str:
        """How far the sessions in flight are, for people: ``turn 3/10`` or ``turns 2-5/10``; "" with one turn."""
        turns = self.settings.turns
        in_flight = [i for held in self.budget.in_flight.values() for i in held]
        if turns < 2 or not in_flight:
            return ""
        reached = [self.turns_reached.get(i, 1) for i in in_flight]
        low, high = min(reached), max(reached)
        return f"turn {low}/{turns}" if low == high else f"turns {low}-{high}/{turns}"

    def progress_label(self) -> str:
        """What leads the progress line: the sweep's level and how far the sessions in flight are."""
        return ", ".join(label for label in (self.level_label(), self.turn_label()) if label)

    def sweep_levels(self) -> list[dict[str, Any]] | None:
        """Each level's run facts (users, duration, CPU per process) for metrics.json; None for a plain run."""
        return self.sweep.records() if self.sweep is not None else None

    # ---- what users and workers report

    def grant(self, worker: str, users_running: int | None = None) -> int | None:
        """The next iteration number for a user on ``worker``; None once the budget is spent or closed.

        ``users_running``: the users running over all workers right now, as
        Locust's runner counts them (on a master: the counts the workers
        last reported, which Locust updates each time a worker's spawning
        completes). At least the asking user runs, so it is taken as at
        least 1. It becomes the sample's ``users_active`` and feeds ``peak_users``.
        """
        iteration = self.budget.grant(worker)
        if iteration is not None and users_running is not None:
            self._users_at_grant[iteration] = self.note_users(max(1, users_running))
        return iteration

    def note_users(self, users_running: int) -> int:
        """Take a count of the users running into ``peak_users``; returns the count."""
        self.peak_users = max(self.peak_users, users_running)
        return users_running

    def defer(self, worker: str, request: int) -> bool:
        """In a sweep, hold a ticket request the gate holds back (answered when its round starts); False otherwise."""
        if self.sweep is None or not self.budget.held_back:
            return False
        self.sweep.hold(worker, request)
        return True

    def give_back(self, worker: str, iteration: int) -> bool:
        """A granted ticket reached no user (its request was given up): it is granted again."""
        if not self.budget.give_back(worker, iteration):
            return False
        log.info("iteration %s was returned unused by %s; it will be granted again", iteration, worker)
        return True

    @property
    def tracing(self) -> bool:
        """Users should trace their next iterations (``--trace``, and the trace's cap not reached)."""
        return self.trace is not None and not self.trace.full

    def receive(self, worker: str, sample: Sample, trace: dict[str, Any] | None = None) -> bool:
        """Record a finished sample; False (and not recorded) if its iteration was not in flight on ``worker``.

        ``trace``: its wire trace record (``--trace``), kept for trace.json while the cap allows.

        A session stopped mid-way (``interrupted``: the turns it completed) is kept once the run is stopping;
        while the run goes, Locust only moved its user, and the iteration runs again (exactly N).
        """
        if sample.error_kind == ErrorKind.INTERRUPTED and not self.budget.closed:
            self.turns_reached.pop(sample.iteration, None)
            return self.abandon(worker, sample.iteration) and False
        if not self.budget.finish(worker, sample.iteration):
            log.warning("iteration %s from %s was not in flight; not counted twice", sample.iteration, worker)
            return False
        if sample.iteration in self.budget.recovered:
            log.warning("iteration %s from %s arrived after it was written off; counted as finished",
                        sample.iteration, worker)
        if sample.users_active is None:
            sample.users_active = self._users_at_grant.get(sample.iteration)
        if self.sweep is not None:
            sample.level = self.sweep.level_of(sample.iteration)
        self.turns_reached.pop(sample.iteration, None)
        self.recorder.add(sample)
        if trace is not None and self.trace is not None:
            self.trace.add(sample, trace)
        reason = self.early_stop.reason_to_stop(sample, self.live_workers() if self.live_workers else None)
        if reason and not self.aborted:
            self.aborted = reason
            self.budget.close()
            log.error("stopping early: %s (the first %d iterations%s all failed this way)",
                      reason, self.early_stop.streak_needed, " of every worker" if self.mode == "master" else "")
        self._end_if_settled()
        return True

    def keep_reply(self, reply: Reply) -> None:
        """Spool an iteration's recorded answer (``--record-replies``; it arrives just before its sample)."""
        if self.replies is not None:
            self.replies.add(reply)

    def refuse(self, reason: str) -> None:
        """A process that runs users cannot run this run's (``reason``, one sentence): the run ends, failed."""
        if self.aborted or self.ended:
            log.error("bootbench: %s", reason)
            return
        self.aborted = reason
        self.budget.close()
        log.error("stopping: %s", reason)
        self._end_if_settled()

    def abandon(self, worker: str, iteration: int) -> bool:
        """A user on ``worker`` was stopped mid-cycle.

        While the run goes, that is Locust moving users between workers (or
        fewer users asked for): the cycle is put on record as interrupted and
        its number granted again, so the run still finishes exactly N. Once
        the run is stopping, the iteration is not finished, and lost.
        """
        if self.budget.closed:
            if not self.budget.abandon(worker, iteration):
                return False
            self.unfinished_at_stop.append(iteration)
            log.warning("iteration %s not finished: its user on %s was stopped mid-cycle", iteration, worker)
        else:
            if not self.budget.give_back(worker, iteration, interrupted=True):
                return False
            log.warning("iteration %s interrupted: Locust stopped its user on %s mid-cycle (moving users); "
                        "it will run again", iteration, worker)
        self._end_if_settled()
        return True

    def write_off_missing(self, alive: set[str], present: set[str] | None = None) -> dict[str, list[int]]:
        """Every iteration in flight on a worker not in ``alive`` is lost; the unused budget stays for the others.

        While the run goes, a worker that was alive and no longer is goes on
        record in ``workers_lost``, whether or not it held an iteration
        (``reason``: "missing" when Locust still lists it as missing, else
        "quit"); one that comes back gets ``back_at``. ``present``: the
        workers Locust still lists (default: ``alive``). Once the run is
        stopping, workers leave as part of the stop and are not recorded.
        """
        present = alive if present is None else present
        stopping = self.ended or self.budget.closed
        lost = {}
        if self.sweep is not None:
            for worker in {w for w, _ in self.sweep.waiting} - alive:
                self.sweep.forget(worker)
        for worker in list(self.budget.in_flight):
            if worker not in alive and self.budget.in_flight[worker]:
                lost[worker] = self.budget.write_off(worker)
                log.error("worker %s is gone; iterations %s lost in flight", worker, lost[worker])
        if not stopping:
            for worker in sorted(self._missing & alive):
                self._missing.discard(worker)
                entry = next(e for e in reversed(self.workers_lost) if e["worker"] == worker)
                entry["back_at"] = now_iso()
                log.warning("worker %s is back", worker)
            for worker in sorted(self._known_workers - alive - self._missing):
                self._missing.add(worker)
                self.workers_lost.append({"worker": worker, "at": now_iso(),
                                          "reason": "missing" if worker in present else "quit",
                                          "in_flight": lost.get(worker, [])})
                if worker not in lost:
                    log.error("worker %s is gone (no iteration in flight); its users no longer run", worker)
            self._known_workers |= alive
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

    def stop_granting(self, reason: str | None = None, users_running: int | None = None) -> list[tuple[str, int]]:
        """The run is stopping: grant no further iterations; the held ticket requests (a sweep's), to answer with none.

        ``reason``: why, when the run had not ended by itself (recorded as
        ``interrupted``); ``users_running``: the users running just before
        they are stopped (into ``peak_users``).
        """
        if users_running is not None:
            self.note_users(users_running)
        if reason and not self.ended and not self.aborted and self.interrupted is None:
            self.interrupted = reason
        self.budget.close()
        return self.sweep.take_waiting() if self.sweep is not None else []

    @property
    def unfinished(self) -> bool:
        """The run planned N iterations and has not finished them all."""
        return bool(self.budget.planned) and not self.budget.complete

    @property
    def incomplete(self) -> bool:
        """The run stopped early or did not finish every planned iteration (the process exits with 1)."""
        return bool(self.aborted) or self.unfinished

    def close(self) -> dict[str, Any]:
        """Write off what is still in flight, write the run's files; the final metrics.json document."""
        for worker in list(self.budget.in_flight):
            lost = self.budget.write_off(worker)
            if lost:
                self.unfinished_at_stop.extend(lost)
                log.warning("run stopped with iterations %s of %s unfinished", lost, worker)
        self.warnings.extend(sample_warnings(self.samples, self.settings))
        if self.trace is not None:
            self.warnings.extend(self.trace.warnings())
            self.trace.write(self.recorder.folder, {"run": self.run_id, "provider": self.provider})
        self._warn_about_concurrency()
        if self.replies is not None:  # before report.html, which plays the slowest and the median
            try:
                self.replies.finish(self.samples, self.settings.audible_dbfs)
            except Exception:  # noqa: BLE001 - the recordings are extra: the run's own files must still be written
                log.exception("the recorded replies could not be written")
        if self.sweep is None:
            self.metrics = self.recorder.finish(self.run_block(), self.settings.checks)
        else:
            self.metrics = self.recorder.finish(self.run_block(), self.settings.checks, levels=self.sweep_levels())
        return self.metrics

    def _warn_about_concurrency(self) -> None:
        """Warn when the run ended before all requested users had started (lost workers have ``workers_lost``)."""
        if self.users and 0 < self.peak_users < self.users:
            # a sweep ramps at its own rate, whatever Locust's -r says
            rate = SPAWN_RATE if self.sweep is not None else self.locust_options.get("spawn_rate")
            self.warnings.append(
                f"the run ended before all {self.users} users had started: at most {self.peak_users} ran at once"
                + (f" (spawn rate {rate:g}/s)" if isinstance(rate, (int, float)) else ""))
        for warning in self.warnings:
            log.warning("%s", warning)

    def _end_if_settled(self) -> None:
        """Call ``end`` once: when every planned iteration has finished or been lost, or the run was aborted."""
        if self.ended or not (self.aborted or self.budget.done):
            return
        self.ended = True
        if not self.aborted:
            log.info("all %d iterations accounted for", self.budget.planned)
        self.end()


def sample_warnings(samples: Sequence[Sample], settings: Settings) -> list[str]:
    """What the samples show that makes some of their figures doubtful, a sentence each (metrics.json ``run.warnings``).

    An answer that began before its input had all been sent has no input
    phases (:meth:`~bootbench.samples.Timeline.answered_before_input_end_ms`).
    Audio of a reply after the reply was taken as ended (``audio_between_turns``)
    may have been the rest of it, timed by the next turn as its answer.
    """
    warnings = []
    sessions = [s for s in samples if s.turns is not None]
    strays = [s.anomalies.get("audio_between_turns", 0) for s in sessions]
    if any(strays):
        why = (f"the reply paused for longer than --reply-gap-ms {settings.reply_gap_ms:g} (its quiet is all that "
               f"ends an {settings.provider} reply); raise it" if settings.provider == "aivoco"
               else "the service went on after the end of its reply")
        warnings.append(
            f"audio of a reply arrived after it had been taken as ended (audio_between_turns x{sum(strays)}, in "
            f"{sum(1 for n in strays if n)} of {len(sessions)} sessions): {why}; the warm turns that followed may "
            f"have timed the rest of that reply as their answer")
    early = [ms for s in samples if s.ok
             for ms in [s.answered_before_input_end_ms, *(t.answered_before_input_end_ms for t in (s.turns or [])[1:])]
             if ms is not None]
    if early:
        warnings.append(
            f"{answered_before_input_end(samples)} iteration(s) were answered before their input had all been sent "
            f"(by a median of {statistics.median(early):.0f} ms: the service answered while audio was still "
            f"streaming, as a reference server that answers from the first chunk does), so input_to_audio_ms and "
            f"input_to_audible_ms leave those answers out (samples: answered_before_input_end_ms)")
    return warnings
