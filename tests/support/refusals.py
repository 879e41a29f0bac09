"""Bad input checked in-process: Locust's own parser with bootbench's options, then the pre-flight check.

A refusal is decided before Locust starts anything, so a table of bad input
needs no Locust process: the ``refusals`` fixture (tests/conftest.py) parses
``locust -f locustfile.py ARGS`` as Locust does and calls
:func:`bootbench.preflight.check`, in the test's own folder with a clean
environment::

    def test_x(refusals, tmp_path):
        assert refusals.sentence("--timeout", "inf") == "--timeout must be a finite number, not inf"
        assert not (tmp_path / "results").exists()

The entry point's own rule (``bootbench: SENTENCE`` on stderr, exit code 2)
is tested once in-process (tests/test_bad_input.py) and through real
processes for each refusal path.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from locust.argument_parser import LocustArgumentParser, get_empty_argument_parser, setup_parser_arguments

from bootbench import options, preflight
from bootbench.errors import EXIT_CODE, UserError
from support.processes import FOREIGN_PREFIXES, LOCUSTFILE, key_variables


def locust_parser() -> LocustArgumentParser:
    """Locust's argument parser as ``python -m locust -f locustfile.py`` builds it, without reading config files.

    Locust fires ``init_command_line_parser`` for bootbench to register its
    options (:func:`bootbench.options.add_arguments`); this calls that
    directly, so the parser is the same whether or not bootbench.events is imported.
    """
    parser = get_empty_argument_parser(default_config_files=[])
    parser.prog = "__main__.py"  # as ``python -m locust`` names itself in its error messages
    setup_parser_arguments(parser)
    options.add_arguments(parser)
    return parser


@dataclass
class Refusals:
    """Parse and check command lines in-process (see the module docstring)."""

    monkeypatch: pytest.MonkeyPatch

    @classmethod
    def in_folder(cls, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Refusals:
        """Checks run in ``folder`` (relative paths, ./.env), without the developer's LOCUST_* variables and API keys."""
        monkeypatch.chdir(folder)
        for name in list(os.environ):
            if name.startswith(FOREIGN_PREFIXES) or name in key_variables():
                monkeypatch.delenv(name)
        return cls(monkeypatch)

    def options(self, *args: str, env: dict[str, str] | None = None) -> Any:
        """The options Locust parses from ``locust -f locustfile.py ARGS`` with the variables ``env`` set."""
        for name, value in (env or {}).items():
            self.monkeypatch.setenv(name, value)
        return locust_parser().parse_args(["-f", str(LOCUSTFILE), *args], env_vars=os.environ)

    def check(self, *args: str, env: dict[str, str] | None = None) -> preflight.Checked:
        """What the pre-flight check makes of ``locust -f locustfile.py ARGS`` (raises what it raises)."""
        parsed = self.options(*args, env=env)
        return preflight.check(parsed, parsed.host)

    def error(self, *args: str, env: dict[str, str] | None = None) -> UserError:
        """The error refusing ``ARGS``: a :class:`UserError` whose sentence is one line."""
        with pytest.raises(UserError) as raised:
            self.check(*args, env=env)
        assert "\n" not in str(raised.value) and str(raised.value).strip(), repr(str(raised.value))
        return raised.value

    def sentence(self, *args: str, env: dict[str, str] | None = None) -> str:
        """The one sentence refusing ``ARGS`` (the entry point prints it after ``bootbench: ``)."""
        return str(self.error(*args, env=env))

    def line(self, *args: str, env: dict[str, str] | None = None) -> str:
        """The one line a real run refusing ``ARGS`` writes: Locust's usage error, or ``bootbench: SENTENCE``."""
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr):
                parsed = self.options(*args, env=env)
        except SystemExit:
            return self.usage_error(*args)
        with pytest.raises(UserError) as raised:
            preflight.check(parsed, parsed.host)
        sentence = str(raised.value)
        assert "\n" not in sentence and sentence.strip(), repr(sentence)
        return f"bootbench: {sentence}"

    def usage_error(self, *args: str) -> str:
        """The line Locust's own parser writes for ``ARGS`` it refuses itself, having exited with 2."""
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exited:
            self.options(*args)
        assert exited.value.code == EXIT_CODE
        (line,) = [line for line in stderr.getvalue().splitlines() if ": error: " in line]
        return line
