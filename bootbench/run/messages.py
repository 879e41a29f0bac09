"""The messages between a run's users and its master, over Locust's ``register_message`` / ``send_message``.

- ticket request / ticket: a user asks for the next iteration number (a
  *ticket*: one granted iteration of the budget) and waits for it; the ticket
  also says whether the master still takes wire traces (``--trace`` until its cap);
- samples: a finished iteration's :class:`~bootbench.samples.Sample` (with ``--trace``, and its wire trace
  record, :mod:`bootbench.trace`);
- reply: with ``--record-replies``, the iteration's recorded answer (:class:`~bootbench.replies.Reply`), sent
  just before its sample (a worker's messages arrive in order);
- abandoned: a user was stopped mid-cycle, its ticket will never finish
  (while the run goes: Locust moved the user, and the number is granted again);
- ticket return: a ticket reached a worker whose user had stopped waiting for
  it (Locust stopped the user to move it, or a sweep's request was withdrawn):
  the number goes back to the master and is granted again;
- flush / flushed: at the end of a distributed run the master asks every
  worker to confirm that all it sent has arrived (Locust stops listening
  0.5 s after quitting otherwise: docs/locust.md, section 2);
- turn: with ``--turns`` > 1, a user starts a warm turn of its session (the
  progress line shows how far the sessions in flight are);
- refused: a worker cannot run the run's users (the master's provider is not
  installed there, say): the master ends the run as failed, with the worker's sentence;
- in a sweep: a ticket request the sweep's gate holds back is answered when
  its round starts (:func:`release`); a ticket that arrives for a request
  no user waits for any more is returned; at each level's edges the master
  asks every process for its CPU seconds (level / level cpu).

On a ``LocalRunner`` ``send_message`` calls the local handler directly, so
local and distributed runs take the same path; samples then stay Sample
objects, and only a worker turns them into dicts for msgpack
(:func:`_sample_to_message` / :func:`_sample_from_message`).
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import gevent
from gevent.event import AsyncResult
from locust.runners import LocalRunner, MasterRunner

from bootbench.replies import Reply
from bootbench.run.master import MasterRun
from bootbench.run.workers import live_workers
from bootbench.samples import Sample

log = logging.getLogger("bootbench")

MSG_TICKET_REQUEST = "bootbench_ticket_request"
MSG_TICKET = "bootbench_ticket"
MSG_SAMPLES = "bootbench_samples"
MSG_ABANDONED = "bootbench_abandoned"
MSG_FLUSH = "bootbench_flush"
MSG_FLUSHED = "bootbench_flushed"
MSG_RETURN = "bootbench_ticket_return"
MSG_LEVEL = "bootbench_level"
MSG_LEVEL_CPU = "bootbench_level_cpu"
MSG_TURN = "bootbench_turn"
MSG_REFUSED = "bootbench_refused"
MSG_REPLY = "bootbench_reply"

TRACE_KEY = "wire_trace"
"""The key of a shipped sample's wire trace record (``--trace``)."""

FLUSH_WAIT = 10.0
"""Seconds the master waits for every worker's flush confirmation."""

CurrentRun = Callable[[], "MasterRun | None"]


@dataclass(eq=False)
class TicketRequests:
    """A process's ticket requests waiting for the master's answer (one per waiting user), by request id."""

    pending: dict[int, AsyncResult] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    tracing: bool = True
    """What the master's last ticket said: it still takes wire traces (``--trace``; False once its cap is reached)."""


# ---------------------------------------------------------------- the master (or local process)


def serve_master(runner: Any, current_run: CurrentRun) -> None:
    """Answer users' and workers' messages on the master (or local) runner for whatever run is current."""

    def grant(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None and run.defer(msg.node_id, msg.data["request"]):
            return  # a sweep's round has all its tickets out: answered when the next round starts
        iteration = run.grant(msg.node_id, environment.runner.user_count) if run is not None else None
        environment.runner.send_message(MSG_TICKET, {"request": msg.data["request"], "iteration": iteration,
                                                     "trace": run is not None and run.tracing},
                                        client_id=msg.node_id)

    def samples(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is None:
            log.warning("%d sample(s) from %s arrived after the run ended; dropped", len(msg.data), msg.node_id)
            return
        for item in msg.data:
            run.receive(msg.node_id, *_sample_from_message(item))

    def reply(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None:
            run.keep_reply(Reply.from_message(msg.data))

    def abandoned(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None:
            run.abandon(msg.node_id, msg.data["iteration"])

    def flushed(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None:
            run.confirm_flush(msg.node_id)

    def returned(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None:
            run.give_back(msg.node_id, msg.data["iteration"])

    def level_cpu(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None and run.sweep is not None:
            data = msg.data
            run.sweep.note_cpu(msg.node_id, data["index"], data["edge"], data["cpu_s"], data["wall_s"])

    def turn(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None:
            run.note_turn(msg.node_id, msg.data["iteration"], msg.data["turn"])

    def refused(environment: Any, msg: Any, **_kwargs: Any) -> None:
        reason = f"{_process(msg.node_id)} cannot take part in the run: {msg.data['reason']}"
        run = current_run()
        if run is None:
            log.error("bootbench: %s", reason)
        else:
            run.refuse(reason)

    runner.register_message(MSG_TICKET_REQUEST, grant)
    runner.register_message(MSG_REFUSED, refused)
    runner.register_message(MSG_TURN, turn)
    runner.register_message(MSG_RETURN, returned)
    runner.register_message(MSG_LEVEL_CPU, level_cpu)
    runner.register_message(MSG_SAMPLES, samples)
    runner.register_message(MSG_REPLY, reply)
    runner.register_message(MSG_ABANDONED, abandoned)
    runner.register_message(MSG_FLUSHED, flushed)


def collect_flushes(runner: Any, run: MasterRun) -> None:
    """Every worker's last samples reach the master before it stops listening (bounded by FLUSH_WAIT)."""
    if not isinstance(runner, MasterRunner):
        return
    workers = live_workers(runner)
    if not workers:
        return
    run.expect_flushes()
    runner.send_message(MSG_FLUSH, None)
    with gevent.Timeout(FLUSH_WAIT, False):
        while run.unflushed(workers):
            gevent.sleep(0.02)
    if run.unflushed(workers):
        log.warning("no flush confirmation from %s", ", ".join(sorted(run.unflushed(workers))))


def answer(runner: Any, worker: str, request: int, iteration: int | None, tracing: bool = False) -> None:
    """Answer a held ticket request of ``worker`` (None: no ticket, the run is over)."""
    runner.send_message(MSG_TICKET, {"request": request, "iteration": iteration, "trace": tracing},
                        client_id=worker)


def release(runner: Any, run: MasterRun, requests: list[tuple[str, int]]) -> None:
    """Start a sweep's round: grant a ticket to each held request, all at once."""
    for worker, request in requests:
        answer(runner, worker, request, run.grant(worker, runner.user_count), run.tracing)


def ask_cpu(runner: Any, index: int, edge: str) -> None:
    """Ask every process that runs users for its CPU seconds at an edge of level ``index``."""
    runner.send_message(MSG_LEVEL, {"index": index, "edge": edge})


# ---------------------------------------------------------------- users (on a worker or the local process)


def serve_worker(runner: Any, tickets: TicketRequests, run_ending: Callable[[], None]) -> None:
    """Receive tickets and flush requests on a worker (or local) runner whose users wait in ``tickets``.

    ``run_ending`` is told when the master asks for the last samples.
    """

    def ticket(environment: Any, msg: Any, **_kwargs: Any) -> None:
        tickets.tracing = bool(msg.data.get("trace"))
        waiter = tickets.pending.get(msg.data["request"])
        if waiter is not None:
            waiter.set(msg.data["iteration"])
        elif msg.data["iteration"] is not None:  # its user stopped waiting: the number must not stay in flight
            environment.runner.send_message(MSG_RETURN, {"iteration": msg.data["iteration"]})

    def flush(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run_ending()
        environment.runner.send_message(MSG_FLUSHED, None)

    def level(environment: Any, msg: Any, **_kwargs: Any) -> None:
        environment.runner.send_message(MSG_LEVEL_CPU, {**msg.data, "cpu_s": time.process_time(),
                                                        "wall_s": time.monotonic()})

    runner.register_message(MSG_TICKET, ticket)
    runner.register_message(MSG_LEVEL, level)
    # concurrent: a stop in progress must not block the confirmation (docs/locust.md, section 2)
    runner.register_message(MSG_FLUSH, flush, concurrent=True)


def request_ticket(environment: Any, tickets: TicketRequests, wait: float) -> int | None:
    """Block until the master grants the next iteration number; None when the budget is spent or after ``wait`` s.

    A user stopped while it waits (Locust moving users) leaves no ticket
    behind: one that arrives afterwards, or that arrived just before the stop
    and was not taken, is returned to the master.
    """
    request = next(tickets.ids)
    result = tickets.pending[request] = AsyncResult()
    taken = False
    try:
        environment.runner.send_message(MSG_TICKET_REQUEST, {"request": request})
        iteration = result.get(timeout=wait)
        taken = True
        return iteration
    except gevent.Timeout:
        taken = True
        log.error("no iteration ticket from the master within %g s", wait)
        return None
    finally:
        tickets.pending.pop(request, None)
        if not taken and result.ready() and result.successful() and result.value is not None:
            _return_ticket(environment, result.value)


def _return_ticket(environment: Any, iteration: int) -> None:
    try:
        environment.runner.send_message(MSG_RETURN, {"iteration": iteration})
    except Exception:  # noqa: BLE001 - a process going down may no longer reach the master
        log.debug("could not return iteration %s", iteration, exc_info=True)


def ship_sample(environment: Any, sample: Sample, trace: dict[str, Any] | None = None) -> None:
    """Send a finished sample to the master (from a worker: in order, at once), with its wire trace record if any."""
    runner = environment.runner
    runner.send_message(MSG_SAMPLES, [_sample_to_message(runner, sample, trace)])


def ship_reply(environment: Any, reply: Reply) -> None:
    """Send an iteration's recorded answer to the master (``--record-replies``), before its sample."""
    runner = environment.runner
    runner.send_message(MSG_REPLY, reply if isinstance(runner, LocalRunner) else reply.to_message())


def refuse_run(environment: Any, reason: str) -> None:
    """Tell the master this process cannot run the current run's users, and why (one sentence)."""
    try:
        environment.runner.send_message(MSG_REFUSED, {"reason": reason})
    except Exception:  # noqa: BLE001 - without a master to tell, the worker's own sentence is all there is
        log.debug("could not tell the master why this worker refuses the run", exc_info=True)


def _process(node_id: str) -> str:
    return "this process" if node_id == "local" else f"worker {node_id}"


def report_turn(environment: Any, iteration: int, turn: int) -> None:
    """Tell the master that ``iteration``'s session starts turn ``turn`` (for the progress line only)."""
    try:
        environment.runner.send_message(MSG_TURN, {"iteration": iteration, "turn": turn})
    except Exception:  # noqa: BLE001 - progress only: a lost message costs nothing measured
        log.debug("could not report turn %s of iteration %s", turn, iteration, exc_info=True)


def give_up_ticket(environment: Any, iteration: int) -> None:
    """Tell the master an iteration will never finish (Locust stopped its user mid-cycle)."""
    try:
        environment.runner.send_message(MSG_ABANDONED, {"iteration": iteration})
    except Exception:  # noqa: BLE001 - a process going down may no longer reach the master
        log.debug("could not report abandoned iteration %s", iteration, exc_info=True)


def _sample_to_message(runner: Any, sample: Sample, trace: dict[str, Any] | None = None) -> Any:
    """A LocalRunner hands the object to its own handler (with its trace: a pair); a worker's message goes through
    msgpack (the trace under :data:`TRACE_KEY`, which :meth:`Sample.from_dict` ignores)."""
    if isinstance(runner, LocalRunner):
        return sample if trace is None else (sample, trace)
    return sample.to_dict() if trace is None else {**sample.to_dict(), TRACE_KEY: trace}


def _sample_from_message(item: Any) -> tuple[Sample, dict[str, Any] | None]:
    """The sample of a samples message's item, and its wire trace record (None without)."""
    if isinstance(item, Sample):
        return item, None
    if isinstance(item, tuple):
        return item
    return Sample.from_dict(item), item.get(TRACE_KEY)
