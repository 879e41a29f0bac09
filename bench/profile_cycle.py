"""Where one worker process's CPU goes per cycle: py-spy on bootbench at N sessions, the shares by part of the cycle.

    python bench/profile_cycle.py --users 300                      # needs py-spy (pip install py-spy) and root
    python bench/profile_cycle.py --users 500 --realtime --top 40 --out /tmp/profile

It starts the reference server (call-like delays, as ``bench/capacity.py``)
pinned to one core and one headless Locust process running bootbench as
shipped (``locustfile.py``, no ``--processes``) pinned to the other, waits
until every user has started (``--delay`` s), then attaches
``py-spy record --nonblocking`` to the Locust process for ``--duration`` s
(py-spy itself is not pinned: it runs where the scheduler puts it), then
stops the run (SIGTERM: Locust's own stop, bootbench writes what finished). It
prints the CPU per cycle over the sampled window (the process's CPU time /
the samples that started in it, from their ``started_at``) and, from the
collapsed stacks, the share of the sampled CPU of each :data:`PARTS` entry
(inclusive: a stack counts for the first part, in table order, one of
whose frames matches) and the leaf functions that took most. The raw
stacks are kept in ``--out`` (``py-spy.txt``) for a closer look.

py-spy's samples of an idle thread (blocked in ``epoll_wait`` or a lock)
are left out by py-spy itself, so the shares are of the time the process
ran Python or C code.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy_runs import ROOT, clean_env, realtime_allowed  # noqa: E402
from capacity import CLIENT_CORE, SERVER_CORE, pinned_server  # noqa: E402
from bootbench.providers.kernel_clock import ArrivalReader  # noqa: E402

PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("Locust request events", ("_fire_events",)),
    ("recording a sample (samples.jsonl, run log)", ("RunRecorder.add",)),
    ("live statistics (progress line)", ("_report_every", "snapshot (bootbench/stats")),
    ("tickets, shipping, the master's bookkeeping", ("ship_sample", "request_ticket", "MasterRun.", "serve_master")),
    ("audible detector", ("audible.py",)),
    ("reply audio base64", ("_decode_audio",)),
    ("Socket.IO / Engine.IO packet decode", ("socketio/packet.py", "TolerantPacket.decode", "engineio/packet.py")),
    ("bootbench's receive handlers", ("AivocoDriver._on_",)),
    ("receiving (WebSocket frames, read loop)", ("_read_loop_websocket", "recv_data", "recv_frame", "recv_strict",
                                                 "_receive_packet")),
    ("sending (encode, frame, mask, write)", ("send_frame", "_write_loop", "_send_packet", "Client.emit",
                                              "emit_prepared", "Client.send (engineio")),
    ("the cycle's own code, session state", ("bootbench/user.py", "bootbench/providers/")),
    ("Locust's task loop and waits", ("locust/user/",)),
    ("gevent hub, timeouts, switches", ("gevent", "greenlet", "hub.py")),
]
"""The parts of a cycle's CPU, by frames (substrings of py-spy's ``function (file:line)``); first match wins."""


def part_of(stack: str) -> str:
    """The :data:`PARTS` name of one collapsed stack (``frame;frame;...`` outermost first), or ``other``."""
    for name, patterns in PARTS:
        if any(pattern in stack for pattern in patterns):
            return name
    return "other"


WAITING_LEAVES = (f"{ArrivalReader.run.__qualname__} (",)
"""Leaf frames of threads that wait in the kernel: the kernel clock's reader threads sit in ``recvmsg`` (one per
connection, 500 at 500 sessions), and py-spy's ``--nonblocking`` sampling cannot tell they are idle, so they took
83 % of the stacks and left the greenlets' main thread about 1/500 of them. Their own Python work between two
reads shows under the functions it calls; the lines of the loop itself are left out with the wait. Named from the
function, so that a rename of it cannot silently let the waits back in (it did once: ``_run`` became ``run``)."""


def read_collapsed(path: Path) -> tuple[Counter, int]:
    """py-spy's raw output: stack -> samples, without the stacks of threads waiting in the kernel; and how many
    samples those were."""
    stacks: Counter = Counter()
    waiting = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        if stack.rsplit(";", 1)[-1].startswith(WAITING_LEAVES):
            waiting += int(count)
        else:
            stacks[stack] += int(count)
    return stacks, waiting


def shares(stacks: Counter) -> dict[str, float]:
    """Each part's share of every sample (0..1), largest first."""
    total = sum(stacks.values()) or 1
    parts: Counter = Counter()
    for stack, count in stacks.items():
        parts[part_of(stack)] += count
    return {name: round(count / total, 4) for name, count in parts.most_common()}


def leaves(stacks: Counter, top: int) -> list[tuple[str, float]]:
    """The innermost Python frames that took most of the samples (share 0..1)."""
    total = sum(stacks.values()) or 1
    counts: Counter = Counter()
    for stack, count in stacks.items():
        counts[stack.rsplit(";", 1)[-1]] += count
    return [(frame, round(count / total, 4)) for frame, count in counts.most_common(top)]


