"""What people see in a browser: the live bootbench tab of Locust's web UI, and report.html from disk.

A real Locust process serves its web UI on 127.0.0.1 and runs the benchmark
(``--autostart``); a real headless Chromium, driven over the DevTools
protocol, loads the pages, waits for the elements and collects every console
error and network request. In CI (``CI`` set) a missing Chromium is a
failure, elsewhere the tests are skipped.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import LOCUSTFILE

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = os.environ.get("BOOTBENCH_SCREENSHOTS")
"""Folder to save screenshots into (for looking at the pages); unset = no screenshots."""
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Browser:
    """A headless Chromium driven over the DevTools protocol: open pages, evaluate JS, record errors."""

    def __init__(self, profile: Path) -> None:
        import websocket

        self.process = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(NO_PROXY.open(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True)
        self.ids = iter(range(1, 1_000_000))
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.urls: dict[str, str] = {}
        self.events: list[str] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def send(self, method: str, **params) -> dict:
        ident = next(self.ids)
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                assert "error" not in message, f"{method}: {message['error']}"
                return message.get("result", {})
            self._event(message)

    def _event(self, message: dict) -> None:
        method, params = message.get("method"), message.get("params", {})
        self.events.append(method)
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            self.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Runtime.exceptionThrown":
            self.errors.append("exception: " + json.dumps(params["exceptionDetails"])[:500])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
            self.urls[params["requestId"]] = params["request"]["url"]
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            self.errors.append(f"network: {params.get('errorText')} {self.urls.get(params['requestId'])}")

    def open(self, url: str, width: int = 1280, height: int = 900) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while "Page.loadEventFired" not in self.events:
            assert time.monotonic() < deadline, f"{url} did not load"
            self.evaluate("1")

    def evaluate(self, expression: str, *, while_loading: bool = False):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if while_loading and "exceptionDetails" in result:
            return None
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        """The first truthy value of ``expression`` (which may fail while the page is still loading)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression, while_loading=True)
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for: {expression}"
            time.sleep(0.2)

    def screenshot(self, name: str) -> None:
        if not SHOTS:
            return
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SHOTS) / name).write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    require_chromium()
    started = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield started
    started.close()


