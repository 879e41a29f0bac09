"""The session scheduler every wire protocol shares.

It numbers sessions, draws their delays from the latency model, queues them
FIFO for a limited number of capacity slots, counts protocol violations (what
the real service refuses) and notes (what it accepts but a careful client does
not do), and hands finished sessions to the ground-truth writer. Protocol modules only
translate wire messages into these calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from typing import Any

from .faults import FaultPlan, FaultSpec
from .latency import InjectedDelays, LatencyModel
from .truth import GroundTruthWriter, SessionTruth

log = logging.getLogger("bootbench.server")


async def sleep_until(target_ns: int) -> None:
    """Sleep until ``time.perf_counter_ns()`` reaches ``target_ns`` (returns at once if it has)."""
    delay = (target_ns - time.perf_counter_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


class CapacityGate:
    """A counting gate with strict FIFO hand-over; capacity 0 means unlimited."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Number of callers queued for a slot."""
        return sum(1 for w in self._waiters if not w.done())

    async def acquire(self) -> None:
        """Take a slot, queueing behind earlier callers when none is free."""
        if self.capacity == 0 or (self.in_use < self.capacity and not self.waiting):
            self.in_use += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back, handing it straight to the longest waiter if there is one."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.in_use -= 1


class SessionScheduler:
    """Session bookkeeping shared by all protocol modules of one server process."""

    def __init__(self, model: LatencyModel, capacity: int, writer: GroundTruthWriter,
                 faults: FaultPlan | None = None) -> None:
        self.model = model
        self.faults = faults or FaultPlan()
        self.gate = CapacityGate(capacity)
        self.writer = writer
        self.sessions = 0
        self.violations = 0
        self.notes = 0
        self.connections = 0
        self.outcomes: Counter[str] = Counter()
        self._holding: set[int] = set()

    def open(self, protocol: str, sid: str, start_received_ns: int) -> SessionTruth:
        """Create and number a session whose start request arrived at ``start_received_ns``."""
        self.sessions += 1
        record = SessionTruth(session=self.sessions, protocol=protocol, sid=sid)
        record.t_ns["start_received"] = start_received_ns
        return record

    def fault_for(self, record: SessionTruth) -> FaultSpec | None:
        """The fault striking this session (see :mod:`.faults`), also noted in its ground truth.

        Only protocols that implement the faults call this, so a record never claims a fault that was not played.
        """
        assert record.session is not None
        fault = self.faults.pick(record.session, record.protocol)
        record.fault = None if fault is None else fault.record()
        if fault is not None:
            log.info("session %s %s %s: injecting fault %s", record.session, record.protocol, record.sid, fault.text)
        return fault

    def next_fault(self, protocol: str) -> FaultSpec | None:
        """The fault the next session opened will draw if it is of ``protocol`` (nothing is drawn or recorded)."""
        return self.faults.pick(self.sessions + 1, protocol)

    def connection_record(self, protocol: str, sid: str) -> SessionTruth:
        """A record for violations a connection commits outside any session."""
        return SessionTruth(session=None, protocol=protocol, sid=sid)

    def accept(self, record: SessionTruth) -> InjectedDelays:
        """Draw the delays of an authenticated session (in acceptance order)."""
        record.injected = self.model.draw()
        return record.injected

    def first_audio_delay(self, record: SessionTruth) -> float:
        """The first-audio delay (ms) of the turn being answered: the session's own for turn 1, a warm draw after.

        Noted in the turn's ground truth.
        """
        assert record.injected is not None
        turn = record.current_turn()
        if turn.first_audio_delay_ms is None:
            turn.first_audio_delay_ms = (record.injected.first_audio_delay_ms if turn.turn == 1
                                         else self.model.draw_warm())
        return turn.first_audio_delay_ms

    async def admit(self, record: SessionTruth) -> None:
        """Wait (FIFO) for a capacity slot; sets ``queued_ms``."""
        queued_at = time.perf_counter_ns()
        await self.gate.acquire()
        assert record.session is not None
        self._holding.add(record.session)
        record.queued_ms = (time.perf_counter_ns() - queued_at) / 1e6

    def violation(self, record: SessionTruth, description: str) -> None:
        """Count and log one protocol violation against ``record``."""
        self.violations += 1
        record.add_violation(description)
        where = f"session {record.session}" if record.session is not None else "outside a session"
        log.warning("protocol violation (%s %s, %s): %s", record.protocol, record.sid, where, description)

    def note(self, record: SessionTruth, description: str) -> None:
        """Count one strictness note against ``record`` (logged the first time the session makes it)."""
        self.notes += 1
        if record.add_note(description):
            where = f"session {record.session}" if record.session is not None else "outside a session"
            log.info("note (%s %s, %s): %s", record.protocol, record.sid, where, description)

    def finish(self, record: SessionTruth, outcome: str) -> None:
        """End a session: free its slot, write its ground truth line, log a summary."""
        record.outcome = outcome
        if record.session in self._holding:
            self._holding.discard(record.session)
            self.gate.release()
        if record.session is None and record.violation_count == 0 and record.note_count == 0:
            return
        self.outcomes[outcome] += 1
        self.writer.write(record)
        data = record.to_json()
        log.info("session %s %s %s: outcome=%s queued=%s session_start=%s first_response=%s violations=%d notes=%d",
                 record.session, record.protocol, record.sid, outcome, data["queued_ms"],
                 data["measured"]["session_start_ms"], data["measured"]["first_response_ms"],
                 record.violation_count, record.note_count)

    def stats(self) -> dict[str, Any]:
        """Counters for ``GET /stats``."""
        return {
            "sessions": self.sessions,
            "violations": self.violations,
            "notes": self.notes,
            "active": self.gate.in_use,
            "queued": self.gate.waiting,
            "connections": self.connections,
            "outcomes": dict(self.outcomes),
        }
