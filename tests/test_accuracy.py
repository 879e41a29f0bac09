"""bootbench reports what the reference server did: every sample against its session's ground truth.

Generous bounds (10 ms) so that a noisy, shared machine does not make them flaky; the measured accuracy
(well under a millisecond at the median) is the business of ``bench/accuracy.py``.
"""

from __future__ import annotations

import os

import pytest

from support.ground_truth import FIXED_RUN_SERVER
from support.processes import ROOT, read_jsonl, run_locust

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0
BOUND_MS = 10.0
"""How far a sample may be from the server's own interval."""
INJECTED_BOUND_MS = 15.0
"""How far the server's own interval may be from the delay it was told to inject."""


def sessions_by_sid(truth_path) -> dict[str, list[dict]]:
    """The server's sessions, per Socket.IO sid, in the order they started."""
    return group_by_sid(r for r in read_jsonl(truth_path) if r["session"] is not None)


def group_by_sid(sessions) -> dict[str, list[dict]]:
    """Sessions per Socket.IO sid, in the order they started."""
    records = sorted(sessions, key=lambda r: r["t_ns"]["start_received"])
    by_sid: dict[str, list[dict]] = {}
    for record in records:
        by_sid.setdefault(record["sid"], []).append(record)
    return by_sid


def test_every_session_start_and_first_response_is_within_10_ms_of_the_servers_interval(shared_fixed_run):
    """The session's shared fixed run (tests/conftest.py): 20 iterations, one user, setup 30 ms, first audio 80 ms."""
    assert [float(FIXED_RUN_SERVER[k]) for k in ("setup_delay", "first_audio_delay")] == [SETUP_MS, FIRST_AUDIO_MS]
    run = shared_fixed_run
    assert run.exit_code == 0, run.stderr[-3000:]
    samples = run.samples
    by_sid = group_by_sid(run.sessions)
    assert len(by_sid) == 1, "one user keeps one connection, so all its sessions share one sid"
    sessions = next(iter(by_sid.values()))
    assert len(sessions) == len(samples) == 20
    for sample, session in zip(samples, sessions):
        assert sample["ok"] and session["outcome"] == "ok"
        measured = session["measured"]
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=BOUND_MS)
        assert sample["session_start_ms"] == pytest.approx(measured["session_start_ms"], abs=BOUND_MS)
        assert measured["first_response_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=INJECTED_BOUND_MS)
        assert measured["session_start_ms"] == pytest.approx(SETUP_MS, abs=INJECTED_BOUND_MS)


def test_concurrent_sessions_match_the_truth_session_by_session(reference_server, tmp_path):
    """At 4 users, each iteration is matched to its own session by sid and order (bench/sid_locustfile.py)."""
    server = reference_server(setup_delay="uniform:20:60", first_audio_delay="uniform:40:120", cold_penalty=0)
    sid_log = tmp_path / "sids.jsonl"
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    run = run_locust("-u", "4", "-r", "4", "-i", "24", "-H", server.url, "--results-dir", str(tmp_path / "r"),
                     cwd=tmp_path, locustfile=ROOT / "bench" / "sid_locustfile.py",
                     env={"BOOTBENCH_SID_LOG": str(sid_log), "PYTHONPATH": pythonpath})
    assert run.returncode == 0, run.stderr[-3000:]
    sid_of = {r["iteration"]: r["sid"] for r in read_jsonl(sid_log)}
    mine: dict[str, list[dict]] = {}
    for sample in sorted(run.metrics["samples"], key=lambda s: s["iteration"]):
        mine.setdefault(sid_of[sample["iteration"]], []).append(sample)
    by_sid = sessions_by_sid(server.ground_truth)
    assert len(mine) == 4 and set(mine) == set(by_sid)
    matched = 0
    for sid, samples in mine.items():
        assert len(samples) == len(by_sid[sid])
        for sample, session in zip(samples, by_sid[sid]):
            measured = session["measured"]["first_response_ms"]
            assert sample["first_response_ms"] == pytest.approx(measured, abs=BOUND_MS)
            assert measured == pytest.approx(session["injected"]["first_audio_delay_ms"], abs=INJECTED_BOUND_MS)
            matched += 1
    assert matched == 24
