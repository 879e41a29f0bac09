"""A reply that does not end in time, in a real run (issue 20 item 5): the failure names Aivoco's reply gap, and
Locust files turn 1's failure under turn 1's phase, not under the warm turns'."""

from __future__ import annotations

from support.inprocess import local_environment, run_to_end


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
