"""A run's ``trace.json`` (``--trace``): the iterations' wire traces in Chrome's Trace Event Format, within a cap.

The master (or the single local process) adds each finished iteration's record (:meth:`bootbench.trace.WireTrace.record`,
shipped with its sample) to the run's :class:`TraceBook`, and writes ``trace.json`` when the run closes: the JSON
object form (``traceEvents``, ``displayTimeUnit``, ``otherData``) that Perfetto (ui.perfetto.dev) and
chrome://tracing open. One process (pid) per worker, one track (tid) per user; each iteration is a complete
slice (``ph: X``) holding a slice per phase and service stage of :data:`bootbench.samples.PHASE_TABLE` it
reached (a warm turn's prefixed ``turn N``), and each message an instant (``ph: i``) whose args are its
direction, type, size and, for audio, length and hash. Slices on one track must nest; phases that overlap
without nesting (first_response_ms and input_to_audible_ms) go to the user's next track, named after it.

Times are microseconds. Within a process they are exact (its ``perf_counter_ns``, one clock for its users);
processes are placed by the wall clock of their first traced iteration, so workers line up only as well as
their machines' clocks do.

The book holds at most :data:`MAX_EVENTS` events: the iteration that would pass the cap, and every one after
it, is left out; the master then tells users to stop tracing (the ``trace`` flag of its tickets) and the run
warns once (log and metrics.json ``run.warnings``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootbench.samples import PHASE_TABLE, Sample, Timeline
from bootbench.secrets import redact
from bootbench.trace import SENT

log = logging.getLogger("bootbench")

TRACE_FILE = "trace.json"
MAX_EVENTS = 100_000
"""The most events a run's trace.json holds (about 17 MB: README "Wire trace" states the size per iteration)."""
BEFORE = " (reached before the last input)"
"""Appended to a service stage phase reached before the last input went (negative: its slice is drawn forwards)."""
LANE_NAMES = ("", " (overlapping phases)", " (overlapping phases 2)", " (overlapping phases 3)")


@dataclass
class TracedIteration:
    """One iteration's record as the book keeps it, with the slices derived from its stamps."""

    sample: Sample
    record: dict[str, Any]
    slices: list[tuple[str, str, int, int, dict[str, Any]]]
    """(name, category, start ns, end ns, args), relative to the cycle's start."""

    @property
    def events(self) -> int:
        return len(self.slices) + len(self.record["messages"])


