"""In-process runs against a (possibly shared) reference server, read with the ground truth of their own sessions.

A reference server cached for the whole test session serves many runs, so a
run reads only the sessions that started while it ran (the server stamps
``t_ns`` with ``time.perf_counter_ns()``, the system-wide monotonic clock on
Linux, so the test process can bound them), and the server's counters as a
difference of ``/stats`` before and after.

    run = ground_truth_run(server, tmp_path, "-i", "3", "--provider", "openai")
    for sample, session in zip(run.samples, run.sessions):
        assert sample["first_response_ms"] == pytest.approx(session["measured"]["first_response_ms"], abs=10)
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootbench.server.launcher import ReferenceServer
from support import provider_table
from support.inprocess import Planned, headless_run, headless_runs
from support.processes import read_jsonl, run_locust

SHARED_LEADING_MS = 230.0
SHARED_GREETING_MS = 50.0
SHARED_RUN_SERVER = dict(setup_delay="30", first_audio_delay="120", warm_first_audio_delay="40", cold_penalty=0,
                         reply_ms=200, extra_args=["--leading-silence-ms", str(SHARED_LEADING_MS)])
"""The reference server of the shared burst runs: fixed setup, cold and warm delays, 230 ms of leading silence.

No greeting here: at burst pace the answer pre-empts an OpenAI or Gemini greeting before it starts, and an
Aivoco client cannot tell a greeting from the answer (the protocol has no response ids). Turns are fine with
leading silence at burst pace: the clip is one message, so the server's turn ends where it begins. (At real-time
pace with ``--reply-after first-input`` Aivoco's turns are negative, about -840 ms: the server answers 120 ms
after a turn's first chunk while the 1 s clip is still streaming, and measures from the turn's last chunk; that
is the "-830 ms" first seen here, and why the real-time runs answer Aivoco at the end of the turn.)
"""
SHARED_RUN_ARGS = ("-i", "4", "--turns", "3")
SHARED_REALTIME_SERVER = dict(setup_delay="30", first_audio_delay="80", cold_penalty=0,
                              extra_args=["--leading-silence-ms", str(SHARED_LEADING_MS)])
"""The reference server of the shared real-time runs: fixed delays and 230 ms of leading silence; for the
providers in :data:`GREETING_PROVIDERS` a greeting 50 ms after the session is ready (over long before the 1 s
clip has streamed, so it never overlaps the answer), for Aivoco the answer after the end of the turn."""
SHARED_REALTIME_ARGS = ("-i", "2", "--pace", "realtime")
GREETING_PROVIDERS = provider_table.GREETING_PROVIDERS
"""Protocols whose client tells a greeting from the answer (response ids, a turn that was not asked for, or a turn
begun before the service said it heard the caller's): the shared real-time run greets them."""
PROVIDER_ARGS: dict[str, tuple[str, ...]] = provider_table.RUN_ARGS
"""What a provider needs in every run (tests/support/provider_table.py ``RUN_ARGS``)."""
GREETING_ARGS: dict[str, tuple[str, ...]] = {"ultravox": ("--provider-option", "first_speaker=agent")}
"""What a provider needs in the shared real-time run to be greeted: an Ultravox call greets when the agent speaks
first (the service's default; bootbench's is the user)."""


def shared_server_options(provider: str, pace: str) -> dict[str, Any]:
    """The reference server options of the shared run for ``provider`` at ``pace`` ("burst" or "realtime")."""
    if pace == "burst":
        return SHARED_RUN_SERVER
    if pace != "realtime":
        raise ValueError(f"no shared run at pace {pace!r}")
    options = dict(SHARED_REALTIME_SERVER, extra_args=list(SHARED_REALTIME_SERVER["extra_args"]))
    if provider in GREETING_PROVIDERS:
        options["extra_args"] += ["--greeting-ms", str(SHARED_GREETING_MS)]
    else:  # Aivoco (no greeting told apart), answered at the end of the turn as the embedded server does at this
        # pace (an answer from the first chunk comes before the input ended and has no input phases:
        # tests/test_answer_overlap.py)
        options["extra_args"] += ["--reply-after", "end-of-turn"]
    return options


def shared_run_args(pace: str, provider: str = "") -> tuple[str, ...]:
    """The bootbench options of the shared run at ``pace`` for ``provider``."""
    args = SHARED_RUN_ARGS if pace == "burst" else (*SHARED_REALTIME_ARGS, *GREETING_ARGS.get(provider, ()))
    return (*args, *PROVIDER_ARGS.get(provider, ()))


SHARED_PROVIDERS = provider_table.IN_SHARED_RUNS
"""The providers whose shared runs the tests read (tests/conftest.py ``shared_ground_truth_run``)."""
SIDE_BY_SIDE = {"burst": 4, "realtime": 1}
"""How many providers' shared runs at a pace run at once, in one process (``ground_truth_runs``).

A burst run is mostly waiting for its streamed replies: four at once take 26 s where the seven one after another
took 57, and every sample stayed within 10 ms of its session in 4 trials (one at a time: within 7 ms). A real-time
run streams its clip while the service answers, and side by side the greeting providers' first responses moved
by up to 11 ms (alone: 3 ms), which their 10 ms bound does not allow: one at a time."""


def side_by_side(provider: str, pace: str) -> tuple[str, ...]:
    """The providers whose shared runs at ``pace`` run together with ``provider``'s (``provider`` alone if it is
    not one of :data:`SHARED_PROVIDERS`)."""
    if provider not in SHARED_PROVIDERS:
        return (provider,)
    size = SIDE_BY_SIDE.get(pace, 1)
    start = SHARED_PROVIDERS.index(provider) // size * size
    return SHARED_PROVIDERS[start:start + size]


FIXED_RUN_SERVER = dict(setup_delay="30.0", first_audio_delay="80.0", cold_penalty=0)
"""The reference server of fixed delays that test_accuracy, test_boot_run and test_providers start runs against."""
HOSTILE = '<script>alert("x")</script> & "quotes"'
"""A system message that must come out escaped wherever a page shows it (tests/test_report.py)."""
FIXED_RUN_ARGS = ("-i", "20", "--system-message", HOSTILE)
"""The shared fixed run: 20 iterations of one Aivoco user at burst pace, with a system message full of markup
(tests/conftest.py ``shared_fixed_run``)."""
FIXED_RUN_PROGRESS_S = 0.5
"""Its headless progress lines come every 0.5 s instead of every 5 s, so that several come during the ~4 s run."""


@dataclass
class GroundTruthRun:
    """A finished in-process run: its metrics.json, result folder, and the server's records of its sessions."""

    metrics: dict[str, Any]
    folder: Path
    sessions: list[dict[str, Any]]
    """The server's records of this run's sessions (``session`` not None), in the order they started."""
    records: list[dict[str, Any]]
    """Every record the server wrote during the run (also connections' records outside a session)."""
    violations: int
    """Protocol violations the server counted during this run."""
    notes: int
    """What a careful client should not do, the server noted during this run (bootbench's drivers: none)."""
    outcomes: Counter = field(default_factory=Counter)
    """Session outcomes the server counted during this run."""
    request_counts: dict[str, int] = field(default_factory=dict)
    """Locust's own request count per request name (what locust_stats.csv's "Request Count" shows)."""
    stdout: str = ""
    """What the run printed (the console summary, the result folder)."""
    stderr: str = ""
    """What the run wrote to stderr (in-process: ``sys.stderr`` only; log records go to pytest's capture)."""
    exit_code: int = 0
    """The process's exit code (in-process: what Locust's main would exit with, ``environment.process_exit_code``)."""
    log: list[str] = field(default_factory=list)
    """In-process: the ``bootbench`` loggers' records, ``name: message``, in order (tests/support/inprocess.py)."""

    @property
    def samples(self) -> list[dict[str, Any]]:
        """metrics.json's samples in iteration order."""
        return sorted(self.metrics["samples"], key=lambda s: s["iteration"])

    def ok_sessions(self) -> list[dict[str, Any]]:
        return [s for s in self.sessions if s["outcome"] == "ok"]


def records_between(server: ReferenceServer, start_ns: int, end_ns: int, timeout: float = 5.0) -> list[dict]:
    """The server's records of sessions started within [start_ns, end_ns], by start; waits for late writes.

    A record is written when its session ends; a record without ``start_received`` (a connection's violations
    outside any session) is taken by its wall position: it counts when it appears after the run began.
    """
    def started_within(record: dict) -> bool:
        started = record["t_ns"]["start_received"]
        return started is not None and start_ns <= started <= end_ns

    deadline = time.monotonic() + timeout
    stats = server.stats()
    while True:
        records = read_jsonl(server.ground_truth) if server.ground_truth.exists() else []
        mine = [r for r in records if started_within(r)]
        # /stats counts every ended session; the file has it once its line is flushed
        if stats["active"] == 0 or time.monotonic() > deadline:
            return sorted(mine, key=lambda r: r["t_ns"]["start_received"])
        time.sleep(0.02)
        stats = server.stats()


def ground_truth_run(server: ReferenceServer, results_dir: Path, *argv: str, users: int = 1,
                     environ: dict[str, str] | None = None, timeout: float = 90,
                     in_subprocess: bool = False, python: str | None = None, **options: Any) -> GroundTruthRun:
    """Run bootbench in-process with ``argv`` against ``server``; the run with the ground truth of its own sessions.

    The process environment is cleaned of bootbench options and keys (as for a subprocess run), plus ``environ``;
    ``options`` are :func:`support.inprocess.headless_run`'s (``report``, ``progress_every``, ``cwd``).
    ``in_subprocess``: a real ``locust --headless`` process instead (its CSVs under ``results_dir.parent``), run by
    ``python`` when given (a venv with a plugin installed).
    """
    before = server.stats()
    if in_subprocess:
        start_ns = time.perf_counter_ns()
        finished = run_locust("-u", str(users), *argv, "-H", server.url, "--results-dir", str(results_dir),
                              "--csv", str(results_dir.parent / "locust"), cwd=results_dir.parent, env=environ,
                              timeout=timeout, **({"python": python} if python else {}))
        end_ns = time.perf_counter_ns()
        assert finished.returncode in (0, 1), finished.stderr[-3000:]
        with open(results_dir.parent / "locust_stats.csv") as f:
            counts = {row["Name"]: int(row["Request Count"]) for row in csv.DictReader(f)}
        return _read_back(server, before, start_ns, end_ns, finished.metrics, finished.folder, counts,
                          finished.stdout, finished.stderr, finished.returncode)
    start_ns = time.perf_counter_ns()
    done = headless_run(*argv, host=server.url, results_dir=results_dir, users=users, environ=environ, timeout=timeout,
                        **options)
    end_ns = time.perf_counter_ns()
    counts = {entry.name: entry.num_requests for entry in done.env.stats.entries.values()}
    return _read_back(server, before, start_ns, end_ns, done.metrics, done.folder, counts, done.stdout, done.stderr,
                      done.exit_code, done.log)


def ground_truth_runs(plans: dict[str, tuple[ReferenceServer, Path, tuple[str, ...]]],
                      environ: dict[str, str] | None = None, timeout: float = 90) -> dict[str, GroundTruthRun]:
    """In-process runs side by side, one per provider (``plans``: provider -> server, results folder, argv with its
    ``--provider``); each with the ground truth of its own sessions (tests/support/inprocess.py ``headless_runs``).

    Runs against one server at the same time share its time window, so a run's sessions are also those of its
    protocol (every provider here has its own), and its violations, notes and outcomes are counted from those
    records; that each server's counters grew by exactly what its runs' records hold is asserted.
    """
    servers = {id(server): server for server, _, _ in plans.values()}
    before = {key: server.stats() for key, server in servers.items()}
    start_ns = time.perf_counter_ns()
    done = headless_runs({provider: Planned(argv, results_dir, host=server.url)
                          for provider, (server, results_dir, argv) in plans.items()}, environ=environ, timeout=timeout)
    end_ns = time.perf_counter_ns()
    records = {key: records_between(server, start_ns, end_ns) for key, server in servers.items()}
    runs = {}
    for provider, (server, _, _) in plans.items():
        run = done[provider]
        mine = [r for r in records[id(server)] if r["protocol"] == provider]
        counts = {entry.name: entry.num_requests for entry in run.env.stats.entries.values()}
        sessions = [r for r in mine if r["session"] is not None]
        runs[provider] = GroundTruthRun(
            metrics=run.metrics, folder=run.folder, sessions=sessions, records=mine,
            violations=sum(r["violation_count"] for r in mine), notes=sum(r["note_count"] for r in mine),
            outcomes=Counter(r["outcome"] for r in sessions), request_counts=counts, stdout=run.stdout,
            stderr=run.stderr, exit_code=run.exit_code, log=run.log)
    for key, server in servers.items():
        after = server.stats()
        for counter in ("violations", "notes"):
            counted = sum(getattr(runs[provider], counter) for provider, plan in plans.items() if plan[0] is server)
            assert after[counter] - before[key][counter] == counted, (counter, after, before[key], counted)
    return runs


def _read_back(server: ReferenceServer, before: dict, start_ns: int, end_ns: int, metrics: dict, folder: Path,
               counts: dict[str, int], stdout: str, stderr: str, exit_code: int,
               log: list[str] | None = None) -> GroundTruthRun:
    records = records_between(server, start_ns, end_ns)
    after = server.stats()
    outcomes = Counter(after["outcomes"])
    outcomes.subtract(before["outcomes"])
    return GroundTruthRun(metrics=metrics, folder=folder,
                          sessions=[r for r in records if r["session"] is not None], records=records,
                          violations=after["violations"] - before["violations"],
                          notes=after["notes"] - before["notes"], outcomes=+outcomes,
                          request_counts=counts, stdout=stdout, stderr=stderr,
                          exit_code=exit_code, log=log or [])


def written_sessions(server: ReferenceServer, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The server's ground-truth lines of sessions (not of refused connections), once ``count`` are written.

    The server writes a session's line after the session is over on its side, which can be a moment after
    the client has seen its stop acknowledged: reading the file right then races the write.
    """
    deadline = time.monotonic() + timeout
    while True:
        lines = [t for t in read_jsonl(server.ground_truth) if t["session"] is not None] \
            if server.ground_truth.exists() else []
        if len(lines) >= count:
            return lines
        assert time.monotonic() < deadline, f"{len(lines)} of {count} sessions' ground truth written in {timeout:g} s"
        time.sleep(0.02)
