"""What one iteration measured: its raw :class:`Timeline`, the :class:`Sample` record, the phase table, the error kinds.

A :class:`Timeline` holds the ``perf_counter_ns`` timestamps of one cycle,
taken by one process on one clock; :meth:`Timeline.phases` turns them into
the millisecond intervals of :data:`PHASE_TABLE` (docs/architecture.md
defines each). A :class:`Sample` is the record of one finished iteration, as
written to ``samples.jsonl`` and shipped from workers to the master; with
``--turns`` > 1 it also holds one :class:`Turn` per turn of its session.
Statistics over samples are computed in :mod:`bootbench.stats`.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """Why a cycle failed; the value is what samples, metrics.json and the console show."""

    CONNECT_FAILED = "connect_failed"
    AUTH_FAILED = "auth_failed"
    SESSION_TIMEOUT = "session_timeout"
    AUDIO_TIMEOUT = "audio_timeout"
    DISCONNECTED = "disconnected"
    PROTOCOL_ERROR = "protocol_error"
    SERVER_ERROR = "server_error"
    SEND_FAILED = "send_failed"
    REPLY_TIMEOUT = "reply_timeout"
    """``--turns`` > 1: a reply did not end (end event, or Aivoco's ``--reply-gap-ms`` of quiet) within ``--timeout``."""
    INTERRUPTED = "interrupted"
    """``--turns`` > 1: the run stopped during a warm turn; the sample keeps the turns the session completed."""


@dataclass(frozen=True)
class Phase:
    """One interval bootbench reports: its name in every output, a label for people, and its two end events.

    ``start`` and ``end`` describe the end events for people; ``since`` and
    ``until`` name the :class:`Timeline` timestamps that mark them.
    """

    name: str
    label: str
    start: str
    end: str
    since: str
    until: str
    unit: str = "ms"
    part_of: str = ""
    """The phase this one is a step of (``call_create_ms`` and ``join_ms`` of ``session_start_ms``); such a step is
    filled only by protocols whose session starts in those steps (Ultravox), and stays empty for the others."""
    stage: bool = False
    """A service stage (:data:`STAGES`): from the last input sent to the first of the service's own milestone events
    of that kind (``until`` names the stage). Filled only by protocols that send such an event; a stage the service
    reached before the last input was sent (its VAD heard the end of speech during our trailing silence) is
    negative, and stays in the statistics (it is what happened) but fires no Locust request event."""


STAGES: dict[str, str] = {
    "turn_end": "the service says the caller's turn is over (its VAD heard the end of speech, or it took our commit)",
    "input_transcript": "the first transcript of the caller's speech",
    "response_start": "the service says it starts its response (before any of its text or audio)",
    "first_text": "the first text of the answer (its transcript or its text part)",
}
"""The service's own milestones between the caller's input and the answer's first audio, in the order a service
reaches them; each driver stamps the arrival of the first event of each kind per turn (docs/architecture.md and
docs/protocols/<provider>.md say which event is which stage for each service)."""

PHASE_TABLE: tuple[Phase, ...] = (
    Phase("connect_ms", "connect", "connect start", "transport open", "connect_start", "connected"),
    Phase("session_start_ms", "session start", "start request sent", "session ready", "start_sent", "session_ready"),
    Phase("call_create_ms", "call create", "create request sent", "create response received", "start_sent",
          "call_created", part_of="session_start_ms"),
    Phase("join_ms", "join", "join sent (WebSocket upgrade to the joinUrl)", "session ready", "join_sent",
          "session_ready", part_of="session_start_ms"),
    Phase("first_response_ms", "first response", "session ready", "first audio event", "session_ready", "first_audio"),
    Phase("input_to_audio_ms", "input to audio", "last input sent", "first audio event", "input_sent", "first_audio"),
    Phase("cold_start_ms", "cold start", "cycle start", "first audio event", "cycle_start", "first_audio"),
    Phase("first_audible_ms", "first audible", "session ready", "first audible sample plays", "session_ready",
          "first_audible"),
    Phase("input_to_audible_ms", "input to audible", "last input sent", "first audible sample plays", "input_sent",
          "first_audible"),
    Phase("leading_silence_ms", "leading silence", "first audio event", "first audible sample plays", "first_audio",
          "first_audible"),
    Phase("turn_end_ms", "turn end", "last input sent", "the service says the caller's turn is over", "input_sent",
          "turn_end", stage=True),
    Phase("transcript_ms", "transcript", "last input sent", "first transcript of the caller's speech", "input_sent",
          "input_transcript", stage=True),
    Phase("response_start_ms", "response start", "last input sent", "the service says its response starts",
          "input_sent", "response_start", stage=True),
    Phase("first_text_ms", "first text", "last input sent", "first text of the answer", "input_sent", "first_text",
          stage=True),
    Phase("stop_ms", "stop", "stop sent", "stop acknowledged", "stop_sent", "stop_acked"),
)
"""Every interval bootbench reports, in cycle order (docs/architecture.md defines each)."""
PHASE_BY_NAME: dict[str, Phase] = {p.name: p for p in PHASE_TABLE}
STEP_PHASES: tuple[str, ...] = tuple(p.name for p in PHASE_TABLE if p.part_of)
"""The phases that are steps of another (:attr:`Phase.part_of`): empty for a protocol without those steps."""
PHASES: tuple[str, ...] = tuple(p.name for p in PHASE_TABLE)
"""The phase names, in cycle order. ``first_response_ms`` is the headline."""
STAGE_PHASES: tuple[str, ...] = tuple(p.name for p in PHASE_TABLE if p.stage)
"""The service stage phases (:attr:`Phase.stage`), in the order of :data:`STAGES`."""
assert tuple(p.until for p in PHASE_TABLE if p.stage) == tuple(STAGES), "one stage phase per stage, in order"

HEADLINE = "first_response_ms"

TURN_PHASE_TABLE: tuple[Phase, ...] = (
    Phase("warm_input_to_audio_ms", "warm input to audio", "last input sent (turns 2..N)",
          "first audio event of that turn's reply", "input_sent", "first_audio"),
    Phase("warm_input_to_audible_ms", "warm input to audible", "last input sent (turns 2..N)",
          "play time of the first audible sample of that turn's reply", "input_sent", "first_audible"),
    Phase("cold_penalty_ms", "cold penalty", "median warm input_to_audio_ms of the session",
          "turn 1's input_to_audio_ms", "", ""),
)
"""The phases of a run with ``--turns`` > 1, after :data:`PHASE_TABLE`; absent from single-turn runs.

``warm_input_to_audio_ms`` and ``warm_input_to_audible_ms`` have one value per
warm turn (``since``/``until`` name the fields of each warm turn's own
:class:`Timeline`), pooled over all sessions (a warm reply never audible has no
``warm_input_to_audible_ms``); ``cold_penalty_ms`` is a :class:`Sample` field, the difference
of two figures (``end`` minus ``start``), not an interval.
"""
TURN_PHASES: tuple[str, ...] = tuple(p.name for p in TURN_PHASE_TABLE)
WARM_TURN_FIELDS: dict[str, str] = {"warm_input_to_audio_ms": "input_to_audio_ms",
                                    "warm_input_to_audible_ms": "input_to_audible_ms"}
"""Phases with one value per warm turn: the :class:`Turn` field each pools over turns 2..N."""
TURN_PHASE_BY_NAME: dict[str, Phase] = {p.name: p for p in TURN_PHASE_TABLE}


@dataclass
class Timeline:
    """Raw monotonic timestamps (``time.perf_counter_ns()``) of one cycle; None = not reached."""

    cycle_start: int | None = None
    connect_start: int | None = None
    connected: int | None = None
    start_sent: int | None = None
    call_created: int | None = None
    """Ultravox: the create request's response arrived (status line and headers), before its body is read."""
    join_sent: int | None = None
    """Ultravox: the WebSocket upgrade to the call's ``joinUrl`` is about to be sent."""
    session_ready: int | None = None
    input_sent: int | None = None
    first_audio: int | None = None
    """Arrival of the answer's first audio event (a greeting's audio is not the answer)."""
    first_audible: int | None = None
    """Play time of the answer's first audible sample (:mod:`bootbench.audible`'s playback model)."""
    greeting: int | None = None
    """Arrival of the first audio of a reply the caller did not ask for (a greeting)."""
    stop_sent: int | None = None
    stop_acked: int | None = None
    reply_end: int | None = None
    """``--turns`` > 1: the end of the reply (OpenAI ``response.done``, Gemini ``turnComplete``/``generationComplete``,
    Aivoco the last ``audio_response`` before ``--reply-gap-ms`` of quiet)."""
    # The service's own milestones (STAGES): arrival of the first event of each kind in this turn, None if none came.
    turn_end: int | None = None
    input_transcript: int | None = None
    response_start: int | None = None
    first_text: int | None = None

    def add_stages(self, stamps: dict[str, int]) -> None:
        """Set the stage stamps a driver kept for this turn (:meth:`.SessionState.stage`)."""
        for name, stamp in stamps.items():
            if name not in STAGES:
                raise ValueError(f"{name!r} is not a stage (bootbench.samples.STAGES)")
            setattr(self, name, stamp)

    def phases(self) -> dict[str, float | None]:
        """Every phase of :data:`PHASE_TABLE` in milliseconds; None where an end was not reached.

        The phases from the last input sent are None for an answer that began
        before it (:meth:`answered_before_input_end_ms`): they would be negative.
        """
        early = self.answered_before_input_end_ms() is not None
        return {p.name: None if early and p.since == "input_sent" and not p.stage
                else _ms(getattr(self, p.since), getattr(self, p.until))
                for p in PHASE_TABLE}

    def answered_before_input_end_ms(self) -> float | None:
        """How long before the last input was sent the answer's first audio arrived; None when it came after.

        A service that answers while the input is still streaming (at real-time
        pace: from its first chunk, or on voice activity during a long trailing
        silence) has no input-to-audio interval; this says by how much it came early.
        """
        if self.input_sent is None or self.first_audio is None or self.first_audio >= self.input_sent:
            return None
        return (self.input_sent - self.first_audio) / 1e6

    def greeting_ms(self) -> float | None:
        """Session ready -> the greeting's first audio; None without a greeting."""
        return _ms(self.session_ready, self.greeting)


def _ms(start: int | None, end: int | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start) / 1e6


@dataclass
class Turn:
    """One turn of a multi-turn session (``--turns`` > 1): turn 1 is the cold one, 2..N the warm ones."""

    turn: int
    """1-based."""
    input_to_audio_ms: float | None = None
    """Last input sent -> first audio event of this turn's reply."""
    input_to_audible_ms: float | None = None
    """Last input sent -> play time of this turn's reply's first audible sample (None: not audible in time)."""
    reply_ms: float | None = None
    """First audio event -> end of this turn's reply."""
    answered_before_input_end_ms: float | None = None
    """:meth:`Timeline.answered_before_input_end_ms` of this turn (then its input figures are None)."""
    service_latency_ms: dict[str, float] | None = None
    """The service's own latency figures for this turn's answer (:attr:`Sample.service_latency_ms`)."""
    stages_ms: dict[str, float] | None = None
    """This turn's service stage phases (:data:`STAGE_PHASES` that the service reached), None when it reached none."""
    clip: str | None = None
    """Name of the clip this turn sent (the ``--audio`` rotation: turn k of iteration i sends iteration i+k-1's clip;
    turn 1's is :attr:`Sample.clip`); None in files written before turns recorded it."""

    @classmethod
    def of(cls, number: int, timeline: Timeline, service_latency_ms: dict[str, float] | None = None,
           clip: str | None = None) -> Turn:
        """Turn ``number`` from the timeline of that turn (turn 1: the cycle's own), which sent ``clip``."""
        phases = timeline.phases()
        stages = {name: phases[name] for name in STAGE_PHASES if phases[name] is not None}
        return cls(turn=number, input_to_audio_ms=phases["input_to_audio_ms"],
                   input_to_audible_ms=phases["input_to_audible_ms"],
                   reply_ms=_ms(timeline.first_audio, timeline.reply_end),
                   answered_before_input_end_ms=timeline.answered_before_input_end_ms(),
                   service_latency_ms=service_latency_ms, stages_ms=stages or None, clip=clip)


def cold_penalty(turns: list[Turn]) -> float | None:
    """Turn 1's ``input_to_audio_ms`` minus the median of the warm turns' (None without both)."""
    warm = [t.input_to_audio_ms for t in turns[1:] if t.input_to_audio_ms is not None]
    if not turns or turns[0].input_to_audio_ms is None or not warm:
        return None
    return turns[0].input_to_audio_ms - statistics.median(warm)


@dataclass
class Sample:
    """One finished iteration: who ran it, whether it got audio back, and its phases in ms."""

    iteration: int
    worker: str
    user: int
    started_at: str
    ok: bool
    error_kind: str | None = None
    """An :class:`ErrorKind` value when the iteration failed."""
    error: str | None = None
    connect_ms: float | None = None
    session_start_ms: float | None = None
    call_create_ms: float | None = None
    """Ultravox: the call's create request (None for a protocol whose session starts in one step)."""
    join_ms: float | None = None
    """Ultravox: joining the created call, up to session ready (None for a one-step session start)."""
    first_response_ms: float | None = None
    input_to_audio_ms: float | None = None
    cold_start_ms: float | None = None
    stop_ms: float | None = None
    first_audible_ms: float | None = None
    """None with ``ok`` true: the answer never became audible before it ended or the timeout (an inaudible reply)."""
    input_to_audible_ms: float | None = None
    leading_silence_ms: float | None = None
    turn_end_ms: float | None = None
    """Service stages (:data:`STAGES`, :attr:`Phase.stage`): None when the service sent no such event in time."""
    transcript_ms: float | None = None
    response_start_ms: float | None = None
    first_text_ms: float | None = None
    answered_before_input_end_ms: float | None = None
    """The answer's first audio arrived this long before the last input was sent (the service answered while the input
    was still streaming): ``input_to_audio_ms`` and ``input_to_audible_ms`` are None. None when it came after."""
    greeting_ms: float | None = None
    """Session ready -> first audio of a reply not asked for; None when the service did not greet."""
    preamble: bool | None = None
    """True when the answer's first audio item says it is a preamble (OpenAI ``phase: commentary``), False when
    it says it is not, None when the protocol does not say."""
    service_latency_ms: dict[str, float] | None = None
    """The service's own latency figures for the answer, in ms, beside bootbench's measurement of it (turn 1's when
    ``--turns`` > 1). Deepgram only (docs/protocols/deepgram.md): its ``LatencyReport`` as ``total_ms``, ``stt_ms``,
    ``ttt_token_ms``, ``ttt_text_ms``, ``ttt_tool_ms``, ``ttt_thinking_ms``, ``tts_ms`` (those it sent), else its
    ``AgentStartedSpeaking`` as ``total_ms``, ``tts_ms``, ``ttt_ms``; None when the service reported nothing
    before the session ended."""
    clip: str | None = None
    """Name of the clip the iteration sent (metrics.json ``run.clips`` describes each)."""
    connected_this_cycle: bool = False
    anomalies: dict[str, int] = field(default_factory=dict)
    late_stamp_reads: int | None = None
    """Kernel clock: reads of this cycle whose bytes had waited for the reader thread longer than Python's switch
    interval (the thread holding the GIL kept off the CPU): a message in them may carry a later one's stamp
    (bootbench.providers.kernel_clock). 0 when none; None under the process clock."""
    turns: list[Turn] | None = None
    """``--turns`` > 1: every turn reached, in order (turn 1's figures are also the flat fields above)."""
    cold_penalty_ms: float | None = None
    """``--turns`` > 1: :func:`cold_penalty` of :attr:`turns`."""
    users_active: int | None = None
    """Users running over all workers when this iteration was granted, as the master counted them (None in older files)."""
    level: int | None = None
    """In a sweep (``--sweep``), the users of the level this iteration ran in; None otherwise."""

    def to_dict(self) -> dict[str, Any]:
        """The sample as plain JSON types (a line of samples.jsonl, an entry of metrics.json ``samples``).

        ``dataclasses.asdict``'s result, built without its recursive deep copy (once per sample, on the
        cycle's path): containers are copied one level deep, a nested dataclass goes through ``asdict``.
        A single-turn sample has no :data:`MULTI_TURN_FIELDS` keys, so ``--turns 1`` writes what it always did.
        """
        values = self.__dict__  # a dataclass instance's fields, read without a getattr per field
        if self.turns is None:
            plain = {name: values[name] for name in SINGLE_TURN_FIELDS}
        else:
            plain = {name: values[name] for name in SAMPLE_FIELDS}
        for name in CONTAINER_FIELDS:  # the only fields that hold more than a number or a string
            if plain.get(name) is not None:
                plain[name] = _plain(plain[name])
        return plain

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        """The sample of :meth:`to_dict`'s output; keys this version does not know are ignored."""
        names = {f.name for f in fields(cls)}
        sample = cls(**{k: v for k, v in data.items() if k in names})
        if sample.turns is not None:
            turn_names = {f.name for f in fields(Turn)}
            sample.turns = [t if isinstance(t, Turn) else Turn(**{k: v for k, v in t.items() if k in turn_names})
                            for t in sample.turns]
        return sample


MULTI_TURN_FIELDS: tuple[str, ...] = ("turns", "cold_penalty_ms")
"""Sample fields only a run with ``--turns`` > 1 fills; left out of single-turn samples and their files."""


def phase_values(sample: Sample, phase: str) -> list[float | None]:
    """The values ``sample`` has of ``phase``: one for most phases, one per warm turn for :data:`WARM_TURN_FIELDS`."""
    if phase in WARM_TURN_FIELDS:
        return [getattr(t, WARM_TURN_FIELDS[phase]) for t in (sample.turns or [])[1:]]
    return [getattr(sample, phase)]


SAMPLE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Sample))
"""The columns of a sample, in order (samples.csv)."""
SINGLE_TURN_FIELDS: tuple[str, ...] = tuple(name for name in SAMPLE_FIELDS if name not in MULTI_TURN_FIELDS)
CONTAINER_FIELDS: tuple[str, ...] = ("anomalies", "service_latency_ms", "turns")
"""The :class:`Sample` fields whose values are containers (copied by :meth:`Sample.to_dict`); every other field holds
None, a bool, a number or a string (tests/test_samples.py checks the annotations)."""


def _plain(value: Any) -> Any:
    """``value`` as :func:`dataclasses.asdict` would give it, for the flat values a sample holds."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, dict) and all(isinstance(v, (str, int, float)) or v is None for v in value.values()):
        return dict(value)
    return asdict(_Box(value))["value"]  # anything deeper: asdict's own recursion


@dataclass
class _Box:
    value: Any
