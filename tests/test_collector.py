"""bootbench/run/collector.py: the garbage collector while users run, and back to the process's own after.

In process: a real local run on a Locust environment against the reference
server, the collector's state read at each of its request events.
"""

from __future__ import annotations

import gc

from support.inprocess import local_environment, run_to_end

from bootbench.run import collector


def test_while_users_run_the_startup_objects_are_frozen_and_the_young_collected_less_often(reference_server,
                                                                                          tmp_path):
    server = reference_server(first_audio_delay="fixed:30")
    env = local_environment("-i", "2", host=server.url, results_dir=tmp_path)
    seen: list[tuple[tuple[int, int, int], int]] = []
    env.events.request.add_listener(lambda **_: seen.append((gc.get_threshold(), gc.get_freeze_count())))
    before = gc.get_threshold()
    run = run_to_end(env, 1)
    assert run.metrics["summary"]["successes"] == 2
    assert seen, "the run fired no request event"
    # this test process's modules and pytest's own: far more than a run makes before its first request
    assert all(threshold == collector.RUN_THRESHOLDS and frozen > 50_000 for threshold, frozen in seen), seen[:3]
    assert gc.get_threshold() == before == collector.DEFAULT_THRESHOLDS
    assert gc.get_freeze_count() == 0
