"""How close bootbench comes to the truth, what the harness adds, how far one worker scales.

    python bench/accuracy.py            # full run, about 6 minutes
    python bench/accuracy.py --quick    # about 2 minutes

Against the reference server (known injected delays, ground-truth log), for
each concurrency level it runs, one after the other on the same server:

- **bootbench**: a real headless Locust run, one worker process;
- **probe**: the same with kernel arrival stamps of the timed messages
  (``bench/probe_locustfile.py``), to split its error into server and client;
- **raw**: the same cycle in a few lines of python-socketio, gevent-patched
  like Locust (``bench/raw_client.py``), with the same transport options;
- **wire**: the same cycle on raw sockets timed by the kernel's receive
  stamps (``bench/wire_client.py``): only the server's own jitter is left.

Each iteration is matched to the server's record of the same session (the
Socket.IO sid and the order of sessions on it; the client runs are told
apart by time, every process here sharing CLOCK_MONOTONIC), and the error is
the client's interval minus the server's own. It writes ``bench/results.json``
and ``bench/RESULTS.md``. Linux, loopback only; it stops by itself.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np
import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # bootbench, and the tests' clean environment

from bootbench.server.launcher import ReferenceServer  # noqa: E402
from support.processes import clean_env  # noqa: E402

PROFILES = {
    "short": {"setup_delay": "uniform:20:40", "first_audio_delay": "uniform:60:100"},
    "call": {"setup_delay": "uniform:100:300", "first_audio_delay": "uniform:300:900"},
}
"""1 user runs the short profile (the hardest case for efficiency); concurrency levels run call-like delays,
so that N users mean N sessions at a real service's pace rather than N times its request rate."""
WAIT_MS = 100.0
SEED = 7
SCALE_LIMIT_MS = 2.0
TARGETS = {"p99_1_user_ms": 1.0, "p99_vs_raw_1_user_ms": 0.5, "p99_200_users_ms": 5.0, "efficiency": 0.95}
FULL = {"levels": [1, 10, 50, 100, 200, 300], "single": 100, "realtime_row": True, "floor_samples": 300}
QUICK = {"levels": [1, 50], "single": 60, "realtime_row": False, "floor_samples": 150}
RUN_TIMEOUT = 240.0
CLIENTS = ("bootbench", "probe", "raw", "wire")
"""bootbench as shipped; bootbench with kernel stamps (bench/probe_locustfile.py); the raw python-socketio
client with kernel stamps; the raw-socket client timed by kernel stamps alone."""


def iterations_for(users: int, single: int) -> int:
    return single if users == 1 else max(200, 5 * users)


# ---------------------------------------------------------------- running one client


