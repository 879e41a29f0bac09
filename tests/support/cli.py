"""The ``bootbench`` command inside the test process: ``bootbench.views.cli.main`` with its output captured.

    done = bootbench("compare", folder_a, folder_b)
    assert done.returncode == 0 and "Median (ms)" in done.stdout

The real console script is started as a process by one smoke test (tests/test_help.py).
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from bootbench.views import cli


@dataclass
class Done:
    """A finished ``bootbench`` command: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def bootbench(*args: str | Path) -> Done:
    """Run ``bootbench ARGS`` in this process; the exit code whether ``main`` returns it or exits with it."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main([str(arg) for arg in args])
        except SystemExit as exit_:  # argparse's errors and --help exit; main may also exit with its code
            code = exit_.code
    if isinstance(code, str):  # as the interpreter does: the message on stderr, exit code 1
        err.write(code + "\n")
        code = 1
    return Done(code or 0, out.getvalue(), err.getvalue())
