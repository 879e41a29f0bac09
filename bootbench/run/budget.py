"""The iteration budget of a run: exactly N iterations over every user, process and worker.

The master (or the single local process) owns one :class:`IterationBudget`.
Before the timed part of a cycle, a user asks for an iteration; the budget
grants the next global iteration number (a *ticket*) or says it is spent.
Finished iterations are reported back; when a worker disappears, the
tickets it held are written off as lost, and the unused budget stays for
the others.

A sweep (``--sweep``) gates the budget: ``ceiling`` is how many tickets may
have been granted so far, raised one round at a time by the sweep
(:mod:`bootbench.run.sweep`); a request above it is held back, not refused.

A ticket can also come back unfinished without being lost: Locust stops
users to move them between workers (a worker joins or leaves mid-run), and
a user stopped while waiting for its ticket, or mid-cycle, hands its ticket
back (:meth:`IterationBudget.give_back`). The number is granted again
before any new one, so exactly N iterations still finish, numbered 1..N; a
cycle cut short that way is kept on record as *interrupted*. Once the budget
is closed (the run is stopping) nothing is granted again, and what does not
finish is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class IterationBudget:
    """Hands out iteration numbers 1..planned (planned 0 = unlimited) and tracks the fate of each."""

    planned: int
    granted: int = 0
    finished: int = 0
    closed: bool = False
    in_flight: dict[str, set[int]] = field(default_factory=dict)
    lost: dict[str, list[int]] = field(default_factory=dict)
    workers: set[str] = field(default_factory=set)
    ceiling: int | None = None
    """In a sweep: the tickets that may have been granted so far (None: no gate)."""
    returned: list[int] = field(default_factory=list)
    """Tickets handed back unfinished, granted again before any new one."""
    interrupted: list[dict[str, Any]] = field(default_factory=list)
    """Cycles cut short by Locust moving users (``{iteration, worker}``); each number was granted again."""
    recovered: list[int] = field(default_factory=list)
    """Iterations written off as lost whose sample arrived late (a worker thought dead was only slow)."""

    def grant(self, worker: str) -> int | None:
        """The next iteration number for ``worker``, or None once the budget is spent, closed or held back."""
        if self.closed:
            return None
        if self.returned:
            iteration = self.returned.pop(0)
        elif (self.planned and self.granted >= self.planned) or self.held_back:
            return None
        else:
            self.granted += 1
            iteration = self.granted
        self.workers.add(worker)
        self.in_flight.setdefault(worker, set()).add(iteration)
        return iteration

    @property
    def held_back(self) -> bool:
        """A sweep's gate holds the next ticket back: every ticket of the open round is granted, more will come."""
        return (not self.closed and self.ceiling is not None and self.granted >= self.ceiling
                and not self.returned and not (self.planned and self.granted >= self.planned))

    @property
    def settled(self) -> bool:
        """Every ticket granted so far has finished or been lost (none in flight, none given back)."""
        return self.outstanding == 0 and not self.returned

    def finish(self, worker: str, iteration: int) -> bool:
        """Record that ``iteration`` finished; False if it was neither in flight nor lost (a duplicate or a stray).

        A sample of an iteration written off as lost (its worker was marked
        missing while it was only slow) still counts, once: a finished
        iteration is never lost.
        """
        held = self.in_flight.get(worker, set())
        if iteration in held:
            held.discard(iteration)
        elif iteration in self.lost.get(worker, []):
            self.lost[worker].remove(iteration)
            if not self.lost[worker]:
                del self.lost[worker]
            self.recovered.append(iteration)
        else:
            return False
        self.finished += 1
        return True

    def give_back(self, worker: str, iteration: int, *, interrupted: bool = False) -> bool:
        """``worker`` hands ``iteration`` back unfinished, to be granted again (not lost).

        ``interrupted``: the cycle had started (Locust stopped its user
        mid-cycle), and goes on record; otherwise the ticket was never used
        (it reached no user, or a sweep's request was withdrawn).
        False if it was not in flight on ``worker``.
        """
        held = self.in_flight.get(worker, set())
        if iteration not in held:
            return False
        held.discard(iteration)
        self.returned.append(iteration)
        if interrupted:
            self.interrupted.append({"iteration": iteration, "worker": worker})
        return True

    def abandon(self, worker: str, iteration: int) -> bool:
        """One ticket will never finish (its user was stopped mid-cycle); count it lost."""
        held = self.in_flight.get(worker, set())
        if iteration not in held:
            return False
        held.discard(iteration)
        self.lost.setdefault(worker, []).append(iteration)
        return True

    def write_off(self, worker: str) -> list[int]:
        """Declare every ticket ``worker`` holds lost (the worker died or was stopped); returns them."""
        gone = sorted(self.in_flight.pop(worker, set()))
        if gone:
            self.lost.setdefault(worker, []).extend(gone)
        return gone

    def close(self) -> None:
        """Grant nothing more (the run is stopping); numbers handed back will not run."""
        self.closed = True

    @property
    def lost_count(self) -> int:
        return sum(len(v) for v in self.lost.values())

    @property
    def outstanding(self) -> int:
        return sum(len(v) for v in self.in_flight.values())

    @property
    def never_started(self) -> int:
        """Planned iterations not granted (or handed back and not granted again); 0 for an unlimited run."""
        return max(0, self.planned - self.granted) + len(self.returned) if self.planned else 0

    @property
    def done(self) -> bool:
        """Every planned ticket was granted and has finished or been lost."""
        return bool(self.planned) and self.granted >= self.planned and self.settled

    @property
    def complete(self) -> bool:
        """The run did everything it planned: N finished iterations, none lost."""
        return bool(self.planned) and self.finished >= self.planned

    def accounting(self) -> dict[str, Any]:
        """The iteration accounting recorded as ``run.iterations`` in metrics.json."""
        return {
            "planned": self.planned,
            "started": self.granted,
            "finished": self.finished,
            "lost": self.lost_count,
            "lost_iterations": {w: sorted(v) for w, v in self.lost.items()},
            "complete": self.complete,
            "workers": sorted(self.workers),
            "never_started": self.never_started,
            "interrupted": list(self.interrupted),
            "recovered": sorted(self.recovered),
        }