class Monitor:
    """Samples CPU time and RSS of the client and the server, and the whole machine's busy CPU, every 0.2 s."""

    def __init__(self, client: psutil.Process, server: psutil.Process) -> None:
        self.client, self.server = client, server
        self.rows: list[tuple[int, float, int, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with self.client.oneshot():
                    times, rss = self.client.cpu_times(), self.client.memory_info().rss
                cpu = times.user + times.system + times.children_user + times.children_system
                server = self.server.cpu_times()
                machine = psutil.cpu_times()
                busy = machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal
                self.rows.append((time.perf_counter_ns(), cpu, rss, server.user + server.system, busy))
            except psutil.Error:
                pass
            self._stop.wait(0.2)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, start_ns: int, end_ns: int, sessions: int) -> dict:
        """CPU and memory between two instants of the run (the steady part)."""
        inside = [r for r in self.rows if start_ns <= r[0] <= end_ns]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        seconds = (last[0] - first[0]) / 1e9
        client_cpu, server_cpu, busy = last[1] - first[1], last[3] - first[3], last[4] - first[4]
        return {
            "seconds": round(seconds, 2),
            "client_cores": round(client_cpu / seconds, 3),
            "server_cores": round(server_cpu / seconds, 3),
            "other_cores": round(max(0.0, busy - client_cpu - server_cpu) / seconds, 3),
            "client_cpu_ms_per_cycle": round(1000 * client_cpu / sessions, 3) if sessions else None,
            "client_rss_mib": round(max(r[2] for r in inside) / 2**20, 1),
        }


def run_client(kind: str, url: str, users: int, iterations: int, work: Path, server: ReferenceServer,
               realtime: bool = False, cpus: set[int] | None = None) -> dict:
    """Run one client to the end; its rows (one per iteration, with the sid), time window and monitor.

    ``cpus`` pins the client process (and every thread it starts) to those cores.
    """
    out = work / f"{kind}-{users}{'-rt' if realtime else ''}.jsonl"
    env = clean_env({"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)})
    if kind in ("bootbench", "probe"):
        if kind == "probe":
            locustfile = BENCH / "probe_locustfile.py"
        else:
            locustfile = ROOT / "locustfile.py" if users == 1 else BENCH / "sid_locustfile.py"
        env["BOOTBENCH_SID_LOG" if kind == "bootbench" else "BOOTBENCH_PROBE_LOG"] = str(out)
        argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users),
                "-r", str(users), "-i", str(iterations), "-H", url, "--results-dir", str(work / "results"),
                "--stop-timeout", "15"]
    else:
        argv = [sys.executable, str(BENCH / f"{kind}_client.py"), url, "--users", str(users),
                "--iterations", str(iterations), "--out", str(out)] + (["--kernel-stamps"] if kind == "raw" else [])
    started = time.perf_counter_ns()
    def prepare() -> None:
        if realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        if cpus:
            os.sched_setaffinity(0, cpus)

    proc = psutil.Popen(argv, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                        start_new_session=True, preexec_fn=prepare if realtime or cpus else None)
    monitor = Monitor(proc, psutil.Process(server.pid))
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise RuntimeError(f"{kind} at {users} users did not finish within {RUN_TIMEOUT:g} s")
    finally:
        monitor.stop()
    ended = time.perf_counter_ns()
    if kind in ("bootbench", "probe"):
        lines = [line for line in stdout.strip().splitlines() if line.strip()]
        folder = Path(lines[-1].strip()) if lines else None
        if folder is None or not (folder / "metrics.json").is_file():
            raise RuntimeError(f"bootbench at {users} users left no results (exit {proc.returncode}):\n"
                               f"{stderr[-2000:]}")
        rows = json.loads((folder / "metrics.json").read_text())["samples"]
        if kind == "probe":
            stamps = {r["iteration"]: r for r in map(json.loads, out.read_text().splitlines())}
            for row in rows:
                extra = stamps.get(row["iteration"], {})
                row.update(sid=extra.get("sid"), ready=extra.get("ready"), audio=extra.get("audio"),
                           cycle_start=extra.get("cycle_start"))
        elif users > 1:
            sids = {r["iteration"]: r["sid"] for r in map(json.loads, out.read_text().splitlines())}
            for row in rows:
                row["sid"] = sids.get(row["iteration"])
    else:
        if proc.returncode != 0:
            raise RuntimeError(f"{kind} client at {users} users failed (exit {proc.returncode}):\n{stderr[-2000:]}")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {"rows": rows, "started": started, "ended": ended, "monitor": monitor,
            "wall_s": (ended - started) / 1e9, "exit": proc.returncode}


# ---------------------------------------------------------------- ground truth and matching


def load_truth(path: Path) -> list[dict]:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((r for r in records if r.get("session") is not None), key=lambda r: r["t_ns"]["start_received"])


def match(rows: list[dict], truth: list[dict], started: int, ended: int) -> tuple[list[tuple[dict, dict]], int]:
    """Pairs (client row, server record) of one client run; the number of rows left unmatched.

    The run's server records are those that started inside its time window.
    Within one sid, the k-th session the server saw is the k-th iteration the
    client ran on that connection (iterations of one user are numbered in
    the order they ran). A row without sid (one user, plain locustfile) takes
    the window's only sid.
    """
    records = [r for r in truth if started <= r["t_ns"]["start_received"] <= ended]
    by_sid: dict[str, list[dict]] = {}
    for record in records:
        by_sid.setdefault(record["sid"], []).append(record)
    if rows and all(row.get("sid") is None for row in rows) and len(by_sid) == 1:
        only = next(iter(by_sid))
        rows = [dict(row, sid=only) for row in rows]
    by_client: dict[str, list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["iteration"]):
        by_client.setdefault(row.get("sid"), []).append(row)
    pairs, unmatched = [], 0
    for sid, client_rows in by_client.items():
        server_rows = by_sid.get(sid, [])
        if len(server_rows) != len(client_rows):
            unmatched += len(client_rows)
            continue
        pairs.extend(zip(client_rows, server_rows))
    return pairs, unmatched


def server_interval_ms(record: dict, start: str, end: str) -> float | None:
    t = record["t_ns"]
    return None if t.get(start) is None or t.get(end) is None else (t[end] - t[start]) / 1e6


def errors(pairs: list[tuple[dict, dict]]) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"first_response_ms": [], "session_start_ms": [], "first_audible_ms": []}
    spans = {"first_response_ms": ("ready_sent", "first_audio_sent"),
             "session_start_ms": ("start_received", "ready_sent")}
    for row, record in pairs:
        if not row.get("ok") or record.get("outcome") != "ok":
            continue
        for name, (start, end) in spans.items():
            truth = server_interval_ms(record, start, end)
            if row.get(name) is not None and truth is not None:
                found[name].append(row[name] - truth)
        # The server's first audible sample: its first answer chunk plus the leading silence it injected.
        audible = (record.get("measured") or {}).get("first_audible_ms")
        if row.get("first_audible_ms") is not None and audible is not None:
            found["first_audible_ms"].append(row["first_audible_ms"] - audible)
    return found


