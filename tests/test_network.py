"""Across a real network: master, workers and service on separate hosts (network namespaces).

Every other distributed test runs on 127.0.0.1, where a dead process's
kernel still closes its sockets and nothing crosses a link. Here each role
runs in a host of its own (tests/support/netns.py), so a link can go away
without a FIN, a master can vanish, a worker can lose its route to the
service, and a relay can put a known delay on the wire. Needs root; skipped
otherwise (failed under CI=true).
"""

from __future__ import annotations

import collections
import hashlib
import json
import statistics
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from bootbench.run.early_stop import FATAL_STREAK
from support.netns import PYTHON, Lab, leftover_namespaces, require_lab
from support.processes import read_jsonl

pytestmark = pytest.mark.network

HOSTS = ("service", "master", "worker1", "worker2")
SERVICE_PORT = 8765
MASTER_PORT = 5557
"""Locust's default master port: a test across machines uses what a user would."""
KEY = "net-key-5b1d0c"
"""The only key the service accepts; workers must send it, and it must never be written out."""
SERVER_DELAYS = ("--setup-delay", "20", "--first-audio-delay", "50", "--cold-penalty", "0", "--reply-ms", "120")
HEARTBEAT_BOUND = 8.0
"""Locust marks a worker missing after 3 missed 1 s heartbeats; bootbench's watch looks every second; + slack."""
MASTER_SILENCE = 4.0
"""--master-silence-s in these tests (default 10): a worker gives a silent master up after this long."""
WORKER_STOP_BOUND = MASTER_SILENCE + 8.0
"""How long a worker that lost its master may keep running (its master-silence bound, a look a second, + slack)."""


class StillRunning(Exception):
    """A process outlived the bound it was given."""


@dataclass
class Service:
    url: str
    truth: Path
    log: Path

    def sessions(self) -> list[dict]:
        return read_jsonl(self.truth) if self.truth.exists() else []

    def wait_listening(self) -> None:
        assert wait_for(lambda: "listening on" in self.log.read_text(), 30), self.log.read_text()[-2000:]


@pytest.fixture
def lab():
    require_lab()
    with Lab(HOSTS) as made:
        yield made
    assert not [ns for ns in leftover_namespaces() if made.id in ns], "the lab was not torn down"


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def start_service(lab: Lab, tmp_path: Path, *extra: str, port: int = SERVICE_PORT) -> Service:
    """The reference server in the service host, on every address of that host (not waited for: see wait_listening).

    Tests start it together with the Locust processes, which take longer to import than it takes to listen.
    """
    log, truth = tmp_path / f"service-{port}.log", tmp_path / f"truth-{port}.jsonl"
    lab["service"].popen([PYTHON, "-m", "bootbench.server", "--host", "0.0.0.0", "--port", str(port),
                          "--ground-truth", str(truth), *SERVER_DELAYS, *extra],
                         log=log, env={"BOOTBENCH_SERVER_API_KEY": KEY})
    return Service(f"http://{lab['service'].ip}:{port}", truth, log)


@dataclass
class Cluster:
    master: object
    workers: dict[str, object]
    tmp: Path

    @property
    def results(self) -> Path:
        return self.tmp / "master" / "r"

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text()

    def folder(self) -> Path:
        folders = list(self.results.iterdir()) if self.results.exists() else []
        assert len(folders) == 1, f"expected one result folder, found {folders}\n{self.log('master')[-3000:]}"
        return folders[0]

    def samples_so_far(self) -> list[dict]:
        found = list(self.results.glob("*/samples.jsonl")) if self.results.exists() else []
        return read_jsonl(found[0]) if found else []


def start_cluster(lab: Lab, tmp_path: Path, service: Service, *args: str,
                  workers: tuple[str, ...] = ("worker1", "worker2")) -> Cluster:
    """A headless master in the master host and one worker in each worker host, as a user would start them."""
    master_ip = lab["master"].ip
    for name in ("master", *workers):
        (tmp_path / name).mkdir()
    env = {"AIVOCO_API_KEY": KEY}
    master = lab["master"].locust(
        "--master", "--master-bind-host", master_ip, "--expect-workers", str(len(workers)), "--headless",
        "-H", service.url, "--results-dir", str(tmp_path / "master" / "r"), "--master-silence-s", str(MASTER_SILENCE),
        *args,
        log=tmp_path / "master.log", cwd=tmp_path / "master", env=env)
    started = {name: lab[name].locust("--worker", "--master-host", master_ip, log=tmp_path / f"{name}.log",
                                      cwd=tmp_path / name, env=env) for name in workers}
    service.wait_listening()  # long before the workers are ready and the master spawns users
    return Cluster(master, started, tmp_path)


