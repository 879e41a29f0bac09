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


# ---------------------------------------------------------------- item 20: values argparse took for options


@pytest.mark.parametrize("args, sentence", [
    (["--sweep", "-1,2"], "bootbench: --sweep levels must be positive numbers of users, not '-1,2'"),
    (["--audible-dbfs", "-inf"], "bootbench: --audible-dbfs must be a level from -120 up to (not including) 0 dBFS, "
                                 "not -inf"),
    (["--audible-dbfs", "-nan"], "bootbench: --audible-dbfs must be a level from -120 up to (not including) 0 dBFS, "
                                 "not nan"),
    (["--wait-ms", "-1e3"], "bootbench: --wait-ms cannot be negative (-1000)"),
    (["--sweep-tolerance", "-.5"], "bootbench: --sweep-tolerance must be a factor above 1, not -0.5"),
])
def test_a_value_that_starts_with_a_dash_is_read_as_the_value(refusals, tmp_path, args, sentence):
    assert refused(refusals, tmp_path, *args) == sentence


def test_a_valid_value_that_starts_with_a_dash_is_accepted(refusals):
    assert refusals.check("--headless", "-u", "1", "--audible-dbfs", "-4.5e1").settings.audible_dbfs == -45.0


def test_an_option_after_a_flag_is_still_an_option(refusals):
    """Only values that look like numbers are joined to the flag: a missing value is still argparse's error."""
    assert refusals.usage_error("--headless", "--sweep", "--turns", "2").endswith(
        "error: argument --sweep: expected one argument")


@pytest.mark.parametrize("sweep", ["1,,2", "1,2,4,", ",1,2", " , "])
def test_a_sweep_with_an_empty_level_is_refused(refusals, tmp_path, sweep):
    assert refused(refusals, tmp_path, "--sweep", sweep) == (
        f"bootbench: --sweep has an empty level in {sweep!r}: write the users of each level, like 1,2,4,8")


@pytest.mark.parametrize("tolerance", ["-1", "0", "1"])
def test_a_sweep_tolerance_of_1_or_less_is_refused_even_without_a_sweep(refusals, tmp_path, tolerance):
    assert refused(refusals, tmp_path, f"--sweep-tolerance={tolerance}") == (
        f"bootbench: --sweep-tolerance must be a factor above 1, not {float(tolerance):g}")


def test_a_dash_value_of_the_bootbench_command_gets_its_own_sentence(tmp_path):
    from support.cli import bootbench

    done = bootbench("compare", tmp_path, "--baseline", tmp_path, "--fail-if-slower", "-5%")
    assert done.returncode == 2
    assert done.stderr.startswith(
        "bootbench: --fail-if-slower expects a non-negative percentage such as 10%, not '-5%'"), done.stderr


def test_the_real_command_reads_a_dash_value_from_its_own_command_line(tmp_path):
    """Locust parses sys.argv itself: the one path the in-process parser cannot take."""
    import subprocess

    from support.processes import LOCUST, LOCUSTFILE, clean_env

    run = subprocess.run([*LOCUST, "-f", str(LOCUSTFILE), "--headless", "-u", "1", "--sweep", "-1,2"], cwd=tmp_path,
                         env=clean_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "bootbench: --sweep levels must be positive numbers of users, not '-1,2'" in run.stderr.splitlines()
    assert "Traceback" not in run.stderr and not (tmp_path / "results").exists()


# ---------------------------------------------------------------- items 1 and 2: sweep levels no run can start


@pytest.mark.parametrize("args, sentence", [
    (["--sweep", "1,100000"],
     "bootbench: --sweep level 100000 can never start: a level's users start at 100 per second and the first of "
     "them stops waiting for its round after 60 s, so a level can have at most 3000 users (half of what 60 s "
     "at 100/s would start, for a machine that starts them slower)"),
    (["--sweep", "99999999999999999999"],
     "bootbench: --sweep level 99999999999999999999 can never start: "),
    (["--sweep", "2,800", "--processes", "2"],
     "bootbench: --sweep level 800 can never start: a level's users start at 100 per second and the first of "
     "them stops waiting for its round after 15 s (--master-silence-s 10 + 5 on a worker), so a level can have "
     "at most 750 users (half of what 15 s at 100/s would start, for a machine that starts them slower); "
     "raise --master-silence-s for larger levels"),
])
def test_a_sweep_level_no_run_can_start_is_refused_with_the_rule(refusals, tmp_path, args, sentence):
    assert refused(refusals, tmp_path, *args).startswith(sentence)


def test_the_largest_sweep_level_is_accepted_and_grows_with_the_master_silence(refusals):
    assert refusals.check("--headless", "--sweep", "1,3000").settings.sweep_levels() == (1, 3000)
    assert refusals.check("--headless", "--master", "--sweep", "1500", "--master-silence-s", "25").settings.sweep


# ---------------------------------------------------------------- item 5: a reply gap the timeout never allows


@pytest.mark.parametrize("args", [
    ["--turns", "2", "--reply-gap-ms", "60000"],
    ["--turns", "3", "--reply-gap-ms", "2000", "--timeout", "2"],
])
def test_a_reply_gap_not_below_the_timeout_is_refused(refusals, tmp_path, args):
    gap, timeout = float(args[args.index("--reply-gap-ms") + 1]), 10.0
    if "--timeout" in args:
        timeout = float(args[args.index("--timeout") + 1])
    assert refused(refusals, tmp_path, *args) == (
        f"bootbench: --reply-gap-ms {gap:g} is not below --timeout {timeout:g} s: with --turns above 1 an aivoco "
        f"reply ends only after that much quiet, and each reply must end within --timeout; give a gap below "
        f"{timeout * 1000:g} ms (default 500)")


@pytest.mark.parametrize("args", [
    ["--turns", "1", "--reply-gap-ms", "60000"],  # one turn: no reply end is awaited
    ["--turns", "2", "--reply-gap-ms", "60000", "--provider", "openai"],  # OpenAI ends a reply with an event
    ["--turns", "2", "--reply-gap-ms", "1999", "--timeout", "2"],
])
def test_a_reply_gap_the_run_does_not_wait_for_or_that_fits_is_accepted(refusals, args):
    assert refusals.check("--headless", "-u", "1", *args).settings.reply_gap_ms == float(args[3])


# ---------------------------------------------------------------- item 3: a session of more turns than it can hold


def test_more_turns_than_a_session_holds_are_refused_with_the_reason(refusals, tmp_path):
    assert refused(refusals, tmp_path, "--turns", "10000") == (
        "bootbench: --turns must be at most 50, not 10000: Gemini Live ends a connection after about 10 minutes, "
        "and a turn (a clip, its reply, the pause before the next) takes about 12 s")
    assert refusals.check("--headless", "-u", "1", "--turns", "50").settings.turns == 50
