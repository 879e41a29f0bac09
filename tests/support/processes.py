"""Real processes for tests: Locust runs with a clean environment, free loopback ports, JSONL reading.

    run = run_locust("-u", "1", "-i", "3", cwd=tmp_path)
    assert run.returncode == 0 and run.metrics["summary"]["successes"] == 3

bench/accuracy_runs.py keeps its own :func:`clean_env` with the same
:data:`FOREIGN_PREFIXES`, so that the benchmark and the tests run bootbench
in the same environment (bench never imports from tests/).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bootbench.providers import registry

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "locustfile.py"
LOCUST = [sys.executable, "-m", "locust"]
FOREIGN_PREFIXES = ("LOCUST_", "AIVOCO_", "OPENAI_", "GEMINI_", "GOOGLE_", "AZURE_", "XAI_", "BOOTBENCH_")
"""Variables of the developer's shell that would change what a test run does (options, keys); with
:func:`key_variables` (every built-in driver's key variables)."""


def key_variables() -> frozenset[str]:
    """The key variables of every driver bootbench ships (providers.registry.BUILTINS)."""
    found = set()
    for target in registry.BUILTINS.values():
        module, _, name = target.partition(":")
        found.update(getattr(importlib.import_module(module), name).key_variables)
    return frozenset(found)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without bootbench options and API keys, plus ``extra``."""
    keys = key_variables()
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES) and k not in keys}
    env.update(extra or {})
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocustRun:
    """A finished Locust process: exit code, output, and the result folder it printed last."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def folder(self) -> Path:
        lines = [line for line in self.stdout.strip().splitlines() if line.strip()]
        assert lines, f"no output; stderr:\n{self.stderr[-3000:]}"
        folder = Path(lines[-1].strip())
        assert folder.is_dir(), f"last line is not a result folder: {lines[-1]!r}\nstderr:\n{self.stderr[-3000:]}"
        return folder

    @property
    def metrics(self) -> dict:
        return json.loads((self.folder / "metrics.json").read_text())

    def jsonl(self) -> list[dict]:
        return read_jsonl(self.folder / "samples.jsonl")


def run_locust(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120,
               locustfile: Path = LOCUSTFILE, python: str | Path = sys.executable) -> LocustRun:
    """``locust -f locustfile.py --headless ARGS`` in ``cwd``, with a clean bootbench environment plus ``env``.

    ``python``: another interpreter (a venv with a plugin installed) instead of this one.
    """
    proc = subprocess.run([str(python), "-m", "locust", "-f", str(locustfile), "--headless", *args], cwd=cwd,
                          env=clean_env(env), capture_output=True, text=True, timeout=timeout)
    return LocustRun(proc.returncode, proc.stdout, proc.stderr)


def locust_process(*args: str, cwd: Path, log: Path, env: dict | None = None,
                   locustfile: Path = LOCUSTFILE) -> subprocess.Popen:
    """Start ``locust -f locustfile.py ARGS`` in the background, stdout and stderr to the file ``log``."""
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([*LOCUST, "-f", str(locustfile), *args], cwd=cwd, env=clean_env(env),
                                stdout=out, stderr=subprocess.STDOUT, text=True)


_IMPORTED_THEN_WAITING = """
import sys
import locust.main, bootbench.events, bootbench.user  # what `locust -f locustfile.py` imports first
sys.stdin.readline()  # until told to go
sys.argv[0] = "locust"
sys.exit(locust.main.main())
"""


class ReadyLocust:
    """A Locust process whose interpreter has already imported Locust and bootbench, started by :meth:`go`.

    A worker that must join a run at a chosen moment joins within a fraction of a second of being told, instead of
    after the seconds its imports take on a loaded machine (which the run would have to outlast).
    """

    def __init__(self, *args: str, cwd: Path, log: Path, env: dict | None = None) -> None:
        with open(log, "w") as out:
            self.process = subprocess.Popen([sys.executable, "-c", _IMPORTED_THEN_WAITING, "-f", str(LOCUSTFILE),
                                             *args], cwd=cwd, env=clean_env(env), stdin=subprocess.PIPE,
                                            stdout=out, stderr=subprocess.STDOUT, text=True)

    def go(self) -> subprocess.Popen:
        """Run ``locust ARGS`` now (in the process already started); the process."""
        self.process.stdin.write("go\n")
        self.process.stdin.close()
        return self.process


def wait_for_samples(results_dir: Path, count: int, timeout: float = 60) -> Path | None:
    """The samples.jsonl of the run writing into ``results_dir`` once it holds ``count`` lines; None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = list(Path(results_dir).glob("*/samples.jsonl"))
        if found and len(found[0].read_text().splitlines()) >= count:
            return found[0]
        time.sleep(0.02)
    return None


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON Lines file (samples.jsonl, a ground-truth file), blank lines skipped.

    A last line without its newline is a record its writer (a server still running) has not finished: it is
    left for the next read (bootbench and the reference server end every record with a newline).
    """
    text = Path(path).read_text()
    complete = text[:text.rfind("\n") + 1]   # up to the last newline: all of it, or nothing before the first
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Send ``sig`` and wait up to ``timeout`` s for ``process`` to end; kill it if it does not."""
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


SERVER_PRIORITY = 20
"""SCHED_FIFO priority of the reference servers the tests start (tests/conftest.py ``_prompt_reference_servers``):
above every normal process, far below the kernel's own threads."""


def make_prompt(pid: int) -> bool:
    """Run every thread of process ``pid`` under SCHED_FIFO at :data:`SERVER_PRIORITY`; False without the privilege.

    A reference server's ground truth is its own stamps, taken just before it sends. Under normal scheduling a
    server can wait milliseconds for a core between a stamp and its send while other processes are busy (the test's
    own Locust run writing its files, the tests of ``make test``'s parallel phase, a shared CI machine), and a test
    held to that truth within 1 to 10 ms would fail for the server's lateness, not bootbench's. Under SCHED_FIFO it
    runs as soon as it wakes. It is idle between messages, and the kernel keeps 5 % of every second for normal
    processes in any case (kernel.sched_rt_runtime_us).
    """
    try:
        threads = [int(task) for task in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        threads = [pid]
    for thread in threads:
        try:
            os.sched_setscheduler(thread, os.SCHED_FIFO, os.sched_param(SERVER_PRIORITY))
        except ProcessLookupError:
            pass  # a thread that ended meanwhile
        except PermissionError:
            return False
    return True
