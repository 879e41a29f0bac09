"""A headless Chromium driven over the DevTools protocol, for tests of what people see in a browser.

    browser = Browser(tmp_path / "profile")      # needs /usr/bin/chromium (see require_chromium)
    browser.open("http://127.0.0.1:8089/?tab=bootbench")
    browser.wait_for("document.body.innerText.includes('First response median')")
    assert browser.errors == [] and browser.requests
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
SHOTS = os.environ.get("BOOTBENCH_SCREENSHOTS")
"""Folder to save screenshots into (for looking at the pages); unset = no screenshots."""
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""A URL opener that never goes through a proxy (the pages are on 127.0.0.1)."""


def require_chromium() -> None:
    """Skip the calling test when Chromium is missing; in CI (``CI`` set) fail instead."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (.ci/run installs Debian's chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Browser:
    """A headless Chromium driven over the DevTools protocol: open pages, evaluate JS, record errors.

    ``errors`` collects console errors, uncaught exceptions, error log entries
    and failed network requests; ``requests`` every URL the pages asked for.
    """

    def __init__(self, profile: Path) -> None:
        import websocket

        self.process = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.ws = websocket.create_connection(self._page_url(profile), timeout=30, suppress_origin=True)
        except BaseException:
            self._end_process()
            raise
        self.ids = iter(range(1, 1_000_000))
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.urls: dict[str, str] = {}
        self.events: list[str] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")

    def _page_url(self, profile: Path) -> str:
        """The DevTools WebSocket URL of Chromium's first page, once Chromium has written its port."""
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, "chromium exited at start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(NO_PROXY.open(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        return next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"]

    def send(self, method: str, **params) -> dict:
        """Call a DevTools ``method`` and return its result, recording the events that arrive meanwhile."""
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
        """Load ``url`` in a ``width`` x ``height`` window and wait for its load event."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.events.clear()
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while "Page.loadEventFired" not in self.events:
            assert time.monotonic() < deadline, f"{url} did not load"
            self.evaluate("1")

    def evaluate(self, expression: str, *, while_loading: bool = False):
        """The JSON value of a JavaScript ``expression`` (promises awaited); None if it fails while loading."""
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
        """Save the whole page as ``$BOOTBENCH_SCREENSHOTS/name`` (nothing when that is unset)."""
        if not SHOTS:
            return
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        (Path(SHOTS) / name).write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        """Close the connection and end the Chromium process."""
        try:
            self.ws.close()
        finally:
            self._end_process()

    def _end_process(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
