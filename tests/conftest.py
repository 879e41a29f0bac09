"""Shared helpers: start the real reference server, run real Locust processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILE = ROOT / "locustfile.py"
LOCUST = [sys.executable, "-m", "locust"]


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
        return [json.loads(line) for line in (self.folder / "samples.jsonl").read_text().splitlines()]


def run_locust(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> LocustRun:
    """``locust -f locustfile.py --headless ARGS`` in ``cwd``, with a clean bootbench environment."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "AIVOCO_", "OPENAI_", "GEMINI_", "GOOGLE_"))}
    full_env.update(env or {})
    proc = subprocess.run([*LOCUST, "-f", str(LOCUSTFILE), "--headless", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    return LocustRun(proc.returncode, proc.stdout, proc.stderr)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.fixture
def reference_server(tmp_path):
    """Factory: start a real reference server process with the given options; stopped after the test."""
    from bootbench.server.launcher import ReferenceServer

    started = []

    def start(**kwargs) -> ReferenceServer:
        kwargs.setdefault("ground_truth", str(tmp_path / f"truth{len(started)}.jsonl"))
        server = ReferenceServer.start(**kwargs)
        server.ground_truth = Path(kwargs["ground_truth"])
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
