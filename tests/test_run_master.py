"""The master's run state (bootbench/run/master.py, run/early_stop.py), without Locust: fast and exact.

Early stop, ending the run once, the flush handshake's bookkeeping and the
write-off of dead workers. Most tests keep the samples in memory
(:class:`MemoryRecorder`, the part of RunRecorder a MasterRun uses); those
that check the written files use a real RunRecorder.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import pytest

from bootbench import options
from bootbench.exporters import RunRecorder
from bootbench.run.early_stop import FATAL_STREAK, EarlyStop
from bootbench.run.master import MasterRun
from bootbench.samples import ErrorKind, Sample
from support.refusals import locust_parser


def settings(**overrides) -> options.Settings:
    """Settings from the real parser's defaults, with ``overrides``, for the embedded server."""
    namespace = locust_parser().parse_args([])  # not get_parser(): bootbench.events may be registered already
    for name, value in overrides.items():
        setattr(namespace, name, value)
    return options.resolve(namespace, "").retarget("http://127.0.0.1:9/", embedded=True)


def sample(iteration: int, worker: str = "w1", kind: str | None = None) -> Sample:
    return Sample(iteration=iteration, worker=worker, user=1, started_at="2026-01-01T00:00:00.000+00:00",
                  ok=kind is None, error_kind=kind, error=f"{kind} happened" if kind else None,
                  first_response_ms=None if kind else 100.0 + iteration)


class MemoryRecorder:
    """What a MasterRun uses of a RunRecorder, in memory: the samples, and the run block it finishes with."""

    def __init__(self) -> None:
        self.started = datetime.now(timezone.utc)
        self.run_id = "memory-run"
        self.folder = Path("memory-run")
        self.samples: list[Sample] = []

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    def finish(self, run: dict[str, Any], checks: Sequence[Any] = ()) -> dict[str, Any]:
        return {"run": {"id": self.run_id, **run}, "samples": [s.to_dict() for s in self.samples]}


@pytest.fixture
def new_run(tmp_path):
    """Factory of MasterRuns (real files under tmp_path with ``files=True``); each counts its calls of ``end``."""
    runs = []

    def make(iterations: int = 5, files: bool = False) -> MasterRun:
        ends: list[int] = []
        recorder = RunRecorder(tmp_path, "aivoco") if files else MemoryRecorder()
        run = MasterRun(settings=settings(iterations=iterations, results_dir=str(tmp_path)),
                        recorder=recorder, end=lambda: ends.append(1))
        run.ends = ends
        runs.append(run)
        return run

    yield make
    for run in runs:
        if run.metrics is None:
            run.close()


# ---------------------------------------------------------------- early stop


@pytest.mark.parametrize("kind", [ErrorKind.CONNECT_FAILED, ErrorKind.AUTH_FAILED])
def test_three_fatal_failures_in_a_row_with_no_success_stop_the_run(kind):
    policy = EarlyStop()
    reasons = [policy.reason_to_stop(sample(n, kind=kind)) for n in range(1, FATAL_STREAK + 1)]
    assert reasons[:-1] == [None] * (FATAL_STREAK - 1)
    assert reasons[-1] is not None and f"{kind} happened" in reasons[-1]
    assert reasons[-1].startswith("authentication failed") == (kind == ErrorKind.AUTH_FAILED)


def test_no_early_stop_once_one_iteration_succeeded():
    policy = EarlyStop()
    assert policy.reason_to_stop(sample(1)) is None
    assert [policy.reason_to_stop(sample(n, kind=ErrorKind.CONNECT_FAILED)) for n in range(2, 12)] == [None] * 10


def test_a_different_kind_starts_the_streak_over():
    policy = EarlyStop()
    kinds = [ErrorKind.CONNECT_FAILED, ErrorKind.CONNECT_FAILED, ErrorKind.AUTH_FAILED, ErrorKind.AUTH_FAILED,
             ErrorKind.AUDIO_TIMEOUT, ErrorKind.AUTH_FAILED, ErrorKind.AUTH_FAILED]
    assert [policy.reason_to_stop(sample(n, kind=k)) for n, k in enumerate(kinds, 1)] == [None] * 7
    assert policy.reason_to_stop(sample(8, kind=ErrorKind.AUTH_FAILED)) is not None


