"""One convention for shares across options (issue 20 item 15): ``--check success_rate OP VALUE`` and ``bootbench
compare --fail-if-slower VALUE`` both read a percentage with % or a bare fraction from 0 to 1, and refuse a bare
number above 1 (10 could be 10 % or 1000 %) in one sentence."""

from __future__ import annotations

import pytest

from bootbench.checks import CheckError, parse_check
from bootbench.views.regression import RegressionError, parse_percent


@pytest.mark.parametrize("text, fraction", [("10%", 0.10), ("0.1", 0.10), (" 2.5 % ", 0.025), ("0.025", 0.025),
                                            ("1", 1.0), ("0", 0.0), ("100%", 1.0)])
def test_a_share_reads_the_same_in_a_check_and_in_fail_if_slower(text, fraction):
    assert parse_check(f"success_rate>={text}").threshold == pytest.approx(fraction)
    assert parse_percent(text) == round(fraction * 100, 9)


def test_fail_if_slower_takes_more_than_100_percent_written_with_the_sign():
    assert parse_percent("150%") == 150.0


@pytest.mark.parametrize("text", ["10", "95", "1.5"])
def test_a_bare_number_above_1_is_refused_by_both_in_the_same_words(text):
    number = float(text)
    with pytest.raises(RegressionError) as slower:
        parse_percent(text)
    with pytest.raises(CheckError) as check:
        parse_check(f"success_rate>={text}")
    rule = (f"{number:g} is ambiguous ({number:g}% or {number * 100:g}%?); write a share as a percentage with % "
            f"({number:g}%) or a fraction from 0 to 1 ({number / 100:g}).")
    assert str(slower.value) == f"--fail-if-slower {rule}"
    assert str(check.value) == f"--check 'success_rate>={text}': {rule}"


def test_the_bootbench_command_says_it_in_one_sentence(tmp_path):
    from support.cli import bootbench

    done = bootbench("compare", tmp_path, "--baseline", tmp_path, "--fail-if-slower", "10")
    assert done.returncode == 2
    assert done.stderr == ("bootbench: --fail-if-slower 10 is ambiguous (10% or 1000%?); write a share as a "
                           "percentage with % (10%) or a fraction from 0 to 1 (0.1)\n")
