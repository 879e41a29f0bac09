"""The boot benchmark end to end: real reference servers, Locust runs in-process, real files.

Each sample against its session's ground truth: test_accuracy.py. Bad input: test_faults.py. Runs against a
server given with ``-H`` are in-process (tests/support/ground_truth.py); the embedded server is started by
the run itself: real processes in test_providers.py (the default target, every provider), in-process in
test_answer_overlap.py.
"""

from __future__ import annotations

import csv

import pytest

from bootbench.samples import PHASES
from support.ground_truth import FIXED_RUN_SERVER, ground_truth_run
from support.processes import read_jsonl

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0


def successful_run(shared_reference_server, tmp_path, *args: str, users: int = 1):
    """An in-process run with ``args`` against the session's server with fixed delays; it exited 0."""
    run = ground_truth_run(shared_reference_server(**FIXED_RUN_SERVER), tmp_path / "r", *args, users=users,
                           environ={"AIVOCO_API_KEY": "test-key-123"})
    assert run.exit_code == 0, run.stderr[-3000:]
    return run


def test_the_fixed_server_has_the_delays_these_tests_expect():
    assert [float(FIXED_RUN_SERVER[k]) for k in ("setup_delay", "first_audio_delay")] == [SETUP_MS, FIRST_AUDIO_MS]


def test_n_iterations_give_n_samples_n_sessions_one_connect_and_a_summary(shared_fixed_run):
    """The session's shared fixed run (tests/conftest.py): 20 iterations, one user."""
    run = shared_fixed_run
    assert run.exit_code == 0, run.stderr[-3000:]
    metrics = run.metrics
    samples = metrics["samples"]
    assert [s["iteration"] for s in samples] == list(range(1, 21))
    assert all(s["ok"] for s in samples)
    assert len([t for t in run.sessions if t["outcome"] == "ok"]) == 20
    for sample in samples:
        assert sample["cold_start_ms"] >= sample["session_start_ms"] + sample["first_response_ms"]
        assert sample["stop_ms"] is not None and sample["stop_ms"] < 50
    assert samples[0]["connect_ms"] is not None and all(s["connect_ms"] is None for s in samples[1:])
    assert run.violations == 0 and run.notes == 0
    summary = metrics["summary"]
    assert (summary["iterations"], summary["successes"], summary["success_rate"]) == (20, 20, 1.0)
    assert summary["phases"]["first_response_ms"]["median"] == pytest.approx(FIRST_AUDIO_MS, abs=10)
    assert summary["phases"]["session_start_ms"]["median"] == pytest.approx(SETUP_MS, abs=10)
    assert metrics["run"]["iterations"]["planned"] == 20 and metrics["run"]["iterations"]["complete"]
    assert metrics["run"]["embedded_server"] is False


def test_result_files_parse_and_agree_with_each_other(shared_reference_server, tmp_path):
    run = successful_run(shared_reference_server, tmp_path, "-i", "12", users=2)
    folder = run.folder
    assert folder.parent == tmp_path / "r"
    metrics = run.metrics
    assert metrics["schema"] == "bootbench/metrics/v2"
    jsonl = sorted(read_jsonl(folder / "samples.jsonl"), key=lambda s: s["iteration"])
    assert jsonl == metrics["samples"]
    with open(folder / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 13))
    # the CSVs round times to the microsecond (0.001 ms); metrics.json and samples.jsonl keep every digit
    assert [float(r["first_response_ms"]) for r in rows] == pytest.approx([s["first_response_ms"] for s in jsonl],
                                                                          abs=0.0005)
    with open(folder / "summary.csv") as f:
        summary_rows = {r["phase"]: r for r in csv.DictReader(f)}
    assert set(summary_rows) == set(PHASES)
    for phase in PHASES:
        stats = metrics["summary"]["phases"][phase]
        row = summary_rows[phase]
        for column in ("count", "mean", "median", "p95", "p99"):
            if stats[column] is None:
                assert row[column] == ""
            else:
                assert float(row[column]) == pytest.approx(stats[column], abs=0.0005)
        assert float(row["success_rate"]) == metrics["summary"]["success_rate"]
    logs = list(folder.glob("boot_*.log"))
    assert len(logs) == 1 and "connected to" in logs[0].read_text()
    assert {s["user"] for s in metrics["samples"]} == {1, 2}
    assert "first response: median" in run.stdout


@pytest.mark.slow
def test_connect_per_call_and_realtime_pace_send_nothing_malformed(shared_reference_server, tmp_path):
    run = successful_run(shared_reference_server, tmp_path, "-i", "6", "--connect-per-call",
                         "--pace", "realtime", "--trailing-silence-ms", "200")
    samples = run.metrics["samples"]
    assert all(s["ok"] and s["connected_this_cycle"] and s["connect_ms"] > 0 for s in samples)
    assert all(s["cold_start_ms"] > s["connect_ms"] + s["session_start_ms"] for s in samples)
    truth = [t for t in run.sessions if t["outcome"] == "ok"]
    assert len(truth) == 6 and all(t["audio_in"]["chunks"] == 19 for t in truth)
    assert run.violations == 0 and run.notes == 0
    run_info = run.metrics["run"]
    assert (run_info["pace"], run_info["connect_per_call"], run_info["trailing_silence_ms"]) == ("realtime", True, 200)