@dataclass
class TraceBook:
    """The traced iterations of one run, in arrival order, until the cap."""

    cap: int = field(default_factory=lambda: MAX_EVENTS)
    iterations: list[TracedIteration] = field(default_factory=list)
    events: int = 0
    full: bool = False
    """The cap was reached: no further iteration is kept, and users are told to stop tracing."""
    left_out: int = 0
    """Traced iterations that arrived once the cap was reached (in flight when it was)."""
    dropped_messages: int = 0
    """Messages past an iteration's own limit (bootbench.trace.MAX_MESSAGES), counted only."""

    def add(self, sample: Sample, record: dict[str, Any]) -> bool:
        """Keep ``sample``'s trace; False when the cap leaves it out (the first time: one warning in the log)."""
        traced = TracedIteration(sample, record, slices_of(record, sample))
        if not self.full and self.events + traced.events > self.cap:
            self.full = True
            log.warning("%s", self.cap_sentence())
        if self.full:
            self.left_out += 1
            return False
        self.iterations.append(traced)
        self.events += traced.events
        self.dropped_messages += int(record.get("dropped") or 0)
        return True

    def cap_sentence(self) -> str:
        return (f"the wire trace reached its cap of {self.cap} events after {len(self.iterations)} iterations: "
                f"trace.json holds those, and the iterations after them were not traced")

    def warnings(self) -> list[str]:
        """Sentences for metrics.json ``run.warnings``: the cap reached, messages past an iteration's limit."""
        said = [self.cap_sentence()] if self.full else []
        if self.dropped_messages:
            said.append(f"the wire trace left out {self.dropped_messages} messages of iterations that exchanged "
                        f"more than its per-iteration limit")
        return said

    def document(self, run: dict[str, Any] | None = None) -> dict[str, Any]:
        """The trace as a Trace Event Format JSON object."""
        pids = {name: number for number, name in enumerate(sorted({t.sample.worker for t in self.iterations}), 1)}
        origin: dict[str, tuple[int, int]] = {}   # per worker: (cycle_start_ns, wall_ns) of its earliest iteration
        for traced in self.iterations:
            key = traced.sample.worker
            start = (traced.record["cycle_start_ns"], traced.record["wall_ns"])
            if key not in origin or start[1] < origin[key][1]:
                origin[key] = start
        run_wall = min((wall for _, wall in origin.values()), default=0)
        events: list[dict[str, Any]] = []
        tids: dict[tuple[str, int, int], int] = {}
        for traced in sorted(self.iterations, key=lambda t: (t.sample.worker, t.record["cycle_start_ns"])):
            worker, user = traced.sample.worker, traced.sample.user
            perf, wall = origin[worker]
            base = (wall - run_wall) + (traced.record["cycle_start_ns"] - perf)   # ns on the trace's axis
            pid = pids[worker]
            track_lanes: list[list[tuple[int, int]]] = []   # a user's iterations never overlap: lanes per iteration
            for name, category, start, end, args in sorted(traced.slices, key=lambda s: (s[2], s[2] - s[3])):
                lane = _lane_for(track_lanes, start + base, end + base)
                tid = tids.setdefault((worker, user, lane), len(tids) + 1)
                ts = _us(base + start)
                events.append({"name": name, "cat": category, "ph": "X", "ts": ts,
                               "dur": round(_us(base + end) - ts, 3), "pid": pid, "tid": tid, "args": args})
            tid = tids.setdefault((worker, user, 0), len(tids) + 1)
            for at, direction, kind, size, audio_bytes, audio_hash in traced.record["messages"]:
                args: dict[str, Any] = {"direction": direction, "type": kind, "size": size}
                if audio_bytes is not None:
                    args.update(audio_bytes=audio_bytes, hash=audio_hash)
                events.append({"name": f"{'send' if direction == SENT else 'recv'} {kind}", "cat": direction,
                               "ph": "i", "s": "t", "ts": _us(base + at), "pid": pid, "tid": tid, "args": args})
        metadata: list[dict[str, Any]] = []
        for worker, pid in pids.items():
            metadata.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                             "args": {"name": "local process" if worker == "local" else f"worker {worker}"}})
            metadata.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}})
        for (worker, user, lane), tid in tids.items():
            label = f"user {user}{LANE_NAMES[min(lane, len(LANE_NAMES) - 1)]}"
            metadata.append({"name": "thread_name", "ph": "M", "pid": pids[worker], "tid": tid, "args": {"name": label}})
            metadata.append({"name": "thread_sort_index", "ph": "M", "pid": pids[worker], "tid": tid,
                             "args": {"sort_index": user * len(LANE_NAMES) + lane}})
        return {"traceEvents": metadata + events, "displayTimeUnit": "ms",
                "otherData": {**(run or {}), "iterations_traced": len(self.iterations), "events": self.events,
                              "cap_events": self.cap, "capped": self.full, "iterations_left_out": self.left_out}}

    def write(self, folder: Path, run: dict[str, Any] | None = None) -> Path | None:
        """Write ``folder``/trace.json; a failure is logged, never raised (the run's other files matter more)."""
        path = folder / TRACE_FILE
        try:
            text = json.dumps(self.document(run), separators=(",", ":"), allow_nan=False)
            path.write_text(redact(text), encoding="utf-8")
            return path
        except Exception:
            log.exception("trace.json could not be written")
            return None


def slices_of(record: dict[str, Any], sample: Sample) -> list[tuple[str, str, int, int, dict[str, Any]]]:
    """The iteration slice, and a slice per phase and service stage each turn reached (ns from the cycle's start)."""
    slices = []
    for number, stamps in enumerate(record["turns"], start=1):
        prefix = "" if number == 1 else f"turn {number}: "
        turn_times = list(stamps.values())
        if number > 1 and turn_times:
            slices.append((f"turn {number}", "turn", min(turn_times), max(turn_times), {"turn": number}))
        values = Timeline(**stamps).phases()   # the sample's own rule: a phase the sample has none of has no slice
        for phase in PHASE_TABLE:
            if values[phase.name] is None:
                continue
            since, until = stamps[phase.since], stamps[phase.until]
            name = prefix + phase.name + (BEFORE if until < since else "")
            slices.append((name, "stage" if phase.stage else "phase", min(since, until), max(since, until),
                           {"ms": values[phase.name], "from": phase.start, "to": phase.end}))
    times = [t for stamps in record["turns"] for t in stamps.values()] + [m[0] for m in record["messages"]]
    if times:
        about = {"iteration": sample.iteration, "ok": sample.ok, "error_kind": sample.error_kind, "clip": sample.clip,
                 "messages": len(record["messages"]), "messages_dropped": int(record.get("dropped") or 0)}
        slices.insert(0, (f"iteration {sample.iteration}", "iteration", min(times), max(times), about))
    return slices


def _lane_for(lanes: list[list[tuple[int, int]]], start: int, end: int) -> int:
    """The first lane where [start, end] nests with (or is apart from) every slice already there; kept there."""
    for number, lane in enumerate(lanes):
        if all(end <= s or start >= e or (s <= start and end <= e) or (start <= s and e <= end) for s, e in lane):
            lane.append((start, end))
            return number
    lanes.append([(start, end)])
    return len(lanes) - 1


def _us(ns: int) -> float:
    return round(ns / 1000, 3)
