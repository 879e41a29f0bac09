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
    messages.serve_master(runner, lambda: run)
    messages.serve_worker(runner)
    try:
        assert messages.request_ticket(environment) == 1
        sample = Sample(iteration=1, worker="local", user=1, started_at="t", ok=True, first_response_ms=120.0)
        messages.ship_sample(environment, sample)
        assert run.samples[0] is sample
        assert messages.request_ticket(environment) == 2
        messages.give_up_ticket(environment, 2)
        assert messages.request_ticket(environment) == 2, "a cycle cut short while the run goes runs again"
        messages.ship_sample(environment, Sample(iteration=2, worker="local", user=1, started_at="t", ok=True))
        assert messages.request_ticket(environment) is None, "the budget is spent"
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
        assert isinstance(wire, dict) and messages._sample_from_message(wire) == sample
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
    messages.serve_worker(runner)
    silent = SilentRunner()
    try:
        waiting = gevent.spawn(messages.request_ticket, type("Env", (), {"runner": silent})())
        gevent.sleep(0.05)
        (kind, request), = silent.sent
        assert kind == messages.MSG_TICKET_REQUEST
        waiting.kill(block=True)
        ticket_handler = runner.custom_messages[messages.MSG_TICKET][0]
        handed_back = []
        runner.send_message = lambda kind, data=None, client_id=None: handed_back.append((kind, data))
        ticket_handler(environment, Message({"request": request["request"], "iteration": 7}))
        assert handed_back == [(messages.MSG_TICKET_BACK, {"iteration": 7})]
        ticket_handler(environment, Message({"request": request["request"], "iteration": None}))
        assert len(handed_back) == 1, "a 'spent' answer hands nothing back"
    finally:
        runner.quit()


def test_a_user_that_gets_no_answer_asks_again(monkeypatch):
    monkeypatch.setattr(messages, "TICKET_ASK_WAIT", 0.05)
    monkeypatch.setattr(messages, "TICKET_WAIT", 0.12)
    silent = SilentRunner()
    assert messages.request_ticket(type("Env", (), {"runner": silent})()) is None
    assert [kind for kind, _ in silent.sent] == [messages.MSG_TICKET_REQUEST] * 3


def test_a_worker_builds_locusts_default_arguments_once_not_once_per_option_of_a_spawn_message(monkeypatch):
    from locust import argument_parser, runners

    from bootbench.run import workers

    builds = []
    original = argument_parser.default_args_dict
    monkeypatch.setattr(argument_parser, "default_args_dict", lambda: builds.append(1) or original())
    assert runners.argument_parser is argument_parser, "Locust's worker reads it from this module"
    workers.spawn_messages_without_stall()
    first = argument_parser.default_args_dict()
    first["num_users"] = "changed by a caller"
    assert [argument_parser.default_args_dict() for _ in range(100)][-1] == original()
    assert builds == [1], "built once per process"
