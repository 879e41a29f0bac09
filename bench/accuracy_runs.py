"""The runner of bench/accuracy.py (and bench/capacity.py): the reference server, the clients, the machine.

It starts processes and reads back what they wrote; it judges nothing.

- :func:`start_server`: the reference server with one of :data:`PROFILES`
  and a ground-truth log;
- :func:`run_client`: one client (:data:`CLIENTS`) run to its end, with
  its rows (one per iteration, with the Socket.IO sid), its time window on
  CLOCK_MONOTONIC and a :class:`Monitor` of CPU and memory (and, with
  ``scrape_s``, a :class:`Scraper` of bootbench's Prometheus ``/metrics``);
- :func:`machine`, :func:`wake_floor`, :func:`realtime_allowed`: what the
  figures ran on, and the scheduling noise no client can beat there.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import socket
import threading
import time
import urllib.request
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import psutil

from bootbench.server.launcher import ReferenceServer
from bootbench.stats import summarize
from wire_capture import WireCapture, read_streams, stamp_rows

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PROFILES = {
    "short": {"setup_delay": "uniform:20:40", "first_audio_delay": "uniform:60:100"},
    "call": {"setup_delay": "uniform:100:300", "first_audio_delay": "uniform:300:900"},
}
"""1 user runs the short profile (the hardest case for efficiency); concurrency levels run call-like delays,
so that N users mean N sessions at a real service's pace rather than N times its request rate."""
WAIT_MS = 100.0
SEED = 7
RUN_TIMEOUT = 240.0
CLIENTS = ("bootbench", "probe", "raw", "wire")
"""bootbench as shipped; bootbench judged by a packet capture's kernel stamps (bench/probe_locustfile.py,
bench/wire_capture.py); the raw python-socketio client with kernel stamps; the raw-socket client timed by kernel
stamps alone."""
FOREIGN_PREFIXES = ("LOCUST_", "AIVOCO_", "OPENAI_", "GEMINI_", "GOOGLE_", "AZURE_", "XAI_", "BOOTBENCH_")
"""Variables of the developer's shell that would change what a client run does (bootbench options, keys).
The tests keep the same list (tests/support/processes.py), so both run bootbench in the same environment."""


