"""A concurrency sweep's state on the master (or the single local process), with no Locust in it.

``--sweep 1,2,4,8 -i 50`` runs four *levels* one after another: 50
iterations with 1 user, then 50 with 2, and so on. Within a level the
iterations run in *rounds*: all users of the level start a call at the same
moment (one ticket each), and the next round starts once every ticket of the
round has finished and the level's users are all asking again. So a level of
L users measures exactly what happens when L calls start at once, and no
iteration of one level overlaps the next.

The :class:`Sweep` gates the run's :class:`~bootbench.run.budget.IterationBudget`:
a user's ticket request that the gate holds back waits in :attr:`Sweep.waiting`
(answered when its round is released, never refused). The Locust side
(:mod:`bootbench.run.shape`) polls :meth:`Sweep.step` and sends what it says.
Each level also records, per process that runs users, the CPU seconds it
used during the level, reported at the level's two edges.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bootbench.run.budget import IterationBudget
from bootbench.views.text import counted, users_text

SPAWNING, RUNNING, FINISHED = "spawning", "running", "finished"
SPAWN_RATE = 100.0
"""Users started per second when a level ramps up (Locust warns above 100); a round waits for all of them anyway."""
START_MARGIN = 2.0
"""A level must be able to start in half the time its first user waits for a ticket: a machine busy with the
connections of the users already started spawns below the nominal rate (86/s measured at 2000 users on 2 busy cores)."""


def largest_level(ticket_wait_s: float) -> int:
    """The most users a level can have and still start (see :func:`level_refusal`)."""
    return int(SPAWN_RATE * ticket_wait_s / START_MARGIN)


def level_refusal(levels: tuple[int, ...], ticket_wait_s: float, wait_reason: str = "") -> str | None:
    """Why a sweep with ``levels`` could never start its largest level, or None when every level can start.

    A level opens only once all its users run, and they start at
    :data:`SPAWN_RATE`; the first of them asks for a ticket at once and gives
    up after ``ticket_wait_s`` (its user stops, so the level never has all its
    users and the run never ends). ``wait_reason`` says where the wait comes
    from, when it is not the fixed local wait.
    """
    largest = largest_level(ticket_wait_s)
    level = max(levels)
    if level <= largest:
        return None
    return (f"--sweep level {level} can never start: a level's users start at {SPAWN_RATE:g} per second and the "
            f"first of them stops waiting for its round after {ticket_wait_s:g} s{wait_reason}, so a level can have "
            f"at most {largest} users (half of what {ticket_wait_s:g} s at {SPAWN_RATE:g}/s would start, for a "
            f"machine that starts them slower)")


@dataclass
class LevelWindow:
    """One level as it ran: its users, when it opened and closed, each process's CPU at both edges."""

    users: int
    planned: int
    opened_ns: int | None = None
    closed_ns: int | None = None
    rounds: int = 0
    cpu: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    """worker -> edge ("open" / "close") -> (process CPU seconds, process monotonic seconds) at that edge."""

    def cpu_use(self) -> dict[str, dict[str, float]]:
        """Per process that reported both edges: CPU seconds, wall seconds, and their ratio (cores used)."""
        use = {}
        for worker, edges in sorted(self.cpu.items()):
            if "open" in edges and "close" in edges:
                cpu_s = edges["close"][0] - edges["open"][0]
                wall_s = edges["close"][1] - edges["open"][1]
                use[worker] = {"cpu_s": round(cpu_s, 4), "wall_s": round(wall_s, 4),
                               "cores": round(cpu_s / wall_s, 4) if wall_s > 0 else None}
        return use

    def record(self) -> dict[str, Any]:
        """This level's run facts for metrics.json ``levels`` (the statistics come from its samples)."""
        duration = ((self.closed_ns - self.opened_ns) / 1e9
                    if self.opened_ns is not None and self.closed_ns is not None else None)
        return {"users": self.users, "planned": self.planned, "rounds": self.rounds,
                "duration_s": None if duration is None else round(duration, 3), "cpu": self.cpu_use()}


@dataclass
class Step:
    """What the Locust side has to do after one look at the sweep."""

    spawn: int | None = None
    """Ramp to this many users (a new level starts)."""
    release: list[tuple[str, int]] = field(default_factory=list)
    """Ticket requests (worker, request id) to grant now: a round starts."""
    edge: tuple[int, str] | None = None
    """(level index, "open" / "close"): ask every process for its CPU now."""


