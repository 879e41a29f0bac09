"""Test hosts on a private network made of Linux network namespaces, for runs across a real network.

    with Lab(["service", "master", "worker1", "worker2"]) as lab:
        server = lab["service"].popen([PYTHON, "-m", "bootbench.server", ...], log=tmp_path / "server.log")
        lab["worker2"].cut()          # the cable is pulled at the switch: no FIN, no RST
        lab["worker2"].restore()

Each host is a network namespace with its own loopback, its own hostname
(a UTS namespace per process started in it, so a Locust worker's id starts
with the host's name) and one veth link to a bridge. The bridge lives in a
namespace of its own (the "switch"), so nothing is created in, or changed on,
the root namespace's interfaces, and the private addresses (10.231.0.0/24)
exist only inside the lab. Namespace names are unique per lab, so labs of
concurrent test runs do not meet. :meth:`Lab.close` kills every process in
every namespace (``ip netns pids``) and deletes the namespaces; it runs from
``__exit__``, so a failing or interrupted test tears down too.

Only root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) can build a lab; :func:`unavailable`
says why not, and :func:`require_lab` turns that into a skip, or a failure
under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .processes import ROOT, clean_env

PYTHON = sys.executable
SUBNET = "10.231.0"
"""The lab's /24: private, and present only inside the lab's namespaces."""
PREFIX = "bbnet"
"""Every namespace of every lab is named ``bbnet-<lab id>-<host>``."""


def unavailable() -> str | None:
    """Why this process cannot build a lab here, or None when it can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns add)"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"network namespace tests need the {tool!r} command"
    probe = f"{PREFIX}-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    try:
        bridge = subprocess.run(["ip", "-n", probe, "link", "add", "br0", "type", "bridge"],
                                capture_output=True, text=True)
        if bridge.returncode != 0:
            return f"cannot create a bridge in a network namespace: {bridge.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def require_lab() -> None:
    """Skip the calling test when no lab can be built here; under ``CI=true`` fail instead."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@dataclass
class Host:
    """One test machine: a namespace with an address, a link to the switch, and the processes started in it."""

    name: str
    netns: str
    ip: str
    device: str
    """The host's interface (inside its namespace)."""
    port: str
    """The other end of the host's link: a port of the bridge, inside the switch namespace."""
    switch: str
    processes: list[subprocess.Popen] = field(default_factory=list)

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this host, under the host's own hostname."""
        return ["ip", "netns", "exec", self.netns, "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', self.name, *argv]

    def run(self, argv: Sequence[str], *, timeout: float = 30, env: dict | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
        """Run ``argv`` in this host to completion; output captured as text."""
        return subprocess.run(self.command(argv), capture_output=True, text=True, timeout=timeout,
                              env=clean_env(env), cwd=cwd or ROOT)

    def popen(self, argv: Sequence[str], *, log: Path, env: dict | None = None, cwd: Path | None = None,
              ) -> subprocess.Popen:
        """Start ``argv`` in this host in the background, stdout and stderr to ``log``; the lab stops it."""
        extra = {"PYTHONUNBUFFERED": "1", **(env or {})}
        with open(log, "w") as out:
            process = subprocess.Popen(self.command(argv), stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, env=clean_env(extra), cwd=cwd or ROOT,
                                       text=True)
        self.processes.append(process)
        return process

    def locust(self, *args: str, log: Path, cwd: Path, env: dict | None = None) -> subprocess.Popen:
        """``locust -f locustfile.py ARGS`` in this host."""
        return self.popen([PYTHON, "-m", "locust", "-f", str(ROOT / "locustfile.py"), *args],
                          log=log, cwd=cwd, env=env)

    def cut(self, *, at: str = "switch") -> None:
        """Take the host off the network without a word: no FIN, no RST reaches anyone.

        ``at="switch"`` sets the bridge's port down (the cable pulled at the
        switch: the host's interface loses its carrier but keeps its routes),
        ``"host"`` the host's own interface (its routes go too), ``"both"`` both.
        """
        if at in ("switch", "both"):
            _ip("-n", self.switch, "link", "set", self.port, "down")
        if at in ("host", "both"):
            _ip("-n", self.netns, "link", "set", self.device, "down")

    def restore(self) -> None:
        """Put the host back on the network (both ends up; the address and its route come back)."""
        _ip("-n", self.netns, "link", "set", self.device, "up")
        _ip("-n", self.switch, "link", "set", self.port, "up")

    def unreachable(self, other: Host) -> None:
        """This host can no longer reach ``other`` (an ``unreachable`` route: connects fail at once)."""
        _ip("-n", self.netns, "route", "add", "unreachable", f"{other.ip}/32")

    def pids(self) -> list[int]:
        """Every process running in this host's namespace."""
        done = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split()]


class Lab:
    """A switch and some hosts; use it as a context manager so that it is always torn down."""

    def __init__(self, names: Iterable[str]) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.switch = f"{PREFIX}-{self.id}-switch"
        self.hosts: dict[str, Host] = {}
        self._names = list(names)
        self._namespaces: list[str] = []

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self._namespaces.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _build(self) -> None:
        self._add_namespace(self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for number, name in enumerate(self._names, start=1):
            netns = f"{PREFIX}-{self.id}-{name}"
            self._add_namespace(netns)
            host = Host(name=name, netns=netns, ip=f"{SUBNET}.{number + 1}", device="eth0", port=f"p{number}",
                        switch=self.switch)
            # both ends are created straight in their namespaces: nothing appears in the root namespace
            _ip("-n", self.switch, "link", "add", host.port, "type", "veth", "peer", "name", host.device,
                "netns", netns)
            _ip("-n", self.switch, "link", "set", host.port, "master", "br0")
            _ip("-n", self.switch, "link", "set", host.port, "up")
            _ip("-n", netns, "addr", "add", f"{host.ip}/24", "dev", host.device)
            _ip("-n", netns, "link", "set", host.device, "up")
            self.hosts[name] = host
        self._wait_until_connected()

    def _wait_until_connected(self, timeout: float = 10.0) -> None:
        """Every host reaches every other (the bridge's ports need a moment to forward)."""
        first, *others = self.hosts.values()
        deadline = time.monotonic() + timeout
        for other in others:
            while True:
                ping = subprocess.run(["ip", "netns", "exec", first.netns, "ping", "-c", "1", "-W", "1", other.ip],
                                      capture_output=True, text=True)
                if ping.returncode == 0:
                    break
                if shutil.which("ping") is None or time.monotonic() > deadline:
                    return  # no ping to check with, or the bridge is slow: the tests' own timeouts will say
                time.sleep(0.05)

    def close(self) -> None:
        """Stop every process in the lab and delete its namespaces. Idempotent; never raises."""
        for host in self.hosts.values():
            for process in host.processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        for host in self.hosts.values():
            for process in host.processes:
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        for netns in self._namespaces:
            for _ in range(20):
                done = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
                pids = [int(p) for p in done.stdout.split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        self._namespaces.clear()


def leftover_namespaces() -> list[str]:
    """Lab namespaces that exist now (a test asserts there are none of its own after teardown)."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    return [line.split()[0] for line in done.stdout.splitlines() if line.startswith(PREFIX + "-")]