def error_stats(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    data = np.asarray(values)
    absolute = np.abs(data)
    return {"n": int(data.size), "mean": round(float(data.mean()), 3),
            "median_abs": round(float(np.median(absolute)), 3),
            "p99_abs": round(float(np.percentile(absolute, 99)), 3), "max_abs": round(float(absolute.max()), 3)}


def client_side(rows: list[dict]) -> dict:
    """From kernel stamps: what the client process itself added to each error, and each message's wait in it."""
    errs, ready, audio = [], [], []
    for row in rows:
        r, a = row.get("ready") or {}, row.get("audio") or {}
        if not (row.get("ok") and r.get("kernel") and r.get("handler") and a.get("kernel") and a.get("handler")):
            continue
        ready.append((r["handler"] - r["kernel"]) / 1e6)
        audio.append((a["handler"] - a["kernel"]) / 1e6)
        errs.append(audio[-1] - ready[-1])
    if not errs:
        return {}
    wait = lambda v: {"median": round(float(np.median(v)), 3), "p99": round(float(np.percentile(v, 99)), 3),  # noqa: E731
                      "max": round(float(np.max(v)), 3)}
    return {"first_response_error": error_stats(errs), "kernel_to_handler_ms": {"session_ready": wait(ready),
                                                                               "audio": wait(audio)}}


def server_send_path(pairs: list[tuple[dict, dict]]) -> dict:
    """Wire client only: server timestamp -> kernel arrival, per timed message (the server's own send path)."""
    ready, audio = [], []
    for row, record in pairs:
        t = record["t_ns"]
        if row.get("ready_rx_ns") and t.get("ready_sent"):
            ready.append((row["ready_rx_ns"] - t["ready_sent"]) / 1e6)
        if row.get("audio_rx_ns") and t.get("first_audio_sent"):
            audio.append((row["audio_rx_ns"] - t["first_audio_sent"]) / 1e6)
    return {name: {"median": round(float(np.median(v)), 3), "p99": round(float(np.percentile(v, 99)), 3),
                   "max": round(float(np.max(v)), 3)} for name, v in (("session_ready", ready), ("audio", audio)) if v}


# ---------------------------------------------------------------- efficiency


def efficiency(records: list[dict], wait_ms: float) -> dict:
    """Ideal over actual time of the run's full cycles, on the server's clock (see RESULTS.md)."""
    records = sorted(records, key=lambda r: r["t_ns"]["start_received"])
    if len(records) < 2 or any(r.get("outcome") != "ok" for r in records):
        return {}
    cycles = records[:-1]
    wall_ms = (records[-1]["t_ns"]["start_received"] - records[0]["t_ns"]["start_received"]) / 1e6
    ideal_ms = sum(r["injected"]["setup_delay_ms"] + r["injected"]["cold_penalty_ms"]
                   + r["injected"]["first_audio_delay_ms"] + wait_ms for r in cycles)
    parts = {"setup_timer_late": [], "ready_to_input": [], "audio_timer_late": [], "audio_to_stop": [],
             "stop_to_ended": [], "ended_to_next_start": []}
    for record, following in zip(cycles, records[1:]):
        t, injected = record["t_ns"], record["injected"]
        ms = lambda a, b: (t[b] - t[a]) / 1e6  # noqa: E731
        parts["setup_timer_late"].append(ms("start_received", "ready_sent") - injected["setup_delay_ms"]
                                         - injected["cold_penalty_ms"])
        parts["ready_to_input"].append(ms("ready_sent", "first_input_received"))
        parts["audio_timer_late"].append(ms("first_input_received", "first_audio_sent")
                                         - injected["first_audio_delay_ms"])
        parts["audio_to_stop"].append(ms("first_audio_sent", "stop_received"))
        parts["stop_to_ended"].append(ms("stop_received", "ended_sent"))
        parts["ended_to_next_start"].append((following["t_ns"]["start_received"] - t["ended_sent"]) / 1e6 - wait_ms)
    return {"cycles": len(cycles), "wall_ms": round(wall_ms, 1), "ideal_ms": round(ideal_ms, 1),
            "efficiency": round(ideal_ms / wall_ms, 4),
            "overhead_ms_per_cycle": round((wall_ms - ideal_ms) / len(cycles), 3),
            "overhead_parts_ms": {k: round(float(np.mean(v)), 3) for k, v in parts.items()}}


def samples_wall_check(rows: list[dict], records: list[dict]) -> float | None:
    """The same wall time from the samples' own ``started_at`` labels (ms resolution), as a cross-check."""
    stamps = sorted(datetime.fromisoformat(r["started_at"]).timestamp() for r in rows if r.get("started_at"))
    return round((stamps[-1] - stamps[0]) * 1000, 1) if len(stamps) > 1 else None


# ---------------------------------------------------------------- one level


def run_level(users: int, iterations: int, work: Path, realtime: bool = False) -> dict:
    """All clients at one level on one server; ``realtime`` runs them all (server included) under SCHED_FIFO."""
    truth_path = work / f"truth-{users}{'-rt' if realtime else ''}.jsonl"
    profile = "short" if users == 1 else "call"
    if realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))  # inherited by every process started below
    try:
        server = ReferenceServer.start(**PROFILES[profile], cold_penalty=0, ground_truth=truth_path, seed=SEED)
    finally:
        if realtime:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    runs = {}
    try:
        for kind in CLIENTS:
            runs[kind] = run_client(kind, server.url, users, iterations, work, server, realtime)
            print(f"  {kind:9s} {users:4d} users: {len(runs[kind]['rows'])} iterations in "
                  f"{runs[kind]['wall_s']:.1f} s", flush=True)
        time.sleep(0.5)
    finally:
        server.stop()
    truth = load_truth(truth_path)
    level: dict = {"users": users, "iterations": iterations, "profile": profile, "realtime": realtime}
    for kind, run in runs.items():
        pairs, unmatched = match(run["rows"], truth, run["started"], run["ended"])
        errs = errors(pairs)
        records = [record for _row, record in pairs]
        starts = sorted(r["t_ns"]["start_received"] for r in records)
        first_start: dict[str, int] = {}
        for record in records:
            first_start[record["sid"]] = min(first_start.get(record["sid"], 1 << 63), record["t_ns"]["start_received"])
        steady_from = max(first_start.values(), default=0)
        steady = [(row, rec) for row, rec in pairs if rec["t_ns"]["start_received"] >= steady_from]
        entry = {
            "iterations": len(run["rows"]),
            "ok": sum(1 for r in run["rows"] if r.get("ok")),
            "matched": len(pairs),
            "unmatched": unmatched,
            "wall_s": round(run["wall_s"], 2),
            "first_response_error": error_stats(errs["first_response_ms"]),
            "session_start_error": error_stats(errs["session_start_ms"]),
            "first_response_error_steady": error_stats(errors(steady)["first_response_ms"]),
            "first_audible_error": error_stats(errs["first_audible_ms"]),
        }
        if starts:
            lo, hi = starts[len(starts) // 10], starts[(9 * len(starts)) // 10]
            window_sessions = sum(1 for s in starts if lo <= s <= hi)
            entry["resources"] = run["monitor"].window(lo, hi, window_sessions)
        if users == 1:
            entry["efficiency"] = efficiency(records, WAIT_MS)
            if kind == "bootbench":
                entry["efficiency"]["wall_ms_from_samples_started_at"] = samples_wall_check(run["rows"], records)
        if kind == "wire":
            entry["server_send_path_ms"] = server_send_path(pairs)
        if kind in ("probe", "raw"):
            entry["client_side"] = client_side(run["rows"])
            steady_ids = {id(row) for row, _rec in steady}
            entry["client_side_steady"] = client_side([row for row in run["rows"] if id(row) in steady_ids])
        level[kind] = entry
    return level


# ---------------------------------------------------------------- the machine


WAKE_FLOOR = r"""
import json, socket, struct, subprocess, sys, time
count = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
sender = subprocess.Popen([sys.executable, "-c", "import socket, sys, time\n"
    "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
    "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
    "for _ in range(int(sys.argv[2])):\n    time.sleep(0.02)\n    s.send(b'x' * 100)\n",
    str(server.getsockname()[1]), str(count)])
conn, _ = server.accept()
conn.setsockopt(socket.SOL_SOCKET, 35, 1)
waits = []
while True:
    data, ancdata, _, _ = conn.recvmsg(4096, 64)
    now = time.clock_gettime_ns(time.CLOCK_REALTIME)
    if not data:
        break
    for level, kind, payload in ancdata:
        if kind == 35:
            sec, nsec = struct.unpack("qq", payload[:16])
            waits.append((now - (sec * 1_000_000_000 + nsec)) / 1e6)
sender.wait()
print(json.dumps(waits))
"""
"""A process blocked in recv, woken every 20 ms by another: kernel arrival -> user space, the machine's floor."""


def realtime_allowed() -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        return True
    except (OSError, AttributeError):
        return False


def wake_floor(samples: int, realtime: bool = False) -> dict:
    """How late a plain blocking-recv process sees bytes the kernel already has (ms): scheduling noise."""
    fifo = (lambda: os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))) if realtime else None
    out = subprocess.run([sys.executable, "-c", WAKE_FLOOR, str(samples)], capture_output=True, text=True,
                         timeout=60, preexec_fn=fifo)
    waits = json.loads(out.stdout)
    return {"n": len(waits), "median": round(float(np.median(waits)), 3),
            "p99": round(float(np.percentile(waits, 99)), 3), "max": round(float(np.max(waits)), 3)}


