"""The shape every provider driver has: the blocking verbs of the cycle, which stamp a Timeline or raise CycleError.

A driver is a small blocking object in the style of python-socketio's
``SimpleClient`` (``connect``, ``start``, ``send_audio``, ``first_audio``,
``stop``, ``close``); each verb writes the ``perf_counter_ns`` timestamps it
observes (receive stamps taken inside the receive handler) into the
:class:`~bootbench.samples.Timeline` it is given, and raises
:class:`CycleError` with an :class:`~bootbench.samples.ErrorKind` when the
cycle cannot go on; :class:`SessionState` is the per-session state the
receive handlers set and the verbs wait on.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass

from bootbench.audio import CHUNK_SAMPLES, DEFAULT_RATE, Chunk, Stimulus
from bootbench.samples import ErrorKind, Timeline
from bootbench.secrets import redact

STOP_TIMEOUT = 3.0
"""Seconds to wait for the service to acknowledge the end of a session."""


class SessionState:
    """State of one call session, set only by the receive handlers of its own connection."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.ready_ns: int | None = None
        self.first_audio_ns: int | None = None
        self.ended_ns: int | None = None
        self.stopping = False
        self.failure: CycleError | None = None
        self.ready = threading.Event()
        self.audio = threading.Event()
        self.ended = threading.Event()

    @property
    def open(self) -> bool:
        return self.ended_ns is None and self.failure is None

    def fail(self, kind: ErrorKind, message: str) -> None:
        """The session cannot go on: wake every waiter; the first failure is the one reported."""
        if self.failure is None:
            self.failure = CycleError(kind, message)
        self.ready.set()
        self.audio.set()

    def await_ready(self, timeline: Timeline, deadline_ns: int, what: str, limit_s: float) -> None:
        """Block until the session is ready; sets ``timeline.session_ready`` or raises its failure."""
        if not self.ready.wait(remaining(deadline_ns)):
            self.fail(ErrorKind.SESSION_TIMEOUT, f"no {what} within {limit_s:g} s")
        if self.failure:
            raise self.failure
        timeline.session_ready = self.ready_ns

    def await_first_audio(self, timeline: Timeline, deadline_ns: int, what: str, limit_s: float) -> None:
        """Block until the first audio; sets ``timeline.first_audio`` or raises the failure that came first."""
        if not self.audio.wait(remaining(deadline_ns)):
            self.fail(ErrorKind.AUDIO_TIMEOUT, audio_timeout_message(timeline, deadline_ns, what, limit_s))
        if self.first_audio_ns is not None:
            timeline.first_audio = self.first_audio_ns
        if self.failure and self.first_audio_ns is None:
            raise self.failure


class CycleError(Exception):
    """A cycle could not go on: ``kind`` says why (an :class:`ErrorKind`), ``message`` in the service's words.

    A ``kind`` that is not an ErrorKind (or its value) is a programming error: TypeError or ValueError.
    """

    def __init__(self, kind: ErrorKind, message: str) -> None:
        if not isinstance(kind, str):
            raise TypeError(f"CycleError kind must be an ErrorKind, not {type(kind).__name__}")
        kind = ErrorKind(kind)  # ValueError for a kind that does not exist
        message = redact(message)
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class DriverConfig:
    """Where and how a driver talks to its service. ``api_key`` never leaves the driver."""

    url: str
    api_key: str
    timeout: float = 10.0
    system_message: str = ""
    voice: str = ""
    pace: str = "burst"
    trailing_silence_ms: float = 0.0
    ca_bundle: str = ""
    model: str = ""
    turn: str = "manual"

    def __repr__(self) -> str:
        return (f"DriverConfig(url={self.url!r}, api_key=***, timeout={self.timeout}, pace={self.pace!r}, "
                f"model={self.model!r}, turn={self.turn!r})")