class Scraper:
    """GETs a bootbench process's ``/metrics`` every ``every`` seconds (as a Prometheus would), timing each scrape."""

    def __init__(self, url: str, every: float) -> None:
        self.url, self.every = url, every
        self.durations_ms: list[float] = []
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.perf_counter_ns()
            try:
                with self._opener.open(self.url, timeout=5) as response:
                    response.read()
                self.durations_ms.append((time.perf_counter_ns() - began) / 1e6)
            except OSError:  # not serving yet, or already gone
                pass
            self._stop.wait(self.every)

    def stop(self) -> dict:
        """Stop scraping; how many scrapes answered and how long they took (ms)."""
        self._stop.set()
        self._thread.join()
        times = sorted(self.durations_ms)
        return {"every_s": self.every, "scrapes": len(times),
                "median_ms": round(times[len(times) // 2], 3) if times else None,
                "max_ms": round(times[-1], 3) if times else None}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without bootbench options and API keys, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    env.update(extra or {})
    return env


class Monitor:
    """Samples CPU time and RSS of the client and the server, and the whole machine's busy CPU, every 0.2 s."""

    def __init__(self, client: psutil.Process, server: psutil.Process) -> None:
        self.client, self.server = client, server
        self.rows: list[tuple[int, float, int, float, float, float]] = []
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
                system = times.system + times.children_system
                self.rows.append((time.perf_counter_ns(), cpu, rss, server.user + server.system, busy, system))
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
            "client_system_ms_per_cycle": round(1000 * (last[5] - first[5]) / sessions, 3) if sessions else None,
            "client_rss_mib": round(max(r[2] for r in inside) / 2**20, 1),
        }


def start_server(profile: str, ground_truth: Path, realtime: bool = False) -> ReferenceServer:
    """The reference server with :data:`PROFILES` ``[profile]``, no cold penalty, its truth in ``ground_truth``.

    ``realtime`` starts it (and every thread it starts) under SCHED_FIFO.
    """
    if realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))  # inherited by the server process
    try:
        return ReferenceServer.start(**PROFILES[profile], cold_penalty=0, ground_truth=ground_truth, seed=SEED)
    finally:
        if realtime:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def run_client(kind: str, url: str, users: int, iterations: int, work: Path, server: ReferenceServer,
               realtime: bool = False, cpus: set[int] | None = None, scrape_s: float = 0.0,
               locust_args: tuple[str, ...] = ()) -> dict:
    """Run one client to the end; its rows (one per iteration, with the sid), time window and monitor.

    ``realtime`` runs the client under SCHED_FIFO; ``cpus`` pins the client
    process (and every thread it starts) to those cores; ``scrape_s`` > 0
    has a bootbench client (bootbench, probe) serve ``--metrics-port``, scraped
    every ``scrape_s`` seconds while it runs; ``locust_args`` are added to a
    bootbench client's command line (bench/capacity.py's ``--clock``, bench/accuracy.py's ``--with``).
    """
    tag = "-".join(a.lstrip("-") for a in locust_args)
    out = work / f"{kind}-{users}{'-rt' if realtime else ''}{'-' + tag if tag else ''}.jsonl"
    env = clean_env({"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)})
    if kind in ("bootbench", "probe"):
        if kind == "probe":
            locustfile = BENCH / "probe_locustfile.py"
        else:
            locustfile = ROOT / "locustfile.py" if users == 1 else BENCH / "sid_locustfile.py"
        env["BOOTBENCH_SID_LOG" if kind == "bootbench" else "BOOTBENCH_PROBE_LOG"] = str(out)
        argv = [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users),
                "-r", str(users), "-i", str(iterations), "-H", url, "--results-dir", str(work / "results"),
                "--stop-timeout", "15", *locust_args]
        if scrape_s > 0:
            metrics_port = free_port()
            argv += ["--metrics-port", str(metrics_port)]
    else:
        argv = [sys.executable, str(BENCH / f"{kind}_client.py"), url, "--users", str(users),
                "--iterations", str(iterations), "--out", str(out)] + (["--kernel-stamps"] if kind == "raw" else [])
    capture = WireCapture.start(server.port, work / f"{out.stem}.pcap") if kind == "probe" else None
    started = time.perf_counter_ns()

    def prepare() -> None:
        if realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        if cpus:
            os.sched_setaffinity(0, cpus)

    try:
        proc = psutil.Popen(argv, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=prepare if realtime or cpus else None)
    except BaseException:
        if capture is not None:  # the client never ran: do not leave tcpdump running
            capture.stop()
        raise
    monitor = Monitor(proc, psutil.Process(server.pid))
    scraper = (Scraper(f"http://127.0.0.1:{metrics_port}/metrics", scrape_s)
               if scrape_s > 0 and kind in ("bootbench", "probe") else None)
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise RuntimeError(f"{kind} at {users} users did not finish within {RUN_TIMEOUT:g} s")
    finally:
        monitor.stop()
        scrapes = scraper.stop() if scraper is not None else None
        captured = capture.stop() if capture is not None else None
    ended = time.perf_counter_ns()
    if kind in ("bootbench", "probe"):
        rows = _locust_rows(kind, users, out, stdout, stderr, proc.returncode)
        if capture is not None:
            stamp_from_capture(captured, rows, capture.path, server.port)
            capture.path.unlink()  # hundreds of MB at 500 sessions; the rows keep what it told
    else:
        if proc.returncode != 0:
            raise RuntimeError(f"{kind} client at {users} users failed (exit {proc.returncode}):\n{stderr[-2000:]}")
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    return {"rows": rows, "started": started, "ended": ended, "monitor": monitor,
            "wall_s": (ended - started) / 1e9, "exit": proc.returncode, "scrapes": scrapes, "capture": captured}


def stamp_from_capture(captured: dict, rows: list[dict], path: Path, server_port: int) -> None:
    """Give the probe's rows their capture stamps (``captured["stamped_rows"]``: how many got both), unless the
    kernel dropped packets of the capture: then its streams have gaps (a message missing, or the next one's stamp
    in its place), no row is stamped, and the run's client-side figures are missing rather than wrong."""
    if captured.get("dropped by kernel"):
        captured["stamped_rows"] = 0
        print(f"  the packet capture lost {captured['dropped by kernel']} packets: no client-side figures for this "
              f"run", file=sys.stderr)
        return
    captured["stamped_rows"] = stamp_rows(rows, read_streams(path, server_port))


def _locust_rows(kind: str, users: int, log: Path, stdout: str, stderr: str, returncode: int) -> list[dict]:
    """A Locust run's samples (metrics.json), each with its sid (and the probe's port and stamps) from ``log``."""
    lines = [line for line in stdout.strip().splitlines() if line.strip()]
    folder = Path(lines[-1].strip()) if lines else None
    if folder is None or not (folder / "metrics.json").is_file():
        raise RuntimeError(f"bootbench at {users} users left no results (exit {returncode}):\n{stderr[-2000:]}")
    rows = json.loads((folder / "metrics.json").read_text())["samples"]
    if kind == "probe":
        stamps = {r["iteration"]: r for r in map(json.loads, log.read_text().splitlines())}
        for row in rows:
            extra = stamps.get(row["iteration"], {})
            row.update(sid=extra.get("sid"), ready=extra.get("ready"), audio=extra.get("audio"),
                       cycle_start=extra.get("cycle_start"), port=extra.get("port"),
                       realtime_offset_ns=extra.get("realtime_offset_ns"))
    elif users > 1:  # one user runs the plain locustfile, which logs no sid: matching takes the only one
        sids = {r["iteration"]: r["sid"] for r in map(json.loads, log.read_text().splitlines())}
        for row in rows:
            row["sid"] = sids.get(row["iteration"])
    return rows


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
    """Whether this process may use SCHED_FIFO (root or CAP_SYS_NICE)."""
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
    stats = summarize(waits, intervals=False)
    return {"n": len(waits), "median": round(stats["median"], 3), "p99": round(stats["p99"], 3),
            "max": round(stats["max"], 3)}


def machine() -> dict:
    """The CPU, memory, kernel, library versions, date and load average the figures were taken with."""
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