# ---------------------------------------------------------------- report


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    versions = {}
    for package in ("locust", "gevent", "python-socketio", "python-engineio", "websocket-client", "aiohttp"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "kernel": platform.release(), "python": platform.python_version(), **versions,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "load_average_start": os.getloadavg()}


def _p99(level: dict, kind: str, client_side_only: bool = False, steady: bool = False) -> float | None:
    entry = level.get(kind, {})
    if client_side_only:
        stats = (entry.get("client_side_steady" if steady else "client_side") or {}).get("first_response_error", {})
    else:
        stats = entry.get("first_response_error_steady" if steady else "first_response_error", {})
    return stats.get("p99_abs")


def scale(levels: list[dict]) -> dict:
    """The largest level whose steady-state p99 is under the limit: against the truth, and its client-side part.

    Steady state: sessions that started after every user had started its first one (the connection storm
    of users spawned at once is over).
    """
    levels = [lv for lv in levels if not lv["realtime"]]
    base = next((lv["bootbench"].get("resources", {}).get("client_rss_mib") for lv in levels if lv["users"] == 1), None)

    def best(p99_of) -> dict:
        passing = [lv for lv in levels if (p99_of(lv) if p99_of(lv) is not None else 1e9) < SCALE_LIMIT_MS]
        failing = [lv["users"] for lv in levels if lv not in passing]
        if not passing:
            return {"users": None, "first_failing": failing[0] if failing else None}
        top = max(passing, key=lambda lv: lv["users"])
        users, res = top["users"], top["bootbench"].get("resources", {})
        cores = res.get("client_cores")
        return {"users": users, "p99_abs_ms": p99_of(top),
                "first_failing": min((u for u in failing if u > users), default=None),
                "client_cores": cores,
                "cpu_percent_of_core_per_session": round(100 * cores / users, 3) if cores is not None else None,
                "client_cpu_ms_per_cycle": res.get("client_cpu_ms_per_cycle"),
                "client_rss_mib": res.get("client_rss_mib"),
                "rss_kib_per_session": round(1024 * (res["client_rss_mib"] - base) / (users - 1), 1)
                if base is not None and users > 1 and res.get("client_rss_mib") else None}

    return {"against_truth": best(lambda lv: _p99(lv, "bootbench", steady=True)),
            "client_side": best(lambda lv: _p99(lv, "probe", client_side_only=True, steady=True))}