def exit_code(process, timeout: float, what: str) -> int:
    try:
        return process.wait(timeout)
    except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
        raise StillRunning(f"{what} still running after {timeout:g} s") from None


def worker_ids(metrics: dict) -> dict[str, str]:
    """Host name -> Locust worker id (a worker's id starts with its host's name)."""
    return {w.split("_")[0]: w for w in metrics["run"]["iterations"]["workers"]}


def assert_files_agree(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text())
    jsonl = read_jsonl(folder / "samples.jsonl")
    assert sorted(jsonl, key=lambda s: s["iteration"]) == metrics["samples"]
    iterations = [s["iteration"] for s in jsonl]
    assert len(iterations) == len(set(iterations)), "an iteration was recorded twice"
    assert len((folder / "samples.csv").read_text().strip().splitlines()) == 1 + len(jsonl)
    assert metrics["summary"]["iterations"] == len(jsonl)
    return metrics


def assert_no_key_written(*paths: Path) -> None:
    for path in paths:
        files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
        for file in files:
            assert KEY not in file.read_text(errors="replace"), f"the API key was written to {file}"


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def log_time(line: str) -> float:
    """The wall-clock time of a Locust log line ``[2026-11-30 10:56:25,975] host/LEVEL/name: ...``."""
    stamp = line[line.index("[") + 1:line.index("]")]
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


# ---------------------------------------------------------------- 1. the cluster works across hosts


def test_master_and_two_workers_on_separate_hosts_run_exactly_n_iterations(lab, tmp_path):
    service = start_service(lab, tmp_path)
    n = 24
    cluster = start_cluster(lab, tmp_path, service, "-u", "4", "-r", "4", "-i", str(n), "--wait-ms", "20")
    code = exit_code(cluster.master, 60, "the master")
    assert code == 0, cluster.log("master")[-3000:]
    for name, worker in cluster.workers.items():
        assert exit_code(worker, 15, name) == 0, cluster.log(name)[-3000:]

    folder = cluster.folder()
    metrics = assert_files_agree(folder)
    assert [s["iteration"] for s in metrics["samples"]] == list(range(1, n + 1))
    assert all(s["ok"] for s in metrics["samples"]), metrics["errors"]
    by_host = collections.Counter(s["worker"].split("_")[0] for s in metrics["samples"])
    assert set(by_host) == {"worker1", "worker2"} and sum(by_host.values()) == n
    budget = metrics["run"]["iterations"]
    assert (budget["planned"], budget["started"], budget["finished"], budget["lost"]) == (n, n, n, 0)
    assert budget["complete"] is True and set(worker_ids(metrics)) == {"worker1", "worker2"}
    assert metrics["run"]["mode"] == "master" and metrics["run"]["target"] == service.url
    # the service saw exactly one finished session per iteration, each with the key it demands
    sessions = service.sessions()
    assert len(sessions) == n and {s["outcome"] for s in sessions} == {"ok"}
    # one result folder, on the master; the workers wrote none
    assert cluster.log("master").strip().splitlines()[-1].strip() == str(folder)
    for name in cluster.workers:
        assert not (tmp_path / name / "results").exists() and not list((tmp_path / name).iterdir())
    assert_no_key_written(folder, tmp_path / "master.log", tmp_path / "worker1.log", tmp_path / "worker2.log")


# ---------------------------------------------------------------- 2. a worker cut off mid-run