@pytest.fixture
def browser(chromium):
    """The module's Chromium with the errors and requests of earlier tests forgotten."""
    chromium.errors.clear()
    chromium.requests.clear()
    return chromium


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class UiRun:
    """A Locust process with its web UI on 127.0.0.1, benchmarking the embedded reference server."""

    def __init__(self, folder: Path, iterations: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.results = folder / "results"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "AIVOCO_"))}
        self.log = open(folder / "locust.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--web-host", "127.0.0.1",
             "--web-port", str(self.port), "--autostart", "-u", "1", "-i", str(iterations),
             "--results-dir", str(self.results)],
            cwd=folder, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/")
                break
            except OSError:
                assert self.process.poll() is None, (folder / "locust.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the web UI did not come up"
                time.sleep(0.1)

    def get(self, path: str) -> bytes:
        return NO_PROXY.open(self.url + path, timeout=10).read()

    def post(self, path: str, form: dict) -> dict:
        data = urllib.parse.urlencode(form).encode()
        return json.loads(NO_PROXY.open(self.url + path, data=data, timeout=10).read())

    def finished_runs(self, count: int, timeout: float = 60.0) -> list[Path]:
        """Wait until ``count`` runs have written metrics.json; their folders, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, (self.results.parent / "locust.log").read_text()[-3000:]
            folders = sorted(p.parent for p in self.results.glob("*/report.html"))
            if len(folders) >= count:
                return folders
            assert time.monotonic() < deadline, f"fewer than {count} finished runs in {self.results}"
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def ui_run(tmp_path_factory):
    run = UiRun(tmp_path_factory.mktemp("ui"), iterations=12)
    yield run
    run.stop()


TAB_ROWS_JS = """[...document.querySelectorAll('table tbody tr')].map(tr => [...tr.cells].map(td => td.innerText.trim()))"""


def tab_values(browser: Browser) -> dict[str, str]:
    return {row[0]: row[1] for row in browser.evaluate(TAB_ROWS_JS) if len(row) >= 2}


def expected_tab_values(metrics: dict) -> dict[str, str]:
    summary = metrics["summary"]
    head = summary["phases"]["first_response_ms"]
    note = " (= max, fewer than 100 samples)" if summary["p99_is_max"] else ""
    return {
        "Run": f"{metrics['run']['id']} (finished)",
        "Iterations": f"{summary['iterations']} of {metrics['run']['iterations']['planned']}",
        "Successful / failed": f"{summary['successes']} / {summary['failures']}",
        "Success rate": f"{summary['success_rate'] * 100:.1f} %",
        "First response median": f"{head['median']:.1f} ms",
        "First response p95": f"{head['p95']:.1f} ms",
        "First response p99": f"{head['p99']:.1f} ms{note}",
        "First response mean": f"{head['mean']:.1f} ms",
        "Session start median": f"{summary['phases']['session_start_ms']['median']:.1f} ms",
        "Errors": "none",
    }


def test_live_tab_shows_the_exact_numbers_of_the_run_and_keeps_them_after_it_ends(ui_run, browser):
    browser.open(f"{ui_run.url}/?tab=bootbench")
    browser.wait_for("document.body.innerText.includes('First response median')")
    labels = browser.evaluate("[...document.querySelectorAll('[role=tab]')].map(t => t.textContent.trim())")
    assert "bootbench" in labels and {"Statistics", "Charts", "Failures"} <= set(labels)

    [folder] = ui_run.finished_runs(1)
    metrics = json.loads((folder / "metrics.json").read_text())
    browser.wait_for("document.body.innerText.includes('(finished)')")
    values = tab_values(browser)
    assert {k: values.get(k) for k in expected_tab_values(metrics)} == expected_tab_values(metrics)
    histogram = {k: int(v) for k, v in values.items() if k.startswith("First response ") and k.endswith(" ms")
                 and v.isdigit()}
    assert sum(histogram.values()) == metrics["summary"]["successes"] == 12
    browser.screenshot("live_tab.png")

    browser.open(f"{ui_run.url}/?tab=bootbench")
    browser.wait_for("document.body.innerText.includes('(finished)')")
    assert tab_values(browser)["First response median"] == expected_tab_values(metrics)["First response median"]
    assert browser.errors == []

    downloaded = json.loads(ui_run.get("/bootbench/metrics.json"))
    assert downloaded["summary"] == metrics["summary"] and downloaded["samples"] == metrics["samples"]


def test_download_tab_links_the_current_metrics_json(ui_run, browser):
    ui_run.finished_runs(1)
    browser.open(f"{ui_run.url}/?tab=reports")
    link = browser.wait_for("[...document.querySelectorAll('a')].map(a => a.href)"
                            ".find(h => h.endsWith('/bootbench/metrics.json'))")
    assert link == f"{ui_run.url}/bootbench/metrics.json"
    assert browser.errors == []


def test_a_second_run_from_the_ui_replaces_the_numbers_in_the_tab(ui_run, browser):
    [first] = ui_run.finished_runs(1)
    assert ui_run.post("/swarm", {"user_count": 1, "spawn_rate": 1})["success"]
    second = ui_run.finished_runs(2)[-1]
    assert second != first
    metrics = json.loads((second / "metrics.json").read_text())
    assert metrics["summary"]["iterations"] == 12
    browser.open(f"{ui_run.url}/?tab=bootbench")
    browser.wait_for(f"document.body.innerText.includes({json.dumps(metrics['run']['id'] + ' (finished)')})")
    values = tab_values(browser)
    assert {k: values.get(k) for k in expected_tab_values(metrics)} == expected_tab_values(metrics)
    assert json.loads(ui_run.get("/bootbench/metrics.json"))["run"]["id"] == metrics["run"]["id"]
    assert browser.errors == []


def test_report_html_opens_from_disk_with_its_plots_and_no_network(ui_run, browser, tmp_path):
    [folder, *_] = ui_run.finished_runs(1)
    metrics = json.loads((folder / "metrics.json").read_text())
    offline = tmp_path / "copied away" / "report.html"
    offline.parent.mkdir()
    shutil.copy(folder / "report.html", offline)
    browser.open(offline.as_uri())
    shown = browser.evaluate("Object.fromEntries([...document.querySelectorAll('.stat')]"
                             ".map(e => [e.id, e.querySelector('.value').innerText]))")
    head = metrics["summary"]["phases"]["first_response_ms"]
    assert shown == {
        "stat-median": f"{head['median']:.1f}", "stat-p95": f"{head['p95']:.1f}", "stat-p99": f"{head['p99']:.1f}",
        "stat-mean": f"{head['mean']:.1f}", "stat-success-rate": f"{metrics['summary']['success_rate'] * 100:.1f} %",
        "stat-iterations": "12",
    }
    sizes = browser.evaluate("[...document.querySelectorAll('figure.plot svg')].map(s => "
                             "{const r = s.getBoundingClientRect(); return [s.dataset.plot, r.width, r.height]})")
    assert [name for name, *_ in sizes] == ["histogram", "cdf", "trend", "phases"]
    assert all(width > 300 and height > 150 for _, width, height in sizes)
    assert browser.evaluate("document.getElementById('p99-note') !== null")
    assert browser.errors == []
    assert [url for url in browser.requests if not url.startswith(("file://", "data:"))] == []
    browser.screenshot("report.png")
