"""Where a user finds bootbench's options: ``bootbench options`` (``locust --help`` prints before any locustfile loads)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments

from bootbench import options
from support.cli import bootbench

CONSOLE_SCRIPT = Path(sys.executable).parent / "bootbench"
"""The installed ``bootbench`` command: the one test that starts it as a process is the help below."""


def test_bootbench_options_lists_every_option_of_a_run_with_its_default():
    done = bootbench("options")
    assert done.returncode == 0 and done.stderr == ""
    text = done.stdout
    assert f"\n{options.HELP_GROUP}:\n" in text
    flags = set(re.findall(r"^  (?:-\w \w+, )?(--[a-z-]+)", text, re.M))
    # Locust's parser without firing the global init_command_line_parser event (importing bootbench.events, as
    # any in-process test does, adds bootbench's options there already)
    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    setup_parser_arguments(parser)
    options.add_arguments(parser)
    ours = [a for a in parser._actions if a.dest in options.OPTION_FIELDS]
    assert {a.dest for a in ours} == set(options.OPTION_FIELDS)
    assert flags == {a.option_strings[-1] for a in ours}
    entries = re.split(r"\n  (?=-)", text.split(f"{options.HELP_GROUP}:", 1)[1])[1:]
    assert len(entries) == len(options.OPTION_FIELDS)
    for entry in entries:
        assert re.search(r"default", entry, re.I), entry


def test_bootbench_help_points_to_the_options_of_a_run():
    """The real console script as a process (entry point, exit code, output); every other test calls it here."""
    done = subprocess.run([str(CONSOLE_SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr == ""
    assert "'bootbench options' lists the options" in " ".join(done.stdout.split())
    assert re.search(r"^    options\s+list the options locust takes for a bootbench run", done.stdout, re.M)
