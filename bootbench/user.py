"""BootUser: one simulated caller running the cold-start cycle.

    [connect] -> start session -> send the iteration's clip -> first audio back (and first audible) -> stop -> wait

With ``--turns N`` > 1 the session carries N turns before it is stopped:
the first reply is awaited to its end, then turns 2..N each send the
next clip of the rotation (the same clip when there is one) and wait for
their reply's first audio and end.

Each cycle holds one ticket (a granted iteration of the run's budget),
records a :class:`~bootbench.samples.Timeline`, fires one Locust request
event per phase (``request_type`` = provider, ``name`` = phase), and ships
the resulting :class:`~bootbench.samples.Sample` to the master.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

from gevent import GreenletExit
from locust import User, task
from locust.exception import StopUser

from bootbench import providers
from bootbench.providers import CycleError, Driver
from bootbench.replies import Reply
from bootbench.run import context, harness, master_watch, messages
from bootbench.run.context import RunContext
from bootbench.samples import PHASES, WARM_TURN_FIELDS, ErrorKind, Sample, Timeline, Turn, cold_penalty, phase_values
from bootbench.trace import SentSummaries, WireTrace

log = logging.getLogger("bootbench.user")

RECONNECT_KINDS = (ErrorKind.CONNECT_FAILED, ErrorKind.DISCONNECTED, ErrorKind.SEND_FAILED)
"""Failures that leave the connection unusable: it is closed, and the user backs off before the next cycle."""
FIRST_BACKOFF, MAX_BACKOFF = 0.25, 5.0

FAILED_PHASE_BY_STEP = {
    "connect": "connect_ms",
    "start": "session_start_ms",
    "send": "first_response_ms",
    "audio": "first_response_ms",
    "reply": "input_to_audio_ms",  # turn 1's reply: turn 1's own input-to-audio phase
    "warm": "warm_input_to_audio_ms",
}
"""The phase a failed cycle's Locust failure event is named after, by the step that failed."""


