"""Start and stop the reference server as a subprocess from Python.

    with ReferenceServer.start(api_key="k", setup_delay="30", first_audio_delay="80") as server:
        drive(server.url)
        print(server.stats())

Standard library only, and no blocking the launching process cannot
interrupt: it works in plain Python, under pytest, and inside Locust's
gevent-patched processes (``time.sleep``, ``subprocess`` and sockets are the
patched ones there). The server's stdout and stderr go to files in a
temporary directory, so no pipe can fill up and stall the server; the
listening line is polled from the stdout file. The API key travels in an
environment variable, never in argv.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .constants import API_KEY_ENV, LISTENING_PREFIX

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ReferenceServer:
    """A running reference server subprocess; create it with :meth:`start`."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, workdir: Path) -> None:
        self.process = process
        self.url = url
        self.port = int(url.rsplit(":", 1)[1])
        self._workdir = workdir
        self._stderr_final: str | None = None
        atexit.register(self.stop)

    @property
    def pid(self) -> int:
        """Process id of the server."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """Exit code once the server has exited, else None."""
        return self.process.poll()

    @classmethod
    def start(cls, *, api_key: str | None = None, ground_truth: str | os.PathLike[str] | None = None,
              setup_delay: str | float | None = None, first_audio_delay: str | float | None = None,
              warm_first_audio_delay: str | float | None = None,
              cold_penalty: float | None = None, capacity: int | None = None, reply_ms: int | None = None,
              seed: int | None = None, extra_args: Sequence[str] = (), startup_timeout: float = 15.0,
              host: str = "127.0.0.1", port: int = 0, python: str | os.PathLike[str] | None = None) -> ReferenceServer:
        """Start a server and wait until it listens; None leaves the server's default.

        ``port`` 0 picks a free port; a given port lets a test restart a killed server where its clients expect it.
        ``python``: the interpreter to run it with (default this one), e.g. a venv with a plugin's protocol installed.

        Raises ``RuntimeError`` with the tail of the server's stderr if it does not
        start listening within ``startup_timeout`` seconds.
        """
        options: list[tuple[str, Any]] = [
            ("--ground-truth", None if ground_truth is None else os.path.abspath(ground_truth)),
            ("--setup-delay", setup_delay), ("--first-audio-delay", first_audio_delay),
            ("--warm-first-audio-delay", warm_first_audio_delay),
            ("--cold-penalty", cold_penalty), ("--capacity", capacity), ("--reply-ms", reply_ms), ("--seed", seed)]
        argv = [str(python or sys.executable), "-m", "bootbench.server", "--host", host, "--port", str(port),
                "--parent-pid", str(os.getpid())]
        for flag, value in options:
            if value is not None:
                argv += [flag, str(value)]
        argv += list(extra_args)
        env = dict(os.environ)
        env.pop(API_KEY_ENV, None)
        if api_key is not None:
            env[API_KEY_ENV] = api_key
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        workdir = Path(tempfile.mkdtemp(prefix="bootbench-server-"))
        with open(workdir / "stdout", "wb") as out, open(workdir / "stderr", "wb") as err:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                       close_fds=True, start_new_session=True)
        try:
            url = _wait_listening(process, workdir, startup_timeout)
        except BaseException:
            _terminate(process, 2.0)
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return cls(process, url, workdir)

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The server's ``GET /stats`` counters: sessions, violations, active, queued, ..."""
        with _NO_PROXY.open(self.url + "/stats", timeout=timeout) as response:
            return json.loads(response.read())

    def stderr_text(self) -> str:
        """Everything the server logged so far (also after :meth:`stop`)."""
        if self._stderr_final is not None:
            return self._stderr_final
        return _read(self._workdir / "stderr")

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the server, kill it after ``timeout`` seconds; returns its exit code. Idempotent."""
        if self._stderr_final is not None:
            return self.process.returncode
        atexit.unregister(self.stop)
        code = _terminate(self.process, timeout)
        self._stderr_final = _read(self._workdir / "stderr")
        shutil.rmtree(self._workdir, ignore_errors=True)
        return code

    def __enter__(self) -> ReferenceServer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"ReferenceServer(url={self.url!r}, pid={self.pid})"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _wait_listening(process: subprocess.Popen[bytes], workdir: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for line in _read(workdir / "stdout").splitlines(keepends=True):
            if line.startswith(LISTENING_PREFIX) and line.endswith("\n"):
                return line[len(LISTENING_PREFIX):].split()[0]  # the URL; a note may follow it
        code = process.poll()
        if code is not None:
            raise RuntimeError(f"reference server exited with code {code} before listening; its stderr:\n"
                               f"{_tail(_read(workdir / 'stderr'))}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"reference server did not listen within {timeout:g} s; its stderr:\n"
                               f"{_tail(_read(workdir / 'stderr'))}")
        time.sleep(0.02)


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
