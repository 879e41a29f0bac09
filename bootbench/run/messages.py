"""The messages between a run's users and its master, over Locust's ``register_message`` / ``send_message``.

- ticket request / ticket: a user asks for the next iteration number (a
  *ticket*: one granted iteration of the budget) and waits for it;
- samples: a finished iteration's :class:`~bootbench.samples.Sample`;
- abandoned: a user was stopped mid-cycle, its ticket will never finish
  (while the run goes: Locust moved the user, and the number is granted again);
- ticket back: a ticket reached a worker whose user had stopped waiting for
  it (Locust stopped the user to move it): the number goes back to the master;
- flush / flushed: at the end of a distributed run the master asks every
  worker to confirm that all it sent has arrived (Locust stops listening
  0.5 s after quitting otherwise: LOCUST_NOTES).

On a ``LocalRunner`` ``send_message`` calls the local handler directly, so
local and distributed runs take the same path; samples then stay Sample
objects, and only a worker turns them into dicts for msgpack
(:func:`_sample_to_message` / :func:`_sample_from_message`).
"""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Callable

import gevent
from gevent.event import AsyncResult
from locust.runners import LocalRunner, MasterRunner

from bootbench.run.master import MasterRun
from bootbench.run.workers import live_workers
from bootbench.samples import Sample

log = logging.getLogger("bootbench")

MSG_TICKET_REQUEST = "bootbench_ticket_request"
MSG_TICKET = "bootbench_ticket"
MSG_SAMPLES = "bootbench_samples"
MSG_ABANDONED = "bootbench_abandoned"
MSG_TICKET_BACK = "bootbench_ticket_back"
MSG_FLUSH = "bootbench_flush"
MSG_FLUSHED = "bootbench_flushed"

TICKET_ASK_WAIT = 5.0
"""Seconds a user waits for an answer before asking again (a master answers in milliseconds, unless its message
loop is busy: Locust redistributes users there when a worker joins or leaves). An answer that comes late
reaches no user and is handed back."""
TICKET_WAIT = 60.0
"""Seconds a user waits for its ticket in all before it stops. A worker whose master is gone quits by itself after
60 s without the master's heartbeat (Locust's MASTER_HEARTBEAT_TIMEOUT), so no wait outlasts that; giving up sooner
would stop users for good while a master alive but busy (redistributing users in its message loop) catches up."""
FLUSH_WAIT = 10.0
"""Seconds the master waits for every worker's flush confirmation."""

CurrentRun = Callable[[], "MasterRun | None"]

_pending: dict[int, AsyncResult] = {}
_request_ids = itertools.count(1)


# ---------------------------------------------------------------- the master (or local process)


def serve_master(runner: Any, current_run: CurrentRun) -> None:
    """Answer users' and workers' messages on the master (or local) runner for whatever run is current."""

    def grant(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        iteration = run.grant(msg.node_id, environment.runner.user_count) if run is not None else None
        environment.runner.send_message(MSG_TICKET, {"request": msg.data["request"], "iteration": iteration},
                                        client_id=msg.node_id)

    def samples(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is None:
            log.warning("%d sample(s) from %s arrived after the run ended; dropped", len(msg.data), msg.node_id)
            return
        for item in msg.data:
            run.receive(msg.node_id, _sample_from_message(item))

    def abandoned(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None:
            run.abandon(msg.node_id, msg.data["iteration"])

    def ticket_back(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None:
            run.hand_back(msg.node_id, msg.data["iteration"])

    def flushed(environment: Any, msg: Any, **_kwargs: Any) -> None:
        run = current_run()
        if run is not None:
            run.confirm_flush(msg.node_id)

    runner.register_message(MSG_TICKET_REQUEST, grant)
    runner.register_message(MSG_SAMPLES, samples)
    runner.register_message(MSG_ABANDONED, abandoned)
    runner.register_message(MSG_TICKET_BACK, ticket_back)
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


# ---------------------------------------------------------------- users (on a worker or the local process)


def serve_worker(runner: Any) -> None:
    """Receive tickets and flush requests on a worker (or local) runner."""

    def ticket(environment: Any, msg: Any, **_kwargs: Any) -> None:
        waiter = _pending.get(msg.data["request"])
        if waiter is not None:
            waiter.set(msg.data["iteration"])
        elif msg.data["iteration"] is not None:  # its user stopped waiting: the number must not stay in flight
            _hand_back(environment, msg.data["iteration"])

    def flush(environment: Any, msg: Any, **_kwargs: Any) -> None:
        environment.runner.send_message(MSG_FLUSHED, None)

    runner.register_message(MSG_TICKET, ticket)
    # concurrent: a stop in progress must not block the confirmation (LOCUST_NOTES)
    runner.register_message(MSG_FLUSH, flush, concurrent=True)


def request_ticket(environment: Any) -> int | None:
    """Block until the master grants the next iteration number; None when the budget is spent or no answer comes.

    Asks again every TICKET_ASK_WAIT s while the master is heard from, up to
    TICKET_WAIT s in all. A user stopped while it waits (Locust moving
    users) leaves no ticket behind: one that arrives later is handed back.
    """
    deadline = time.monotonic() + TICKET_WAIT
    while True:
        answered, iteration = _ask_for_ticket(environment)
        if answered:
            return iteration
        if time.monotonic() >= deadline:
            log.error("no iteration ticket from the master within %g s", TICKET_WAIT)
            return None
        log.warning("no answer from the master within %g s; asking again for an iteration", TICKET_ASK_WAIT)


def _ask_for_ticket(environment: Any) -> tuple[bool, int | None]:
    """One request: (True, the number or None when spent), or (False, None) with no answer in TICKET_ASK_WAIT s."""
    request = next(_request_ids)
    result = _pending[request] = AsyncResult()
    completed = False
    try:
        environment.runner.send_message(MSG_TICKET_REQUEST, {"request": request})
        iteration = result.get(timeout=TICKET_ASK_WAIT)
        completed = True
        return True, iteration
    except gevent.Timeout:
        completed = True
        return False, None
    finally:
        _pending.pop(request, None)
        # stopped (killed) after the ticket arrived but before taking it: hand it back
        if not completed and result.ready() and result.successful() and result.value is not None:
            _hand_back(environment, result.value)


def _hand_back(environment: Any, iteration: int) -> None:
    try:
        environment.runner.send_message(MSG_TICKET_BACK, {"iteration": iteration})
    except Exception:  # noqa: BLE001 - a process going down may no longer reach the master
        log.debug("could not hand back iteration %s", iteration, exc_info=True)


def ship_sample(environment: Any, sample: Sample) -> None:
    """Send a finished sample to the master (from a worker: in order, at once)."""
    runner = environment.runner
    runner.send_message(MSG_SAMPLES, [_sample_to_message(runner, sample)])


def give_up_ticket(environment: Any, iteration: int) -> None:
    """Tell the master an iteration will never finish (Locust stopped its user mid-cycle)."""
    try:
        environment.runner.send_message(MSG_ABANDONED, {"iteration": iteration})
    except Exception:  # noqa: BLE001 - a process going down may no longer reach the master
        log.debug("could not report abandoned iteration %s", iteration, exc_info=True)


def _sample_to_message(runner: Any, sample: Sample) -> Sample | dict[str, Any]:
    """A LocalRunner hands the object to its own handler; a worker's message goes through msgpack."""
    return sample if isinstance(runner, LocalRunner) else sample.to_dict()


def _sample_from_message(item: Sample | dict[str, Any]) -> Sample:
    return item if isinstance(item, Sample) else Sample.from_dict(item)
