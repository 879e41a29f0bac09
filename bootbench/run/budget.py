"""The iteration budget of a run: exactly N iterations over every user, process and worker.

The master (or the single local process) owns one :class:`IterationBudget`.
Before the timed part of a cycle, a user asks for an iteration; the budget
grants the next global iteration number (a *ticket*) or says it is spent.
Finished iterations are reported back; when a worker disappears, the
tickets it held are written off as lost, and the unused budget stays for
the others.
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

    def grant(self, worker: str) -> int | None:
        """The next iteration number for ``worker``, or None once the budget is spent or closed."""
        if self.closed or (self.planned and self.granted >= self.planned):
            return None
        self.granted += 1
        self.workers.add(worker)
        self.in_flight.setdefault(worker, set()).add(self.granted)
        return self.granted

    def finish(self, worker: str, iteration: int) -> bool:
        """Record that ``iteration`` finished; False if it was not in flight (a duplicate or a stray)."""
        held = self.in_flight.get(worker, set())
        if iteration not in held:
            return False
        held.discard(iteration)
        self.finished += 1
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
        """Grant nothing more (the run is stopping)."""
        self.closed = True

    @property
    def lost_count(self) -> int:
        return sum(len(v) for v in self.lost.values())

    @property
    def outstanding(self) -> int:
        return sum(len(v) for v in self.in_flight.values())

    @property
    def done(self) -> bool:
        """Every planned ticket was granted and has finished or been lost."""
        return bool(self.planned) and self.granted >= self.planned and self.outstanding == 0

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
        }
