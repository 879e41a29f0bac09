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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bootbench.audible import DEFAULT_AUDIBLE_DBFS, REPLY_RATE, AudibleDetector
from bootbench.audio import CHUNK_SAMPLES, DEFAULT_RATE, Chunk, Stimulus
from bootbench.samples import STAGES, ErrorKind, Timeline
from bootbench.secrets import redact
from bootbench.stimuli import SINE, Clip, ClipSet
from bootbench.wire import VAD_SILENCE_MS

STOP_TIMEOUT = 3.0
"""Seconds to wait for the service to acknowledge the end of a session."""
API_VERSION = 1
"""The version of the driver contract (this module and :mod:`bootbench.providers.websocket`'s public hooks).

A driver says which version it was written for (:attr:`Driver.api_version`); the registry refuses one
written for another, with a sentence naming it. Raise it when a verb, a hook or SessionState changes
in a way an existing driver would notice.
"""


class SessionState:
    """State of one call session, set only by the receive handlers of its own connection.

    The answer's audio goes to :meth:`answer_audio` (stamped on arrival by
    the handler, decoded here until it is audible), a greeting's to
    :meth:`greeting_audio`; :meth:`answer_ended` says the answer is over.
    """

    def __init__(self, number: int, rate: int = REPLY_RATE, audible_dbfs: float = DEFAULT_AUDIBLE_DBFS) -> None:
        self.number = number
        self.ready_ns: int | None = None
        self.first_audio_ns: int | None = None
        self.ended_ns: int | None = None
        self.greeting_ns: int | None = None
        """Arrival of the first audio of a reply the caller did not ask for."""
        self.preamble: bool | None = None
        self.stopping = False
        self.failure: CycleError | None = None
        self.ready = threading.Event()
        self.audio = threading.Event()
        self.audible = threading.Event()
        """Set once the answer is audible, is over without having been audible, or the session failed."""
        self.ended = threading.Event()
        self.detector = AudibleDetector(rate, audible_dbfs)
        # Turns (``--turns`` > 1): first_audio_ns and the fields below are those of the current turn.
        self.turn = 1
        self.last_audio_ns: int | None = None
        """Arrival of the latest audio of the current turn's reply (Aivoco's end of reply is quiet after it)."""
        self.reply_end_ns: int | None = None
        self.between_turns = False
        """The current turn's reply has ended and the next turn's input has not started: audio now is stray."""
        self.reply_ended = threading.Event()
        """Set at the end of the current turn's reply, and whenever the session fails or ends."""
        self.stages: dict[str, int] = {}
        """The current turn's service stages (:data:`bootbench.samples.STAGES`): arrival of the first event of each."""
        self.turn_stages: list[dict[str, int]] = [self.stages]
        """Every turn's :attr:`stages`, turn 1 first."""
        self.recording = False
        """``--record-replies``: turn 1's answer is being kept (:meth:`keep_answer_audio`)."""
        self.kept_audio: list[tuple[int, bytes]] = []
        """What was kept of it: (arrival stamp, PCM16 LE) per chunk, in arrival order."""
        self.kept_when_judged: int | None = None
        """How many of :attr:`kept_audio`'s chunks had arrived when the cycle read first_audible (the rest came
        after it stopped waiting: an onset there is not the live figure's)."""

    def stage(self, name: str, received_ns: int) -> None:
        """The service reached stage ``name`` (one of :data:`~bootbench.samples.STAGES`): its event arrived at
        ``received_ns``. The first event of each kind in a turn counts; one between turns (after the reply ended,
        before the next input) belongs to no turn and is dropped. Call it from the receive handler, for the
        answer's events only (never a greeting's)."""
        if name not in STAGES:
            raise ValueError(f"{name!r} is not a stage (bootbench.samples.STAGES)")
        if not self.between_turns:
            self.stages.setdefault(name, received_ns)

    def answer_audio(self, pcm: bytes | None, received_ns: int) -> None:
        """A chunk of the answer (PCM16 LE) that arrived at ``received_ns``; the first one is the first audio.

        ``pcm`` may be None for a chunk whose audio is not decoded (once the answer is audible).
        """
        if self.first_audio_ns is None:
            self.first_audio_ns = received_ns
            self.audio.set()
        if pcm and self.recording:
            self.kept_audio.append((received_ns, pcm))
        if pcm and not self.audible.is_set() and self.detector.feed(pcm, received_ns) is not None:
            self.audible.set()

    @property
    def decoding(self) -> bool:
        """True while the answer's audio is still decoded: not yet audible, or recorded (``--record-replies``)."""
        return self.detector.found is None or self.recording

    def keep_answer_audio(self) -> None:
        """Record turn 1's answer (``--record-replies``): every chunk is decoded and kept with its arrival stamp
        until :meth:`take_answer_audio` (the user takes it before the stop) or the next turn begins."""
        self.recording = True

    def take_answer_audio(self) -> list[tuple[int, bytes]]:
        """The answer's chunks kept so far, (arrival stamp, PCM16 LE) in arrival order; recording stops here."""
        self.recording = False
        kept, self.kept_audio = self.kept_audio, []
        return kept

    def answer_ended(self) -> None:
        """The answer is over: stop waiting for it to become audible."""
        if self.first_audio_ns is not None:
            self.audible.set()

    def greeting_audio(self, received_ns: int) -> None:
        """Audio of a reply the caller did not ask for (a greeting): noted, never taken as the answer."""
        if self.greeting_ns is None:
            self.greeting_ns = received_ns

    @property
    def open(self) -> bool:
        return self.ended_ns is None and self.failure is None

    def fail(self, kind: ErrorKind, message: str) -> None:
        """The session cannot go on: wake every waiter; the first failure is the one reported."""
        if self.failure is None:
            self.failure = CycleError(kind, message)
        self.ready.set()
        self.audio.set()
        self.audible.set()
        self.reply_ended.set()

    def end_reply(self, received_ns: int, *, turn_over: bool = True) -> bool:
        """The current turn's reply ended at ``received_ns``; False (nothing recorded) before its first audio.

        ``turn_over=False`` stamps the end of the reply's content only (Gemini's
        ``generationComplete``); the next turn waits for the event that ends
        the service's turn (``turnComplete``).
        """
        if self.first_audio_ns is None or self.between_turns:
            return False
        if self.reply_end_ns is None:
            self.reply_end_ns = received_ns
        if turn_over:
            self.between_turns = True
            self.answer_ended()
            self.reply_ended.set()
        return True

    def begin_turn(self) -> None:
        """Forget the previous turn's reply: the next audio is the first of a new turn."""
        self.turn += 1
        self.recording = False   # a recording keeps turn 1's answer only
        self.first_audio_ns = self.last_audio_ns = self.reply_end_ns = None
        self.between_turns = False
        self.greeting_ns = self.preamble = None
        self.stages = {}
        self.turn_stages.append(self.stages)
        self.detector = AudibleDetector(self.detector.rate, self.detector.audible_dbfs)
        self.audio.clear()
        self.audible.clear()
        self.reply_ended.clear()

    def session_ended(self) -> None:
        """The session is over: its ``ended`` is set, and waits for the answer or the end of a reply wake."""
        self.answer_ended()
        self.ended.set()
        self.reply_ended.set()

    def await_ready(self, timeline: Timeline, deadline_ns: int, what: str, limit_s: float) -> None:
        """Block until the session is ready; sets ``timeline.session_ready`` or raises its failure."""
        if not self.ready.wait(remaining(deadline_ns)):
            self.fail(ErrorKind.SESSION_TIMEOUT, f"no {what} within {limit_s:g} s")
        if self.failure:
            raise self.failure
        timeline.session_ready = self.ready_ns

    def await_first_audio(self, timeline: Timeline, deadline_ns: int, what: str, limit_s: float,
                          hint: str = "", reply_gap_ns: int | None = None) -> None:
        """Block until the answer's first audio, then until it is audible (or over); both bounded by the deadline.

        Sets ``timeline.first_audio``, ``first_audible`` (when the answer became
        audible in time) and ``greeting``, or raises the failure that came
        before the first audio; ``hint`` is appended to a timeout's message.
        ``reply_gap_ns``: the protocol has no end-of-reply event (:attr:`Driver.ends_reply_by_gap`), so an answer
        not yet audible is over once no audio came for that long after its latest chunk (:meth:`_await_audible`).
        """
        if not self.audio.wait(remaining(deadline_ns)):
            self.fail(ErrorKind.AUDIO_TIMEOUT, audio_timeout_message(timeline, deadline_ns, what, limit_s) + hint)
        timeline.greeting = self.greeting_ns
        if self.first_audio_ns is not None:
            timeline.first_audio = self.first_audio_ns
        if self.failure and self.first_audio_ns is None:
            raise self.failure
        self._await_audible(deadline_ns, reply_gap_ns)
        found = self.detector.found
        timeline.first_audible = found.play_ns if found is not None else None
        timeline.greeting = self.greeting_ns
        if self.recording and self.kept_when_judged is None:
            self.kept_when_judged = len(self.kept_audio)

    def _await_audible(self, deadline_ns: int, reply_gap_ns: int | None) -> None:
        """Wait until the answer is audible or over, at most until ``deadline_ns``.

        With ``reply_gap_ns`` the answer is over (:meth:`answer_ended`) once ``reply_gap_ns`` passed after the
        arrival of its latest audio (``last_audio_ns``, kept by the receive side) with none after it: the end of
        the reply as ``--turns`` finds it (:meth:`Driver.await_reply_gap`), so an answer that never becomes audible
        ends with its last chunk, not at the deadline. An answer that goes quiet for longer than the gap and then
        becomes audible was taken as over: the same rule that ends a reply between turns.
        """
        if reply_gap_ns is None:
            self.audible.wait(remaining(deadline_ns))
            return
        while not self.audible.is_set():
            now = time.perf_counter_ns()
            quiet_until = (self.last_audio_ns or self.first_audio_ns or now) + reply_gap_ns
            if now >= quiet_until:
                self.answer_ended()  # its last chunk came a gap ago: the reply is over, never audible
                return
            if now >= deadline_ns:
                return
            self.audible.wait((min(quiet_until, deadline_ns) - now) / 1e9)

    def await_reply_end(self, timeline: Timeline, deadline_ns: int, limit_s: float, hint: str = "") -> None:
        """Block until the current turn's reply has ended; sets ``timeline.reply_end`` or raises why it did not.

        ``hint`` is appended to a timeout's message (how the driver knows a reply has ended).
        """
        if not self.reply_ended.wait(remaining(deadline_ns)):
            self.fail(ErrorKind.REPLY_TIMEOUT, f"the reply did not end within {limit_s:g} s{hint}")
        if self.reply_end_ns is not None and self.between_turns:
            timeline.reply_end = self.reply_end_ns
            return
        if self.failure:
            raise self.failure
        raise CycleError(ErrorKind.DISCONNECTED if self.ended_ns is None else ErrorKind.SERVER_ERROR,
                         "the session ended before the reply did")


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

    def __repr__(self) -> str:
        """The kind and the message, as Locust's error table shows an exception by its repr."""
        return f"{self.kind}: {self.message}"


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
    reply_gap_ms: float = 500.0
    audible_dbfs: float = DEFAULT_AUDIBLE_DBFS
    clock: str = "kernel"
    """Whose receive stamps: ``kernel`` (arrival stamps where the machine gives them) or ``process``
    (:mod:`bootbench.providers.kernel_clock`)."""
    provider_options: tuple[tuple[str, str], ...] = ()
    """The driver's own settings (``--provider-option KEY=VALUE``), checked against its :attr:`Driver.options`."""

    def __repr__(self) -> str:
        return (f"DriverConfig(url={self.url!r}, api_key=***, timeout={self.timeout}, pace={self.pace!r}, "
                f"model={self.model!r}, turn={self.turn!r})")


