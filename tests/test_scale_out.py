"""Distributed runs: a master and workers (or --processes) give one exact result folder."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from conftest import LOCUSTFILE, run_locust


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def locust_process(*args: str, cwd: Path, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "AIVOCO_"))}
    out = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args], cwd=cwd, env=env,
                            stdout=out, stderr=subprocess.STDOUT, text=True)


def start_cluster(tmp_path: Path, iterations: int, users: int, workers: int = 2, extra: tuple[str, ...] = ()):
    port = free_port()
    master = locust_process("--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port",
                            str(port), "--expect-workers", str(workers), "-u", str(users), "-i", str(iterations),
                            "--results-dir", str(tmp_path / "r"), *extra, cwd=tmp_path, log=tmp_path / "master.log")
    started = [locust_process("--worker", "--master-host", "127.0.0.1", "--master-port", str(port), cwd=tmp_path,
                              log=tmp_path / f"worker{n}.log") for n in range(workers)]
    return master, started


def finish(process: subprocess.Popen, timeout: float = 120) -> int:
    try:
        return process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()


def result_folder(tmp_path: Path) -> Path:
    (folder,) = (tmp_path / "r").iterdir()
    return folder


def assert_files_agree(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    jsonl = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    assert sorted(jsonl, key=lambda s: s["iteration"]) == metrics["samples"]
    csv_rows = (folder / "samples.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(jsonl)
    iterations = [s["iteration"] for s in metrics["samples"]]
    assert len(iterations) == len(set(iterations)), "duplicate iterations"
    assert metrics["summary"]["iterations"] == len(jsonl)
    return metrics


def test_master_and_two_workers_run_exactly_n_iterations_in_total(tmp_path):
    master, workers = start_cluster(tmp_path, iterations=40, users=4,
                                    extra=("--csv", str(tmp_path / "locust"), "--html", str(tmp_path / "locust.html")))
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
    run = run_locust("-u", "4", "-i", "40", "--processes", "2", "--results-dir", str(tmp_path / "r"),
                     cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = assert_files_agree(run.folder)
    assert [s["iteration"] for s in metrics["samples"]] == list(range(1, 41))
    assert len({s["worker"] for s in metrics["samples"]}) == 2
    assert metrics["run"]["embedded_server"] is True
    assert run.stderr.count("embedded reference server at") == 1
    assert len(list((tmp_path / "r").iterdir())) == 1, "workers wrote result folders of their own"


def test_a_killed_worker_loses_only_its_iterations_in_flight_and_the_run_still_ends(tmp_path):
    master, (survivor, victim) = start_cluster(tmp_path, iterations=60, users=4)
    deadline = time.monotonic() + 60
    jsonl = None
    while time.monotonic() < deadline:
        found = list((tmp_path / "r").glob("*/samples.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= 12:
            jsonl = found[0]
            break
        time.sleep(0.05)
    assert jsonl is not None, "the run did not get going"
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    code = finish(master)
    finish(survivor, 30)
    metrics = assert_files_agree(result_folder(tmp_path))
    budget = metrics["run"]["iterations"]
    assert budget["started"] == 60
    assert budget["finished"] + budget["lost"] == 60
    assert budget["finished"] == len(metrics["samples"])
    assert budget["lost"] <= 2, "more lost than the victim's two users had in flight"
    print("lost in flight:", budget["lost"])
    assert len({s["worker"] for s in metrics["samples"]}) == 2
    if budget["lost"]:
        assert budget["complete"] is False and code == 1
        lost = {i for its in budget["lost_iterations"].values() for i in its}
        assert not lost & {s["iteration"] for s in metrics["samples"]}
        assert "lost in flight" in (tmp_path / "master.log").read_text()
    else:
        assert budget["complete"] is True and code == 0

