"""What people see in a browser: the live bootbench tab of Locust's web UI, and report.html from disk.

A real Locust process serves its web UI on 127.0.0.1 and runs the benchmark
(``--autostart``); a real headless Chromium, driven over the DevTools
protocol, loads the pages, waits for the elements and collects every console
error and network request. In CI (``CI`` set) a missing Chromium is a
failure, elsewhere those tests are skipped. The tab's routes are also
checked without a browser, on Locust's own Flask app with a run object of
chosen samples.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
import urllib.parse
from pathlib import Path

import pytest

from bootbench.samples import Sample
from bootbench.stats import p99_note
from bootbench.views import webui
from support.browser import NO_PROXY, Browser, require_chromium
from support.prometheus import samples, value
from support.processes import free_port, locust_process, stop_process


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


class UiRun:
    """A Locust process with its web UI on 127.0.0.1, benchmarking the embedded reference server."""

    def __init__(self, folder: Path, iterations: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.results = folder / "results"
        self.log = folder / "locust.log"
        self.process = locust_process("--web-host", "127.0.0.1", "--web-port", str(self.port), "--autostart",
                                      "-u", "1", "-i", str(iterations), "--results-dir", str(self.results),
                                      cwd=folder, log=self.log)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.get("/")
                break
            except OSError:
                assert self.process.poll() is None, self.log.read_text()[-3000:]
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
            assert self.process.poll() is None, self.log.read_text()[-3000:]
            folders = sorted(p.parent for p in self.results.glob("*/report.html"))
            if len(folders) >= count:
                return folders
            assert time.monotonic() < deadline, f"fewer than {count} finished runs in {self.results}"
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.process, signal.SIGTERM, 20)


ITERATIONS = 6
"""Iterations of each run started from the UI: enough for every plot and the p99 note, few enough to be quick."""


@pytest.fixture(scope="module")
def ui_run(tmp_path_factory):
    run = UiRun(tmp_path_factory.mktemp("ui"), iterations=ITERATIONS)
    yield run
    run.stop()


TAB_ROWS_JS = """[...document.querySelectorAll('table tbody tr')].map(tr => [...tr.cells].map(td => td.innerText.trim()))"""


def tab_values(browser: Browser) -> dict[str, str]:
    return {row[0]: row[1] for row in browser.evaluate(TAB_ROWS_JS) if len(row) >= 2}


def expected_tab_values(metrics: dict) -> dict[str, str]:
    summary = metrics["summary"]
    head = summary["phases"]["first_response_ms"]
    note = p99_note(head["count"])
    return {
        "Run": f"{metrics['run']['id']} (finished)",
        "Iterations": f"{summary['iterations']} of {metrics['run']['iterations']['planned']}",
        "Successful / failed": f"{summary['successes']} / {summary['failures']}",
        "Success rate": f"{summary['success_rate'] * 100:.1f} %",
        "First response median": f"{head['median']:.1f} ms",
        "First response p95": f"{head['p95']:.1f} ms",
        "First response p99": f"{head['p99']:.1f} ms" + (f" ({note})" if note else ""),
        "First response mean": f"{head['mean']:.1f} ms",
        "Session start median": f"{summary['phases']['session_start_ms']['median']:.1f} ms",
        "Errors": "none",
    }


@pytest.mark.browser
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
    assert sum(histogram.values()) == metrics["summary"]["successes"] == ITERATIONS
    browser.screenshot("live_tab.png")

    browser.open(f"{ui_run.url}/?tab=bootbench")
    browser.wait_for("document.body.innerText.includes('(finished)')")
    assert tab_values(browser)["First response median"] == expected_tab_values(metrics)["First response median"]
    assert browser.errors == []

    downloaded = json.loads(ui_run.get("/bootbench/metrics.json"))
    assert downloaded["summary"] == metrics["summary"] and downloaded["samples"] == metrics["samples"]


@pytest.mark.browser
def test_download_tab_links_the_current_metrics_json(ui_run, browser):
    ui_run.finished_runs(1)
    browser.open(f"{ui_run.url}/?tab=reports")
    link = browser.wait_for("[...document.querySelectorAll('a')].map(a => a.href)"
                            ".find(h => h.endsWith('/bootbench/metrics.json'))")
    assert link == f"{ui_run.url}/bootbench/metrics.json"
    assert browser.errors == []


def test_the_web_ui_port_serves_prometheus_metrics_with_the_finished_runs_exact_numbers(ui_run):
    """What compose's Prometheus and the Kubernetes scrape annotations scrape: /metrics on the web UI's port."""
    [folder] = ui_run.finished_runs(1)
    metrics = json.loads((folder / "metrics.json").read_text())
    scraped = samples(ui_run.get("/metrics").decode())
    assert value(scraped, "bootbench_run_running") == 0
    assert value(scraped, "bootbench_iterations_finished_total") == ITERATIONS
    assert value(scraped, "bootbench_phase_seconds", phase="first_response", quantile="0.95") == \
        metrics["summary"]["phases"]["first_response_ms"]["p95"] / 1000


@pytest.mark.browser
def test_a_second_run_from_the_ui_replaces_the_numbers_in_the_tab(ui_run, browser):
    [first] = ui_run.finished_runs(1)
    assert ui_run.post("/swarm", {"user_count": 1, "spawn_rate": 1})["success"]
    second = ui_run.finished_runs(2)[-1]
    assert second != first
    metrics = json.loads((second / "metrics.json").read_text())
    assert metrics["summary"]["iterations"] == ITERATIONS
    browser.open(f"{ui_run.url}/?tab=bootbench")
    browser.wait_for(f"document.body.innerText.includes({json.dumps(metrics['run']['id'] + ' (finished)')})")
    values = tab_values(browser)
    assert {k: values.get(k) for k in expected_tab_values(metrics)} == expected_tab_values(metrics)
    assert json.loads(ui_run.get("/bootbench/metrics.json"))["run"]["id"] == metrics["run"]["id"]
    assert browser.errors == []


@pytest.mark.browser
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
        "stat-iterations": str(ITERATIONS),
    }
    sizes = browser.evaluate("[...document.querySelectorAll('figure.plot svg')].map(s => "
                             "{const r = s.getBoundingClientRect(); return [s.dataset.plot, r.width, r.height]})")
    assert [name for name, *_ in sizes] == ["histogram", "cdf", "trend", "audible", "phases"]
    assert all(width > 300 and height > 150 for _, width, height in sizes)
    assert browser.evaluate("document.getElementById('p99-note') !== null")
    assert browser.errors == []
    assert [url for url in browser.requests if not url.startswith(("file://", "data:"))] == []
    browser.screenshot("report.png")


# ---------------------------------------------------------------- the tab on Locust's app, without a browser


class FakeRun:
    """Exactly what the tab may read of a run (see :class:`bootbench.views.webui.LiveRun`), with chosen samples."""

    def __init__(self, samples: list[Sample], planned: int = 20) -> None:
        self.samples = samples
        self.planned = planned
        self.run_id = "20250101-120000-aivoco"
        self.started_at = "2025-01-01T12:00:00.000+00:00"
        self.metrics: dict | None = None

    def run_block(self) -> dict:
        return {"provider": "aivoco", "target": "ws://127.0.0.1:1", "iterations": {"planned": self.planned},
                "wait_ms": 100.0}


@pytest.fixture
def tab_app(monkeypatch):
    """Locust's web UI app under --web-base-path /base with the tab installed, and the run it shows."""
    from locust.argument_parser import get_parser
    from locust.env import Environment

    monkeypatch.setattr("sys.argv", ["locust"])  # Locust's web UI reads its UI options from the command line
    environment = Environment(parsed_options=get_parser().parse_args(["--web-base-path", "/base"]))
    environment.create_local_runner()
    web_ui = environment.create_web_ui("127.0.0.1", 0, web_base_path="/base", delayed_start=True)
    shown: dict = {"run": None}
    assert webui.install(environment, lambda: shown["run"])
    assert {"title": "bootbench", "key": "bootbench"} in web_ui.template_args["extended_tabs"]
    yield web_ui.app.test_client(), shown
    environment.runner.quit()


