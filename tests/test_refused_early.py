"""Input refused before anything starts (issue 20): one sentence, exit code 2, no results folder.

Each case once started a run that could only end badly: a CI gate that went
quiet (``--check ''``), a check that could only say "no data" after the whole
run, a value argparse took for an option, a sweep level no run can start.
Checked in-process through Locust's own parser and the pre-flight check
(tests/support/refusals.py); the real command's exit code for an option
refusal is tested in tests/test_bad_input.py.
"""

from __future__ import annotations

import pytest


def refused(refusals, tmp_path, *args: str, env: dict[str, str] | None = None) -> str:
    """The line a real ``locust --headless -u 1 -i 1 ARGS`` writes when it refuses ARGS; nothing was created."""
    line = refusals.line("--headless", "-u", "1", "-i", "1", *args, env=env)
    assert not (tmp_path / "results").exists()
    return line


# ---------------------------------------------------------------- item 12: an empty --check


@pytest.mark.parametrize("args, env", [
    (["--check", ""], {}),
    (["--check", "  "], {}),
    (["--check", "success_rate>=95%", "--check", ""], {}),
    (["--check", ";"], {}),
    ([], {"LOCUST_CHECK": ""}),
], ids=["empty", "blank", "second-empty", "only-separator", "empty-variable"])
def test_an_empty_check_is_refused_instead_of_dropping_the_gate(refusals, tmp_path, args, env):
    line = refused(refusals, tmp_path, *args, env=env)
    assert line.startswith("bootbench: empty --check: it names no check"), line


def test_a_trailing_separator_still_leaves_its_checks(refusals):
    checked = refusals.check("--headless", "-u", "1", "--check", "success_rate>=95%;")
    assert [check.expr for check in checked.settings.checks] == ["success_rate>=95%"]


# ---------------------------------------------------------------- item 13: checks that can only say "no data"


@pytest.mark.parametrize("args, sentence", [
    (["--check", "capacity>=4"],
     "bootbench: --check 'capacity>=4' needs --sweep: only a sweep measures a capacity"),
    (["--check", "warm_input_to_audio_ms:p95<=300"],
     "bootbench: --check 'warm_input_to_audio_ms:p95<=300' needs --turns 2 or more: "
     "with one turn per session there is no warm turn"),
    (["--check", "cold_penalty_ms:median<100", "--turns", "1"],
     "bootbench: --check 'cold_penalty_ms:median<100' needs --turns 2 or more: "),
])
def test_a_check_the_run_can_never_measure_is_refused_before_it_starts(refusals, tmp_path, args, sentence):
    assert refused(refusals, tmp_path, *args).startswith(sentence)


def test_checks_the_run_measures_are_accepted(refusals):
    checked = refusals.check("--headless", "-u", "1", "--sweep", "1,2", "--check", "capacity>=2",
                             "--turns", "2", "--check", "warm_input_to_audio_ms:p95<=300")
    assert [check.stat for check in checked.settings.checks] == ["capacity", "p95"]
