"""Whole runs on real Locust runners inside the test process: a local run, two runs side by side, a cluster.

The run's state lives on each Locust environment (``environment.bootbench``),
so two environments in one process are two independent runs, and a master
with its workers can be built here the way Locust's own tests build them.
The reference server is a real process (its ground truth is what is measured).
"""

from __future__ import annotations

import json

import gevent
from support.inprocess import environment, init, local_environment, run_to_end, finish
from support.processes import free_port, read_jsonl

from bootbench.run import harness


def test_two_runs_in_one_process_do_not_see_each_other(reference_server, tmp_path):
    server = reference_server(first_audio_delay="fixed:60")
    first = local_environment("-i", "3", host=server.url, results_dir=tmp_path / "a")
    second = local_environment("-i", "2", "--turns", "2", host=server.url, results_dir=tmp_path / "b")
    assert harness.of(first) is not harness.of(second)

    runs = [gevent.spawn(run_to_end, first, 1), gevent.spawn(run_to_end, second, 2)]
    gevent.joinall(runs, raise_error=True)
    a, b = (greenlet.value for greenlet in runs)

    assert a is not b and a.recorder.folder != b.recorder.folder
    assert a.recorder.folder.parent == tmp_path / "a" and b.recorder.folder.parent == tmp_path / "b"
    assert sorted(s.iteration for s in a.samples) == [1, 2, 3], "each run has its own budget"
    assert sorted(s.iteration for s in b.samples) == [1, 2]
    assert all(s.turns is None for s in a.samples) and all(len(s.turns) == 2 for s in b.samples)
    assert {s.user for s in a.samples} == {1}, "user numbers are counted per environment"
    assert {s.user for s in b.samples} == {1, 2}
    assert a.metrics["run"]["turns"] == 1 and b.metrics["run"]["turns"] == 2
    assert a.metrics["summary"]["successes"] == 3 and b.metrics["summary"]["successes"] == 2
    for run, count in ((a, 3), (b, 2)):
        assert len(read_jsonl(run.recorder.folder / "samples.jsonl")) == count
        assert json.loads((run.recorder.folder / "metrics.json").read_text())["run"]["iterations"]["finished"] == count
    # the reference server's 60 ms is what both measured
    for run in (a, b):
        for sample in run.samples:
            assert 55 <= sample.first_response_ms <= 120


def test_a_master_and_two_workers_in_one_process_run_exactly_n(reference_server, tmp_path):
    server = reference_server(first_audio_delay="fixed:30")
    port = free_port()
    master = environment("-i", "12", "--expect-workers", "2", host=server.url, results_dir=tmp_path)
    master.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
    init(master)
    workers = []
    for _ in range(2):
        worker = environment(host=server.url)
        worker.create_worker_runner("127.0.0.1", port)
        init(worker)
        workers.append(worker)
    try:
        with gevent.Timeout(10):
            while len(master.runner.clients.ready) < 2:
                gevent.sleep(0.05)
        run = run_to_end(master, users=4)
    finally:
        for worker in workers:
            worker.runner.quit()
            finish(worker)

    assert sorted(s.iteration for s in run.samples) == list(range(1, 13))
    names = {worker.runner.client_id for worker in workers}
    assert {s.worker for s in run.samples} == names, "both workers ran iterations"
    assert run.metrics["run"]["mode"] == "master" and run.metrics["run"]["iterations"]["lost"] == 0
    assert all(s.ok and 25 <= s.first_response_ms <= 90 for s in run.samples)
    for worker in workers:
        assert harness.of(worker).current is None and harness.of(worker).last is None, "workers own no run"
        assert harness.of(worker).context.worker == worker.runner.client_id


def test_a_worker_whose_test_start_comes_before_init_is_ready_for_its_users(tmp_path):
    """A worker joining a running master gets its first spawn while it connects: Locust fires test_start (and
    starts users, who ask for tickets) before its main fires init. Both orders leave the worker served once."""
    from bootbench.run import messages

    port = free_port()
    master = environment("-i", "1", host="http://127.0.0.1:9", results_dir=tmp_path)
    master.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
    init(master)
    worker = environment(host="http://127.0.0.1:9")
    worker.create_worker_runner("127.0.0.1", port)
    try:
        worker.events.test_start.fire(environment=worker)
        bench = harness.of(worker)
        assert bench.context is not None and bench.context.worker == worker.runner.client_id
        assert messages.MSG_TICKET in worker.runner.custom_messages, "a ticket arriving now would be dropped"
        init(worker)  # Locust's main catches up: nothing registered twice
        assert harness.of(worker) is bench and bench.serving_users
    finally:
        worker.runner.quit()
        master.runner.quit()
