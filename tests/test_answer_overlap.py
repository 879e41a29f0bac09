"""Answers that overlap what they should follow: the input still being sent (issue 20 item 6), the previous reply (item 4).

An answer whose first audio arrives before the last input went out has no
``input_to_audio_ms`` worth the name (it would be negative): the sample says
by how much it came early, the input phases leave it out, and the run warns.
Audio of a reply that arrives after bootbench took that reply as ended is an
anomaly, and the run warns that the warm turns after it may have timed it.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import os
import threading
import time
from unittest import mock

import pytest

from bootbench.audio import Stimulus
from bootbench.providers.aivoco import AivocoDriver
from bootbench.providers.base import DriverConfig
from bootbench.run.embedded import EmbeddedServer
from bootbench.samples import Sample, Timeline, Turn
from bootbench.stats import summarize_samples
from support.ground_truth import ground_truth_run
from support.inprocess import kept_signal_handlers, local_environment, run_to_end
from support.processes import clean_env

BOUND_MS = 15.0
"""As tests/test_turns.py: a sample against the server's own interval."""
MS = 1_000_000


# ---- item 6: the answer began before the input ended


def test_an_answer_before_the_last_input_has_no_input_phases_and_says_how_early_it_came():
    early = Timeline(session_ready=0, input_sent=900 * MS, first_audio=150 * MS, first_audible=160 * MS)
    phases = early.phases()
    assert phases["input_to_audio_ms"] is None and phases["input_to_audible_ms"] is None
    assert phases["first_response_ms"] == 150.0 and phases["leading_silence_ms"] == 10.0
    assert early.answered_before_input_end_ms() == 750.0
    turn = Turn.of(2, early)
    assert turn.input_to_audio_ms is None and turn.input_to_audible_ms is None
    assert turn.answered_before_input_end_ms == 750.0
    on_time = Timeline(session_ready=0, input_sent=100 * MS, first_audio=150 * MS)
    assert on_time.answered_before_input_end_ms() is None and on_time.phases()["input_to_audio_ms"] == 50.0
    assert Turn.of(1, on_time).answered_before_input_end_ms is None
    sample = Sample(1, "local", 1, "t", True, first_response_ms=150.0, answered_before_input_end_ms=750.0)
    assert Sample.from_dict(sample.to_dict()) == sample
    counted = summarize_samples([sample, Sample(2, "local", 1, "t", True, first_response_ms=150.0,
                                                input_to_audio_ms=50.0),
                                 Sample(3, "local", 1, "t", True, first_response_ms=150.0,
                                        input_to_audio_ms=50.0, turns=[Turn(1, 50.0), turn])])
    assert counted["answered_before_input_end"] == 2   # the first, and the third's warm turn


def test_an_answer_that_began_before_the_input_ended_is_flagged_and_left_out_of_the_input_phases(
        shared_reference_server, tmp_path):
    # The reference server's Aivoco emulation answers from the first chunk (--reply-after first-input, its
    # default): a 1 s sine streamed at real-time pace is still going out when the answer begins.
    server = shared_reference_server(setup_delay="30", first_audio_delay="120", warm_first_audio_delay="40",
                                     cold_penalty=0, reply_ms=200)
    run = ground_truth_run(server, tmp_path / "r", "-i", "2", "--turns", "2", "--pace", "realtime")
    samples, sessions = run.samples, run.ok_sessions()
    assert len(samples) == len(sessions) == 2 and run.violations == 0
    for sample, session in zip(samples, sessions):
        assert sample["ok"], sample
        for mine, theirs in zip(sample["turns"], session["turns"]):
            before = -theirs["measured"]["input_to_audio_ms"]   # the server saw the answer start before the input ended
            assert before > 500
            assert mine["answered_before_input_end_ms"] == pytest.approx(before, abs=BOUND_MS)
            assert mine["input_to_audio_ms"] is None and mine["input_to_audible_ms"] is None
        assert sample["answered_before_input_end_ms"] == sample["turns"][0]["answered_before_input_end_ms"]
        assert sample["input_to_audio_ms"] is None and sample["input_to_audible_ms"] is None
        assert sample["cold_penalty_ms"] is None
        assert sample["first_response_ms"] == pytest.approx(session["measured"]["first_response_ms"], abs=BOUND_MS)
    summary = run.metrics["summary"]
    assert summary["answered_before_input_end"] == 2
    for phase in ("input_to_audio_ms", "input_to_audible_ms", "warm_input_to_audio_ms", "cold_penalty_ms"):
        assert summary["phases"][phase]["count"] == 0, phase
    assert summary["phases"]["first_response_ms"]["count"] == 2
    # Locust's table: no negative input_to_audio_ms requests
    assert run.request_counts.get("input_to_audio_ms", 0) == 0 and run.request_counts["first_response_ms"] == 2
    (warning,) = [w for w in run.metrics["run"]["warnings"] if "before their input" in w]
    assert warning.startswith("2 iteration(s) were answered before their input had all been sent")
    assert "input_to_audio_ms" in warning and f"warning: {warning}" in run.stdout
    with open(run.folder / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert not any(value.startswith("-") for row in rows for value in row.values()), rows
    with open(run.folder / "samples.csv") as f:
        assert all(float(r["answered_before_input_end_ms"]) > 500 for r in csv.DictReader(f))
    assert "were answered before their input had all been sent" in (run.folder / "report.html").read_text()


def test_the_embedded_server_answers_at_the_end_of_a_realtime_turn_and_from_the_first_message_of_a_burst(tmp_path):
    # Before: --pace realtime --audio speech against the embedded server gave input_to_audio_ms of about -3819 ms.
    with mock.patch.dict(os.environ, clean_env(), clear=True), kept_signal_handlers(), \
            contextlib.redirect_stdout(io.StringIO()):
        env = local_environment("-i", "1", "--pace", "realtime", results_dir=tmp_path / "r")
        run = run_to_end(env, users=1)
    (sample,) = run.samples
    assert sample.ok and sample.answered_before_input_end_ms is None
    assert 500 <= sample.input_to_audio_ms <= 2500   # its 500 ms of quiet that ends a turn, then the first-audio delay
    assert run.metrics["run"]["reference_server"]["reply_after"] == "end-of-turn"
    assert run.metrics["run"]["warnings"] == []

    embedded = EmbeddedServer()
    try:
        burst = embedded.ensure_started("burst")
        assert embedded.config()["reply_after"] == "first-input" and embedded.ensure_started("burst") is burst
        realtime = embedded.ensure_started("realtime")   # a later run (the web UI's) at the other pace: restarted
        assert realtime is not burst and burst.returncode is not None
        assert embedded.config()["reply_after"] == "end-of-turn"
    finally:
        embedded.stop()
