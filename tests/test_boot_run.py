"""The boot benchmark end to end: real reference server, real headless Locust runs, real files.

Each sample against its session's ground truth: test_accuracy.py. Bad input: test_faults.py.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bootbench.samples import PHASES
from support.processes import read_jsonl, run_locust

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0


def successful_run(reference_server, tmp_path: Path, *args: str):
    """A reference server with fixed delays, and a headless run against it with ``args`` that exited 0."""
    server = reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0)
    run = run_locust(*args, "-H", server.url, "--results-dir", str(tmp_path / "r"), cwd=tmp_path,
                     env={"AIVOCO_API_KEY": "test-key-123"})
    assert run.returncode == 0, run.stderr[-3000:]
    return server, run


def test_n_iterations_give_n_samples_n_sessions_one_connect_and_a_summary(reference_server, tmp_path):
    server, run = successful_run(reference_server, tmp_path, "-u", "1", "-i", "20")
    metrics = run.metrics
    samples = metrics["samples"]
    assert [s["iteration"] for s in samples] == list(range(1, 21))
    assert all(s["ok"] for s in samples)
    assert len([t for t in read_jsonl(server.ground_truth) if t["outcome"] == "ok"]) == 20
    for sample in samples:
        assert sample["cold_start_ms"] >= sample["session_start_ms"] + sample["first_response_ms"]
        assert sample["stop_ms"] is not None and sample["stop_ms"] < 50
    assert samples[0]["connect_ms"] is not None and all(s["connect_ms"] is None for s in samples[1:])
    assert server.stats()["violations"] == 0 and server.stats()["notes"] == 0
    summary = metrics["summary"]
    assert (summary["iterations"], summary["successes"], summary["success_rate"]) == (20, 20, 1.0)
    assert summary["phases"]["first_response_ms"]["median"] == pytest.approx(FIRST_AUDIO_MS, abs=10)
    assert summary["phases"]["session_start_ms"]["median"] == pytest.approx(SETUP_MS, abs=10)
    assert metrics["run"]["iterations"]["planned"] == 20 and metrics["run"]["iterations"]["complete"]
    assert metrics["run"]["embedded_server"] is False


def test_result_files_parse_and_agree_with_each_other(reference_server, tmp_path):
    _, run = successful_run(reference_server, tmp_path, "-u", "2", "-i", "12")
    folder = run.folder
    assert folder.parent == tmp_path / "r"
    metrics = run.metrics
    assert metrics["schema"] == "bootbench/metrics/v2"
    jsonl = sorted(run.jsonl(), key=lambda s: s["iteration"])
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


def test_embedded_reference_server_is_the_default_target(tmp_path):
    run = run_locust("-u", "1", "-i", "8", "--results-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.metrics
    assert metrics["run"]["embedded_server"] is True
    assert metrics["run"]["target"].startswith("http://127.0.0.1:")
    assert metrics["summary"]["successes"] == 8
    assert 20 < metrics["summary"]["phases"]["first_response_ms"]["median"] < 1000


@pytest.mark.slow
def test_connect_per_call_and_realtime_pace_send_nothing_malformed(reference_server, tmp_path):
    server, run = successful_run(reference_server, tmp_path, "-u", "1", "-i", "6", "--connect-per-call",
                                 "--pace", "realtime", "--trailing-silence-ms", "200")
    samples = run.metrics["samples"]
    assert all(s["ok"] and s["connected_this_cycle"] and s["connect_ms"] > 0 for s in samples)
    assert all(s["cold_start_ms"] > s["connect_ms"] + s["session_start_ms"] for s in samples)
    truth = [t for t in read_jsonl(server.ground_truth) if t["outcome"] == "ok"]
    assert all(t["audio_in"]["chunks"] == 19 for t in truth)
    assert server.stats()["violations"] == 0 and server.stats()["notes"] == 0
    run_info = run.metrics["run"]
    assert (run_info["pace"], run_info["connect_per_call"], run_info["trailing_silence_ms"]) == ("realtime", True, 200)
