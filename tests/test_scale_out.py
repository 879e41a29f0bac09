"""Distributed runs: a master and workers (or --processes) give one exact result folder."""

from __future__ import annotations

import collections
import json
import signal
import subprocess
from pathlib import Path

import pytest

from support.processes import ReadyLocust, free_port, locust_process, read_jsonl, run_locust, wait_for_samples

pytestmark = pytest.mark.slow  # real clusters: a master and worker processes


@pytest.fixture
def start_cluster(tmp_path: Path):
    """Factory: a headless master with ``extra`` options and its workers on a free port, logs in ``tmp_path``.

    Whatever is still running at teardown is killed.
    """
    started: list[subprocess.Popen] = []
    ports: list[int] = []

    def start(iterations: int, users: int, workers: int = 2, extra: tuple[str, ...] = ()):
        port = free_port()
        ports.append(port)
        master = locust_process("--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                                str(port), "--expect-workers", str(workers), "-u", str(users), "-i", str(iterations),
                                "--results-dir", str(tmp_path / "r"), *extra, cwd=tmp_path, log=tmp_path / "master.log")
        worker_processes = [locust_process("--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                                           cwd=tmp_path, log=tmp_path / f"worker{n}.log") for n in range(workers)]
        started.extend([master, *worker_processes])
        return master, worker_processes

    def ready_worker(name: str) -> ReadyLocust:
        """One more worker for the last cluster started, its imports done, joining when told (``go()``: a worker
        joining mid-run); its log in ``name``.log."""
        worker = ReadyLocust("--worker", "--master-host", "127.0.0.1", "--master-port", str(ports[-1]),
                             cwd=tmp_path, log=tmp_path / f"{name}.log")
        started.append(worker.process)
        return worker

    start.ready_worker = ready_worker
    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def finish(process: subprocess.Popen, timeout: float = 120) -> int | None:
    """The exit code of ``process`` once it ends by itself; None (and killed) if it still runs after ``timeout`` s."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def result_folder(tmp_path: Path) -> Path:
    (folder,) = (tmp_path / "r").iterdir()
    return folder


def assert_files_agree(folder: Path) -> dict:
    """metrics.json, samples.jsonl and samples.csv hold the same samples, each iteration once; the metrics."""
    metrics = json.loads((folder / "metrics.json").read_text())
    jsonl = read_jsonl(folder / "samples.jsonl")
    assert sorted(jsonl, key=lambda s: s["iteration"]) == metrics["samples"]
    csv_rows = (folder / "samples.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(jsonl)
    iterations = [s["iteration"] for s in metrics["samples"]]
    assert len(iterations) == len(set(iterations)), "duplicate iterations"
    assert metrics["summary"]["iterations"] == len(jsonl)
    return metrics


def test_master_and_two_workers_run_exactly_n_iterations_in_total(start_cluster, tmp_path):
    # all four users at once (-r 4): Locust's default of one a second would add 3 s of ramp and prove nothing more
    master, workers = start_cluster(iterations=40, users=4, extra=("-r", "4", "--csv", str(tmp_path / "locust"),
                                                                   "--html", str(tmp_path / "locust.html")))
    assert finish(master) == 0, (tmp_path / "master.log").read_text()[-3000:]
    for worker in workers:
        finish(worker, 30)
    folder = result_folder(tmp_path)
    metrics = assert_files_agree(folder)
    assert [s["iteration"] for s in metrics["samples"]] == list(range(1, 41))
    assert all(s["ok"] for s in metrics["samples"])
    by_worker = collections.Counter(s["worker"] for s in metrics["samples"])
    assert len(by_worker) == 2 and all(n > 0 for n in by_worker.values())
    budget = metrics["run"]["iterations"]
    assert (budget["planned"], budget["started"], budget["finished"], budget["lost"]) == (40, 40, 40, 0)
    assert sorted(budget["workers"]) == sorted(by_worker)
    assert metrics["run"]["mode"] == "master"
    log = (tmp_path / "master.log").read_text()
    assert str(folder) == log.strip().splitlines()[-1].strip()
    # Locust's own reports still work in distributed mode and count every phase of every cycle
    html = (tmp_path / "locust.html").read_text()
    assert "first_response_ms" in html and "session_start_ms" in html
    stats = {row.split(",")[1]: row.split(",") for row in (tmp_path / "locust_stats.csv").read_text().splitlines()[1:]}
    assert int(stats["first_response_ms"][2]) >= 30, "Locust's table should hold (nearly) every cycle"


def test_processes_mode_runs_exactly_n_iterations_with_one_embedded_server(tmp_path):
    run = run_locust("-u", "4", "-r", "4", "-i", "40", "--processes", "2", "--results-dir", str(tmp_path / "r"),
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = assert_files_agree(run.folder)
    assert [s["iteration"] for s in metrics["samples"]] == list(range(1, 41))
    assert len({s["worker"] for s in metrics["samples"]}) == 2
    assert metrics["run"]["embedded_server"] is True
    assert run.stderr.count("embedded reference server at") == 1
    assert len(list((tmp_path / "r").iterdir())) == 1, "workers wrote result folders of their own"


def test_a_worker_killed_mid_cycle_has_its_iterations_written_off_and_the_run_ends_with_exit_code_1(
        shared_reference_server, start_cluster, tmp_path):
    # a 300 ms answer and no wait between cycles: each of the victim's two users holds a ticket nearly all the time
    server = shared_reference_server(setup_delay="10", first_audio_delay="300", cold_penalty=0)
    # all four users at once (-r 4): with Locust's default of one user a second the victim may hold one user, or
    # none yet, when the eighth sample arrives
    master, (survivor, victim) = start_cluster(iterations=40, users=4,
                                               extra=("-H", server.url, "--wait-ms", "0", "-r", "4"))
    assert wait_for_samples(tmp_path / "r", 8), (tmp_path / "master.log").read_text()[-3000:]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    code = finish(master)
    assert code is not None, (tmp_path / "master.log").read_text()[-3000:]
    finish(survivor, 30)
    metrics = assert_files_agree(result_folder(tmp_path))
    budget = metrics["run"]["iterations"]
    assert 1 <= budget["lost"] <= 2, "the victim's two users had one iteration each in flight"
    assert budget["started"] == 40
    assert budget["finished"] + budget["lost"] == 40 == budget["planned"]
    assert budget["finished"] == len(metrics["samples"])
    assert (budget["complete"], code) == (False, 1)
    lost = {i for its in budget["lost_iterations"].values() for i in its}
    assert len(lost) == budget["lost"] and not lost & {s["iteration"] for s in metrics["samples"]}
    assert all(s["ok"] for s in metrics["samples"])
    assert len({s["worker"] for s in metrics["samples"]}) == 2
    assert "lost in flight" in (tmp_path / "master.log").read_text()


@pytest.mark.parametrize("rebalancing", [False, True], ids=["default", "enable-rebalancing"])
def test_a_worker_joining_mid_run_takes_users_and_the_run_still_ends_by_itself_with_exactly_n(
        shared_reference_server, start_cluster, tmp_path, rebalancing):
    # Locust moves a user to the new worker: stopped while it waits for a ticket or, with a 600 ms answer and
    # 200 ms between cycles, most likely mid-cycle (before the fix: a ticket left in flight forever, or an
    # iteration "lost"). All four users start at once (-r 4). The late worker has done its imports while the
    # cluster started, so it joins within a moment of the fourth sample and 36 iterations (9 rounds) remain.
    server = shared_reference_server(setup_delay="10", first_audio_delay="600", cold_penalty=0)
    extra = ("-H", server.url, "--wait-ms", "200", "-r", "4", *(("--enable-rebalancing",) if rebalancing else ()))
    master, workers = start_cluster(iterations=40, users=4, extra=extra)
    ready = start_cluster.ready_worker("late")
    assert wait_for_samples(tmp_path / "r", 4), (tmp_path / "master.log").read_text()[-3000:]
    late = ready.go()
    code = finish(master, 90)
    log = (tmp_path / "master.log").read_text()
    assert code == 0, f"the run did not end by itself with exit code 0 ({code}):\n{log[-3000:]}"
    for worker in (*workers, late):
        finish(worker, 30)
    assert "3 workers connected" in log and "to 3 ready workers" in log, "the late worker never joined the run"
    # a worker joining a running master fires test_start (and starts users) before Locust's init
    assert "Traceback" not in (tmp_path / "late.log").read_text()
    metrics = assert_files_agree(result_folder(tmp_path))
    assert [s["iteration"] for s in metrics["samples"]] == list(range(1, 41))
    assert len({s["worker"] for s in metrics["samples"]}) == 3, "the late worker ran no iteration"
    budget = metrics["run"]["iterations"]
    assert (budget["planned"], budget["started"], budget["finished"], budget["lost"]) == (40, 40, 40, 0)
    assert budget["complete"] is True
    for interruption in budget["interrupted"]:  # moved users' cycles: on record, and run again by another user
        assert set(interruption) == {"iteration", "worker"} and 1 <= interruption["iteration"] <= 40


def test_a_worker_killed_between_cycles_is_recorded_and_the_run_still_finishes_n(
        shared_reference_server, start_cluster, tmp_path):
    # 5 ms answers and a 1 s pause: the victim's users are nearly always between cycles when it dies.
    # 20 iterations, all four users at once (-r 4): after the 6th sample the survivor's two users still have
    # ~7 rounds of 1 s to run, well past the master's ~4 s to notice the missing worker.
    n = 20
    server = shared_reference_server(setup_delay="5", first_audio_delay="5", cold_penalty=0)
    master, (survivor, victim) = start_cluster(iterations=n, users=4,
                                               extra=("-H", server.url, "--wait-ms", "1000", "-r", "4"))
    assert wait_for_samples(tmp_path / "r", 6), (tmp_path / "master.log").read_text()[-3000:]
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    code = finish(master)
    log = (tmp_path / "master.log").read_text()
    assert code is not None, log[-3000:]
    finish(survivor, 30)
    metrics = assert_files_agree(result_folder(tmp_path))
    (lost,) = metrics["run"]["workers_lost"]
    assert lost["reason"] == "missing" and lost["worker"] in {s["worker"] for s in metrics["samples"]}
    budget = metrics["run"]["iterations"]
    assert budget["lost_iterations"].get(lost["worker"], []) == lost["in_flight"]
    if lost["in_flight"]:  # rarely, one of its users was mid-cycle: that iteration is lost
        assert (code, budget["complete"], budget["finished"]) == (1, False, n - len(lost["in_flight"]))
    else:  # every planned iteration finished: complete, exit code 0, and the loss on record
        assert (code, budget["complete"], budget["finished"], budget["lost"]) == (0, True, n, 0)
    assert f"worker lost: {lost['worker']} at {lost['at']} (missing)" in log
    assert metrics["run"]["interrupted"] is None
