"""Real Prometheus parts for tests: a Prometheus server and a Pushgateway on 127.0.0.1, scrapes and their parsing.

    with PrometheusServer.start(tmp_path, targets=["127.0.0.1:9646"]) as prometheus:
        prometheus.wait_for('bootbench_run_running == 0')
        value = prometheus.value('bootbench_phase_seconds{phase="first_response",quantile="0.95"}')

Both are Debian's packages (``prometheus``, ``prometheus-pushgateway``;
.ci/run installs them): a test that needs one is skipped when it is
missing, and fails instead under ``CI=true``. Each server gets a generated
configuration, a temporary storage folder and a free port, and is stopped
when its ``with`` block ends.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.processes import ROOT, free_port, stop_process

DASHBOARD = ROOT / "examples" / "grafana" / "bootbench.json"
DASHBOARD_VARIABLES = {'"$provider"': '".*"', "$__rate_interval": "1m"}
"""The dashboard's variables as Grafana fills them in its queries (``$provider`` set to All)."""
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""A URL opener that never goes through a proxy (everything here is on 127.0.0.1)."""


def require(binary: str) -> str:
    """The path of Debian's ``binary``; the calling test is skipped when it is missing, and fails under ``CI=true``."""
    path = shutil.which(binary)
    if path:
        return path
    message = f"{binary} is missing (.ci/run installs Debian's prometheus and prometheus-pushgateway)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def get(url: str, timeout: float = 10) -> str:
    """The body of ``url`` (raises on a refused connection or an HTTP error)."""
    with NO_PROXY.open(url, timeout=timeout) as response:
        return response.read().decode()


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """One scrape of ``url`` parsed: (sample name, sorted labels) -> value."""
    return samples(get(url))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples of a text-format exposition: (sample name, sorted labels) -> value."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(scraped: dict, name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    found = [v for (n, have), v in scraped.items() if n == name and set(labels.items()) <= set(have)]
    assert len(found) == 1, f"{len(found)} samples of {name} {labels}"
    return found[0]


def wait_until_serving(url: str, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    """Wait until ``url`` answers (and ``process`` is still alive)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            get(url, timeout=2)
            return
        except OSError:
            if process is not None and process.poll() is not None:
                raise AssertionError(f"{process.args[0]} exited with {process.returncode}") from None
            assert time.monotonic() < deadline, f"{url} did not answer within {timeout} s"
            time.sleep(0.1)


@dataclass
class PrometheusServer:
    """A real Prometheus scraping given targets every second, with its HTTP API on 127.0.0.1."""

    process: subprocess.Popen
    url: str
    log: Path

    @classmethod
    def start(cls, folder: Path, targets: list[str], metrics_path: str = "/metrics") -> PrometheusServer:
        binary = require("prometheus")
        port = free_port()
        config = folder / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "bootbench", "metrics_path": metrics_path,
                                "static_configs": [{"targets": targets}]}],
        }))
        log = folder / "prometheus.log"
        with open(log, "w") as out:
            process = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'tsdb'}",
                                        f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"],
                                       stdout=out, stderr=subprocess.STDOUT)
        server = cls(process, f"http://127.0.0.1:{port}", log)
        try:
            wait_until_serving(server.url + "/-/ready", process)
        except BaseException:
            server.stop()
            raise
        return server

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.process)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result of the instant query ``expr`` (a list of ``{metric, value}``)."""
        body = json.loads(get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, expr: str) -> str:
        """The one value ``expr`` returns, as Prometheus's API writes it (the float's shortest exact text)."""
        result = self.query(expr)
        assert len(result) == 1, f"{expr}: {result}"
        return result[0]["value"][1]

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Wait until ``expr`` returns something (a comparison that holds); its result."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            assert time.monotonic() < deadline, f"{expr} returned nothing within {timeout} s\n" + \
                self.log.read_text()[-2000:]
            time.sleep(0.25)


@dataclass
class Pushgateway:
    """A real Prometheus Pushgateway on 127.0.0.1, keeping the pushes in memory only."""

    process: subprocess.Popen
    url: str

    @classmethod
    def start(cls, folder: Path) -> Pushgateway:
        binary = require("prometheus-pushgateway")
        port = free_port()
        with open(folder / "pushgateway.log", "w") as out:
            # Debian's default persists pushes into /var/lib/prometheus: a test's gateway keeps nothing
            process = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
                                       stdout=out, stderr=subprocess.STDOUT)
        gateway = cls(process, f"http://127.0.0.1:{port}")
        try:
            wait_until_serving(gateway.url + "/-/ready", process)
        except BaseException:
            gateway.stop()
            raise
        return gateway

    def __enter__(self) -> Pushgateway:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.process)

    def metrics(self) -> dict:
        """What the gateway serves to Prometheus now, parsed."""
        return scrape(self.url + "/metrics")


def iter_exprs(node: Any) -> Iterator[str]:
    """Every ``expr`` (a Prometheus query) anywhere in a Grafana dashboard's JSON."""
    if isinstance(node, dict):
        for key, item in node.items():
            if key == "expr" and isinstance(item, str):
                yield item
            else:
                yield from iter_exprs(item)
    elif isinstance(node, list):
        for item in node:
            yield from iter_exprs(item)