def test_a_worker_cut_off_mid_run_is_written_off_and_its_budget_goes_to_the_other(lab, tmp_path):
    # long cycles, short pauses: each worker almost always has iterations in flight when its cable goes
    service = start_service(lab, tmp_path, "--first-audio-delay", "400")
    n = 24
    cluster = start_cluster(lab, tmp_path, service, "-u", "4", "-r", "4", "-i", str(n), "--wait-ms", "10",
                            "--timeout", "3")
    started = wait_for(lambda: (lambda s: len(s) >= 8 and {x["worker"][:7] for x in s} == {"worker1", "worker2"})(
        cluster.samples_so_far()), 60)
    assert started, "the run did not get going on both workers:\n" + cluster.log("master")[-3000:]
    cut_at = time.time()
    lab["worker2"].cut()

    code = exit_code(cluster.master, 60, "the master")
    master_log = cluster.log("master")
    folder = cluster.folder()
    metrics = assert_files_agree(folder)
    ids = worker_ids(metrics)
    budget = metrics["run"]["iterations"]
    # the master ended by itself: incomplete, the lost iterations listed, exit 1
    assert code == 1, master_log[-3000:]
    assert budget["complete"] is False and budget["started"] == n
    assert 1 <= budget["lost"] <= 2, budget  # worker2's two users, each with at most one iteration in flight
    assert budget["finished"] + budget["lost"] == n and budget["finished"] == len(metrics["samples"])
    assert list(budget["lost_iterations"]) == [ids["worker2"]], "only the cut-off worker's iterations are lost"
    lost = set(budget["lost_iterations"][ids["worker2"]])
    assert not lost & {s["iteration"] for s in metrics["samples"]}
    assert sorted(lost | {s["iteration"] for s in metrics["samples"]}) == list(range(1, n + 1))
    # it noticed within its heartbeat bound, and said which worker and which iterations
    gone = [line for line in master_log.splitlines() if f"worker {ids['worker2']} is gone" in line]
    assert len(gone) == 1 and str(sorted(lost)) in gone[0], master_log[-3000:]
    assert log_time(gone[0]) - cut_at <= HEARTBEAT_BOUND, f"noticed {log_time(gone[0]) - cut_at:.1f} s after the cut"
    lost_line = f"iteration(s) {', '.join(map(str, sorted(lost)))} lost in flight"
    assert any(f"worker lost: {ids['worker2']}" in line and lost_line in line for line in master_log.splitlines()), \
        master_log[-3000:]
    # the unused budget went to worker1: everything that finished after the cut is worker1's
    after = [s for s in metrics["samples"] if datetime.fromisoformat(s["started_at"]).timestamp() > cut_at + 0.5]
    assert after and {s["worker"] for s in after} == {ids["worker1"]}
    assert exit_code(cluster.workers["worker1"], 15, "worker1") == 0

    # the link comes back after the run ended, before the cut-off worker gave up: the finished run stays as written
    before = digest(folder)
    lab["worker2"].restore()
    worker2 = cluster.workers["worker2"]
    exit_code(worker2, max(1.0, cut_at + WORKER_STOP_BOUND - time.time()), "the cut-off worker2")
    time.sleep(1)
    assert digest(folder) == before, "a late worker changed a finished run's files"
    assert [p.name for p in cluster.results.iterdir()] == [folder.name]
    assert not lab["master"].pids() and not lab["worker2"].pids()
    for name in ("worker2",):
        said = [line for line in cluster.log(name).splitlines() if "bootbench" in line and "master" in line]
        assert len(said) == 1, f"{name} should say once, in one sentence, that it lost its master:\n{said}"


# ---------------------------------------------------------------- 3. the master disappears


def test_workers_stop_by_themselves_when_the_master_is_killed_mid_run(lab, tmp_path):
    service = start_service(lab, tmp_path, "--first-audio-delay", "200")
    cluster = start_cluster(lab, tmp_path, service, "-u", "4", "-r", "4", "-i", "1000", "--wait-ms", "10",
                            "--timeout", "3")
    assert wait_for(lambda: len(cluster.samples_so_far()) >= 8, 60), cluster.log("master")[-3000:]
    killed_at = time.monotonic()
    cluster.master.kill()
    cluster.master.wait(5)
    sessions_at_kill = len(service.sessions())
    for name, worker in cluster.workers.items():
        exit_code(worker, max(1.0, killed_at + WORKER_STOP_BOUND - time.monotonic()), name)
    for name in cluster.workers:
        log = cluster.log(name)
        said = [line for line in log.splitlines() if "bootbench" in line and "master" in line]
        assert len(said) == 1, f"{name} should say once, in one sentence, that it lost its master:\n{log[-2000:]}"
        assert "Traceback" not in log, log[-3000:]
    # nothing left running in any host but the service, and the workers stopped calling the service
    assert not lab["master"].pids() and not lab["worker1"].pids() and not lab["worker2"].pids()
    time.sleep(1)
    settled = len(service.sessions())
    assert settled - sessions_at_kill <= 4, "the workers went on with new sessions after the master was gone"
    time.sleep(1)
    assert len(service.sessions()) == settled