def verdicts(levels: list[dict], eff: dict) -> dict:
    """Each target, judged on the error against the truth and on the part the client process added."""
    by_users = {lv["users"]: lv for lv in levels if not lv["realtime"]}
    found = {}

    def judge(name: str, value: float | None, below: bool = True) -> None:
        if value is not None:
            target = TARGETS[name.split(":")[0].split(" ")[0]]
            found[name] = {"value": round(value, 3), "target": target,
                           "met": value < target if below else value > target}

    for one, tag in ((by_users.get(1), ""),
                     (next((lv for lv in levels if lv["users"] == 1 and lv["realtime"]), None), " SCHED_FIFO")):
        if not one:
            continue
        judge(f"p99_1_user_ms:against_truth{tag}", _p99(one, "bootbench"))
        judge(f"p99_1_user_ms:client_side{tag}", _p99(one, "probe", True))
        b, r = _p99(one, "bootbench"), _p99(one, "raw")
        judge(f"p99_vs_raw_1_user_ms:against_truth{tag}", None if b is None or r is None else b - r)
        b, r = _p99(one, "probe", True), _p99(one, "raw", True)
        judge(f"p99_vs_raw_1_user_ms:client_side{tag}", None if b is None or r is None else b - r)
    if 200 in by_users:
        judge("p99_200_users_ms:against_truth", _p99(by_users[200], "bootbench"))
        judge("p99_200_users_ms:against_truth steady", _p99(by_users[200], "bootbench", steady=True))
        judge("p99_200_users_ms:client_side", _p99(by_users[200], "probe", True))
        judge("p99_200_users_ms:client_side steady", _p99(by_users[200], "probe", True, steady=True))
    if eff:
        judge("efficiency", eff["efficiency"], below=False)
    rt = next((lv for lv in levels if lv["users"] == 1 and lv["realtime"]), None)
    if rt and rt["bootbench"].get("efficiency"):
        judge("efficiency SCHED_FIFO", rt["bootbench"]["efficiency"]["efficiency"], below=False)
    return found


