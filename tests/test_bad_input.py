"""Input with which a run could never work: one sentence on stderr, exit code 2, nothing started.

Each case once hung a real run, or ran it into a traceback or a misleading
result: non-finite numbers, no users, a clip at real-time pace longer than
the timeout. The cases are checked in-process (Locust's parser, then
bootbench.preflight); the entry point's rule is tested once in-process and
once per refusal path (Locust's argparse, an option, an audio file) through
a real ``locust`` process. The final write survives a number that is not
finite anyway.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bootbench.errors import EXIT_CODE, UserError
from bootbench.exporters import RunRecorder
from bootbench.providers.base import SessionState, audio_timeout_message
from bootbench.samples import ErrorKind, Sample, Timeline
from support.processes import LOCUST, LOCUSTFILE, clean_env


def bad_input_run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """``locust --headless -u 1 ARGS`` (a later ``-u`` wins); a run that hangs fails the test at the timeout."""
    return subprocess.run([*LOCUST, "-f", str(LOCUSTFILE), "--headless", "-u", "1", *args], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args, sentence", [
    (["--wait-ms", "nan"], "bootbench: --wait-ms must be a finite number, not nan"),
    (["--wait-ms", "inf"], "bootbench: --wait-ms must be a finite number, not inf"),
    (["--trailing-silence-ms", "nan"], "bootbench: --trailing-silence-ms must be a finite number, not nan"),
    (["--timeout", "inf"], "bootbench: --timeout must be a finite number, not inf"),
    (["--timeout", "nan"], "bootbench: --timeout must be a finite number, not nan"),
    (["--timeout", "86400"], "bootbench: --timeout must be at most 3600, not 86400"),
    (["-u", "0", "-i", "3"], "bootbench: -u 0 starts no user, so the run would never make progress"),
    (["-u", "-2", "-i", "3"], "bootbench: -u/--users cannot be negative (-2)"),
    (["-r", "0", "-i", "3"], "__main__.py: error: argument -r/--spawn-rate: must be > 0"),  # Locust's own check
    (["-r", "nan", "-i", "3"], "__main__.py: error: argument -r/--spawn-rate: must be a finite number"),
    (["--pace", "realtime", "--trailing-silence-ms", "20000"],
     "bootbench: at --pace realtime the input takes 21.0 s to send (clip and trailing silence), which leaves "
     "nothing of --timeout 10 s"),
    (["--pace", "realtime", "--timeout", "1"], "bootbench: at --pace realtime the input takes 1.0 s to send"),
])
def test_a_run_that_could_never_work_is_refused_in_one_sentence(refusals, tmp_path, args, sentence):
    line = refusals.line("--headless", "-u", "1", *args)  # a later -u wins
    assert line.startswith(sentence)
    assert not (tmp_path / "results").exists()


def test_the_entry_point_writes_the_sentence_and_exits_with_2_before_anything_starts(refusals, monkeypatch, capsys,
                                                                                   tmp_path):
    """Locust's init hook (bootbench.events) is where bad input becomes one line on stderr and exit code 2."""
    from locust import events as locust_events
    from locust.env import Environment
    from locust.event import EventHook

    for hook in vars(locust_events).values():  # importing bootbench.events registers its hooks: undone after the test
        if isinstance(hook, EventHook):
            monkeypatch.setattr(hook, "_handlers", list(hook._handlers))
    from bootbench import events

    parsed = refusals.options("--headless", "-u", "1", "--timeout", "inf")
    environment = Environment(parsed_options=parsed, host=parsed.host)
    runner = environment.create_local_runner()
    try:
        with pytest.raises(SystemExit) as exited:
            events._on_init(environment, runner)
    finally:
        runner.quit()
    assert exited.value.code == 2 == EXIT_CODE
    assert capsys.readouterr().err == "bootbench: --timeout must be a finite number, not inf\n"
    assert not (tmp_path / "results").exists()


def test_every_user_caused_error_is_one_type_for_the_entry_points():
    from bootbench.audio import AudioError
    from bootbench.checks import CheckError
    from bootbench.options import ConfigError
    from bootbench.views.cli import UserError as CliUserError
    from bootbench.views.load import ResultFolderError
    from bootbench.views.regression import RegressionError

    assert CliUserError is UserError
    for error in (ConfigError, AudioError, CheckError, ResultFolderError, RegressionError):
        assert issubclass(error, UserError) and issubclass(error, ValueError), error  # ValueError: as before