@dataclass(frozen=True)
class ProviderOption:
    """A setting of one driver, given as ``--provider-option KEY=VALUE`` (repeatable).

    ``check`` turns the text into the value the driver uses, raising ValueError with a sentence on a bad
    one; ``choices`` limits the text to those words. A ``secret`` option's value is redacted wherever the
    run is recorded (metrics.json ``run.provider_options``) and masked in every log line.
    """

    key: str
    help: str
    default: str = ""
    choices: tuple[str, ...] = ()
    secret: bool = False
    check: Callable[[str], Any] | None = None
    required: bool = False
    """The real service needs it: pre-flight refuses a run against a host off this machine without it (the
    embedded and local reference servers do without)."""

    def parse(self, text: str) -> Any:
        """The value of ``text``; ValueError with one sentence naming the option when it is not allowed."""
        if self.choices and text not in self.choices:
            raise ValueError(f"provider option {self.key}={text!r} is not one of {', '.join(self.choices)}")
        if self.check is None:
            return text
        try:
            return self.check(text)
        except ValueError as exc:
            raise ValueError(f"provider option {self.key}={text!r}: {exc}") from None


class Driver(ABC):
    """One connection to a service, over which sessions run one after another.

    The contract (version :data:`API_VERSION`): the verbs below, which the user calls in order
    (``connect``, ``start``, ``send_audio``, ``first_audio``, then with ``--turns`` > 1 ``reply_end`` and
    ``next_turn`` before the next ``send_audio``, then ``stop``, ``close``), and the hooks a driver overrides
    (``send_chunk``, ``input_starting``, ``begin_user_turn``, ``end_user_turn``, ``reset_turn``,
    ``session_over``; ``service_latency`` for a service that reports its own latency). The receive side keeps
    the current session's state in :attr:`session`.
    """

    api_version: int = API_VERSION
    """The contract version the driver was written for. A plugin's class declares it itself (``api_version = 1``):
    the registry takes one inherited from bootbench's own classes as no answer (:func:`.registry.declared_version`)."""
    name: str = ""
    input_rate: int = DEFAULT_RATE
    known_hosts: tuple[str, ...] = ()
    public_url: str = ""
    """The real service's endpoint, benchmarked when no host is given and the provider's key is set."""
    max_message_bytes: int = 16 * 1024 * 1024
    """The largest message (bytes on the wire, the base64 audio and its envelope) the service accepts.

    Each driver says where its figure comes from: the vendor's documentation, or, for a service that
    documents none, the reference server's own limit (docs/protocols/<provider>.md records which).
    ``--pace burst`` sends a clip in one message, so pre-flight refuses a clip whose message is larger.
    """
    max_message_source: str = "the reference server's limit"
    """Where :attr:`max_message_bytes` comes from, as the refusal names it."""
    key_variables: tuple[str, ...] = ()
    default_model: str = ""
    default_voice: str = ""
    """The voice sent when none is configured (what metrics.json records as ``run.voice`` then)."""
    turn_modes: tuple[str, ...] = ("vad",)
    """How a user's turn may end (``--turn``), the default first: ``manual`` (the client says so), ``vad`` (the
    service hears the trailing silence)."""
    vad_silence_ms: float = 0.0
    """Trailing silence the service needs to end a turn by itself (``--turn vad``); 0 when it needs none."""
    vad_trailing_silence_ms: float = 0.0
    """The ``--trailing-silence-ms`` a ``--turn vad`` run sends when none is given: at least :attr:`vad_silence_ms`,
    with a margin so the service's detector ends the turn within the input (tests/test_providers.py checks it)."""
    ends_reply_by_gap: bool = False
    """The protocol has no end-of-reply event: a reply ends after ``reply_gap_ms`` of quiet (``--reply-gap-ms``)."""
    tells_greeting_from_answer: bool = True
    """The protocol lets the driver tell a greeting it did not ask for from the answer at any time (response ids,
    a model turn begun before the user's ended). False: only audio before the input starts is a greeting; audio
    once it has started is the answer (Aivoco: its events carry no response id)."""
    reference_protocol: str = ""
    """The reference server protocol that emulates this provider, when it is not the one of the provider's own name
    (Azure and xAI are flavours of the OpenAI emulation); its ground truth still names the provider."""

    options: tuple[ProviderOption, ...] = ()
    """The driver's own settings (``--provider-option``), each with its help text and check."""
    trace: Any = None
    """The current iteration's :class:`bootbench.trace.WireTrace` with ``--trace`` (the user sets it), else None: the
    transport hands it every message it sends and receives, after the message's own stamp."""

    def __init__(self, config: DriverConfig, clips: ClipSet | Stimulus) -> None:
        self.config = config
        self.session: SessionState | None = None
        """The current session's state: set by :meth:`connect` or :meth:`start`, written by the receive side."""
        self.provider_options: dict[str, Any] = self.option_values(config.provider_options)
        """The values of :attr:`options` (pre-flight has refused bad ones with a sentence)."""
        if isinstance(clips, Stimulus):
            clips = ClipSet((Clip("audio", clips.description, clips),))
        self.clips = clips
        self.clip: Clip = clips.clips[0]
        """The clip of the current cycle (:meth:`use_clip`)."""
        self.anomalies: Counter[str] = Counter()

    @classmethod
    def option_values(cls, given: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        """Every declared option's value: ``given`` parsed, defaults for the rest; ValueError on a bad one.

        An unknown key is refused naming the keys this driver has.
        """
        declared = {option.key: option for option in cls.options}
        for key, _ in given:
            if key not in declared:
                known = ", ".join(declared) or "none"
                raise ValueError(f"the {cls.name} provider has no option {key!r} (its options: {known})")
        texts = {option.key: option.default for option in cls.options} | dict(given)
        return {key: declared[key].parse(text) if text != "" else text for key, text in texts.items()}

    def option(self, key: str) -> Any:
        """The value of the driver's option ``key`` (its default when not given)."""
        return self.provider_options[key]

    @classmethod
    def emulated_by(cls) -> str:
        """The name of the reference server protocol that emulates this provider (:attr:`reference_protocol`)."""
        return cls.reference_protocol or cls.name

    @classmethod
    def public_endpoint(cls, options: dict[str, Any]) -> str:
        """The real service's endpoint for these option values (:meth:`option_values`): :attr:`public_url`.

        A service without one endpoint for everyone (Azure: one host per resource) builds it from its
        options, or raises ValueError with the sentence that says what to give.
        """
        return cls.public_url

    def use_clip(self, clip: Clip) -> None:
        """Send ``clip`` in the next cycles (the user picks the clip of each iteration)."""
        self.clip = clip

    @property
    def chunks(self) -> list[Chunk]:
        """The current clip as this driver sends it: at its input rate, with trailing silence, in chunks."""
        chunk = CHUNK_SAMPLES * self.input_rate // DEFAULT_RATE if self.config.pace == "realtime" else None
        return self.clip.chunks(self.input_rate, self.config.trailing_silence_ms, chunk)

    def new_session(self, number: int) -> SessionState:
        """A session whose answer is judged audible at ``--audible-dbfs``."""
        return SessionState(number, REPLY_RATE, self.config.audible_dbfs)

    def timeout_hint(self) -> str:
        """What an audio timeout's message adds: a pure tone sent to a service that ends turns by voice activity."""
        if self.config.turn == "vad" and self.clip.name == SINE:
            return (f"; {self.name} ends turns by voice activity, which a pure tone may never trigger: "
                    "try --audio speech")
        return ""

    def service_latency(self, turn: int) -> dict[str, float] | None:
        """The service's own latency figures for the answer of turn ``turn`` (1-based) of the current session, in ms.

        None when the service reports none (every protocol but Deepgram's) or none arrived before the session
        ended; read after :meth:`stop`, before the next :meth:`connect`.
        """
        return None

    def stage_stamps(self, turn: int) -> dict[str, int]:
        """The service stages of turn ``turn`` (1-based) of the current session: stage -> arrival stamp
        (:meth:`SessionState.stage`); empty when the service sent none. Read after :meth:`stop`, like
        :meth:`service_latency`."""
        session = self.session
        if session is None or turn > len(session.turn_stages):
            return {}
        return dict(session.turn_stages[turn - 1])

    def record_reply(self) -> None:
        """``--record-replies``: keep the current session's answer (turn 1) as it arrives; call after :meth:`start`."""
        self.current_session().keep_answer_audio()

    def recorded_reply(self) -> tuple[int, list[tuple[int, bytes]], int | None]:
        """What was kept of the answer (:meth:`record_reply`): its rate, its (arrival stamp, PCM16 LE) chunks and
        how many of them had arrived when first_audible was read (:attr:`SessionState.kept_when_judged`);
        recording stops here (the user takes it just before :meth:`stop`)."""
        session = self.session
        if session is None:
            return 0, [], None
        return session.detector.rate, session.take_answer_audio(), session.kept_when_judged

    def preamble(self) -> bool | None:
        """Whether the current session's answer began with a preamble (None: the protocol did not say)."""
        return self.session.preamble if self.session is not None else None

    @property
    def late_stamp_reads(self) -> int | None:
        """Reads so far whose bytes waited for the kernel clock's reader thread longer than the switch interval
        (:mod:`.kernel_clock`), over all this driver's connections; None for a driver that does not read through it
        (the process clock, a plugin). The user records the difference across a cycle in its sample."""
        return None

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
        self.begin_user_turn()
        started = time.perf_counter()
        elapsed_audio_ms = 0.0
        chunks = self.chunks
        for index, chunk in enumerate(chunks):
            if index and self.config.pace == "realtime":
                lag = started + elapsed_audio_ms / 1000 - time.perf_counter()
                if lag > 0:
                    time.sleep(lag)
            if index and self.session_over():
                return  # the service ended or failed the session meanwhile; first_audio() reports how
            if index == 0:
                self.input_starting()
            last = index == len(chunks) - 1
            if last:
                timeline.input_sent = time.perf_counter_ns()
            try:
                self.send_chunk(chunk)
            except CycleError:
                if self.session_over():
                    return
                raise
            elapsed_audio_ms += chunk.duration_ms
        ended = self.end_user_turn()
        if ended is not None:
            timeline.input_sent = ended

    def session_over(self) -> bool:
        """True once the service ended or failed the current session: send no more of its audio."""
        return False

    @abstractmethod
    def send_chunk(self, chunk: Chunk) -> None:
        """Put one chunk of input audio on the wire."""

    def input_starting(self) -> None:
        """Called just before the first chunk of input goes out (a reply before it cannot be an answer)."""

    def begin_user_turn(self) -> None:
        """Tell the service the user starts speaking, where its protocol does."""

    def end_user_turn(self) -> int | None:
        """Tell the service the user's turn is over, where its protocol does; the send timestamp or None."""
        return None

    @abstractmethod
    def first_audio(self, timeline: Timeline, deadline_ns: int) -> None:
        """Wait for the first audio of this session; sets ``first_audio``."""

    def reply_end(self, timeline: Timeline, deadline_ns: int) -> None:
        """``--turns`` > 1: wait for the end of the current turn's reply; sets ``reply_end``."""
        self.current_session().await_reply_end(timeline, deadline_ns, self.config.timeout)

    def await_reply_gap(self, session: SessionState, timeline: Timeline, deadline_ns: int, event: str) -> None:
        """For a protocol without an end-of-reply event (:attr:`ends_reply_by_gap`): the reply ended with its last
        audio ``event`` before ``reply_gap_ms`` of quiet; sets ``timeline.reply_end`` or raises why it did not.

        The end is that chunk's arrival stamp (``session.last_audio_ns``, which the receive side keeps); the
        quiet after it is only how long it takes to know, so the gap does not enter any figure. The next turn
        also waits until our own input has paused for ``VAD_SILENCE_MS``: a service that ends turns by voice
        activity hears two clips sent back to back (a reply shorter than a clip sent at real-time pace) as one.
        The reply is taken as ended as soon as its quiet lasted the gap, before that pause is over: audio
        arriving in the rest of the pause is the same reply going on after a pause longer than the gap, the
        anomaly ``audio_between_turns`` (the run warns that the gap is too short for the service), never part
        of this reply or the next turn's answer.
        """
        gap_ns = int(self.config.reply_gap_ms * 1e6)
        pause_until = (timeline.input_sent or 0) + int(VAD_SILENCE_MS * 1e6)
        while True:
            if session.failure is not None or session.ended_ns is not None:
                break  # await_reply_end reports why
            now = time.perf_counter_ns()
            if session.between_turns:   # the reply has ended: wait out our own pause, watching for more of it
                if now >= pause_until:
                    break
                wake = pause_until
            else:
                last = session.last_audio_ns or session.first_audio_ns or now
                if now >= last + gap_ns:
                    if not session.end_reply(last):
                        break
                    continue
                wake = last + gap_ns
            if now >= deadline_ns:
                break
            time.sleep((min(wake, deadline_ns) - now) / 1e9)
        session.await_reply_end(timeline, deadline_ns, self.config.timeout,
                                f" ({'an' if self.name[:1] in 'aeiou' else 'a'} {self.name} reply ends after --reply-gap-ms {self.config.reply_gap_ms:g} ms "
                                f"without {event})")

    def next_turn(self) -> None:
        """``--turns`` > 1: the session's next turn starts (call after :meth:`reply_end`, before :meth:`send_audio`)."""
        self.current_session().begin_turn()
        self.reset_turn()

    def reset_turn(self) -> None:
        """Forget the protocol state of the previous turn, where the driver keeps some."""

    def current_session(self) -> SessionState:
        if self.session is None:
            raise CycleError(ErrorKind.PROTOCOL_ERROR, "no session was started")
        return self.session

    @abstractmethod
    def stop(self, timeline: Timeline, timeout: float = STOP_TIMEOUT) -> None:
        """End the session and wait (bounded) for the acknowledgement; sets ``stop_sent``, ``stop_acked``."""

    @abstractmethod
    def close(self) -> None:
        """Drop the transport without waiting (never blocks the caller)."""


def audio_timeout_message(timeline: Timeline, deadline_ns: int, what: str, limit_s: float) -> str:
    """Why no audio came in time: ``limit_s`` counts from the iteration's start (the cycle's deadline).

    When sending the input itself ran past the deadline (a slow upload, or a
    clip at real-time pace about as long as the timeout), the service never
    had the time to answer, and the message says so.
    """
    message = f"no {what} within {limit_s:g} s"
    if timeline.input_sent is not None and timeline.input_sent >= deadline_ns:
        late_s = (timeline.input_sent - deadline_ns) / 1e9
        message += (f" of the iteration's start: sending the input took until {late_s:.1f} s past that limit, "
                    f"so the service had no time left to answer")
    return message


def remaining(deadline_ns: int) -> float:
    """Seconds left until ``deadline_ns`` (never negative)."""
    return max(0.0, (deadline_ns - time.perf_counter_ns()) / 1e9)

