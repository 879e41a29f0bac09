"""The final write of a run leaves every file, whatever the numbers (issue 20 item 2).

A number that is not finite already becomes null (tests/test_bad_input.py);
a whole number too large for a CSV column's 64-bit integers (a sweep level of
99999999999999999999 users once reached the final write) must not cost
summary.csv, samples.csv or report.html either.
"""

from __future__ import annotations

import json

import pandas as pd

from bootbench.exporters import RunRecorder
from bootbench.samples import Sample

HUGE = 99_999_999_999_999_999_999
"""More than a signed 64-bit integer holds (9223372036854775807)."""


def test_a_level_too_large_for_64_bits_still_leaves_every_file(tmp_path, caplog):
    recorder = RunRecorder(tmp_path, "aivoco")
    for iteration in (1, 2):
        recorder.add(Sample(iteration, "local", 1, "t", True, session_start_ms=30.0, first_response_ms=150.0 + iteration,
                            level=HUGE))
    levels = [{"users": HUGE, "planned": 2, "rounds": 1, "duration_s": 1.0, "cpu": {}}]
    metrics = recorder.finish({"provider": "aivoco", "target": "ws://127.0.0.1:1", "sweep": [HUGE],
                               "sweep_tolerance": 1.5}, levels=levels)
    folder = recorder.folder
    written = json.loads((folder / "metrics.json").read_text())
    assert written["levels"][0]["users"] == HUGE == metrics["levels"][0]["users"]  # JSON keeps every digit
    summary = pd.read_csv(folder / "summary.csv", dtype={"level": str})
    assert summary.loc[summary["phase"] == "first_response_ms", "level"].tolist()[1:] == [str(HUGE)]
    assert summary.loc[summary["phase"] == "first_response_ms", "median"].tolist() == [151.5, 151.5]
    samples = pd.read_csv(folder / "samples.csv", dtype={"level": str})
    assert samples["level"].tolist() == [str(HUGE), str(HUGE)]
    assert samples["first_response_ms"].tolist() == [151.0, 152.0]
    assert "<html" in (folder / "report.html").read_text().lower()


def test_a_file_that_fails_to_write_costs_no_other_file(tmp_path, monkeypatch, caplog):
    from bootbench import exporters

    def overflow(*_args, **_kwargs):
        raise OverflowError("Python int too large to convert to C long")

    monkeypatch.setattr(exporters, "summary_frame", overflow)
    recorder = RunRecorder(tmp_path, "aivoco")
    recorder.add(Sample(1, "local", 1, "t", True, session_start_ms=30.0, first_response_ms=150.0))
    with caplog.at_level("ERROR", logger="bootbench"):
        recorder.finish({"provider": "aivoco", "target": "ws://127.0.0.1:1"})
    folder = recorder.folder
    assert json.loads((folder / "metrics.json").read_text())["summary"]["successes"] == 1
    assert not (folder / "summary.csv").exists()
    assert pd.read_csv(folder / "samples.csv")["first_response_ms"].tolist() == [150.0]
    assert "<html" in (folder / "report.html").read_text().lower()
    # the first line: with a key registered, the redaction filter folds the (redacted) traceback into the message
    assert [r.getMessage().splitlines()[0] for r in caplog.records if r.levelname == "ERROR"] == [
        "summary.csv could not be written; metrics.json holds the same numbers"]
