"""Where a user finds bootbench's options: ``bootbench options`` (``locust --help`` prints before any locustfile loads)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


from bootbench import options, providers
from bootbench.providers import registry
from support.cli import bootbench
from support.plugins import isolated_registry, locustfile_with_provider
from support.refusals import locust_parser

CONSOLE_SCRIPT = Path(sys.executable).parent / "bootbench"
"""The installed ``bootbench`` command: the one test that starts it as a process is the help below."""


def test_bootbench_options_lists_every_option_of_a_run_with_its_default():
    done = bootbench("options")
    assert done.returncode == 0 and done.stderr == ""
    text = done.stdout
    assert f"\n{options.HELP_GROUP}:\n" in text
    flags = set(re.findall(r"^  (?:-\w \w+, )?(--[a-z-]+)", text, re.M))
    parser = locust_parser()
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


def test_the_bootbench_command_returns_its_exit_code_and_never_exits(capsys, tmp_path):
    """``views.cli.main`` returns the code (the console script exits with it): 0, or 2 with one sentence."""
    from bootbench.views.cli import main

    assert main(["--help"]) == 0 and "'bootbench options' lists the options" in " ".join(capsys.readouterr().out.split())
    assert main(["options"]) == 0 and f"\n{options.HELP_GROUP}:\n" in capsys.readouterr().out
    assert main(["compare", "--sideways"]) == 2
    assert capsys.readouterr().err == ("bootbench: the following arguments are required: FOLDER "
                                       "(see: bootbench compare --help)\n")
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"bootbench: {tmp_path / 'missing'} does not exist\n"
    assert main([]) == 2 and "required: COMMAND" in capsys.readouterr().err


def test_bootbench_providers_describes_every_provider_of_the_table():
    """Each built-in: where it comes from, its key variables, turn modes (the default first), defaults, emulation."""
    done = bootbench("providers")
    assert done.returncode == 0 and done.stderr == ""
    blocks = done.stdout.strip().split("\n\n")
    assert [block.split(":", 1)[0] for block in blocks] == list(providers.names())
    for block, (name, driver) in zip(blocks, providers.drivers().items()):
        fields = dict(re.findall(r"^  ([a-z ]+):\s+(.*)$", block, re.M))
        assert fields["from"] == registry.source(name)
        assert fields["key variable"] == f"{' or '.join(driver.key_variables)} (the environment or ./.env)"
        assert fields["turn modes"] == ", ".join([f"{driver.turn_modes[0]} (default)", *driver.turn_modes[1:]]) \
            + " (--turn)"
        assert fields["default model"] == (driver.default_model or "(none: the service chooses)")
        assert fields["default voice"] == (driver.default_voice or "(none: the service chooses)")
        assert fields["reference server"] == "emulates it"
        if not driver.options:
            assert fields["options"] == "none"
        for option in driver.options:
            assert f"\n    {option.key}\n      " in block


def test_bootbench_providers_lists_a_locustfiles_options_with_their_help(monkeypatch, tmp_path):
    isolated_registry(monkeypatch)
    done = bootbench("providers", "plugged", "-f", locustfile_with_provider(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"""\
plugged: A plugged-in driver that speaks OpenAI Realtime.
  from:             PluggedDriver in {tmp_path / 'locustfile_with_provider.py'}
  key variable:     PLUGGED_API_KEY (the environment or ./.env)
  turn modes:       manual (default), vad (--turn)
  vad trailing:     600 ms sent by default with --turn vad (--trailing-silence-ms; at least 500)
  default model:    gpt-realtime
  default voice:    alloy
  public endpoint:  wss://api.openai.com/v1/realtime
  reference server: does not emulate it (give -H)
  options (--provider-option KEY=VALUE):
    region
      Where the agent runs. One of eu, us; default 'eu'.
    team
      The team that owns the agent. No default.
    token
      A session token the service wants beside the key. No default; secret: redacted in every file
      and log.
"""


def test_bootbench_providers_refuses_an_unknown_name_in_one_sentence():
    done = bootbench("providers", "skype")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("bootbench: unknown provider 'skype'; choose one of ")
    assert done.stderr.count("\n") == 1