class BootUser(User):
    """A caller that starts a new session per iteration and times the first audio back."""

    def wait_time(self) -> float:
        ctx = context.current(harness.of(self.environment))
        return (ctx.settings.wait_ms / 1000.0 if ctx is not None else 0.0) + self._backoff

    def _context(self) -> RunContext:
        """The current run as this process's users see it (on the environment's harness).

        StopUser when this process cannot run it (:func:`bootbench.run.context.refuse` said why, once).
        """
        ctx = context.current(harness.of(self.environment))
        if ctx is None:
            raise StopUser()
        return ctx

    def _set_backoff(self, error: CycleError | None) -> None:
        """Back off (bounded, doubling) after a lost or refused connection; reset once one works."""
        if error is not None and error.kind in RECONNECT_KINDS:
            self._backoff = min(MAX_BACKOFF, max(FIRST_BACKOFF, 2 * self._backoff))
        else:
            self._backoff = 0.0

    def on_start(self) -> None:
        self.driver: Driver | None = None
        self._backoff = 0.0
        self._reply: Reply | None = None
        ctx = context.current(harness.of(self.environment))
        if ctx is None:
            return  # the run is refused here (said once); the first task stops this user (StopUser in on_start
            # would be logged with a traceback by Locust)
        self.number = harness.of(self.environment).next_user_number()
        self.driver = providers.create(ctx.settings.provider, ctx.driver_config, ctx.clips)
        self._connected_ahead: Timeline | None = None  # a connect done outside any cycle, not yet reported
        self._next_trace: WireTrace | None = None  # --trace: the next iteration's, begun with a connect ahead of it
        self._trace_record: dict | None = None  # --trace: the last cycle's record, until it is shipped
        self._sent_summaries = SentSummaries()  # --trace: the clip goes out the same every cycle: summarised once
        if not ctx.settings.connect_per_call:
            self._connect_ahead()

    def _tracing(self, ctx: RunContext) -> bool:
        """``--trace``, and the master still takes traces (its cap not reached: what its last ticket said)."""
        return ctx.settings.trace and harness.of(self.environment).tickets.tracing

    def _begin_trace(self, ctx: RunContext) -> WireTrace | None:
        """The wire trace of the cycle starting now (the one begun with its connect ahead, if any), on the driver."""
        trace, self._next_trace = self._next_trace, None
        if not self._tracing(ctx):
            trace = None
        elif trace is None:
            trace = WireTrace()
        self.driver.trace = trace
        return trace

    def _connect_ahead(self) -> None:
        """Open the connection outside the timed cycle; a failure is retried inside the next cycle."""
        ctx = context.current(harness.of(self.environment))
        if ctx is not None and self._tracing(ctx):   # the messages of a connect belong to the cycle that uses it
            self._next_trace = self.driver.trace = WireTrace()
        timeline = Timeline()
        try:
            self.driver.connect(timeline)
            self._connected_ahead = timeline
        except CycleError as exc:
            log.warning("user %d: connect failed (%s); retrying inside the next cycle", self.number, exc)

    def on_stop(self) -> None:
        driver = getattr(self, "driver", None)
        if driver is not None:
            driver.close()

    @task
    def cycle(self) -> None:
        bench = harness.of(self.environment)
        silence_s = self._context().settings.master_silence_s
        if self.driver is None:  # on_start found the run refused here
            raise StopUser()
        wait = master_watch.ticket_wait(self.environment.runner, silence_s)
        iteration = messages.request_ticket(self.environment, bench.tickets, wait)
        if iteration is None:
            raise StopUser()
        recorded = False
        try:
            ctx = self._context()
            sample, failed_phase = self._run_cycle(iteration, ctx)
            self._fire_events(sample, failed_phase, ctx.settings.provider)
            if self._reply is not None:  # --record-replies: before its sample, so the master has it at the end
                messages.ship_reply(self.environment, self._reply)
                self._reply = None
            trace, self._trace_record = self._trace_record, None
            messages.ship_sample(self.environment, sample, trace)
            recorded = True
        finally:
            if not recorded:  # Locust stopped this user mid-cycle: the ticket will never finish
                messages.give_up_ticket(self.environment, iteration)
        if sample.error_kind == ErrorKind.INTERRUPTED:  # its completed turns are recorded: now let Locust stop it
            raise GreenletExit()

    def _run_cycle(self, iteration: int, ctx: RunContext) -> tuple[Sample, str | None]:
        """One timed cycle; the sample and, for a failed one, the phase that did not complete.

        With ``--trace`` its wire trace record (:meth:`bootbench.trace.WireTrace.record`) is left in
        ``_trace_record``, shipped with the sample."""
        timeline = Timeline()
        warm: list[Timeline] = []  # one per warm turn reached (--turns > 1)
        clip = ctx.clips.clip_for(iteration)
        self.driver.use_clip(clip)
        started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        anomalies_before = dict(self.driver.anomalies)
        late_before = self.driver.late_stamp_reads
        connected_now = False
        step = "connect"
        error: CycleError | None = None
        preamble: bool | None = None
        record = bool(ctx.settings.record_replies)  # read before the clock starts: nothing timed pays for the option
        trace = self._begin_trace(ctx)
        timeline.cycle_start = time.perf_counter_ns()
        deadline = timeline.cycle_start + int(ctx.settings.timeout * 1e9)
        try:
            if ctx.settings.connect_per_call or not self.driver.connected:
                connected_now = True
                self.driver.connect(timeline)
                deadline = time.perf_counter_ns() + int(ctx.settings.timeout * 1e9)
            elif self._connected_ahead is not None:
                # The connection was opened ahead, outside any cycle (on start, or after the last
                # cycle closed it): its connect_ms belongs to the first cycle that uses it, and
                # cold_start_ms still starts at this cycle's start, not at the connect.
                timeline.connect_start = self._connected_ahead.connect_start
                timeline.connected = self._connected_ahead.connected
            self._connected_ahead = None
            step = "start"
            self.driver.start(timeline, deadline)
            if record:
                self.driver.record_reply()
            step = "send"
            self.driver.send_audio(timeline)
            step = "audio"
            try:
                self.driver.first_audio(timeline, deadline)
            finally:
                preamble = self.driver.preamble()  # turn 1's: a warm turn starts afresh
            if ctx.settings.turns > 1:
                step = "reply"
                try:
                    self.driver.reply_end(timeline, time.perf_counter_ns() + int(ctx.settings.timeout * 1e9))
                    step = "warm"
                    self._warm_turns(ctx, iteration, warm)
                except CycleError as exc:
                    raise CycleError(exc.kind, f"turn {len(warm) + 1}: {exc.message}") from None
        except CycleError as exc:
            error = exc
        except GreenletExit:
            # Locust is stopping this user (the run was stopped): a session that completed turn 1 keeps the
            # turns it completed, as a sample marked interrupted (cycle() ships it, then lets the user go).
            if step != "warm":
                raise
            warm = [turn for turn in warm if turn.reply_end is not None]
            error = CycleError(ErrorKind.INTERRUPTED, f"the run stopped during turn {len(warm) + 2} of "
                                                      f"{ctx.settings.turns}; the {len(warm) + 1} turns it "
                                                      f"completed are kept")
        interrupted = error is not None and error.kind == ErrorKind.INTERRUPTED
        # Stop / close / reconnect: a started session is always stopped (the service frees it). The
        # connection is closed when every cycle connects anew, or when it is broken; a broken one is
        # not reopened ahead (the next cycle reconnects, timed, after a backoff). A connection
        # gone for another reason (the service closed it after the session) is reopened ahead,
        # outside the next cycle's timing. A user being stopped only closes it (on_stop), at once.
        reply = self.driver.recorded_reply() if record else (0, [], None)  # what arrived until the stop
        if step != "connect" and not interrupted:
            self.driver.stop(timeline)
        # the service's own figures, as they arrived until the stop (before a connect ahead starts a new session)
        service = [self.driver.service_latency(number) for number in range(1, len(warm) + 2)]
        for number, turn_timeline in enumerate([timeline, *warm], start=1):
            turn_timeline.add_stages(self.driver.stage_stamps(number))
        self.driver.trace = None   # the cycle's messages end with its stop; a connect ahead begins the next trace
        connection_trouble = error is not None and error.kind in RECONNECT_KINDS
        if ctx.settings.connect_per_call or connection_trouble:
            self.driver.close()
        self._set_backoff(error)
        if not (connection_trouble or interrupted) and not ctx.settings.connect_per_call and not self.driver.connected:
            self._connect_ahead()
        if error is not None:
            log.warning("iteration %d (user %d): %s", iteration, self.number, error)
        anomalies = {k: v - anomalies_before.get(k, 0) for k, v in self.driver.anomalies.items()
                     if v - anomalies_before.get(k, 0)}
        late_after = self.driver.late_stamp_reads   # None before the driver's first kernel-clock connection
        late_stamp_reads = None if late_after is None else late_after - (late_before or 0)
        turns = None
        if ctx.settings.turns > 1:
            turns = [Turn.of(number, tl, service[number - 1], clip=ctx.clips.clip_for(iteration + number - 1).name)
                     for number, tl in enumerate([timeline, *warm], start=1)]
        sample = Sample(
            iteration=iteration,
            worker=ctx.worker,
            user=self.number,
            started_at=started_at,
            ok=error is None,
            error_kind=error.kind if error else None,
            error=self._error_message(error, ctx.worker),
            connected_this_cycle=connected_now,
            anomalies=anomalies,
            late_stamp_reads=late_stamp_reads,
            greeting_ms=timeline.greeting_ms(),
            answered_before_input_end_ms=timeline.answered_before_input_end_ms(),
            preamble=preamble,
            service_latency_ms=service[0],
            clip=clip.name,
            **timeline.phases(),
            turns=turns,
            cold_penalty_ms=cold_penalty(turns) if turns else None,
        )
        rate, chunks, judged = reply
        self._reply = Reply.of(iteration, clip.name, rate, chunks, judged) if chunks else None
        self._trace_record = trace.record([timeline, *warm], self._sent_summaries) if trace is not None else None
        return sample, (FAILED_PHASE_BY_STEP[step] if error is not None else None)

    def _warm_turns(self, ctx: RunContext, iteration: int, warm: list[Timeline]) -> None:
        """Turns 2..N in the open session, each after the previous reply ended, each with its own ``--timeout``.

        Turn k sends the clip after the previous turn's in the rotation (the same clip when there is one).
        Appends each turn's timeline to ``warm`` as it starts, so a failed turn keeps what it reached.
        """
        timeout = ctx.settings.timeout
        for number in range(2, ctx.settings.turns + 1):
            turn = Timeline()
            warm.append(turn)
            messages.report_turn(self.environment, iteration, number)
            self.driver.next_turn()
            self.driver.use_clip(ctx.clips.clip_for(iteration + number - 1))
            deadline = time.perf_counter_ns() + int(timeout * 1e9)
            self.driver.send_audio(turn)
            self.driver.first_audio(turn, deadline)
            self.driver.reply_end(turn, time.perf_counter_ns() + int(timeout * 1e9))

    @staticmethod
    def _error_message(error: CycleError | None, worker: str) -> str | None:
        """A failed cycle's message; a worker that cannot reach the target names itself (the others may)."""
        if error is None:
            return None
        if error.kind == ErrorKind.CONNECT_FAILED and worker != "local":
            return f"{worker}: {error.message}"
        return error.message

    def _fire_events(self, sample: Sample, failed_phase: str | None, provider: str) -> None:
        fire = self.environment.events.request.fire
        for phase in PHASES:
            value = getattr(sample, phase)
            if value is not None and value >= 0:  # a service stage reached before the input ended is negative
                fire(request_type=provider, name=phase, response_time=value, response_length=0,
                     exception=None, context={"iteration": sample.iteration})
        for phase in WARM_TURN_FIELDS:  # one request per warm turn and phase (--turns > 1)
            for value in phase_values(sample, phase):
                if value is not None:
                    fire(request_type=provider, name=phase, response_time=value, response_length=0,
                         exception=None, context={"iteration": sample.iteration})
        if not sample.ok:
            fire(request_type=provider, name=failed_phase or "first_response_ms",
                 response_time=None, response_length=0,
                 exception=failure_of(sample), context={"iteration": sample.iteration})


def failure_of(sample: Sample) -> Exception:
    """The exception a failed sample's Locust failure event carries: its error kind and message.

    Every failed cycle has an :class:`ErrorKind`; a failed sample without one (built elsewhere, or read
    from an older file) still gets an event, with its message alone, never an exception while firing it.
    """
    if sample.error_kind:
        return CycleError(sample.error_kind, sample.error or "")
    return RuntimeError(sample.error or "the iteration failed")
