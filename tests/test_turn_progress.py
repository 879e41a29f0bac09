"""Long multi-turn sessions (issue 20 item 3): the progress line says which turn the sessions in flight have
reached, and a session the run stops keeps the turns it completed, as a sample marked interrupted. In-process
(tests/support/inprocess.py) against a real reference server."""

from __future__ import annotations

import json

import gevent
from support.inprocess import finish, local_environment
from support.processes import read_jsonl

from bootbench.run import harness
from bootbench.views.text import progress_line
from bootbench.stats import snapshot

TURNS = 10


def test_a_stopped_session_keeps_its_completed_turns_and_the_progress_line_shows_the_turn(shared_reference_server,
                                                                                            tmp_path):
    server = shared_reference_server(setup_delay="10", first_audio_delay="fixed:40",
                                     warm_first_audio_delay="fixed:40", cold_penalty=0, reply_ms=200)
    env = local_environment("-i", "1", "--turns", str(TURNS), "--reply-gap-ms", "200", "--wait-ms", "0",
                            host=server.url, results_dir=tmp_path)
    env.runner.start(1, spawn_rate=1)
    run = None
    with gevent.Timeout(60, TimeoutError("the session never reached turn 4")):
        while run is None or run.turns_reached.get(1, 0) < 4:
            gevent.sleep(0.05)
            run = harness.of(env).current
    line = progress_line(snapshot(run.samples, run.planned), level=run.progress_label())
    reached = run.turns_reached[1]
    assert line.startswith(f"turn {reached}/{TURNS}, 0/1 iterations"), line

    env.runner.stop()  # what a SIGTERM does to the users (tests/test_sweep_stop.py sends a real one)
    with gevent.Timeout(30, TimeoutError("the run was never closed")):
        while run.metrics is None:  # the kept sample settles the run, whose own end may close it in a greenlet
            gevent.sleep(0.05)
    finish(env)
    (sample,) = run.samples
    assert not sample.ok and sample.error_kind == "interrupted"
    completed = len(sample.turns)
    assert 3 <= completed < TURNS and [t.turn for t in sample.turns] == list(range(1, completed + 1))
    assert all(t.reply_ms is not None and 150 <= t.reply_ms for t in sample.turns), sample.turns
    assert sample.error == (f"the run stopped during turn {completed + 1} of {TURNS}; the {completed} turns "
                            f"it completed are kept")
    assert sample.cold_penalty_ms is not None and sample.first_response_ms is not None
    folder = run.recorder.folder
    (kept,) = read_jsonl(folder / "samples.jsonl")
    assert kept["error_kind"] == "interrupted" and len(kept["turns"]) == completed
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["errors"]["by_kind"] == {"interrupted": 1}, metrics["errors"]
    assert metrics["run"]["interrupted"] == "stopped by Locust"


def test_an_interrupted_session_is_kept_only_once_the_run_stops(tmp_path):
    """While the run goes, a user stopped mid-session is Locust moving users: the iteration runs again (exactly N)."""
    from support.inprocess import parse

    from bootbench import options
    from bootbench.exporters import RunRecorder
    from bootbench.run.master import MasterRun
    from bootbench.samples import Sample, Turn

    settings = options.resolve(parse("-i", "2", "--turns", "3", "--results-dir", str(tmp_path)), "http://127.0.0.1:9")
    run = MasterRun(settings=settings,
                    recorder=RunRecorder(tmp_path, "aivoco"), end=lambda: None)

    def interrupted(iteration: int) -> Sample:
        return Sample(iteration, "w1", 1, "t", False, "interrupted", "the run stopped during turn 2 of 3; ...",
                      turns=[Turn(1, 50.0, 50.0, 160.0)])

    assert run.grant("w1", 1) == 1
    run.note_turn("w1", 1, 2)
    assert run.turn_label() == "turn 2/3"
    assert run.receive("w1", interrupted(1)) is False and run.samples == []
    assert run.turn_label() == "" and run.grant("w1", 1) == 1, "granted again"
    run.stop_granting("SIGTERM", 1)
    assert run.receive("w1", interrupted(1)) is True
    assert [s.error_kind for s in run.samples] == ["interrupted"]
    run.close()
