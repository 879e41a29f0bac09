"""bench/accuracy.py's command line, in process: what it hands each level (the runs themselves are benchmarks)."""

from __future__ import annotations

import sys

from support.bench import bench_module

accuracy = bench_module("accuracy")


def test_with_options_reach_every_level_the_sched_fifo_row_included(monkeypatch, tmp_path):
    """``--with`` options go on the bootbench clients' command line at every level. They were handed to
    run_level under a keyword it does not take (a TypeError before the first level ran), and the 1-user
    SCHED_FIFO row was run without them."""
    levels = []

    def run_level(users, iterations, work, realtime=False, scrape_s=0.0, options=()):
        levels.append((users, realtime, options))
        return {"users": users}

    monkeypatch.setattr(accuracy, "run_level", run_level)
    monkeypatch.setattr(accuracy, "wake_floor", lambda samples, realtime=False: {})
    monkeypatch.setattr(accuracy, "machine", lambda: {})
    monkeypatch.setattr(accuracy, "realtime_allowed", lambda: True)
    monkeypatch.setattr(accuracy, "report", lambda results, out: 0)
    monkeypatch.setattr(sys, "argv", ["accuracy.py", "--levels", "1,50", "--with=--clock=process", "--with=--trace",
                                      "--out", str(tmp_path)])
    assert accuracy.FULL["realtime_row"]  # without --quick, 1 user is run a second time under SCHED_FIFO
    assert accuracy.main() == 0
    assert levels == [(1, False, ("--clock=process", "--trace")), (1, True, ("--clock=process", "--trace")),
                      (50, False, ("--clock=process", "--trace"))]
