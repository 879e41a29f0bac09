"""Ground truth: what the reference server did in each session, one JSON line per session.

Timestamps are ``time.perf_counter_ns()`` of the server process, taken right
before the message is sent (Aivoco's: at its frame's write, the kernel's own
send stamp where it gives one, :meth:`SessionTruth.restamp`); durations in
``measured`` are computed from them. The rule every protocol's emulation
follows: a send stamp is taken in the same step of the event loop as the
write of its message (no ``await`` that can suspend between them, no task or
queue in the way), so that the truth is when the bytes left, not when the
server decided to send them. A line is written
and flushed when its session ends, so a killed run keeps every finished
session. No secret (the API key) is ever part of a record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from .latency import InjectedDelays

TIMESTAMPS = ("start_received", "created_sent", "join_received", "ready_sent", "first_input_received",
              "last_input_received", "first_audio_sent", "stop_received", "ended_sent")
"""``first_audio_sent`` is the first chunk of the answer (a greeting's is ``greeting.sent_ns``).
``created_sent`` and ``join_received`` are the two steps of a session started in two requests (Ultravox: the
create request's response, the upgrade to the call's join URL); None for the other protocols."""
STEP_TIMESTAMPS = ("created_sent", "join_received")
"""The stamps only a session started in two requests has (:data:`TIMESTAMPS`' docstring)."""
MAX_STORED_VIOLATIONS = 100
MAX_STORED_NOTES = 100


@dataclass
class AudioIn:
    """Client audio the server accepted in one session."""

    chunks: int = 0
    samples: int = 0
    peak: float = 0.0


@dataclass
class AudioOut:
    """Reply audio the server sent; ``max_late_ms`` is the worst send lateness against the 40 ms schedule."""

    chunks: int = 0
    samples: int = 0
    max_late_ms: float | None = None


STAGE_TIMESTAMPS = {"turn_end": "turn_end_sent", "input_transcript": "input_transcript_sent",
                    "response_start": "response_start_sent", "first_text": "first_text_sent"}
"""The send of each service stage's first event in a turn (bootbench.samples.STAGES), by stage."""
STAGE_MEASURES = {"turn_end_ms": "turn_end_sent", "transcript_ms": "input_transcript_sent",
                  "response_start_ms": "response_start_sent", "first_text_ms": "first_text_sent"}
"""The stage phases (bootbench.samples ``STAGE_PHASES``) as the server measures them: last input received -> send."""
TURN_TIMESTAMPS = ("first_input_received", "last_input_received", "first_audio_sent", "reply_end_sent",
                   *STAGE_TIMESTAMPS.values())


@dataclass
class TurnTruth:
    """One turn of a session: the input the server took for it, the delay it injected, and its reply.

    A turn begins with the first input after the previous turn's reply has
    ended (``over``); its ``reply_end_sent`` is the send of the protocol's
    end of the reply (OpenAI ``response.done``, Gemini ``generationComplete``,
    Aivoco the last ``audio_response``).
    """

    turn: int
    first_audio_delay_ms: float | None = None
    t_ns: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(TURN_TIMESTAMPS))
    over: bool = False
    """The reply ended and the service's turn is over: the next input starts a new turn."""

    def span_ms(self, start: str, end: str) -> float | None:
        a, b = self.t_ns.get(start), self.t_ns.get(end)
        return None if a is None or b is None else round((b - a) / 1e6, 3)

    def to_json(self) -> dict[str, Any]:
        return {
            "turn": self.turn,
            "first_audio_delay_ms": None if self.first_audio_delay_ms is None else round(self.first_audio_delay_ms, 3),
            "t_ns": dict(self.t_ns),
            "measured": {"input_to_audio_ms": self.span_ms("last_input_received", "first_audio_sent"),
                         "reply_ms": self.span_ms("first_audio_sent", "reply_end_sent"),
                         **{phase: self.span_ms("last_input_received", stamp)
                            for phase, stamp in STAGE_MEASURES.items()}},
        }


@dataclass
class Greeting:
    """The greeting the server sent unasked (``--greeting-ms``); ``interrupted`` when the answer cut it short."""

    sent_ns: int | None = None
    """When its first chunk was sent."""
    chunks: int = 0
    samples: int = 0
    interrupted: bool = False


@dataclass
class SessionTruth:
    """One session's ground truth record.

    ``session`` is None for a record of protocol violations a connection
    committed outside any session (outcome ``outside_session``).
    """

    session: int | None
    protocol: str
    sid: str
    outcome: str | None = None
    fault: dict[str, Any] | None = None
    injected: InjectedDelays | None = None
    queued_ms: float | None = None
    t_ns: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(TIMESTAMPS))
    audio_in: AudioIn = field(default_factory=AudioIn)
    audio_out: AudioOut = field(default_factory=AudioOut)
    greeting: Greeting | None = None
    input_speech: bool | None = None
    """With ``--vad-needs-speech``: whether the turn's audio was judged speech-like (None: not judged)."""
    violations: list[str] = field(default_factory=list)
    """What the real service would refuse or answer with an error."""
    violation_count: int = 0
    notes: list[str] = field(default_factory=list)
    """What the real service accepts but a careful client (bootbench's drivers) does not do: each distinct note once."""
    note_count: int = 0
    turns: list[TurnTruth] = field(default_factory=list)
    """Every turn of the session; the session-level ``t_ns`` and ``measured`` are those of turn 1."""
    wall_time: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))

    def add_violation(self, description: str) -> None:
        """Record one protocol violation (the stored list is capped, the count is not)."""
        self.violation_count += 1
        if len(self.violations) < MAX_STORED_VIOLATIONS:
            self.violations.append(description)

    def add_note(self, description: str) -> bool:
        """Record one strictness note (the list keeps each description once, the count counts every one); True if new."""
        self.note_count += 1
        if description in self.notes or len(self.notes) >= MAX_STORED_NOTES:
            return False
        self.notes.append(description)
        return True

    def note_input(self, samples: int, peak: float, received_ns: int, min_pause_ms: float = 0.0) -> bool:
        """Count one chunk of client audio and stamp it as the latest (and, if none came before, the first) input.

        True when it began a turn (see :meth:`note_last_input`).
        """
        self.audio_in.chunks += 1
        self.audio_in.samples += samples
        self.audio_in.peak = max(self.audio_in.peak, peak)
        began = self.note_last_input(received_ns, min_pause_ms)
        if self.t_ns["first_input_received"] is None:
            self.t_ns["first_input_received"] = received_ns
        return began

    def note_last_input(self, received_ns: int, min_pause_ms: float = 0.0) -> bool:
        """Stamp the current turn's latest input (audio, or the client's end of its turn); True when it began a turn.

        Input after the previous reply has ended begins the next turn; with
        ``min_pause_ms`` only if the client's input also paused that long (a
        protocol without an end-of-turn message: a clip still streaming after
        a short reply is not a new turn). The session-level
        ``last_input_received`` is turn 1's.
        """
        last = self.turns[-1] if self.turns else None
        began = last is None or (last.over and received_ns - (last.t_ns["last_input_received"] or 0)
                                 >= min_pause_ms * 1e6)
        if began:
            self.turns.append(TurnTruth(len(self.turns) + 1))
        turn = self.turns[-1]
        turn.t_ns["last_input_received"] = received_ns
        if turn.t_ns["first_input_received"] is None:
            turn.t_ns["first_input_received"] = received_ns
        if turn.turn == 1:
            self.t_ns["last_input_received"] = received_ns
        return began

    def current_turn(self) -> TurnTruth:
        """The turn being answered (turn 1 if no input came yet)."""
        if not self.turns:
            self.turns.append(TurnTruth(1))
        return self.turns[-1]

    def note_first_audio(self, sent_ns: int) -> None:
        """Stamp a reply's first chunk, sent at ``sent_ns``, for its turn (and the session, on turn 1)."""
        turn = self.current_turn()
        if turn.t_ns["first_audio_sent"] is None:
            turn.t_ns["first_audio_sent"] = sent_ns
        if self.t_ns["first_audio_sent"] is None:
            self.t_ns["first_audio_sent"] = sent_ns

    def restamp(self, name: str, taken_ns: int, written_ns: int | None) -> None:
        """Move stamp ``name`` of the session and of its current turn from ``taken_ns`` (taken before the send) to
        ``written_ns`` (the message's frame's write: the kernel's send stamp, or perf_counter_ns right before the
        write), where it is still the one taken then."""
        if written_ns is None:
            return
        for t_ns in (self.t_ns, *(turn.t_ns for turn in self.turns[-1:])):
            if t_ns.get(name) == taken_ns:
                t_ns[name] = written_ns

    def note_stage(self, stage: str, sent_ns: int) -> None:
        """Stamp the send of the current turn's first event of service stage ``stage`` (a key of
        :data:`STAGE_TIMESTAMPS`); later events of that stage in the turn are not stamped."""
        stamp = STAGE_TIMESTAMPS[stage]
        turn = self.current_turn()
        if turn.t_ns[stamp] is None:
            turn.t_ns[stamp] = sent_ns

    def note_reply_end(self, sent_ns: int, *, over: bool = True) -> None:
        """Stamp the end of the current turn's reply (once); ``over`` also ends the service's turn."""
        turn = self.current_turn()
        if turn.t_ns["reply_end_sent"] is None:
            turn.t_ns["reply_end_sent"] = sent_ns
        turn.over = turn.over or over

    def span_ms(self, start: str, end: str) -> float | None:
        """Milliseconds between two recorded timestamps, None if either did not happen."""
        a, b = self.t_ns.get(start), self.t_ns.get(end)
        if a is None or b is None:
            return None
        return round((b - a) / 1e6, 3)

    def _greeting_ms(self) -> float | None:
        """From ``ready_sent`` to the greeting's first chunk."""
        ready = self.t_ns.get("ready_sent")
        if self.greeting is None or self.greeting.sent_ns is None or ready is None:
            return None
        return round((self.greeting.sent_ns - ready) / 1e6, 3)

    def _plus_leading(self, ms: float | None) -> float | None:
        """A span to the first answer chunk extended by the injected leading silence: when its audible part starts.

        Chunks go out at real-time pace, so the audible part is sent (and plays) that much after the first chunk.
        """
        if ms is None or self.injected is None:
            return None
        return round(ms + self.injected.leading_silence_ms, 3)

    def to_json(self) -> dict[str, Any]:
        """The JSONL representation."""
        return {
            "session": self.session,
            "protocol": self.protocol,
            "sid": self.sid,
            "outcome": self.outcome,
            "wall_time": self.wall_time,
            "fault": self.fault,
            "injected": None if self.injected is None else {
                k: None if v is None else round(v, 3) for k, v in asdict(self.injected).items()},
            "queued_ms": None if self.queued_ms is None else round(self.queued_ms, 3),
            "t_ns": dict(self.t_ns),
            "measured": {
                "session_start_ms": self.span_ms("start_received", "ready_sent"),
                "call_create_ms": self.span_ms("start_received", "created_sent"),
                "join_ms": self.span_ms("join_received", "ready_sent"),
                "first_response_ms": self.span_ms("ready_sent", "first_audio_sent"),
                "input_to_audio_ms": self.span_ms("last_input_received", "first_audio_sent"),
                "first_audible_ms": self._plus_leading(self.span_ms("ready_sent", "first_audio_sent")),
                "input_to_audible_ms": self._plus_leading(self.span_ms("last_input_received", "first_audio_sent")),
                "greeting_ms": self._greeting_ms(),
                **({phase: self.turns[0].span_ms("last_input_received", stamp)
                    for phase, stamp in STAGE_MEASURES.items()} if self.turns else dict.fromkeys(STAGE_MEASURES)),
            },
            "audio_in": {**asdict(self.audio_in), "peak": round(self.audio_in.peak, 5)},
            "audio_out": asdict(self.audio_out),
            "greeting": None if self.greeting is None else asdict(self.greeting),
            "input_speech": self.input_speech,
            "violations": list(self.violations),
            "violation_count": self.violation_count,
            "notes": list(self.notes),
            "note_count": self.note_count,
            "turns": [turn.to_json() for turn in self.turns],
        }


class GroundTruthWriter:
    """Appends records to a JSONL file (or nowhere when ``path`` is None), flushing each line."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self._file: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def write(self, record: SessionTruth) -> None:
        """Write one record as a line and flush it."""
        if self._file is None:
            return
        line = json.dumps(record.to_json(), separators=(", ", ": "))
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Flush and close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None