def test_a_master_cut_off_from_every_worker_ends_the_run_by_itself(lab, tmp_path):
    service = start_service(lab, tmp_path, "--first-audio-delay", "300")
    n = 200
    cluster = start_cluster(lab, tmp_path, service, "-u", "4", "-r", "4", "-i", str(n), "--wait-ms", "10",
                            "--timeout", "3")
    assert wait_for(lambda: len(cluster.samples_so_far()) >= 8, 60), cluster.log("master")[-3000:]
    cut_at = time.monotonic()
    lab["master"].cut()
    code = exit_code(cluster.master, HEARTBEAT_BOUND + 15, "the master cut off from its workers")
    metrics = assert_files_agree(cluster.folder())
    budget = metrics["run"]["iterations"]
    assert code == 1 and budget["complete"] is False
    assert budget["finished"] == len(metrics["samples"]) and budget["finished"] + budget["lost"] == budget["started"]
    assert budget["started"] < n and budget["lost"] <= 4
    for name, worker in cluster.workers.items():
        exit_code(worker, max(1.0, cut_at + WORKER_STOP_BOUND - time.monotonic()), name)


# ---------------------------------------------------------------- 4. a worker that cannot reach the service


def test_a_worker_that_cannot_reach_the_service_fails_its_iterations_and_the_run_goes_on(lab, tmp_path):
    # One user per worker, started at once (one spawn message: Locust 2.47 spends seconds of CPU on each on a
    # loaded machine). worker1's first 3 connects fail at once (~0.8 s with its backoff); a slow session
    # start keeps worker2's first success after them, so a run-wide streak would stop the run.
    service = start_service(lab, tmp_path, "--setup-delay", "1500")
    lab["worker1"].unreachable(lab["service"])  # the master and worker2 still reach it
    n = 8
    cluster = start_cluster(lab, tmp_path, service, "-u", "2", "-r", "2", "-i", str(n), "--wait-ms", "20",
                            "--timeout", "3")
    code = exit_code(cluster.master, 60, "the master")
    master_log = cluster.log("master")
    folder = cluster.folder()
    metrics = assert_files_agree(folder)
    ids = worker_ids(metrics)
    arrived = read_jsonl(folder / "samples.jsonl")  # in arrival order
    assert [(s["worker"], s["error_kind"]) for s in arrived[:FATAL_STREAK]] == \
        [(ids["worker1"], "connect_failed")] * FATAL_STREAK, "the scenario did not happen: worker1 did not fail first"
    assert metrics["run"]["aborted"] is None, f"stopped early while worker2 succeeded: {metrics['run']['aborted']}"
    budget = metrics["run"]["iterations"]
    assert (budget["started"], budget["finished"], budget["lost"]) == (n, n, 0), budget
    assert code == 1, master_log[-3000:]  # iterations failed
    by_worker = collections.defaultdict(list)
    for s in metrics["samples"]:
        by_worker[s["worker"]].append(s)
    assert set(by_worker) == {ids["worker1"], ids["worker2"]}
    assert all(s["ok"] for s in by_worker[ids["worker2"]])
    failed = by_worker[ids["worker1"]]
    assert failed and all(s["error_kind"] == "connect_failed" and "no route to host" in s["error"] for s in failed)
    assert all(s["error"].startswith(f"{ids['worker1']}: cannot reach {service.url}") for s in failed), failed[0]
    assert metrics["errors"]["by_kind"] == {"connect_failed": len(failed)}
    assert {e["worker"] for e in metrics["errors"]["first"]} == {ids["worker1"]}
    # what the user reads names the worker that could not connect
    first_error = [line for line in master_log.splitlines() if line.lstrip().startswith("first error")]
    assert len(first_error) == 1 and ids["worker1"] in first_error[0], first_error
    for name, worker in cluster.workers.items():
        exit_code(worker, 15, name)