def some_samples() -> list[Sample]:
    times = [151.0, 148.5, 160.0, 155.0, 185.0]
    samples = [Sample(i, "local", 1, "t", True, session_start_ms=30.0, first_response_ms=v)
               for i, v in enumerate(times, start=1)]
    return samples + [Sample(6, "local", 1, "t", False, "audio_timeout", "no audio within 5 s")]


def test_the_tab_rows_ride_on_locusts_stats_json_under_the_web_base_path(tab_app):
    client, shown = tab_app
    before = client.get("/base/stats/requests").get_json()
    assert [e["data"] for e in before["extended_stats"] if e["key"] == "bootbench"] == [
        [{"label": "No bootbench run has started yet.", "value": "", "bar": ""}]]

    shown["run"] = FakeRun(some_samples())
    values = {row["label"]: row["value"] for e in client.get("/base/stats/requests").get_json()["extended_stats"]
              if e["key"] == "bootbench" for row in e["data"]}
    assert values["Run"] == "20250101-120000-aivoco (running)" and values["Iterations"] == "6 of 20"
    assert values["Successful / failed"] == "5 / 1" and values["Success rate"] == "83.3 %"
    assert values["First response median"] == "155.0 ms" and values["Session start median"] == "30.0 ms"
    assert values["First response p99"] == f"184.0 ms ({p99_note(5)})"  # between the two slowest, not the max
    assert values["Errors: audio_timeout"] == "1"
    assert sum(int(v) for k, v in values.items() if k.startswith("First response ") and k.endswith(" ms")) == 5
    assert "Late kernel-stamp reads" not in values   # these samples have no count: the process clock's

    counted = some_samples()
    for sample, late in zip(counted, (0, 2, 0, 0, 1, 1)):
        sample.late_stamp_reads = late
    shown["run"] = FakeRun(counted)
    shown["run"].run_id = "20250101-130000-aivoco"   # another run (the tab recomputes on a new run or sample)
    values = {row["label"]: row["value"] for e in client.get("/base/stats/requests").get_json()["extended_stats"]
              if e["key"] == "bootbench" for row in e["data"]}
    assert values["Late kernel-stamp reads"] == "4"

    assert "extended_stats" not in client.get("/base/exceptions").get_json()
    assert client.get("/stats/requests").status_code == 404


