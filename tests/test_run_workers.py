"""The Locust glue of a run, on real Locust runners in this process (no Locust subprocess).

- bootbench/run/workers.py reads Locust's private ``MasterRunner.clients``
  and ``STATE_MISSING``; the first test fails if a Locust upgrade changes them.
- bootbench/run/messages.py: on a LocalRunner a sample reaches the master's
  run as the very object the user made (no dict in one process); only a
  worker's message is a dict (for msgpack).
"""

from __future__ import annotations

import gevent
import pytest
from locust import User, task
from locust.env import Environment
from locust.runners import STATE_MISSING, STATE_RUNNING, WorkerNode
from support.processes import free_port

from test_run_master import MemoryRecorder, settings

from bootbench.run import messages
from bootbench.run.master import MasterRun
from bootbench.run.workers import live_workers
from bootbench.samples import Sample


class IdleUser(User):
    @task
    def nothing(self) -> None:
        pass


@pytest.fixture
def master_runner():
    environment = Environment(user_classes=[IdleUser])
    runner = environment.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=free_port())
    yield runner
    runner.quit()


def test_live_workers_relies_on_locusts_private_clients_and_state_missing(master_runner):
    assert STATE_MISSING == "missing"
    assert hasattr(master_runner, "clients") and list(master_runner.clients.values()) == []
    master_runner.clients["w1"] = WorkerNode("w1", state=STATE_RUNNING)
    master_runner.clients["w2"] = WorkerNode("w2", state=STATE_RUNNING)
    assert live_workers(master_runner) == {"w1", "w2"}
    master_runner.clients["w2"].state = STATE_MISSING
    assert live_workers(master_runner) == {"w1"}
    assert {node.id: node.state for node in master_runner.clients.values()} == {"w1": STATE_RUNNING,
                                                                                 "w2": STATE_MISSING}


def test_a_local_run_hands_the_sample_object_itself_to_the_master_run():
    environment = Environment(user_classes=[IdleUser])
    runner = environment.create_local_runner()
    ends: list[int] = []
    run = MasterRun(settings=settings(iterations=2), recorder=MemoryRecorder(), end=lambda: ends.append(1))
    tickets = messages.TicketRequests()
    messages.serve_master(runner, lambda: run)
    messages.serve_worker(runner, tickets, lambda: None)

    def request_ticket() -> int | None:
        return messages.request_ticket(environment, tickets, wait=5)

    try:
        assert request_ticket() == 1
        sample = Sample(iteration=1, worker="local", user=1, started_at="t", ok=True, first_response_ms=120.0)
        messages.ship_sample(environment, sample)
        assert run.samples[0] is sample
        assert request_ticket() == 2
        messages.give_up_ticket(environment, 2)
        assert request_ticket() == 2, "a cycle cut short while the run goes runs again"
        messages.ship_sample(environment, Sample(iteration=2, worker="local", user=1, started_at="t", ok=True))
        assert request_ticket() is None, "the budget is spent"
        assert ends == [1] and run.budget.accounting()["interrupted"] == [{"iteration": 2, "worker": "local"}]
        assert [s.users_active for s in run.samples] == [1, 1]
    finally:
        runner.quit()


def test_only_a_worker_turns_a_sample_into_a_dict():
    environment = Environment(user_classes=[IdleUser])
    local = environment.create_local_runner()
    sample = Sample(iteration=3, worker="w", user=2, started_at="t", ok=False, error_kind="audio_timeout",
                    error="no audio", anomalies={"stray": 1})
    try:
        assert messages._sample_to_message(local, sample) is sample
        wire = messages._sample_to_message(object(), sample)  # any runner but a LocalRunner: a worker
        assert isinstance(wire, dict) and messages._sample_from_message(wire) == (sample, None)
        # with its wire trace record (--trace): beside the sample, which keeps its own fields only
        trace = {"messages": [[5, "sent", "audio", 640, 640, "00ff"]], "turns": [{"cycle_start": 0}]}
        assert messages._sample_to_message(local, sample, trace) == (sample, trace)
        wire = messages._sample_to_message(object(), sample, trace)
        assert messages._sample_from_message(wire) == (sample, trace)
        assert messages.TRACE_KEY not in messages._sample_from_message(wire)[0].to_dict()
    finally:
        local.quit()


class SilentRunner:
    """A worker's runner whose master does not answer yet: what the user sends is kept."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []

    def send_message(self, msg_type: str, data: object = None, client_id: str | None = None) -> None:
        self.sent.append((msg_type, data))


class Message:
    def __init__(self, data: dict) -> None:
        self.data, self.node_id = data, "w1"


def test_a_ticket_that_reaches_no_waiting_user_is_handed_back_to_the_master():
    # Locust stops a user to move it while it waits for its ticket: the ticket must not stay in flight
    environment = Environment(user_classes=[IdleUser])
    runner = environment.create_local_runner()
    tickets = messages.TicketRequests()
    messages.serve_worker(runner, tickets, lambda: None)
    silent = SilentRunner()
    try:
        waiting = gevent.spawn(messages.request_ticket, type("Env", (), {"runner": silent})(), tickets, 5)
        gevent.sleep(0.05)
        (kind, request), = silent.sent
        assert kind == messages.MSG_TICKET_REQUEST
        waiting.kill(block=True)
        ticket_handler = runner.custom_messages[messages.MSG_TICKET][0]
        handed_back = []
        runner.send_message = lambda kind, data=None, client_id=None: handed_back.append((kind, data))
        ticket_handler(environment, Message({"request": request["request"], "iteration": 7}))
        assert handed_back == [(messages.MSG_RETURN, {"iteration": 7})]
        ticket_handler(environment, Message({"request": request["request"], "iteration": None}))
        assert len(handed_back) == 1, "a 'spent' answer hands nothing back"
    finally:
        runner.quit()



def test_a_worker_computes_locusts_default_options_once_not_once_per_option_of_each_spawn(monkeypatch):
    """Locust's worker filters every spawn message's options with ``argument_parser.default_args_dict()`` per
    option; uncached that is a parser build per option (seconds of CPU on a loaded machine, no heartbeats)."""
    import inspect

    from locust import argument_parser
    from locust.runners import WorkerRunner

    from bootbench.run import locust_fixes

    assert "argument_parser.default_args_dict()" in inspect.getsource(WorkerRunner.handle_message), \
        "Locust no longer calls default_args_dict through its module: revisit bootbench/run/locust_fixes.py"
    # Locust's own function, even when an in-process worker earlier in the session cached it already
    original = getattr(argument_parser.default_args_dict, "__wrapped__", argument_parser.default_args_dict)
    monkeypatch.setattr(argument_parser, "default_args_dict", original)
    builds = []
    monkeypatch.setattr(argument_parser, "setup_parser_arguments",
                        lambda parser, _real=argument_parser.setup_parser_arguments: (builds.append(1), _real(parser)))
    for _ in range(3):
        argument_parser.default_args_dict()
    assert len(builds) == 3, "uncached, every call builds the parser"
    locust_fixes.cache_default_args()
    locust_fixes.cache_default_args()  # idempotent
    first = argument_parser.default_args_dict()
    assert all(argument_parser.default_args_dict() is first for _ in range(70))
    assert len(builds) == 4 and first == original()
