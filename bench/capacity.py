"""How many concurrent sessions one bootbench worker process holds before its own timing error passes 5 ms p99.

    python bench/capacity.py                          # levels 100,200,300,400,500; about 4 minutes
    python bench/capacity.py --levels 100,200 --label before --cycles 6

For each level N it starts the reference server (call-like delays, as
``bench/accuracy.py``'s concurrency levels) pinned to one core and one
headless Locust process (no ``--processes``: the process that runs the
users) pinned to another, the equivalent of

    taskset -c 1 python -m bootbench.server ...
    taskset -c 0 locust -f bench/probe_locustfile.py --headless -u N -r N -i N*CYCLES -H URL

so that the figure is the harness's and not the two sharing a core. The
Locust process is ``bench/probe_locustfile.py``: bootbench plus kernel
arrival stamps, which give the *client-side* error of each iteration as
bench/RESULTS.md defines it: (audio handler - audio arrival) - (ready handler
- ready arrival), the part of a ``first_response_ms`` error the client
process added. Figures are from the steady part: cycles that started after
every user had started its first one (the users are spawned at once). CPU per
cycle = the process's CPU time over the steady part / the cycles started in it.

A level holds when its steady client-side p99 is under 5 ms and no cycle
failed. Each level is bounded (``--cycles`` per user and a time limit). The
machine's load average at the start and end of every level is recorded: on a
shared machine, the numbers are upper bounds. It writes
``bench/capacity.json`` (one entry per ``--label``) and the section
"How many sessions one worker process holds" of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy_report import CAPACITY_HEADING  # noqa: E402
from accuracy_runs import BENCH, PROFILES, SEED, WAIT_MS, machine, realtime_allowed, run_client  # noqa: E402
from truth_match import client_side  # noqa: E402
from bootbench.server.launcher import ReferenceServer  # noqa: E402

LIMIT_MS = 5.0
"""The client-side p99 a level must stay under."""
LEVELS = [100, 200, 300, 400, 500]
CYCLES = 8
"""Cycles per user at each level: the first overlaps the connection storm, the rest are the steady part."""
SERVER_CORE, CLIENT_CORE = 1, 0


def pinned_server(core: int | None, realtime: bool = False) -> ReferenceServer:
    """The reference server (call-like delays, no cold penalty) with every thread on ``core`` (under SCHED_FIFO)."""
    mine = os.sched_getaffinity(0)
    if core is not None:
        os.sched_setaffinity(0, {core})  # inherited by the server process and every thread it starts
    if realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    try:
        return ReferenceServer.start(**PROFILES["call"], cold_penalty=0, seed=SEED)
    finally:
        if realtime:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        os.sched_setaffinity(0, mine)


def steady_rows(rows: list[dict]) -> tuple[list[dict], int | None]:
    """Rows of cycles that started once every user had started its first one; that instant (perf_counter ns)."""
    first: dict[int, int] = {}
    for row in rows:
        if row.get("cycle_start") is not None:
            first[row["user"]] = min(first.get(row["user"], row["cycle_start"]), row["cycle_start"])
    if not first:
        return [], None
    since = max(first.values())
    return [row for row in rows if row.get("cycle_start") is not None and row["cycle_start"] >= since], since


def run_level(users: int, cycles: int, work: Path, cores: tuple[int, int] | None, realtime: bool = False) -> dict:
    """One level: server and Locust pinned apart; the steady client-side error and CPU of the Locust process.

    ``realtime`` runs both under SCHED_FIFO: other work on their cores no longer delays them.
    """
    load_start = os.getloadavg()
    server = pinned_server(cores[1] if cores else None, realtime)
    try:
        run = run_client("probe", server.url, users, users * cycles, work, server, realtime=realtime,
                         cpus={cores[0]} if cores else None)
    finally:
        server.stop()
    rows = run["rows"]
    steady, since = steady_rows(rows)
    starts = sorted(row["cycle_start"] for row in steady)
    resources: dict = {}
    if len(starts) > 10:
        # the steady part's CPU: from the instant every user runs to the last start of the bulk of cycles
        # (the tail, where users run out of tickets one by one, does less work per second)
        hi = starts[(9 * len(starts)) // 10]
        resources = run["monitor"].window(since, hi, sum(1 for s in starts if s <= hi))
    side = client_side(steady)
    side_all = client_side(rows)
    failed = sum(1 for row in rows if not row.get("ok"))
    p99 = (side.get("first_response_error") or {}).get("p99_abs")
    return {
        "users": users, "iterations": len(rows), "failed": failed, "steady_iterations": len(steady),
        "wall_s": round(run["wall_s"], 1), "exit": run["exit"],
        "client_side_steady": side, "client_side_all": side_all, "resources": resources,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "holds": p99 is not None and p99 < LIMIT_MS and failed == 0,
    }


def holds_up_to(levels: list[dict]) -> int | None:
    """The largest level such that it and every lower level held."""
    best = None
    for level in sorted(levels, key=lambda lv: lv["users"]):
        if not level["holds"]:
            break
        best = level["users"]
    return best


def _cell(level: dict, *path: str):
    value = level
    for key in path:
        value = (value or {}).get(key)
    return "-" if value is None else value


def section(document: dict) -> str:
    """The RESULTS.md section for every labelled run of ``document`` (capacity.json)."""
    lines = [CAPACITY_HEADING, "",
             "Generated by `python bench/capacity.py` (see its docstring). Reference server on 127.0.0.1 pinned to "
             f"core {SERVER_CORE}, one headless Locust process (`bench/probe_locustfile.py`, no `--processes`) "
             f"pinned to core {CLIENT_CORE} (`sched_setaffinity`, as `taskset -c`); server delays "
             f"setup {PROFILES['call']['setup_delay']} ms, first audio {PROFILES['call']['first_audio_delay']} ms, "
             f"{WAIT_MS:g} ms wait, users spawned at once, {CYCLES} cycles per user by default. "
             "Client-side error as above: (audio handler - audio arrival) - (ready handler - ready arrival), "
             "from kernel arrival stamps; steady part only (cycles started once every user had started). "
             f"A level holds when that p99 is under {LIMIT_MS:g} ms and no cycle failed. "
             "CPU ms/cycle = the Locust process's CPU time over the steady part / cycles started in it; "
             "`cores` = its CPU time / wall time there (1.0 = its core is saturated); `other cores` = CPU the "
             "rest of the machine used meanwhile (other people's work: noise).",
             "",
             "**The machine was shared with other test runs while these were taken** (see the load averages): "
             "every figure is an upper bound of what the harness costs on a quiet machine.", ""]
    for label, run in document["runs"].items():
        m = run["machine"]
        lines += [f"### {label}", "",
                  f"`{run['command']}` on {m['date']} ({run.get('commit') or 'uncommitted'}): {m['cpu']}, "
                  f"{m['cores']} cores, Python {m['python']}, Locust {m['locust']}, gevent {m['gevent']}; "
                  f"{'server and Locust under SCHED_FIFO' if run.get('realtime') else 'normal scheduling'}, "
                  f"{run['cycles_per_user']} cycles per user. "
                  f"{run.get('note') or ''}".rstrip(), "",
                  f"Holds (client-side p99 < {LIMIT_MS:g} ms at this and every lower level): "
                  f"**{run['holds_up_to'] or 'no tested level'}{' sessions' if run['holds_up_to'] else ''}**.", "",
                  "| users | iterations (steady) | failed | client-side p99 ms | median / max ms | CPU ms/cycle "
                  "| cores | server cores | other cores | load avg start -> end | holds |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for lv in run["levels"]:
            err = (lv["client_side_steady"] or {}).get("first_response_error") or {}
            res = lv["resources"]
            lines.append(
                f"| {lv['users']} | {lv['iterations']} ({lv['steady_iterations']}) | {lv['failed']} | "
                f"{err.get('p99_abs', '-')} | {err.get('median_abs', '-')} / {err.get('max_abs', '-')} | "
                f"{_cell(res, 'client_cpu_ms_per_cycle')} | {_cell(res, 'client_cores')} | "
                f"{_cell(res, 'server_cores')} | {_cell(res, 'other_cores')} | "
                f"{lv['load_average_start'][0]} -> {lv['load_average_end'][0]} | {'yes' if lv['holds'] else 'no'} |")
        lines.append("")
    return "\n".join(lines)


def write_section(path: Path, document: dict) -> None:
    """Put :func:`section` at the end of RESULTS.md, in place of an earlier one."""
    text = path.read_text() if path.is_file() else ""
    at = text.find("\n" + CAPACITY_HEADING)
    head = text if at < 0 else text[:at + 1]
    path.write_text(head.rstrip("\n") + "\n\n" + section(document))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="comma-separated user counts")
    parser.add_argument("--cycles", type=int, default=CYCLES, help=f"cycles per user per level (default {CYCLES})")
    parser.add_argument("--label", default="current", help="name of this run in capacity.json and RESULTS.md")
    parser.add_argument("--note", default="", help="a sentence shown under the run's heading")
    parser.add_argument("--realtime", action="store_true",
                        help="run the server and the Locust process under SCHED_FIFO (needs the privilege): other "
                             "work on their cores no longer delays them, so a shared machine measures closer to a "
                             "quiet one")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the server and Locust to cores")
    parser.add_argument("--out", default=str(BENCH), help="folder of capacity.json and RESULTS.md (default bench/)")
    args = parser.parse_args()
    try:
        levels = [int(x) for x in args.levels.split(",")]
    except ValueError:
        print(f"capacity.py: --levels must be comma-separated integers, not {args.levels!r}", file=sys.stderr)
        return 2
    if args.realtime and not realtime_allowed():
        print("capacity.py: --realtime needs the privilege to use SCHED_FIFO, which this process lacks",
              file=sys.stderr)
        return 2
    cores = None if args.no_pin or len(os.sched_getaffinity(0)) < 2 else (CLIENT_CORE, SERVER_CORE)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    command = shlex.join(["python", "bench/capacity.py", *sys.argv[1:]])
    run: dict = {"command": command.strip(), "machine": info, "note": args.note, "pinned": cores is not None,
                 "realtime": args.realtime,
                 "cycles_per_user": args.cycles, "limit_ms": LIMIT_MS, "commit": _commit(), "levels": []}
    work = Path(tempfile.mkdtemp(prefix="bootbench-capacity-"))
    began = time.monotonic()
    try:
        for users in levels:
            level = run_level(users, args.cycles, work, cores, args.realtime)
            run["levels"].append(level)
            err = (level["client_side_steady"] or {}).get("first_response_error") or {}
            print(f"{users:4d} users: client-side p99 {err.get('p99_abs')} ms, "
                  f"{level['resources'].get('client_cpu_ms_per_cycle')} ms CPU/cycle, "
                  f"{level['resources'].get('client_cores')} cores, {level['failed']} failed, "
                  f"load {level['load_average_start'][0]} -> {level['load_average_end'][0]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = os.getloadavg()
    run["elapsed_s"] = round(time.monotonic() - began, 1)
    run["holds_up_to"] = holds_up_to(run["levels"])
    path = out / "capacity.json"
    document = json.loads(path.read_text()) if path.is_file() else {"schema": "bootbench/capacity/v1", "runs": {}}
    document["runs"][args.label] = run
    path.write_text(json.dumps(document, indent=2) + "\n")
    write_section(out / "RESULTS.md", document)
    print(section(document))
    print("(the machine is shared: with other work running, these numbers are upper bounds)")
    return 0


def _commit() -> str | None:
    """The checkout's commit, marked ``+changes`` when the bootbench package has uncommitted edits."""
    try:
        git = lambda *a: subprocess.run(["git", "-C", str(BENCH.parent), *a], capture_output=True,  # noqa: E731
                                        text=True, timeout=10).stdout.strip()
        head = git("rev-parse", "--short", "HEAD")
        return (head + (" +changes" if git("status", "--porcelain", "--", "bootbench") else "")) or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