def test_one_worker_that_cannot_connect_does_not_stop_the_run_while_another_worker_lives():
    policy = EarlyStop()
    live = {"w1", "w2"}
    first = [policy.reason_to_stop(sample(n, "w1", ErrorKind.CONNECT_FAILED), live) for n in range(1, 6)]
    assert first == [None] * 5, "w2 has not failed yet: the run goes on"
    assert policy.reason_to_stop(sample(6, "w2", ErrorKind.CONNECT_FAILED), live) is None
    assert policy.reason_to_stop(sample(7, "w2", ErrorKind.CONNECT_FAILED), live) is None
    reason = policy.reason_to_stop(sample(8, "w2", ErrorKind.CONNECT_FAILED), live)
    assert reason == "connect_failed happened", "every live worker has failed 3 times in a row: stop"


def test_a_worker_gone_missing_no_longer_holds_the_early_stop_back():
    policy = EarlyStop()
    for n in range(1, 4):
        assert policy.reason_to_stop(sample(n, "w1", ErrorKind.AUTH_FAILED), {"w1", "w2"}) is None
    assert policy.reason_to_stop(sample(4, "w1", ErrorKind.AUTH_FAILED), {"w1"}) is not None


def test_a_success_on_any_worker_disarms_the_early_stop_for_all():
    policy = EarlyStop()
    assert policy.reason_to_stop(sample(1, "w2"), {"w1", "w2"}) is None
    assert [policy.reason_to_stop(sample(n, "w1", ErrorKind.CONNECT_FAILED), {"w1"}) for n in range(2, 8)] == [None] * 6


def test_an_early_stop_closes_the_budget_ends_the_run_once_and_is_recorded(new_run):
    run = new_run(iterations=10)
    for n in range(1, 5):
        assert run.grant("w1") == n
    for n in range(1, 4):
        run.receive("w1", sample(n, kind=ErrorKind.CONNECT_FAILED))
    assert run.aborted == "connect_failed happened" and run.ends == [1]
    assert run.grant("w1") is None, "an aborted run grants nothing more"
    run.receive("w1", sample(4, kind=ErrorKind.CONNECT_FAILED))
    assert run.ends == [1] and len(run.samples) == 4
    metrics = run.close()
    assert run.incomplete and metrics["run"]["aborted"] == "connect_failed happened"
    assert metrics["run"]["iterations"]["finished"] == 4 and not metrics["run"]["iterations"]["complete"]


# ---------------------------------------------------------------- settling: the run ends once


def test_the_run_ends_once_when_every_planned_iteration_finished(new_run):
    run = new_run(iterations=3)
    granted = [run.grant("w1"), run.grant("w2"), run.grant("w1"), run.grant("w2")]
    assert granted == [1, 2, 3, None]
    run.receive("w1", sample(1, "w1"))
    run.receive("w1", sample(3, "w1"))
    assert run.ends == [], "iteration 2 is still in flight"
    run.receive("w2", sample(2, "w2"))
    assert run.ends == [1] and not run.incomplete
    assert not run.receive("w2", sample(2, "w2")), "a duplicate is not counted twice"
    assert run.ends == [1] and len(run.samples) == 3


def test_a_ticket_lost_as_the_run_stops_counts_as_settled_but_not_complete(new_run):
    run = new_run(iterations=2)
    run.grant("w1"), run.grant("w1")
    run.receive("w1", sample(1))
    run.stop_granting("SIGINT")
    assert run.abandon("w1", 2) and not run.abandon("w1", 2)
    assert run.ends == [1] and run.incomplete and run.unfinished
    metrics = run.close()
    assert metrics["run"]["iterations"]["lost_iterations"] == {"w1": [2]}


def test_an_unlimited_run_never_ends_by_itself_and_close_writes_off_what_is_in_flight(new_run):
    run = new_run(iterations=0)
    for n in range(1, 4):
        assert run.grant("w1") == n
    run.receive("w1", sample(1))
    assert run.ends == [] and not run.unfinished
    metrics = run.close()
    assert metrics["run"]["iterations"]["lost_iterations"] == {"w1": [2, 3]}
    assert not run.incomplete, "an unlimited run stopped by the user is not incomplete"


# ---------------------------------------------------------------- flush handshake and dead workers


def test_flush_confirmations_count_per_round(new_run):
    run = new_run()
    workers = {"w1", "w2"}
    run.expect_flushes()
    assert run.unflushed(workers) == workers
    run.confirm_flush("w1")
    assert run.unflushed(workers) == {"w2"}
    run.confirm_flush("w2")
    assert run.unflushed(workers) == set()
    run.expect_flushes()
    assert run.unflushed(workers) == workers, "a confirmation of an earlier round does not count"


