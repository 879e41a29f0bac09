"""How close bootbench comes to the truth, what the harness adds, how far one worker scales.

    python bench/accuracy.py            # full run, about 6 minutes
    python bench/accuracy.py --quick    # about 2 minutes
    python bench/accuracy.py --quick --scrape 1 --out /tmp/scraped   # the same, /metrics scraped every second

Against the reference server (known injected delays, ground-truth log), for
each concurrency level it runs, one after the other on the same server:

- **bootbench**: a real headless Locust run, one worker process;
- **probe**: the same under a packet capture that stamps the timed messages'
  arrival from outside the client (``bench/probe_locustfile.py``,
  ``bench/wire_capture.py``; needs tcpdump and root), to split its error into
  server and client;
- **raw**: the same cycle in a few lines of python-socketio, gevent-patched
  like Locust (``bench/raw_client.py``), with the same transport options;
- **wire**: the same cycle on raw sockets timed by the kernel's receive
  stamps (``bench/wire_client.py``): only the server's own jitter is left.

Each iteration is matched to the server's record of the same session (the
Socket.IO sid and the order of sessions on it; the client runs are told
apart by time, every process here sharing CLOCK_MONOTONIC), and the error is
the client's interval minus the server's own. It writes ``bench/results.json``
and ``bench/RESULTS.md``. Linux, loopback only; it stops by itself.

``--scrape S`` has the two bootbench clients serve Prometheus's ``/metrics``
(``--metrics-port``) and scrapes it every S seconds while they run, as a
Prometheus would: compare its report with one without, to see what scraping
costs the timing figures (each client's entry records its scrapes).

This module is the command line and the order of things; the work is in
``accuracy_runs.py`` (the server, the clients, the machine),
``truth_match.py`` (samples against the ground truth, the error figures)
and ``accuracy_report.py`` (targets, results.json, RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))  # the checkout's bootbench, as the clients get it (PYTHONPATH)

from accuracy_report import report  # noqa: E402
from accuracy_runs import (CLIENTS, PROFILES, SEED, WAIT_MS, machine, realtime_allowed, run_client,  # noqa: E402
                           start_server, wake_floor)
from truth_match import (client_side, efficiency, error_stats, errors, load_truth, match,  # noqa: E402
                         samples_wall_check, server_send_path, steady_pairs)
import wire_capture  # noqa: E402

FULL = {"levels": [1, 10, 50, 100, 200, 300], "single": 100, "realtime_row": True, "floor_samples": 300}
QUICK = {"levels": [1, 50], "single": 60, "realtime_row": False, "floor_samples": 150}


def iterations_for(users: int, single: int) -> int:
    """Iterations at a level: ``single`` for 1 user, else at least 5 per user (and 200)."""
    return single if users == 1 else max(200, 5 * users)


def run_level(users: int, iterations: int, work: Path, realtime: bool = False, scrape_s: float = 0.0,
              options: tuple[str, ...] = ()) -> dict:
    """All clients at one level on one server; ``realtime`` runs them all (server included) under SCHED_FIFO;
    ``scrape_s`` > 0 scrapes the bootbench clients' /metrics that often; ``options`` go on the bootbench clients'
    command line (``--with``)."""
    truth_path = work / f"truth-{users}{'-rt' if realtime else ''}.jsonl"
    profile = "short" if users == 1 else "call"
    server = start_server(profile, truth_path, realtime)
    runs = {}
    try:
        for kind in CLIENTS:
            runs[kind] = run_client(kind, server.url, users, iterations, work, server, realtime, scrape_s=scrape_s,
                                    locust_args=options)
            print(f"  {kind:9s} {users:4d} users: {len(runs[kind]['rows'])} iterations in "
                  f"{runs[kind]['wall_s']:.1f} s", flush=True)
        time.sleep(0.5)
    finally:
        server.stop()
    truth = load_truth(truth_path)
    level: dict = {"users": users, "iterations": iterations, "profile": profile, "realtime": realtime}
    for kind, run in runs.items():
        level[kind] = score(kind, run, truth, users)
    return level


def score(kind: str, run: dict, truth: list[dict], users: int) -> dict:
    """One client run against the truth: its errors, steady errors, resources and what its kind adds."""
    pairs, unmatched = match(run["rows"], truth, run["started"], run["ended"])
    errs = errors(pairs)
    records = [record for _row, record in pairs]
    steady = steady_pairs(pairs)
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
    starts = sorted(r["t_ns"]["start_received"] for r in records)
    if starts:  # CPU and memory over the middle 80 % of the sessions' starts
        lo, hi = starts[len(starts) // 10], starts[(9 * len(starts)) // 10]
        entry["resources"] = run["monitor"].window(lo, hi, sum(1 for s in starts if lo <= s <= hi))
    if users == 1:
        entry["efficiency"] = efficiency(records, WAIT_MS)
        if kind == "bootbench":
            entry["efficiency"]["wall_ms_from_samples_started_at"] = samples_wall_check(run["rows"])
    if kind == "wire":
        entry["server_send_path_ms"] = server_send_path(pairs)
    if run.get("scrapes"):
        entry["scrapes"] = run["scrapes"]
    if kind in ("probe", "raw"):
        entry["client_side"] = client_side(run["rows"])
        steady_ids = {id(row) for row, _rec in steady}
        entry["client_side_steady"] = client_side([row for row in run["rows"] if id(row) in steady_ids])
    return entry


def user_counts(text: str) -> list[int]:
    """``--levels``: comma-separated user counts, each at least 1."""
    try:
        levels = [int(x) for x in text.split(",")]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated user counts of at least 1, got {text!r}")
    return levels


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer levels: about 2 minutes")
    parser.add_argument("--levels", type=user_counts,
                        help="comma-separated user counts (default: 1,10,50,100,200,300; quick: 1,50)")
    parser.add_argument("--out", default=str(BENCH), help="folder for results.json and RESULTS.md (default bench/)")
    parser.add_argument("--scrape", type=float, default=0.0, metavar="S",
                        help="serve /metrics in the bootbench clients and scrape it every S seconds (default: off)")
    parser.add_argument("--with", dest="options", action="append", default=[], metavar="OPTION",
                        help="an option for the bootbench clients' command line, repeatable (--with=--trace): what it "
                             "costs is the difference from a run without (use --out to keep bench/ as it is)")
    parser.add_argument("--report-only", metavar="RESULTS_JSON",
                        help="rewrite the report from a results.json, run nothing")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        try:
            results = json.loads(Path(args.report_only).read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--report-only: cannot read {args.report_only} as results.json ({exc})")
        return report(results, out)
    why = wire_capture.unavailable()
    if why is not None:
        print(f"accuracy.py: {why}", file=sys.stderr)
        return 2
    profile = QUICK if args.quick else FULL
    levels = args.levels or profile["levels"]
    began = time.monotonic()
    info = machine()
    info["wake_floor_ms"] = {"normal": wake_floor(profile["floor_samples"])}
    if profile["realtime_row"] and realtime_allowed():
        info["wake_floor_ms"]["sched_fifo"] = wake_floor(profile["floor_samples"], realtime=True)
    work = Path(tempfile.mkdtemp(prefix="bootbench-accuracy-"))
    results: dict = {"schema": "bootbench/accuracy/v1", "quick": args.quick, "scrape_s": args.scrape,
                     "bootbench_options": list(args.options), "machine": info,
                     "server": {"profiles": PROFILES, "seed": SEED, "wait_ms": WAIT_MS},
                     "levels": []}
    try:
        for users in levels:
            print(f"{users} user(s):", flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")  # a crash keeps the levels run
            results["levels"].append(run_level(users, iterations_for(users, profile["single"]), work,
                                               scrape_s=args.scrape, options=tuple(args.options)))
            if users == 1 and profile["realtime_row"] and realtime_allowed():
                print("1 user, every process under SCHED_FIFO:", flush=True)
                results["levels"].append(run_level(1, profile["single"], work, realtime=True,
                                                   scrape_s=args.scrape, options=tuple(args.options)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_average_end"] = os.getloadavg()
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    return report(results, out)


if __name__ == "__main__":
    sys.exit(main())