@dataclass
class Sweep:
    """The levels of a sweep, the one running now, and the ticket requests its gate holds back."""

    levels: tuple[int, ...]
    per_level: int
    straggler_s: float = 1.0
    """A round starts with fewer than the level's users once none asked for this long (a user is gone)."""
    index: int = 0
    state: str = SPAWNING
    waiting: list[tuple[str, int]] = field(default_factory=list)
    windows: list[LevelWindow] = field(init=False)
    last_request_ns: int = 0

    def __post_init__(self) -> None:
        if not self.levels or self.per_level <= 0:
            raise ValueError("a sweep needs at least one level and a positive number of iterations per level")
        self.windows = [LevelWindow(users, self.per_level) for users in self.levels]

    @property
    def planned(self) -> int:
        """Iterations of the whole sweep."""
        return self.per_level * len(self.levels)

    @property
    def users(self) -> int:
        """Users of the current level."""
        return self.levels[self.index]

    def level_of(self, iteration: int) -> int:
        """The users of the level iteration number ``iteration`` belongs to (level k holds k*i+1 .. (k+1)*i)."""
        return self.levels[min(len(self.levels) - 1, max(0, (iteration - 1) // self.per_level))]

    def label(self) -> str:
        """The current level for people: ``level 3/5: 4 users``."""
        if self.state == FINISHED:
            return f"sweep finished ({counted(len(self.levels), 'level')})"
        what = "starting" if self.state == SPAWNING else "running"
        return f"level {self.index + 1}/{len(self.levels)}: {users_text(self.users)} ({what})"

    # ---- ticket requests

    def hold(self, worker: str, request: int) -> None:
        """Keep a ticket request the gate holds back; it is answered when its round starts."""
        self.waiting.append((worker, request))
        self.last_request_ns = time.perf_counter_ns()

    def forget(self, worker: str) -> None:
        """Drop the held requests of a worker that is gone."""
        self.waiting = [(w, r) for w, r in self.waiting if w != worker]

    def take_waiting(self) -> list[tuple[str, int]]:
        """Every held request, removed (the run stops: each is answered with no ticket)."""
        taken, self.waiting = self.waiting, []
        return taken

    # ---- driving the levels

    def level_end(self) -> int:
        """The last iteration number of the current level."""
        return (self.index + 1) * self.per_level

    def step(self, budget: IterationBudget, users_running: int, spawned: bool) -> Step:
        """One look at the sweep: open the level once its users are up, start rounds, close the level when done.

        ``users_running`` and ``spawned`` are what the runner reports (the
        users alive, and whether its last ramp has completed).
        """
        now = time.perf_counter_ns()
        if self.state == SPAWNING:
            if not (spawned and users_running >= self.users):
                return Step()
            self.state = RUNNING
            self.windows[self.index].opened_ns = now
            return Step(edge=(self.index, "open"))
        if self.state != RUNNING:
            return Step()
        if budget.returned and self.waiting:  # a ticket that reached no user: hand it to a waiting one
            count = min(len(budget.returned), len(self.waiting))
            released, self.waiting = self.waiting[:count], self.waiting[count:]
            return Step(release=released)
        if budget.granted >= self.level_end():
            if not budget.settled:
                return Step()
            window = self.windows[self.index]
            window.closed_ns = now
            edge = (self.index, "close")
            if self.index + 1 >= len(self.levels):
                self.state = FINISHED
                return Step(edge=edge)
            self.index += 1
            self.state = SPAWNING
            return Step(spawn=self.users, edge=edge)
        if not budget.settled or not self.waiting:
            return Step()
        everyone = len(self.waiting) >= self.users
        stragglers_gone = (now - self.last_request_ns) / 1e9 >= self.straggler_s
        if not (everyone or stragglers_gone):
            return Step()
        count = min(self.users, self.level_end() - budget.granted, len(self.waiting))
        budget.ceiling = budget.granted + count
        released, self.waiting = self.waiting[:count], self.waiting[count:]
        self.windows[self.index].rounds += 1
        return Step(release=released)

    def note_cpu(self, worker: str, index: int, edge: str, cpu_s: float, wall_s: float) -> None:
        """A process's CPU seconds and monotonic clock at one edge of level ``index``."""
        if 0 <= index < len(self.windows):
            self.windows[index].cpu.setdefault(worker, {})[edge] = (float(cpu_s), float(wall_s))

    def records(self) -> list[dict[str, Any]]:
        """Every level's run facts (metrics.json ``levels`` adds the statistics of its samples)."""
        return [window.record() for window in self.windows]
