"""Result folders built inside the test process: a run's own MasterRun and RunRecorder, fed chosen samples.

The views (compare, regression, report, checks) read result folders. A test
that needs a folder with known numbers builds one here in milliseconds,
through the same accounting and writer a run uses (so metrics.json, the
CSVs, report.html and junit.xml are what a run with these samples writes),
instead of starting Locust against a reference server.

    folder = record_run(tmp_path, "-i", "5", samples=timings(5, first_audio_ms=80))
    killed = record_run(tmp_path, "-i", "100", samples=timings(8), killed=True)   # run.json + samples.jsonl only
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Sequence

from bootbench import options
from bootbench.exporters import RunRecorder, now_iso
from bootbench.run.lifecycle import LOCUST_OPTIONS
from bootbench.run.master import MasterRun
from bootbench.samples import Sample
from support.inprocess import parse, without_report  # noqa: F401  (re-exported)

UNUSED_HOST = "http://127.0.0.1:9"
"""A loopback target (no key needed) that these folders name but nothing ever connects to."""


def timings(count: int, *, setup_ms: float = 30.0, first_audio_ms: float = 80.0, spread_ms: float = 10.0,
            seed: int = 0) -> list[dict[str, Any]]:
    """The phases of ``count`` successful iterations on one connection, as a reference server with these delays
    gives them: first response = ``first_audio_ms`` plus up to ``spread_ms``, session start ``setup_ms`` plus up
    to 2 ms (the connection is opened by the first iteration only)."""
    rng = random.Random(seed)
    rows = []
    for index in range(count):
        connect = round(3 + rng.random() * 2, 3) if index == 0 else None
        session = round(setup_ms + rng.random() * 2, 3)
        first = round(first_audio_ms + rng.random() * spread_ms, 3)
        rows.append({"ok": True, "connected_this_cycle": index == 0, "connect_ms": connect,
                     "session_start_ms": session, "first_response_ms": first, "input_to_audio_ms": first - 0.5,
                     "cold_start_ms": (connect or 0) + session + first, "first_audible_ms": first + 1.0,
                     "input_to_audible_ms": first + 0.5, "leading_silence_ms": 1.0,
                     "stop_ms": round(2 + rng.random(), 3)})
    return rows


def failures(count: int, kind: str, message: str) -> list[dict[str, Any]]:
    """``count`` failed iterations of one error kind."""
    return [{"ok": False, "error_kind": kind, "error": message} for _ in range(count)]


def record_run(results_dir: Path, *argv: str, samples: Sequence[dict[str, Any]], host: str = UNUSED_HOST,
               users: int = 1, killed: bool = False, report: bool = True) -> Path:
    """A run of ``locust --headless ARGV -H host`` whose iterations ended with ``samples``; its result folder.

    Each sample is granted its iteration by the run's budget and recorded as
    the run would record it (so a streak of connection failures stops the
    run early, as it does for real). ``killed``: the process died before the
    end, leaving run.json and samples.jsonl but no metrics.json. ``report``
    False leaves report.html out (its plots take matplotlib a second or more),
    for tests that read only metrics.json.
    """
    opts = parse("--headless", *argv, "--results-dir", str(results_dir))
    settings = options.resolve(opts, host)
    clips = settings.clips()
    run = MasterRun(settings=settings, recorder=RunRecorder(settings.results_dir, settings.provider),
                    end=lambda: None, users=users, audio=clips.summary(), clips=clips.describe(),
                    locust_options={key: getattr(opts, key, None) for key in LOCUST_OPTIONS})
    run.recorder.describe(run.run_block())
    for fields in samples:
        iteration = run.grant("local", users_running=users)
        if iteration is None:
            break
        run.receive("local", Sample(iteration, "local", 1, now_iso(), **fields))
    if killed:
        _let_go(run.recorder)
    elif report:
        run.close()
    else:
        with without_report():
            run.close()
    return run.recorder.folder


def _let_go(recorder: RunRecorder) -> None:
    """What the end of a killed process does to a recorder: its files closed, its log no longer captured."""
    import logging

    from bootbench.exporters import SESSION_LOG

    recorder._jsonl.close()  # the recorder has no public close short of finish(), which writes metrics.json
    logging.getLogger().removeHandler(recorder._log_handler)
    SESSION_LOG.removeHandler(recorder._log_handler)
    recorder._log_handler.close()
