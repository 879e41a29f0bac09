"""A reply that does not end in time, in a real run (issue 20 item 5): the failure names Aivoco's reply gap, and
Locust files turn 1's failure under turn 1's phase, not under the warm turns'."""

from __future__ import annotations

import pytest

from support.ground_truth import ground_truth_run
from support.inprocess import local_environment, run_to_end

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

GAP_MS = 300


def test_a_turn_1_reply_that_outlasts_the_timeout_names_the_gap_and_is_filed_under_turn_1(shared_reference_server,
                                                                                          tmp_path):
    # a 3 s reply (its chunks 40 ms apart) and a 1 s timeout: the reply of turn 1 never ends in time
    server = shared_reference_server(setup_delay="10", first_audio_delay="fixed:50", cold_penalty=0, reply_ms=3000)
    env = local_environment("-i", "1", "--turns", "2", "--timeout", "1", "--reply-gap-ms", "300", "--wait-ms", "0",
                            host=server.url, results_dir=tmp_path)
    run = run_to_end(env, users=1)
    (sample,) = run.samples
    assert not sample.ok and sample.error_kind == "reply_timeout"
    assert sample.error == ("turn 1: the reply did not end within 1 s (an aivoco reply ends after --reply-gap-ms "
                            "300 ms without audio_response)")
    failures = {entry.name: entry.occurrences for entry in env.runner.stats.errors.values()}
    assert failures == {"input_to_audio_ms": 1}, failures
    assert env.runner.stats.get("warm_input_to_audio_ms", "aivoco").num_requests == 0


def test_an_aivoco_reply_never_audible_ends_with_its_last_chunk_not_at_the_timeout(shared_reference_server, tmp_path):
    # issue 22 item 5: Aivoco has no end-of-reply event, so an answer that never became audible was waited for until
    # --timeout (8 s here); like a reply between turns it ends with its last audio_response before --reply-gap-ms
    # of quiet. The server answers in digital silence (fault silent_audio): 400 ms of reply, never audible.
    server = shared_reference_server(setup_delay="10", first_audio_delay="fixed:50", cold_penalty=0, reply_ms=400,
                                     extra_args=["--fault", "silent_audio:protocol=aivoco"])
    run = ground_truth_run(server, tmp_path / "r", "--provider", "aivoco", "-i", "2", "--timeout", "8",
                           "--reply-gap-ms", str(GAP_MS), "--wait-ms", "0")
    assert run.exit_code == 0, run.stderr[-2000:]
    assert run.metrics["summary"]["inaudible_replies"] == 2
    sessions = run.ok_sessions()
    assert len(run.samples) == len(sessions) == 2
    for sample, session in zip(run.samples, sessions):
        assert sample["ok"] and sample["first_audible_ms"] is None and sample["first_response_ms"] is not None
        assert session["fault"]["kind"] == "silent_audio"
        reply = session["turns"][0]["measured"]["reply_ms"]
        assert reply == pytest.approx(400, abs=60)  # ten 40 ms chunks: the last sent 360 ms after the first
        # the stop follows the reply's last chunk by the gap (plus the client's own turnaround), not the timeout
        last_chunk, stop = session["turns"][0]["t_ns"]["reply_end_sent"], session["t_ns"]["stop_received"]
        assert GAP_MS <= (stop - last_chunk) / 1e6 <= GAP_MS + 1000, session
