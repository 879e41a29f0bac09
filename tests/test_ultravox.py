"""Ultravox end to end against the reference server's emulation: the call created over HTTPS and joined over a
WebSocket, timed as two steps of session start, checked against the server's ground truth (docs/protocols/ultravox.md).

In-process runs against shared reference servers (tests/support/ground_truth.py); one real Locust process for the
wrong key, whose outputs are searched for the key.
"""

from __future__ import annotations

import pytest

from support.ground_truth import ground_truth_run
from bootbench.samples import PHASE_TABLE

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0
ULTRAVOX = ("--provider", "ultravox", "--trailing-silence-ms", "400")
"""The provider and the trailing silence its VAD needs (turnEndpointDelay 384 ms), one chunk's worth at real time."""


def fixed_server(shared_reference_server, *extra: str, **kwargs):
    return shared_reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS),
                                   cold_penalty=0, extra_args=list(extra), **kwargs)


@pytest.mark.parametrize("pace", ["burst", "realtime"])
def test_twenty_calls_match_the_ground_truth_with_create_and_join_timed_apart(shared_reference_server, tmp_path, pace):
    iterations = 20 if pace == "burst" else 4
    run = ground_truth_run(fixed_server(shared_reference_server), tmp_path / "r", "-i", str(iterations),
                           "--pace", pace, *ULTRAVOX)
    assert run.exit_code == 0, run.stderr[-3000:]
    assert [t["protocol"] for t in run.sessions] == ["ultravox"] * iterations
    assert all(t["outcome"] == "ok" for t in run.sessions)
    for sample, session in zip(run.samples, run.sessions):
        measured = session["measured"]
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
        # Session start spans two requests (the create, then the join's TCP connect and upgrade): the client's
        # figures hold both transits, the server's (handler entry to response) neither.
        assert sample["session_start_ms"] == pytest.approx(measured["session_start_ms"], abs=15)
        assert measured["join_ms"] == pytest.approx(SETUP_MS, abs=15)   # the injected setup runs from the join
        assert 0 <= sample["call_create_ms"] - measured["call_create_ms"] < 10
        assert 0 <= sample["join_ms"] - measured["join_ms"] < 15
        assert sample["call_create_ms"] + sample["join_ms"] <= sample["session_start_ms"] + 0.01
        assert sample["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
        assert measured["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
        assert sample["stop_ms"] is not None and sample["stop_ms"] < 50
        assert session["t_ns"]["stop_received"] is not None
    # one HTTPS (here HTTP) connection for every create request: connected once, outside the timed cycles
    assert [s["connect_ms"] is not None for s in run.samples] == [True] + [False] * (iterations - 1)
    assert not any(s["connected_this_cycle"] for s in run.samples)
    assert run.violations == 0 and run.notes == 0
    phases = run.metrics["summary"]["phases"]
    assert {p.name for p in PHASE_TABLE if phases[p.name]["count"]} == {p.name for p in PHASE_TABLE}
    assert run.request_counts["call_create_ms"] == run.request_counts["join_ms"] == iterations
    run_block = run.metrics["run"]
    assert (run_block["provider"], run_block["turn"], run_block["model"], run_block["voice"]) == (
        "ultravox", "vad", "ultravox-v0.7", "Mark")
    assert run_block["provider_options"] == {"first_speaker": "user", "client_buffer_ms": ""}