def test_a_dead_worker_loses_its_iterations_in_flight_and_the_rest_of_the_budget_goes_to_the_others(new_run):
    run = new_run(iterations=5)
    assert [run.grant(w) for w in ("w1", "w2", "w1", "w2")] == [1, 2, 3, 4]
    run.receive("w1", sample(1, "w1"))
    assert run.write_off_missing({"w2"}) == {"w1": [3]}
    assert run.write_off_missing({"w2"}) == {}, "written off once"
    assert run.ends == []
    assert run.grant("w2") == 5, "the unused budget stays for the living workers"
    run.receive("w2", sample(2, "w2"))
    run.receive("w2", sample(4, "w2"))
    run.receive("w2", sample(5, "w2"))
    assert run.ends == [1] and run.incomplete
    accounting = run.close()["run"]["iterations"]
    assert accounting["finished"] == 4 and accounting["lost_iterations"] == {"w1": [3]}
    assert accounting["workers"] == ["w1", "w2"]


def test_a_late_sample_of_a_written_off_iteration_is_counted_once(new_run):
    # a worker marked missing only because its heartbeat lagged: what it finished is not lost
    run = new_run(iterations=2)
    run.grant("w1"), run.grant("w2")
    run.write_off_missing({"w1", "w2"})
    run.write_off_missing({"w2"})
    assert run.receive("w1", sample(1, "w1")) and not run.receive("w1", sample(1, "w1"))
    run.write_off_missing({"w1", "w2"})  # its heartbeats are back
    run.receive("w2", sample(2, "w2"))
    assert [s.iteration for s in run.samples] == [1, 2] and run.ends == [1] and not run.incomplete
    metrics = run.close()
    budget = metrics["run"]["iterations"]
    assert (budget["finished"], budget["lost"], budget["complete"], budget["recovered"]) == (2, 0, True, [1])
    (lost,) = metrics["run"]["workers_lost"]
    assert lost["worker"] == "w1" and lost["in_flight"] == [1] and "back_at" in lost


# ---------------------------------------------------------------- Locust moving users; lost workers; concurrency


def test_a_cycle_cut_short_while_the_run_goes_is_run_again_and_kept_on_record(new_run):
    run = new_run(iterations=3)
    assert [run.grant("w1"), run.grant("w1"), run.grant("w2")] == [1, 2, 3]
    assert run.abandon("w1", 2), "Locust stopped the user to move it"
    assert run.give_back("w1", 1), "a ticket that reached no user"
    assert [run.grant("w2"), run.grant("w2"), run.grant("w2")] == [2, 1, None], "in the order given back"
    for n in (1, 2, 3):
        run.receive("w2", sample(n, "w2"))
    assert run.ends == [1] and not run.incomplete
    budget = run.close()["run"]["iterations"]
    assert (budget["finished"], budget["lost"], budget["complete"]) == (3, 0, True)
    assert budget["interrupted"] == [{"iteration": 2, "worker": "w1"}]


def test_a_cycle_cut_short_by_the_stop_is_not_finished_and_the_rest_never_started(new_run):
    run = new_run(iterations=100)
    for n in range(1, 36):
        assert run.grant("local", 2) == n
    for n in range(1, 35):
        run.receive("local", sample(n, "local"))
    run.stop_granting("SIGTERM", 2)
    assert run.abandon("local", 35)
    metrics = run.close()
    assert metrics["run"]["interrupted"] == "SIGTERM" and run.incomplete
    budget = metrics["run"]["iterations"]
    assert (budget["finished"], budget["unfinished_at_stop"], budget["never_started"]) == (34, [35], 65)
    assert budget["interrupted"] == [], "a stop is not Locust moving users"


def test_a_run_that_ended_by_itself_is_not_interrupted_by_the_stop_that_follows(new_run):
    run = new_run(iterations=1)
    run.grant("local")
    run.receive("local", sample(1, "local"))
    run.stop_granting("stopped by Locust")
    assert run.close()["run"]["interrupted"] is None


def test_a_worker_lost_between_cycles_is_recorded_and_the_run_stays_complete(new_run):
    run = new_run(iterations=4)
    run.write_off_missing({"w1", "w2"})
    assert [run.grant("w1"), run.grant("w2")] == [1, 2]
    run.receive("w1", sample(1, "w1"))
    run.receive("w2", sample(2, "w2"))
    assert run.write_off_missing({"w2"}, present={"w1", "w2"}) == {}
    run.write_off_missing({"w2"}, present={"w2"})
    run.grant("w2"), run.grant("w2")
    run.receive("w2", sample(3, "w2"))
    run.receive("w2", sample(4, "w2"))
    metrics = run.close()
    (lost,) = metrics["run"]["workers_lost"]
    assert (lost["worker"], lost["reason"], lost["in_flight"]) == ("w1", "missing", [])
    assert metrics["run"]["iterations"]["complete"] and not run.incomplete