# ---------------------------------------------------------------- 5. latency on the link


DELAY_MS = 40.0
RELAY_PORT = 8766


def local_run(lab: Lab, tmp_path: Path, name: str, url: str, n: int) -> dict:
    (tmp_path / name).mkdir()
    process = lab["master"].locust("--headless", "-u", "1", "-i", str(n), "--connect-per-call", "--wait-ms", "20",
                                   "-H", url, "--results-dir", str(tmp_path / name / "r"),
                                   log=tmp_path / f"{name}.log", cwd=tmp_path / name, env={"AIVOCO_API_KEY": KEY})
    assert exit_code(process, 60, name) == 0, (tmp_path / f"{name}.log").read_text()[-3000:]
    (folder,) = (tmp_path / name / "r").iterdir()
    return assert_files_agree(folder)


def overheads(metrics: dict, truth: list[dict]) -> dict[str, float]:
    """Per phase, what bootbench measured beyond what the server itself took (its ground truth).

    Session start and first response: the median of (measured - the server's own span), per iteration.
    Connect has no server-side stamps; its smallest value is the one least disturbed by this machine's load.
    """
    samples = metrics["samples"]
    assert len(samples) == len(truth) and all(s["ok"] for s in samples), metrics["errors"]
    span = lambda t, a, b: (t["t_ns"][b] - t["t_ns"][a]) / 1e6  # noqa: E731
    return {
        "connect_ms": min(s["connect_ms"] for s in samples),
        "session_start_ms": statistics.median(s["session_start_ms"] - span(t, "start_received", "ready_sent")
                                              for s, t in zip(samples, truth)),
        "first_response_ms": statistics.median(
            s["first_response_ms"] - span(t, "first_input_received", "first_audio_sent")
            for s, t in zip(samples, truth)),
    }


@pytest.mark.truth  # the link's delay within a few milliseconds
@pytest.mark.quiet  # ... which other processes' load moves (84.3 ms for 80 +- 4 in a parallel run)
def test_a_delay_on_the_link_shows_in_connect_and_session_start_by_its_round_trips(lab, tmp_path):
    service = start_service(lab, tmp_path)
    relay_log = tmp_path / "relay.log"
    lab["service"].popen([PYTHON, str(Path(__file__).parent / "support" / "delay_relay.py"),
                          "--listen", f"0.0.0.0:{RELAY_PORT}", "--to", f"127.0.0.1:{SERVICE_PORT}",
                          "--delay-ms", str(DELAY_MS)], log=relay_log)
    service.wait_listening()
    assert wait_for(lambda: "relay listening" in relay_log.read_text(), 20), relay_log.read_text()
    n = 8
    direct = local_run(lab, tmp_path, "direct", service.url, n)
    relayed = local_run(lab, tmp_path, "relayed", f"http://{lab['service'].ip}:{RELAY_PORT}", n)
    truth = service.sessions()
    assert len(truth) == 2 * n
    plain, slow = overheads(direct, truth[:n]), overheads(relayed, truth[n:])
    growth = {phase: slow[phase] - plain[phase] for phase in plain}
    print("growth by phase:", growth)
    # round trips through the relay: connect 2 (WebSocket upgrade + Engine.IO open, Socket.IO CONNECT),
    # session start 1 (start_call -> session_ready), first response 1 (audio_data in, audio_response out)
    # (connect is timed on the client alone, so it gets the wider margin of this machine's scheduling noise)
    for phase, round_trips, margin in (("connect_ms", 2, 12), ("session_start_ms", 1, 4), ("first_response_ms", 1, 4)):
        expected = round_trips * 2 * DELAY_MS
        assert abs(growth[phase] - expected) <= margin, f"{phase} grew {growth[phase]:.1f} ms, not {expected:g}"