def test_metrics_json_of_a_running_run_then_the_final_document(tab_app):
    client, shown = tab_app
    assert client.get("/base/bootbench/metrics.json").status_code == 404
    run = shown["run"] = FakeRun(some_samples())
    response = client.get("/base/bootbench/metrics.json")
    assert response.headers["Content-Disposition"] == 'attachment; filename="20250101-120000-aivoco-metrics.json"'
    live = response.get_json()
    assert live["schema"] == "bootbench/metrics/v2"
    assert live["run"]["in_progress"] is True and live["run"]["wait_ms"] == 100.0
    assert (live["run"]["id"], live["run"]["started_at"]) == (run.run_id, run.started_at)
    assert (live["summary"]["iterations"], live["summary"]["failures"]) == (6, 1)
    assert [s["iteration"] for s in live["samples"]] == [1, 2, 3, 4, 5, 6]
    run.metrics = {"schema": "final", "run": {"id": run.run_id}}
    assert client.get("/base/bootbench/metrics.json").get_json() == run.metrics


def test_the_start_form_says_an_empty_host_means_the_embedded_reference_server(tab_app):
    import re

    client, _shown = tab_app
    page = client.get("/base/").get_data(as_text=True)
    scripts = re.findall(r'src="([^"]*/assets/[^"]+\.js)"', page)
    assert scripts, page[:2000]
    bundle = "".join(client.get(src if src.startswith("/base/") else "/base/assets/" + src.rsplit("/assets/", 1)[1])
                     .get_data(as_text=True) for src in scripts)
    assert webui.EMPTY_HOST_NOTE in bundle
    assert "has no host attribute set" not in bundle
    assert '"missing_host_warning": true' in page.replace("True", "true")  # the note shows while the host is empty