def _label(level: dict) -> str:
    return f"{level['users']} (SCHED_FIFO)" if level["realtime"] else str(level["users"])


def _cell(stats: dict | None) -> str:
    if not stats or not stats.get("n"):
        return "-"
    return f"{stats['median_abs']} / {stats['p99_abs']} / {stats['max_abs']}"


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# bootbench: accuracy and overhead",
        "",
        f"Generated by `python bench/accuracy.py{' --quick' if results['quick'] else ''}` on {m['date']} "
        f"in {results['elapsed_s']:.0f} s: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}, Locust {m['locust']}, gevent {m['gevent']}, "
        f"python-socketio {m['python-socketio']}, python-engineio {m['python-engineio']}, "
        f"websocket-client {m['websocket-client']}. Load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_end'])}. The machine is shared: `other cores` is "
        "CPU used by other processes during the run (noise). Figures: `bench/results.json`.",
        "",
        "Machine floor (a 20-line Python process blocked in `recv`, woken every 20 ms: kernel arrival -> user "
        "space, ms): " + "; ".join(f"{'SCHED_FIFO' if k == 'sched_fifo' else 'normal'} median {v['median']}, "
                                    f"p99 {v['p99']}, max {v['max']}" for k, v in m["wake_floor_ms"].items())
        + ". A p99 below the normal floor's cannot be measured on this machine without SCHED_FIFO.",
        "",
        "Reference server on 127.0.0.1, no cold penalty, unlimited capacity, seed "
        f"{SEED}; 1 user: setup {PROFILES['short']['setup_delay']} ms, first audio "
        f"{PROFILES['short']['first_audio_delay']} ms; more users: setup {PROFILES['call']['setup_delay']} ms, "
        f"first audio {PROFILES['call']['first_audio_delay']} ms (a real service's pace). One worker process "
        f"(no `--processes`), users spawned at once, {WAIT_MS:g} ms wait.",
        "",
        "Error = the client's `first_response_ms` minus the server's own interval for the same session "
        "(ground truth `session_ready` sent -> first `audio_response` sent; matched on the Socket.IO sid and "
        "the order of sessions on it). Cells: |error| median / p99 / max, ms (under 100 iterations p99 is "
        "about the maximum).",
        "",
        "- **bootbench**: `locust -f locustfile.py`, as shipped.",
        "- **raw**: `bench/raw_client.py`, python-socketio in a few lines, gevent-patched like Locust, "
        "same transport options, the library's own dispatch.",
        "- **wire**: `bench/wire_client.py`, raw sockets timed by the kernel's arrival stamps: only the "
        "server's own send jitter is left. No client can do better.",
        "- **client-side**: the part of each error the client process added, from kernel arrival stamps "
        "(`bench/kernel_stamps.py`): (audio handler - audio arrival) - (ready handler - ready arrival). "
        "bootbench's is from a second, stamped run (`bench/probe_locustfile.py`).",
        "",
        "## first_response_ms error",
        "",
        "| users | iterations | bootbench | raw | wire (server floor) | bootbench client-side | raw client-side "
        "| bootbench p99, steady | bootbench client-side p99, steady | bootbench first_audible_ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in results["levels"]:
        cs = lambda k: (lv[k].get("client_side") or {}).get("first_response_error")  # noqa: E731
        lines.append(f"| {_label(lv)} | {lv['bootbench']['matched']} | {_cell(lv['bootbench']['first_response_error'])} "
                     f"| {_cell(lv['raw']['first_response_error'])} | {_cell(lv['wire']['first_response_error'])} "
                     f"| {_cell(cs('probe'))} | {_cell(cs('raw'))} | {_p99(lv, 'bootbench', steady=True) or '-'} "
                     f"| {_p99(lv, 'probe', True, steady=True) or '-'} "
                     f"| {_cell(lv['bootbench'].get('first_audible_error'))} |")
    lines += ["", "Steady: sessions that started after every user had started its first one (users are spawned "
              "at once, so the first cycles overlap a storm of connection handshakes).",
              "", "bootbench first_audible_ms: its error against the server's first audible sample (first answer "
              "chunk sent plus the injected leading silence, here none: the reply is a -23 dBFS tone from its "
              "first sample), so it adds the detector and the playback model to the first_response_ms error."]
    lines += ["", "## Where the time goes at each level", "",
              "Kernel arrival -> handler timestamp inside the client (ms, median / p99), the server's own send "
              "path (its timestamp -> kernel arrival, from the wire client), and CPU (bootbench run, steady part).",
              "",
              "| users | bootbench ready | bootbench audio | raw ready | raw audio | server ready | server audio "
              "| bootbench cores | CPU ms/cycle | RSS MiB | server cores | other cores |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for lv in results["levels"]:
        def wait(kind: str, name: str) -> str:
            w = ((lv[kind].get("client_side") or {}).get("kernel_to_handler_ms") or {}).get(name)
            return f"{w['median']} / {w['p99']}" if w else "-"
        send = lv["wire"].get("server_send_path_ms", {})
        srv = lambda n: f"{send[n]['median']} / {send[n]['p99']}" if n in send else "-"  # noqa: E731
        res = lv["bootbench"].get("resources", {})
        lines.append(f"| {_label(lv)} | {wait('probe', 'session_ready')} | {wait('probe', 'audio')} | "
                     f"{wait('raw', 'session_ready')} | {wait('raw', 'audio')} | {srv('session_ready')} | "
                     f"{srv('audio')} | {res.get('client_cores')} | {res.get('client_cpu_ms_per_cycle')} | "
                     f"{res.get('client_rss_mib')} | {res.get('server_cores')} | {res.get('other_cores')} |")
    lines += ["", "## session_start_ms error (|error| median / p99 / max, ms)", "",
              "Includes the `start_call` and `session_ready` transits by definition (the server's interval "
              "starts when it has the request and ends before it sends the answer).", "",
              "| users | bootbench | raw | wire |", "| --- | --- | --- | --- |"]
    for lv in results["levels"]:
        lines.append(f"| {_label(lv)} | {_cell(lv['bootbench']['session_start_error'])} | "
                     f"{_cell(lv['raw']['session_start_error'])} | {_cell(lv['wire']['session_start_error'])} |")
    one = next((lv for lv in results["levels"] if lv["users"] == 1 and not lv["realtime"]), None)
    if one and one["bootbench"].get("efficiency"):
        lines += ["", f"## Efficiency at 1 user ({one['iterations']} iterations)", "",
                  "W = from the server's receipt of the first `start_call` to its receipt of the last "
                  "(`t_ns.start_received`, the server's monotonic clock): N-1 complete cycles, each with its "
                  "stop round trip, bookkeeping, wait and next ticket. Ideal = those cycles' injected setup and "
                  "first-audio delays plus the 100 ms waits. Efficiency = ideal / W. Connecting is not in it "
                  "(done ahead, once); neither are Locust's start-up and shutdown. Overhead per cycle, split on "
                  "the server's clock (ms): the server's timers firing late (`setup late`, `audio late`); "
                  "`ready -> input`: session_ready delivery, client turn-around and the 1 s audio upload; "
                  "`audio -> stop`: audio delivery, client turn-around, stop_call transit; `ended -> next`: "
                  "session_ended delivery, the harness's bookkeeping, the wait's overshoot, ticket, start_call "
                  "transit.", "",
                  "| client | cycles | W ms | ideal ms | efficiency | overhead ms/cycle | setup late | "
                  "ready -> input | audio late | audio -> stop | stop -> ended | ended -> next |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        rt = next((lv for lv in results["levels"] if lv["users"] == 1 and lv["realtime"]), None)
        for level, kind in [(one, k) for k in ("bootbench", "raw", "wire")] + \
                [(rt, k) for k in ("bootbench", "raw", "wire") if rt]:
            e = level[kind].get("efficiency")
            if not e:
                continue
            p = e["overhead_parts_ms"]
            lines.append(f"| {kind}{' (SCHED_FIFO)' if level['realtime'] else ''} | {e['cycles']} | {e['wall_ms']} | {e['ideal_ms']} | {e['efficiency']} | "
                         f"{e['overhead_ms_per_cycle']} | {p['setup_timer_late']} | {p['ready_to_input']} | "
                         f"{p['audio_timer_late']} | {p['audio_to_stop']} | {p['stop_to_ended']} | "
                         f"{p['ended_to_next_start']} |")
        check = one["bootbench"]["efficiency"].get("wall_ms_from_samples_started_at")
        lines += ["", f"Cross-check: bootbench's W from its samples' `started_at` labels (wall clock, ms "
                  f"resolution): {check} ms."]
    lines += ["", "## Scale: one worker process", ""]
    lines.append(f"Largest tested level whose steady-state p99 |error| stays under {SCALE_LIMIT_MS:g} ms, with the "
                 "bootbench worker's CPU and memory there (steady part of the run; RSS per session is the growth "
                 "over the 1-user run).")
    lines.append("")
    for key, what in (("against_truth", "error against the truth"),
                      ("client_side", "client-side error (what the harness process adds)")):
        sc = results["scale"][key]
        if sc.get("users"):
            lines.append(f"- By {what}, p99 under {SCALE_LIMIT_MS:g} ms: **{sc['users']} users** "
                         f"(p99 {sc['p99_abs_ms']} ms; next level tried: {sc['first_failing']}). There the worker "
                         f"used {sc['client_cores']} cores: {sc['cpu_percent_of_core_per_session']} % of one core "
                         f"and {sc['rss_kib_per_session']} KiB RSS per session, {sc['client_cpu_ms_per_cycle']} ms "
                         f"CPU per cycle, {sc['client_rss_mib']} MiB RSS in all.")
        else:
            lines.append(f"- By {what}: no tested level had p99 under {SCALE_LIMIT_MS:g} ms "
                         f"(not even {sc.get('first_failing')} user(s)).")
    lines += ["", "## Targets", "", "| target | value | goal | met |", "| --- | --- | --- | --- |"]
    for name, v in results["verdicts"].items():
        lines.append(f"| {name} | {v['value']} | {'>' if name.startswith('efficiency') else '<'} {v['target']} | "
                     f"{'yes' if v['met'] else 'no'} |")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer levels: about 2 minutes")
    parser.add_argument("--levels", help="comma-separated user counts (default: 1,10,50,100,200,300; quick: 1,50)")
    parser.add_argument("--out", default=str(BENCH), help="folder for results.json and RESULTS.md (default bench/)")
    parser.add_argument("--report-only", metavar="RESULTS_JSON", help="rewrite the report from a results.json, run nothing")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads(Path(args.report_only).read_text())
        return report(results, out)
    profile = QUICK if args.quick else FULL
    levels = [int(x) for x in args.levels.split(",")] if args.levels else profile["levels"]
    began = time.monotonic()
    info = machine()
    info["wake_floor_ms"] = {"normal": wake_floor(profile["floor_samples"])}
    if profile["realtime_row"] and realtime_allowed():
        info["wake_floor_ms"]["sched_fifo"] = wake_floor(profile["floor_samples"], realtime=True)
    work = Path(tempfile.mkdtemp(prefix="bootbench-accuracy-"))
    results: dict = {"schema": "bootbench/accuracy/v1", "quick": args.quick, "machine": info,
                     "server": {"profiles": PROFILES, "seed": SEED, "wait_ms": WAIT_MS},
                     "levels": []}
    try:
        for users in levels:
            print(f"{users} user(s):", flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")  # a crash keeps the levels run
            results["levels"].append(run_level(users, iterations_for(users, profile["single"]), work))
            if users == 1 and profile["realtime_row"] and realtime_allowed():
                print("1 user, every process under SCHED_FIFO:", flush=True)
                results["levels"].append(run_level(1, profile["single"], work, realtime=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_average_end"] = os.getloadavg()
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    return report(results, out)


def report(results: dict, out: Path) -> int:
    """Judge the levels, write results.json and RESULTS.md, print the Markdown."""
    one = next((lv for lv in results["levels"] if lv["users"] == 1 and not lv["realtime"]), None)
    eff = one["bootbench"].get("efficiency", {}) if one else {}
    results["scale"] = scale(results["levels"])
    results["verdicts"] = verdicts(results["levels"], eff)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    kept = kept_sections(out / "RESULTS.md")
    (out / "RESULTS.md").write_text(markdown(results) + ("\n" + kept if kept else ""))
    print(markdown(results))
    return 0


CAPACITY_HEADING = "## How many sessions one worker process holds"
"""The section bench/capacity.py writes at the end of RESULTS.md; a rerun of this script keeps it."""


def kept_sections(path: Path) -> str:
    """The part of an existing RESULTS.md that other bench scripts wrote (from CAPACITY_HEADING on), or ""."""
    text = path.read_text() if path.is_file() else ""
    at = text.find("\n" + CAPACITY_HEADING)
    return text[at + 1:] if at >= 0 else ""


if __name__ == "__main__":
    sys.exit(main())