def test_workers_leaving_as_the_run_stops_are_not_lost(new_run):
    run = new_run(iterations=4)
    run.write_off_missing({"w1", "w2"})
    run.stop_granting("SIGINT")
    run.write_off_missing(set())
    assert run.close()["run"]["workers_lost"] == []


def test_peak_users_and_users_active_record_the_concurrency_that_ran_with_a_warning_when_short(new_run):
    run = new_run(iterations=3)
    run.users = 50
    run.locust_options = {"spawn_rate": 1}
    assert [run.grant("w1", 0), run.grant("w1", 2), run.grant("w1", 3)] == [1, 2, 3]
    for n in (1, 2, 3):
        run.receive("w1", sample(n, "w1"))
    metrics = run.close()
    assert [s.users_active for s in run.samples] == [1, 2, 3], "at least the asking user runs"
    assert metrics["run"]["peak_users"] == 3 and metrics["run"]["users"] == 50
    (warning,) = metrics["run"]["warnings"]
    assert "before all 50 users had started" in warning and "at most 3" in warning


def test_a_sweep_that_never_had_all_its_users_warns_with_the_rate_the_sweep_spawned_at(tmp_path):
    """A sweep ramps at its own rate (bootbench.run.sweep.SPAWN_RATE), whatever Locust's -r says."""
    from bootbench.run.sweep import Sweep

    run = MasterRun(settings=settings(iterations=2, sweep="1,40", results_dir=str(tmp_path)),
                    recorder=RunRecorder(tmp_path, "aivoco"), end=lambda: None, sweep=Sweep((1, 40), 2), users=40,
                    locust_options={"spawn_rate": 1})
    run.note_users(7)
    (warning,) = run.close()["run"]["warnings"]
    assert warning == "the run ended before all 40 users had started: at most 7 ran at once (spawn rate 100/s)"


def test_no_concurrency_warning_when_every_user_ran(new_run):
    run = new_run(iterations=1)
    run.users = 2
    run.grant("w1", 2)
    run.receive("w1", sample(1, "w1"))
    assert run.close()["run"]["warnings"] == []


# ---------------------------------------------------------------- what the web UI tab reads


def test_the_web_ui_reads_samples_planned_id_start_and_the_run_block_and_close_writes_them(new_run):
    run = new_run(iterations=7, files=True)
    run.grant("local"), run.grant("local")
    run.receive("local", sample(1, "local"))
    assert run.samples == [sample(1, "local")] and run.planned == 7
    assert run.run_id == run.recorder.folder.name and run.started_at.startswith(str(run.recorder.started.year))
    block = run.run_block()
    assert block["iterations"]["finished"] == 1 and block["wait_ms"] == 100.0 and "delay_ms" not in block
    assert {"id", "started_at", "ended_at", "versions"}.isdisjoint(block)
    assert run.metrics is None
    final = run.close()
    assert run.metrics is final and final["run"]["id"] == run.run_id
    on_disk = json.loads((run.recorder.folder / "metrics.json").read_text())
    assert on_disk["run"]["iterations"] == final["run"]["iterations"]
    assert on_disk["run"]["iterations"]["lost_iterations"] == {"local": [2]}
    assert [s["iteration"] for s in on_disk["samples"]] == [1]


def test_close_evaluates_the_settings_checks_on_the_final_metrics_and_writes_junit_xml(tmp_path):
    checks = ["first_response_ms:max<=102", "first_response_ms:count>=3", "success_rate>=50%"]
    run = MasterRun(settings=settings(iterations=2, results_dir=str(tmp_path), checks=checks),
                    recorder=RunRecorder(tmp_path, "aivoco"), end=lambda: None)
    run.grant("w1"), run.grant("w1")
    run.receive("w1", sample(1)), run.receive("w1", sample(2))
    metrics = run.close()
    assert [(c["expr"], c["value"], c["ok"]) for c in metrics["checks"]] == [
        ("first_response_ms:max<=102", 102.0, True), ("first_response_ms:count>=3", 2.0, False),
        ("success_rate>=50%", 1.0, True)]
    assert json.loads((run.recorder.folder / "metrics.json").read_text())["checks"] == metrics["checks"]
    assert "first_response_ms:count&gt;=3" in (run.recorder.folder / "junit.xml").read_text()
