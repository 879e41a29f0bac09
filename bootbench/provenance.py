"""Where a run's numbers came from: the command line (secrets masked), the machine, bootbench's git commit.

metrics.json records this as ``run.provenance`` next to ``run.versions``:

    {"command_line": "locust --headless -u 1 -i 100 -H https://host/x?***", "hostname": "bench-1",
     "cpu_model": "AMD EPYC 7B13", "cpu_count": 2, "git_commit": "3da388c..."}

Everything here is failure-tolerant and fast: a value that cannot be found is None.
"""

from __future__ import annotations

import os
import platform
import shlex
import socket
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import urlsplit

from bootbench.secrets import redact

PROJECT_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding the bootbench package: a git checkout when bootbench runs from one."""
GIT_TIMEOUT_S = 2.0


def provenance(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``run.provenance`` block for the process started with ``argv`` (default ``sys.argv``)."""
    return {
        "command_line": command_line(sys.argv if argv is None else argv),
        **machine(),
        "git_commit": git_commit(),
    }


def command_line(argv: Sequence[str]) -> str:
    """``argv`` as one shell line, program name shortened, URL query strings and credentials and keys masked."""
    if not argv:
        return ""
    program = os.path.basename(argv[0]) or argv[0]
    if program in ("__main__.py", "-m"):
        program = "locust"
    return redact(shlex.join([program, *(mask_argument(arg) for arg in argv[1:])]))


def mask_argument(arg: str) -> str:
    """One argument with any URL's query string shown as ``?***`` and its user:password dropped."""
    prefix, sep, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    if "://" not in value:
        return arg
    parts = urlsplit(value)
    netloc = parts.netloc.rpartition("@")[2]
    masked = f"{parts.scheme}://{netloc}{parts.path}{'?***' if parts.query else ''}{'#***' if parts.fragment else ''}"
    return f"{prefix}{sep}{masked}"


@cache
def machine() -> dict[str, Any]:
    """Host name, CPU model and the number of CPUs this process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    return {"hostname": socket.gethostname() or None, "cpu_model": cpu_model(), "cpu_count": cpus}


def cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo), else what :func:`platform.processor` says, else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


@cache
def git_commit() -> str | None:
    """bootbench's git commit (``+dirty`` with uncommitted changes), when it runs from a git checkout; else None."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(PROJECT_ROOT), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=True).stdout.strip()

    # Two git processes, not three: one rev-parse answers both the top level and HEAD (a line each; it fails, so
    # None, outside a checkout or before its first commit). Each process costs ~30 ms at the end of every run.
    try:
        toplevel, _, commit = git("rev-parse", "--show-toplevel", "HEAD").partition("\n")
        if Path(toplevel).resolve() != PROJECT_ROOT:
            return None  # bootbench is installed inside some other repository (a virtualenv in a project)
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "bootbench")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit
