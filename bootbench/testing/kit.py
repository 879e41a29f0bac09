"""The conformance checks: one driver through one scenario, the stamps it wrote and the error it raised judged.

    outcome = drive(OpenAIRealtimeDriver, service.url, "stamp_order")
    judge(outcome)            # ConformanceError (an AssertionError) with what was wrong and what the service did

What a driver owes the harness (docs/providers.md): the verbs in order write
their stamps in order, ``connect_start <= connected <= start_sent <=
session_ready <= first_audio`` (and ``input_sent <= first_audio``,
``first_audio <= first_audible``, ``stop_sent <= stop_acked``); a warm turn's
audio comes after its own input and after the previous reply's end; a
refused key is ``auth_failed``, a connection closed under it
``disconnected``, the service's own error ``server_error``, a session never
ready ``session_timeout`` and an answer that never comes ``audio_timeout``,
each raised as a :class:`~bootbench.providers.base.CycleError` within the
timeout (never a hang), carrying the service's words.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bootbench.audio import Stimulus
from bootbench.options import MIN_REPLY_GAP_MS
from bootbench.providers.base import CycleError, Driver, DriverConfig, SessionState
from bootbench.samples import ErrorKind, Timeline
from bootbench.wire import VAD_SILENCE_MS

TIMEOUT_S = 0.5
"""The driver's ``--timeout`` in a scenario that expects an error (a timeout scenario waits this long)."""
CLEAN_TIMEOUT_S = 5.0
"""The driver's ``--timeout`` in a scenario that expects a clean cycle (``stamp_order``, ``turns``): nothing
waits for it to pass, so it is generous, and a loaded machine (a CI runner, tests in parallel) that takes
longer than :data:`TIMEOUT_S` to start a session is not taken for a driver that cannot."""
REPLY_TIMEOUT_S = 2.0
"""The wait for the end of a reply (``turns``): a protocol without an end event waits for quiet after it."""
SLACK_S = 2.0
"""How much longer than the timeout an error may take to surface before the kit calls it a hang."""
STOP_TIMEOUT_S = 1.0
API_KEY = "kit-api-key-not-a-real-one"
INPUT_SECONDS = 0.3
EXPECTED_KINDS = {
    "refused_auth": ErrorKind.AUTH_FAILED,
    "closed_socket": ErrorKind.DISCONNECTED,
    "server_error": ErrorKind.SERVER_ERROR,
    "session_timeout": ErrorKind.SESSION_TIMEOUT,
    "audio_timeout": ErrorKind.AUDIO_TIMEOUT,
}
"""The error kind each error scenario must end in."""
STAMP_ORDER = ("connect_start", "connected", "start_sent", "session_ready", "first_audio")


class ConformanceError(AssertionError):
    """A driver did not do what the contract says; the message says what, and what the service did."""


@dataclass
class Outcome:
    """What one scenario did: the driver's stamps (one Timeline per turn), the error it raised, how long it took."""

    provider: str
    scenario: str
    turn: str
    timelines: list[Timeline] = field(default_factory=list)
    error: CycleError | None = None
    failed_in: str = ""
    """The verb that raised :attr:`error` (``connect``, ``start``, ``send_audio``, ``first_audio``, ``reply_end``)."""
    elapsed_s: float = 0.0
    """From the cycle's start to its end (the error, or the last answer)."""
    session: SessionState | None = None
    """The driver's ``session`` after ``start``."""
    service_events: list[str] = field(default_factory=list)
    """What the service did (the fake service's events; empty against the reference server)."""
    expected_words: str = ""
    """Words the error message must carry (the service's), or ""."""


def timeout_for(scenario: str) -> float:
    """The driver's ``--timeout`` in ``scenario``: :data:`TIMEOUT_S` where an error is expected, else
    :data:`CLEAN_TIMEOUT_S`."""
    return TIMEOUT_S if scenario in EXPECTED_KINDS else CLEAN_TIMEOUT_S


