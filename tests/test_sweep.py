"""Concurrency sweeps (--sweep): levels run one after another and find a reference server's capacity.

The reference server with ``--capacity 3`` queues the fourth concurrent
session until a slot frees (its ground truth records each session's
``queued_ms``); with fixed delays, a sweep 1,2,3,4,6 must find capacity 3.
"""

from __future__ import annotations

import collections
import csv
import math

import pytest

from bootbench.levels import CAPACITY_PHASE
from bootbench.samples import Sample
from bootbench.stats import summarize_samples
from support.processes import read_jsonl, run_locust

LEVELS = (1, 2, 3, 4, 6)
PER_LEVEL = 8
SERVICE = {"capacity": 3, "setup_delay": "60", "first_audio_delay": "120", "cold_penalty": 0}


def sweep_run(tmp_path, reference_server, *extra: str):
    server = reference_server(ground_truth=tmp_path / "truth.jsonl", **SERVICE)
    run = run_locust("--sweep", ",".join(map(str, LEVELS)), "-i", str(PER_LEVEL), "-H", server.url,
                     "--results-dir", str(tmp_path / "r"), *extra, cwd=tmp_path, timeout=90)
    assert run.returncode == 0, run.stderr[-4000:]
    return run


def check_sweep(run, tmp_path) -> dict:
    """What every sweep against the capacity-3 server must show; returns metrics.json."""
    metrics = run.metrics
    samples = metrics["samples"]
    # exactly -i iterations at each level, the levels in order, none overlapping the next
    assert collections.Counter(s["level"] for s in samples) == {users: PER_LEVEL for users in LEVELS}
    assert [s["iteration"] for s in samples] == list(range(1, PER_LEVEL * len(LEVELS) + 1))
    assert [s["level"] for s in samples] == [users for users in LEVELS for _ in range(PER_LEVEL)]
    assert all(s["ok"] for s in samples)
    for users in LEVELS:
        mine = [s for s in samples if s["level"] == users]
        assert len({(s["worker"], s["user"]) for s in mine}) <= users
    # every level's statistics are those of its own samples
    assert [level["users"] for level in metrics["levels"]] == list(LEVELS)
    for level in metrics["levels"]:
        recomputed = summarize_samples([Sample.from_dict(s) for s in samples if s["level"] == level["users"]])
        assert {k: level[k] for k in recomputed} == recomputed
        assert level["iterations"] == level["planned"] == PER_LEVEL
        assert level["cpu"], "no process reported its CPU for the level"
        for use in level["cpu"].values():
            assert 0 <= use["cpu_s"] and 0 < use["wall_s"] and not level["harness_bound"]
    # the capacity: levels up to 3 users stay near the lowest level's p95, 4 users queue one session per round
    capacity = metrics["capacity"]
    assert capacity["users"] == 3, capacity
    assert capacity["failed_level"] == 4 and capacity["harness_bound"] is False
    assert "4 users" in capacity["reason"] and "tolerance" in capacity["reason"]
    p95 = {level["users"]: level["phases"][CAPACITY_PHASE]["p95"] for level in metrics["levels"]}
    assert p95[3] <= 1.5 * p95[1] < p95[4]
    # the server's ground truth: no session queued up to 3 users, a session waited at 4 and 6
    truth = [t for t in read_jsonl(tmp_path / "truth.jsonl") if t["session"] is not None]
    assert len(truth) == len(samples)
    by_session = sorted(truth, key=lambda t: t["session"])
    queued = [t["queued_ms"] for t in by_session]
    first_at_4 = PER_LEVEL * LEVELS.index(4)
    assert max(queued[:first_at_4]) < 20
    assert max(queued[first_at_4:]) > 100
    # samples.csv and summary.csv carry the level
    with open(run.folder / "samples.csv") as f:
        assert [int(r["level"]) for r in csv.DictReader(f)] == [s["level"] for s in samples]
    with open(run.folder / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["level"] for r in rows} == {"", *map(str, LEVELS)}
    row = next(r for r in rows if r["level"] == "4" and r["phase"] == CAPACITY_PHASE)
    assert math.isclose(float(row["p95"]), p95[4])
    return metrics


def test_a_sweep_in_one_process_finds_the_capacity_of_the_reference_server(tmp_path, reference_server):
    run = sweep_run(tmp_path, reference_server)
    metrics = check_sweep(run, tmp_path)
    assert metrics["run"]["sweep"] == list(LEVELS) and metrics["run"]["sweep_tolerance"] == 1.5
    assert set(metrics["levels"][0]["cpu"]) == {"local"}
    assert "capacity: 3 users" in run.stdout
    # the report shows the curve (one marker per level) and the per-level table, the capacity marked
    report = (run.folder / "report.html").read_text()
    assert 'data-plot="sweep"' in report and 'id="capacity" data-value="3"' in report
    for users in LEVELS:
        assert f'<tr data-users="{users}"' in report
    assert '<tr data-users="3" class="headline">' in report


def test_a_sweep_with_two_worker_processes_finds_the_same_capacity(tmp_path, reference_server):
    run = sweep_run(tmp_path, reference_server, "--processes", "2")
    metrics = check_sweep(run, tmp_path)
    assert len({s["worker"] for s in metrics["samples"]}) == 2
    assert all(len(level["cpu"]) == 2 for level in metrics["levels"]), [level["cpu"] for level in metrics["levels"]]


@pytest.mark.parametrize("sweep, message", [
    ("1,x", "comma-separated numbers"),
    ("4,2", "must increase"),
    ("0,1", "positive"),
])
def test_a_bad_sweep_is_one_sentence_and_exit_code_2(tmp_path, sweep, message):
    run = run_locust("--sweep", sweep, "-i", "4", "--results-dir", str(tmp_path / "r"), cwd=tmp_path, timeout=60)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "r").exists()