class Driver(ABC):
    """One connection to a service, over which sessions run one after another."""

    name: str = ""
    input_rate: int = DEFAULT_RATE
    known_hosts: tuple[str, ...] = ()
    public_url: str = ""
    """The real service's endpoint, benchmarked when no host is given and the provider's key is set."""
    key_variables: tuple[str, ...] = ()
    default_model: str = ""
    default_voice: str = ""
    """The voice sent when none is configured (what metrics.json records as ``run.voice`` then)."""
    turn_modes: tuple[str, ...] = ("vad",)
    vad_silence_ms: float = 0.0
    """Trailing silence the service needs to end a turn by itself (``--turn vad``); 0 when it needs none."""

    def __init__(self, config: DriverConfig, stimulus: Stimulus) -> None:
        self.config = config
        clip = stimulus.at_rate(self.input_rate).with_silence(config.trailing_silence_ms)
        chunk = CHUNK_SAMPLES * self.input_rate // DEFAULT_RATE if config.pace == "realtime" else None
        self.chunks: list[Chunk] = clip.chunks(chunk)
        self.anomalies: Counter[str] = Counter()

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while the transport is open and may carry a new session."""

    @abstractmethod
    def connect(self, timeline: Timeline) -> None:
        """Open the transport; sets ``connect_start`` and ``connected``."""

    @abstractmethod
    def start(self, timeline: Timeline, deadline_ns: int) -> None:
        """Start a session and wait until it is ready; sets ``start_sent`` and ``session_ready``."""

    def send_audio(self, timeline: Timeline) -> None:
        """Send the stimulus (one message, or chunks at real-time pace); sets ``input_sent``."""
        self._begin_turn()
        started = time.perf_counter()
        elapsed_audio_ms = 0.0
        for index, chunk in enumerate(self.chunks):
            if index and self.config.pace == "realtime":
                lag = started + elapsed_audio_ms / 1000 - time.perf_counter()
                if lag > 0:
                    time.sleep(lag)
            if index and self._session_over():
                return  # the service ended or failed the session meanwhile; first_audio() reports how
            last = index == len(self.chunks) - 1
            if last:
                timeline.input_sent = time.perf_counter_ns()
            try:
                self._send_chunk(chunk)
            except CycleError:
                if self._session_over():
                    return
                raise
            elapsed_audio_ms += chunk.duration_ms
        ended = self._end_turn()
        if ended is not None:
            timeline.input_sent = ended

    def _session_over(self) -> bool:
        """True once the service ended or failed the current session: send no more of its audio."""
        return False

    @abstractmethod
    def _send_chunk(self, chunk: Chunk) -> None:
        """Put one chunk of input audio on the wire."""

    def _begin_turn(self) -> None:
        """Tell the service the user starts speaking, where its protocol does."""

    def _end_turn(self) -> int | None:
        """Tell the service the user's turn is over, where its protocol does; the send timestamp or None."""
        return None

    @abstractmethod
    def first_audio(self, timeline: Timeline, deadline_ns: int) -> None:
        """Wait for the first audio of this session; sets ``first_audio``."""

    @abstractmethod
    def stop(self, timeline: Timeline, timeout: float = STOP_TIMEOUT) -> None:
        """End the session and wait (bounded) for the acknowledgement; sets ``stop_sent``, ``stop_acked``."""

    @abstractmethod
    def close(self) -> None:
        """Drop the transport without waiting (never blocks the caller)."""


def audio_timeout_message(timeline: Timeline, deadline_ns: int, what: str, limit_s: float) -> str:
    """Why no audio came in time: ``limit_s`` counts from the session start (the cycle's deadline).

    When sending the input itself ran past the deadline (a slow upload, or a
    clip at real-time pace about as long as the timeout), the service never
    had the time to answer, and the message says so.
    """
    message = f"no {what} within {limit_s:g} s"
    if timeline.input_sent is not None and timeline.input_sent >= deadline_ns:
        late_s = (timeline.input_sent - deadline_ns) / 1e9
        message += (f" of the session start: sending the input took until {late_s:.1f} s past that limit, "
                    f"so the service had no time left to answer")
    return message


def remaining(deadline_ns: int) -> float:
    """Seconds left until ``deadline_ns`` (never negative)."""
    return max(0.0, (deadline_ns - time.perf_counter_ns()) / 1e9)

