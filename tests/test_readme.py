"""The README says what the code does: its option table and --check grammar are the code's, its sample outputs
have the lines and columns the code prints (issue 20 item 21).

A failure here means the README drifted: regenerate the tables with
``python tests/support/readme_tables.py --readme``, or update the sample by hand from a real run.
"""

from __future__ import annotations

import json
import re

import pytest

from bootbench.checks import parse_check
from bootbench.samples import PHASES, TURN_PHASES
from bootbench.views import compare, reference
from bootbench.views.cli import options_help
from bootbench.views.text import console_summary
from support.folders import record_run, timings
from support.readme_tables import ROOT, TABLES, from_code, in_readme

README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", list(TABLES))
def test_the_readme_table_is_the_one_the_code_writes(name):
    assert in_readme(name) is not None, f"the README lost the markers of its {name}"
    assert in_readme(name) == from_code(name), "regenerate it: python tests/support/readme_tables.py --readme"


def test_the_option_table_has_every_option_and_its_default():
    from bootbench.options import OPTIONS

    table = from_code("options table")
    for option in OPTIONS:
        assert f"`{option.flag}" in table, option.flag
    assert "`--ca-bundle CA_BUNDLE` | the system's |" in table
    assert "`-i`, `--iterations ITERATIONS` | 100 |" in table and "`--pace burst\\|realtime` | burst |" in table


def test_the_check_grammar_names_every_phase_and_capacity_and_each_parses():
    grammar = reference.check_grammar()
    for phase in (*PHASES, *TURN_PHASES):
        assert re.search(rf"\| {phase}\b|^    {phase}$", grammar, re.M), phase
        assert parse_check(f"{phase}:p95<=800").phase == phase
    assert "capacity OP USERS" in grammar and parse_check("capacity>=4").stat == "capacity"
    assert "--sweep" in grammar.splitlines()[2]


def test_bootbench_options_help_for_check_names_capacity():
    help_text = " ".join(options_help().split())
    check = help_text[help_text.index("--check EXPR"):help_text.index("--sweep SWEEP")]
    assert "capacity" in check, check


def test_conf_locust_conf_names_the_command_that_lists_the_options():
    text = (ROOT / "conf" / "locust.conf").read_text()
    assert "`bootbench options` lists them" in text
    assert "(`locust --help` shows them)" not in text


def fenced_after(marker: str) -> list[str]:
    """The lines of the first fenced block after ``marker`` in the README."""
    rest = README[README.index(marker):]
    return rest.split("```\n", 2)[1].splitlines()


def table_after(marker: str) -> list[list[str]]:
    """The first Markdown table after ``marker``: its rows as cells (the separator row left out)."""
    lines = README[README.index(marker):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return [rows[0], *rows[2:]]


def test_the_quick_start_sample_has_the_lines_a_run_prints(tmp_path):
    folder = record_run(tmp_path, "-i", "3", samples=timings(3), report=False)
    printed = console_summary(json.loads((folder / "metrics.json").read_text())).splitlines()
    sample = fenced_after("It finishes in about")
    labels = [line.split(":")[0] for line in sample[:-1]]
    assert labels == [line.split(":")[0] for line in printed]  # bootbench, iterations, first response, first audible, ...
    assert "  first audible" in labels
    assert re.fullmatch(r"results/\d{8}-\d{6}-aivoco", sample[-1])


def test_the_compare_example_has_the_columns_compare_prints():
    header, *rows = table_after("To compare runs")
    assert tuple(header) == compare.HEADER
    assert rows and all(len(row) == len(header) for row in rows)
    assert all(re.fullmatch(r"\d{8}-\d{6}-aivoco", row[0]) for row in rows)


def test_the_sweep_example_has_the_headers_compare_prints():
    header, *rows = table_after("Two real runs of")
    names = [cell[:-len(compare.SWEEP_COLUMNS[0]) - 1] for cell in header[1::len(compare.SWEEP_COLUMNS)]]
    assert header == ["Users", *(f"{name} {column}" for name in names for column in compare.SWEEP_COLUMNS)]
    assert len(names) == 2 and all(re.fullmatch(r"\d{8}-\d{6}-aivoco", name) for name in names), names
    assert rows[-1][0] == "capacity"