def drive(driver_class: type[Driver], url: str, scenario: str, turn: str | None = None,
          options: tuple[tuple[str, str], ...] = (), api_key: str = API_KEY) -> Outcome:
    """Run one cycle of ``driver_class`` against the service at ``url`` as ``scenario`` needs; never raises a
    CycleError (it is the outcome's)."""
    turn = turn or driver_class.turn_modes[0]
    # a turn ended by the service's VAD needs trailing silence (the reference server listens for it)
    trailing = (driver_class.vad_silence_ms or VAD_SILENCE_MS) + 100.0 if turn == "vad" else 0.0
    timeout_s = timeout_for(scenario)
    config = DriverConfig(url=url, api_key=api_key, timeout=timeout_s, turn=turn, trailing_silence_ms=trailing,
                          reply_gap_ms=MIN_REPLY_GAP_MS, provider_options=options)
    driver = driver_class(config, Stimulus.sine(seconds=INPUT_SECONDS, rate=driver_class.input_rate))
    outcome = Outcome(driver_class.name, scenario, turn)
    timeline = Timeline()
    outcome.timelines.append(timeline)
    began = time.perf_counter_ns()
    deadline = began + int(timeout_s * 1e9)
    step = "connect"
    try:
        driver.connect(timeline)
        step = "start"
        driver.start(timeline, deadline)
        outcome.session = driver.session
        step = "send_audio"
        driver.send_audio(timeline)
        step = "first_audio"
        driver.first_audio(timeline, deadline)
        if scenario == "turns":
            step = "reply_end"
            driver.reply_end(timeline, time.perf_counter_ns() + int(REPLY_TIMEOUT_S * 1e9))
            warm = Timeline()
            outcome.timelines.append(warm)
            driver.next_turn()
            step = "send_audio"
            driver.send_audio(warm)
            step = "first_audio"
            driver.first_audio(warm, time.perf_counter_ns() + int(timeout_s * 1e9))
        step = ""
    except CycleError as exc:
        outcome.error, outcome.failed_in = exc, step
    outcome.elapsed_s = (time.perf_counter_ns() - began) / 1e9
    try:
        if outcome.error is None:
            driver.stop(timeline, STOP_TIMEOUT_S)
    finally:
        driver.close()
    return outcome


def judge(outcome: Outcome) -> None:
    """Raise :class:`ConformanceError` unless ``outcome`` is what its scenario requires of a driver."""
    problems = _problems(outcome)
    if problems:
        did = f"; the service did: {', '.join(outcome.service_events)}" if outcome.service_events else ""
        raise ConformanceError(f"{outcome.provider} ({outcome.turn} turns), scenario {outcome.scenario}: "
                               f"{'; '.join(problems)}{did}")


def _problems(outcome: Outcome) -> list[str]:
    error = outcome.error
    expected = EXPECTED_KINDS.get(outcome.scenario)
    if expected is None:
        if error is not None:
            return [f"the cycle failed in {outcome.failed_in}: {error!r}"]
        return _stamp_problems(outcome)
    if error is None:
        return [f"no error: expected {expected}"]
    problems = []
    if error.kind != expected:
        problems.append(f"expected {expected}, got {error!r} (in {outcome.failed_in})")
    if not error.message.strip():
        problems.append("the error has no message")
    if outcome.expected_words and outcome.expected_words not in error.message:
        problems.append(f"the error message {error.message!r} lacks the service's words {outcome.expected_words!r}")
    if outcome.elapsed_s > TIMEOUT_S + SLACK_S:
        problems.append(f"the error took {outcome.elapsed_s:.1f} s, over --timeout {TIMEOUT_S:g} s + {SLACK_S:g} s")
    if outcome.scenario == "session_timeout" and outcome.failed_in != "start":
        problems.append(f"a session never ready must fail start(), not {outcome.failed_in}()")
    return problems


def _stamp_problems(outcome: Outcome) -> list[str]:
    problems = []
    first, *warm = outcome.timelines
    stamps = [(name, getattr(first, name)) for name in STAMP_ORDER]
    missing = [name for name, value in stamps if value is None]
    if missing:
        return [f"stamps not set: {', '.join(missing)}"]
    problems += _out_of_order(stamps)
    problems += _out_of_order([("input_sent", first.input_sent), ("first_audio", first.first_audio)])
    if first.first_audible is not None:
        problems += _out_of_order([("first_audio", first.first_audio), ("first_audible", first.first_audible)])
    else:
        problems.append("first_audible not set: the answer (a loud tone) was never judged audible")
    if first.stop_sent is not None and first.stop_acked is not None:
        problems += _out_of_order([("stop_sent", first.stop_sent), ("stop_acked", first.stop_acked)])
    if not isinstance(outcome.session, SessionState):
        problems.append("driver.session is not the session's SessionState after start()")
    for number, turn in enumerate(warm, start=2):
        if first.reply_end is None:
            problems.append("turn 1's reply_end not set by reply_end()")
            break
        order = [("turn 1 reply_end", first.reply_end), (f"turn {number} input_sent", turn.input_sent),
                 (f"turn {number} first_audio", turn.first_audio)]
        if None in (turn.input_sent, turn.first_audio):
            problems.append(f"turn {number}: input_sent or first_audio not set")
        else:
            problems += _out_of_order(order)
    return problems


def _out_of_order(stamps: list[tuple[str, int | None]]) -> list[str]:
    """A sentence for each neighbouring pair whose stamps go backwards."""
    return [f"{a} ({va}) after {b} ({vb}), by {(va - vb) / 1e6:.3f} ms"
            for (a, va), (b, vb) in zip(stamps, stamps[1:]) if va is not None and vb is not None and va > vb]