def inclusive(stacks: Counter, top: int) -> list[tuple[str, float]]:
    """Frames by the share of samples whose stack holds them (each frame counted once per stack)."""
    total = sum(stacks.values()) or 1
    counts: Counter = Counter()
    for stack, count in stacks.items():
        for frame in set(stack.split(";")):
            counts[frame] += count
    return [(frame, round(count / total, 4)) for frame, count in counts.most_common(top)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--cycles", type=int, default=60, help="cycles per user (default 60: the run goes on well after py-spy is done)")
    parser.add_argument("--delay", type=float, default=0.0,
                        help="seconds before py-spy attaches (default: users / 50 + 3, once every user runs)")
    parser.add_argument("--duration", type=int, default=10, help="seconds py-spy samples (default 10)")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second (default 250)")
    parser.add_argument("--realtime", action="store_true", help="server and Locust under SCHED_FIFO")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread that holds the GIL (py-spy --gil): the Python work, without the "
                             "hub's or the reader threads' waits")
    parser.add_argument("--locustfile", default=str(ROOT / "locustfile.py"))
    parser.add_argument("--top", type=int, default=25, help="leaf and inclusive frames to list (default 25)")
    parser.add_argument("--out", default="", help="folder for py-spy.txt and profile.json (default: a temporary one)")
    args = parser.parse_args()
    if shutil.which("py-spy") is None and not (Path(sys.executable).parent / "py-spy").exists():
        print("profile_cycle.py: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    if args.realtime and not realtime_allowed():
        print("profile_cycle.py: --realtime needs the privilege to use SCHED_FIFO", file=sys.stderr)
        return 2
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bootbench-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bootbench-profile-run-"))
    pinned = len(os.sched_getaffinity(0)) >= 2
    server = pinned_server(SERVER_CORE if pinned else None, args.realtime)

    def prepare() -> None:
        if args.realtime:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
        if pinned:
            os.sched_setaffinity(0, {CLIENT_CORE})

    env = clean_env({"PYTHONPATH": str(ROOT)})
    argv = [sys.executable, "-m", "locust", "-f", args.locustfile, "--headless", "-u", str(args.users),
            "-r", str(args.users), "-i", str(args.users * args.cycles), "-H", server.url,
            "--results-dir", str(work / "results"), "--stop-timeout", "15"]
    locust = None
    try:
        locust = psutil.Popen(argv, env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              preexec_fn=prepare)
        time.sleep(args.delay or args.users / 50 + 3)
        raw = out / "py-spy.txt"
        cpu_before, wall_before = locust.cpu_times(), time.time()
        spy = subprocess.run([pyspy, "record", "--nonblocking", *(["--gil"] if args.gil else []),
                              "--format", "raw", "--rate", str(args.rate),
                              "--duration", str(round(args.duration)), "--pid", str(locust.pid), "-o", str(raw)],
                             capture_output=True, text=True, timeout=args.duration + 60)
        if spy.returncode != 0:
            locust.kill()
            print(f"profile_cycle.py: py-spy failed (exit {spy.returncode}):\n{spy.stderr[-3000:]}", file=sys.stderr)
            return 1
        cpu_after, wall_after = locust.cpu_times(), time.time()
        locust.terminate()  # enough cycles are in: Locust stops the run its way and bootbench writes what finished
        stdout, _ = locust.communicate(timeout=900)
    finally:
        if locust is not None and locust.poll() is None:
            locust.kill()
        server.stop()
    folder = Path(stdout.strip().splitlines()[-1])
    samples = json.loads((folder / "metrics.json").read_text())["samples"]
    started = [datetime.fromisoformat(s["started_at"]).timestamp() for s in samples]
    cycles = sum(1 for t in started if wall_before <= t <= wall_after)
    cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    stacks, waiting = read_collapsed(raw)
    result = {
        "users": args.users, "realtime": args.realtime, "window_s": round(wall_after - wall_before, 2),
        "cycles_in_window": cycles, "cpu_s": round(cpu_s, 3),
        "cpu_ms_per_cycle": round(1000 * cpu_s / cycles, 3) if cycles else None,
        "cores": round(cpu_s / (wall_after - wall_before), 3), "failed": sum(1 for s in samples if not s["ok"]),
        "samples": sum(stacks.values()), "waiting_samples": waiting, "parts": shares(stacks), "leaves": leaves(stacks, args.top),
        "inclusive": inclusive(stacks, args.top), "load_average": os.getloadavg(),
    }
    (out / "profile.json").write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.users} users: {result['cpu_ms_per_cycle']} ms CPU/cycle over {result['window_s']} s "
          f"({cycles} cycles, {result['cores']} cores, py-spy attached), {result['failed']} failed, "
          f"{result['samples']} stacks ({waiting} of reader threads waiting in the kernel left out), "
          f"load {result['load_average'][0]:.2f}")
    print("\nshare of sampled CPU by part of the cycle:")
    for name, share in result["parts"].items():
        print(f"  {100 * share:5.1f} %  {name}")
    print("\nleaf frames:")
    for frame, share in result["leaves"]:
        print(f"  {100 * share:5.1f} %  {frame}")
    print("\ninclusive frames:")
    for frame, share in result["inclusive"]:
        print(f"  {100 * share:5.1f} %  {frame}")
    print(f"\nraw stacks: {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
