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
Locust process is ``bench/probe_locustfile.py`` (bootbench as shipped,
logging each cycle's connection and recorded stamps) under a packet capture
(``bench/wire_capture.py``: tcpdump, with the least CPU priority, so run as
root with tcpdump installed), whose kernel stamps of the same messages give
the *client-side* error of each iteration as bench/RESULTS.md defines it:
(audio recorded - audio arrival) - (ready recorded - ready arrival), the
part of a ``first_response_ms`` error the client process added. The capture
is outside the client, so it judges either clock: under ``--clock kernel``
what is left is the kernel's merging of segments the client read late.
Figures are from the steady part: cycles that started after
every user had started its first one (the users are spawned at once). CPU per
cycle = the process's CPU time over the steady part / the cycles started in it.

The server writes its ground truth, so each level also has the error
*against the truth*: the client's ``first_response_ms`` minus the server's own
interval for the same session (``truth_match``), which holds the server's
send path as well (at hundreds of sessions, the server's own jitter).

A level holds when its steady client-side p99 is under ``--limit-ms`` (5 ms)
and no cycle failed. Where the kernel dropped packets of the capture (tcpdump, at
the least priority, fell behind for longer than its buffer lasts), the level
keeps its other figures, its client-side cell says how many packets were lost,
and whether it holds is unknown. Each level is bounded (``--cycles`` per user and a time
limit). The machine's load average at the start and end of every level is
recorded: on a shared machine, the numbers are upper bounds. It writes
``bench/capacity.json`` (one entry per ``--label``) and the section
"How many sessions one worker process holds" of ``bench/RESULTS.md``.

Clocks. With ``--clocks kernel,process`` each level runs once per clock, one
after the other (``--clock`` passed to Locust), and the table has a row per
level and clock. That needs bootbench's ``--clock`` option (:func:`clocks_offered`
says whether this checkout has it); without it the only clock is the one
bootbench uses, recorded as ``default``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's bootbench, as its Locust runs get
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy_report import CAPACITY_HEADING  # noqa: E402
from accuracy_runs import BENCH, PROFILES, SEED, WAIT_MS, machine, realtime_allowed, run_client  # noqa: E402
from truth_match import client_side, error_stats, errors, load_truth, match, steady_pairs  # noqa: E402
import wire_capture  # noqa: E402
from bootbench.options import OPTIONS  # noqa: E402
from bootbench.server.launcher import ReferenceServer  # noqa: E402

LIMIT_MS = 5.0
"""The client-side p99 a level must stay under."""
LEVELS = [100, 200, 300, 400, 500]
CYCLES = 8
"""Cycles per user at each level: the first overlaps the connection storm, the rest are the steady part."""
SERVER_CORE, CLIENT_CORE = 1, 0
CLOCK_FLAG = "--clock"
"""bootbench's option that picks the receive clock (issue 23: ``kernel`` or ``process``)."""
DEFAULT_CLOCK = "default"
"""A level run without ``--clock``: whatever clock bootbench uses by itself."""


def clocks_offered() -> tuple[str, ...]:
    """The values bootbench's :data:`CLOCK_FLAG` takes in this checkout; () when it has no such option."""
    for option in OPTIONS:
        if CLOCK_FLAG in option.flags:
            return tuple(getattr(option, "choices", None) or ())
    return ()


def parse_clocks(text: str, offered: tuple[str, ...]) -> list[str]:
    """``--clocks``: a comma-separated list of clocks bootbench offers, or ``default``; ValueError with a sentence."""
    clocks = [c.strip() for c in text.split(",") if c.strip()]
    if not clocks:
        raise ValueError("--clocks names no clock")
    for clock in clocks:
        if clock != DEFAULT_CLOCK and clock not in offered:
            have = f"this checkout's bootbench offers {', '.join(offered)}" if offered else \
                "this checkout's bootbench has no --clock option yet"
            raise ValueError(f"--clocks {clock!r} is not a clock ({have}; 'default' runs without --clock)")
    return clocks


def pinned_server(core: int | None, realtime: bool = False, ground_truth: Path | None = None) -> ReferenceServer:
    """The reference server (call-like delays, no cold penalty) with every thread on ``core`` (under SCHED_FIFO)."""
    mine = os.sched_getaffinity(0)
    if core is not None:
        os.sched_setaffinity(0, {core})  # inherited by the server process and every thread it starts
    if realtime:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    try:
        return ReferenceServer.start(**PROFILES["call"], cold_penalty=0, seed=SEED, ground_truth=ground_truth)
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


def run_level(users: int, cycles: int, work: Path, cores: tuple[int, int] | None, realtime: bool = False,
              clock: str = DEFAULT_CLOCK, limit_ms: float = LIMIT_MS) -> dict:
    """One level: server and Locust pinned apart; the steady error (client-side and against the truth) and CPU.

    ``realtime`` runs both under SCHED_FIFO: other work on their cores no longer delays them. ``clock``
    other than :data:`DEFAULT_CLOCK` is passed to Locust as ``--clock``.
    """
    load_start = os.getloadavg()
    truth_path = work / f"truth-{users}-{clock}.jsonl"
    server = pinned_server(cores[1] if cores else None, realtime, truth_path)
    try:
        run = run_client("probe", server.url, users, users * cycles, work, server, realtime=realtime,
                         cpus={cores[0]} if cores else None,
                         locust_args=() if clock == DEFAULT_CLOCK else (CLOCK_FLAG, clock))
    finally:
        server.stop()
    rows = run["rows"]
    pairs, unmatched = match(rows, load_truth(truth_path), run["started"], run["ended"])
    truth_steady = error_stats(errors(steady_pairs(pairs))["first_response_ms"])
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
    capture_lost = (run.get("capture") or {}).get("dropped by kernel", 0)
    return {
        "users": users, "clock": clock, "iterations": len(rows), "failed": failed, "steady_iterations": len(steady),
        "wall_s": round(run["wall_s"], 1), "exit": run["exit"],
        "client_side_steady": side, "client_side_all": side_all, "truth_steady": truth_steady,
        "unmatched": unmatched, "resources": resources,
        "capture_lost": capture_lost,
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        # unknown (None) where the capture lost packets: no client-side figure to judge the level by
        "holds": None if capture_lost else p99 is not None and p99 < limit_ms and failed == 0,
    }


def holds_up_to(levels: list[dict], clock: str | None = None) -> int | None:
    """The largest level such that it and every lower level held (with ``clock``: that clock's levels only)."""
    best = None
    for level in sorted(levels, key=lambda lv: lv["users"]):
        if clock is not None and level.get("clock", DEFAULT_CLOCK) != clock:
            continue
        if not level["holds"]:
            break
        best = level["users"]
    return best


def holds_by_clock(levels: list[dict]) -> dict[str, int | None]:
    """:func:`holds_up_to` of each clock the levels ran with, in the order they first ran."""
    clocks = list(dict.fromkeys(level.get("clock", DEFAULT_CLOCK) for level in levels))
    return {clock: holds_up_to(levels, clock) for clock in clocks}


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
             "Client-side error as above: (audio recorded - audio arrival) - (ready recorded - ready arrival), "
             "the arrivals from a packet capture (`bench/wire_capture.py`); against the truth: "
             "`first_response_ms` minus the server's own interval "
             "for the same session (it holds the server's send path too); |error| median / p99 (/ max), "
             "steady part only (cycles started once every user had started). `clock`: bootbench's `--clock` "
             "for that row (`default`: none given). "
             "A level holds when the client-side p99 is under the run's limit (5 ms unless said) and no cycle failed. "
             "CPU ms/cycle = the Locust process's CPU time over the steady part / cycles started in it; "
             "`cores` = its CPU time / wall time there (1.0 = its core is saturated); `other cores` = CPU the "
             "rest of the machine used meanwhile (other people's work: noise).",
             "",
             "**The machine was shared with other test runs while these were taken** (see the load averages): "
             "every figure is an upper bound of what the harness costs on a quiet machine.", ""]
    for label, run in document["runs"].items():
        m = run["machine"]
        limit = run.get("limit_ms", LIMIT_MS)
        holds = holds_by_clock(run["levels"])
        held = "; ".join(f"{'' if clock == DEFAULT_CLOCK and len(holds) == 1 else clock + ': '}"
                         f"**{best or 'no tested level'}{' sessions' if best else ''}**" for clock, best in holds.items())
        lines += [f"### {label}", "",
                  f"`{run['command']}` on {m['date']} ({run.get('commit') or 'uncommitted'}): {m['cpu']}, "
                  f"{m['cores']} cores, Python {m['python']}, Locust {m['locust']}, gevent {m['gevent']}; "
                  f"{'server and Locust under SCHED_FIFO' if run.get('realtime') else 'normal scheduling'}, "
                  f"{run['cycles_per_user']} cycles per user. "
                  f"{run.get('note') or ''}".rstrip(), "",
                  f"Holds (client-side p99 < {limit:g} ms at this and every lower level): {held}.", "",
                  "| users | clock | iterations (steady) | failed | client-side median / p99 / max ms "
                  "| vs truth median / p99 ms | CPU ms/cycle | cores | server cores | other cores "
                  "| load avg start -> end | holds |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for lv in run["levels"]:
            err = (lv["client_side_steady"] or {}).get("first_response_error") or {}
            truth = lv.get("truth_steady") or {}
            res = lv["resources"]
            client_side = (f"{err.get('median_abs', '-')} / {err.get('p99_abs', '-')} / {err.get('max_abs', '-')}"
                           if not lv.get("capture_lost") else f"capture lost {lv['capture_lost']} packets")
            lines.append(
                f"| {lv['users']} | {lv.get('clock', DEFAULT_CLOCK)} | {lv['iterations']} ({lv['steady_iterations']}) | "
                f"{lv['failed']} | {client_side} | "
                f"{truth.get('median_abs', '-')} / {truth.get('p99_abs', '-')} | "
                f"{_cell(res, 'client_cpu_ms_per_cycle')} | {_cell(res, 'client_cores')} | "
                f"{_cell(res, 'server_cores')} | {_cell(res, 'other_cores')} | "
                f"{lv['load_average_start'][0]} -> {lv['load_average_end'][0]} | "
                f"{'unknown' if lv['holds'] is None else 'yes' if lv['holds'] else 'no'} |")
        lines.append("")
    return "\n".join(lines)


def write_section(path: Path, document: dict) -> None:
    """Put :func:`section` in RESULTS.md in place of an earlier one (at the end when there is none).

    What follows the earlier one from the next ``## `` heading on (a section written by hand) is kept after it.
    """
    text = path.read_text() if path.is_file() else ""
    at = text.find("\n" + CAPACITY_HEADING)
    head = text if at < 0 else text[:at + 1]
    after = text.find("\n## ", at + 1) if at >= 0 else -1  # a section written by hand after this one stays
    tail = "" if after < 0 else "\n" + text[after + 1:].rstrip("\n") + "\n"
    path.write_text(head.rstrip("\n") + "\n\n" + section(document) + tail)


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
    parser.add_argument("--clocks", default=DEFAULT_CLOCK,
                        help="comma-separated clocks to run each level with, side by side (bootbench's --clock: "
                             "kernel, process); 'default' (the default) passes no --clock")
    parser.add_argument("--limit-ms", type=float, default=LIMIT_MS,
                        help=f"client-side p99 a level must stay under to hold (default {LIMIT_MS:g})")
    args = parser.parse_args()
    try:
        clocks = parse_clocks(args.clocks, clocks_offered())
    except ValueError as exc:
        print(f"capacity.py: {exc}", file=sys.stderr)
        return 2
    try:
        levels = [int(x) for x in args.levels.split(",")]
    except ValueError:
        print(f"capacity.py: --levels must be comma-separated integers, not {args.levels!r}", file=sys.stderr)
        return 2
    why = wire_capture.unavailable()
    if why is not None:
        print(f"capacity.py: {why}", file=sys.stderr)
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
                 "cycles_per_user": args.cycles, "limit_ms": args.limit_ms, "clocks": clocks, "commit": _commit(),
                 "levels": []}
    work = Path(tempfile.mkdtemp(prefix="bootbench-capacity-"))
    began = time.monotonic()
    try:
        for users in levels:
            for clock in clocks:  # side by side: each clock's run of a level right after the other's
                level = run_level(users, args.cycles, work, cores, args.realtime, clock, args.limit_ms)
                run["levels"].append(level)
                _print_level(level)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = os.getloadavg()
    run["elapsed_s"] = round(time.monotonic() - began, 1)
    run["holds_up_to"] = holds_by_clock(run["levels"])
    path = out / "capacity.json"
    document = json.loads(path.read_text()) if path.is_file() else {"schema": "bootbench/capacity/v1", "runs": {}}
    document["runs"][args.label] = run
    path.write_text(json.dumps(document, indent=2) + "\n")
    write_section(out / "RESULTS.md", document)
    print(section(document))
    print("(the machine is shared: with other work running, these numbers are upper bounds)")
    return 0


def _print_level(level: dict) -> None:
    err = (level["client_side_steady"] or {}).get("first_response_error") or {}
    truth = level["truth_steady"]
    print(f"{level['users']:4d} users, clock {level['clock']}: client-side median / p99 {err.get('median_abs')} / "
          f"{err.get('p99_abs')} ms, vs truth {truth.get('median_abs')} / {truth.get('p99_abs')} ms, "
          f"{level['resources'].get('client_cpu_ms_per_cycle')} ms CPU/cycle, "
          f"{level['resources'].get('client_cores')} cores, {level['failed']} failed, "
          f"load {level['load_average_start'][0]} -> {level['load_average_end'][0]}", flush=True)


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