@pytest.mark.parametrize("args, sentence", [
    (["-r", "0", "-i", "3"], "__main__.py: error: argument -r/--spawn-rate: must be > 0"),  # Locust's argparse
    (["--timeout", "inf"], "bootbench: --timeout must be a finite number, not inf"),  # an option of ours
    (["--audio", "speech", "--audio", "missing.flac"], "bootbench: audio file missing.flac does not exist"),  # audio
], ids=["argparse", "option", "audio"])
def test_each_refusal_path_of_the_real_command_is_one_sentence_and_exit_code_2(tmp_path, args, sentence):
    run = bad_input_run(tmp_path, *args)
    assert run.returncode == 2, run.stderr[-2000:]
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("bootbench:") or ": error: " in line]
    assert line.startswith(sentence)
    assert "Traceback" not in run.stderr + run.stdout
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_a_realtime_clip_that_fits_the_timeout_is_accepted(tmp_path):
    run = bad_input_run(tmp_path, "--pace", "realtime", "--timeout", "2", "-i", "1")
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(next((tmp_path / "results").glob("*/metrics.json")).read_text())["summary"]["successes"] == 1


# ---------------------------------------------------------------- the final write never fails


def strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity are errors."""
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_a_number_that_is_not_finite_never_breaks_the_final_write(tmp_path, caplog):
    recorder = RunRecorder(tmp_path, "aivoco")
    samples = [Sample(1, "local", 1, "t", True, session_start_ms=30.0, first_response_ms=150.0, stop_ms=2.0),
               Sample(2, "local", 1, "t", True, session_start_ms=math.nan, first_response_ms=math.inf,
                      stop_ms=-math.inf),
               Sample(3, "local", 1, "t", True, session_start_ms=31.0, first_response_ms=160.0)]
    for sample in samples:
        recorder.add(sample)
    with caplog.at_level("WARNING", logger="bootbench"):
        metrics = recorder.finish({"provider": "aivoco", "target": "ws://127.0.0.1:1", "wait_ms": math.nan})
    folder = recorder.folder
    written = strict_json((folder / "metrics.json").read_text())
    assert written["run"]["wait_ms"] is None and metrics["run"]["wait_ms"] is None
    assert written["samples"][1]["first_response_ms"] is None and written["samples"][1]["stop_ms"] is None
    assert written["summary"]["phases"]["first_response_ms"]["count"] == 2
    assert [strict_json(line)["session_start_ms"] for line in (folder / "samples.jsonl").read_text().splitlines()] \
        == [30.0, None, 31.0]
    summary = pd.read_csv(folder / "summary.csv")
    assert summary.set_index("phase").loc["first_response_ms", "median"] == 155.0
    table = pd.read_csv(folder / "samples.csv")
    assert table["first_response_ms"].isna().tolist() == [False, True, False]
    assert "inf" not in (folder / "samples.csv").read_text().lower()
    assert "<html" in (folder / "report.html").read_text().lower()
    assert any("not finite written as null" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- a timeout message true to what happened


def test_the_audio_timeout_says_when_sending_the_input_used_up_the_time():
    timeline = Timeline(input_sent=5_000_000_000)
    assert audio_timeout_message(timeline, 6_000_000_000, "audio_response", 10) == "no audio_response within 10 s"
    late = audio_timeout_message(Timeline(input_sent=8_500_000_000), 6_000_000_000, "audio_response", 10)
    assert late == ("no audio_response within 10 s of the iteration's start: sending the input took until 2.5 s past "
                    "that limit, so the service had no time left to answer")
    session = SessionState(1)
    with pytest.raises(Exception) as raised:  # the deadline has passed: the wait ends at once
        session.await_first_audio(Timeline(input_sent=8_500_000_000), 6_000_000_000, "audio_response", 10)
    assert raised.value.kind == ErrorKind.AUDIO_TIMEOUT and "2.5 s past that limit" in raised.value.message
