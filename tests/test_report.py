"""report.html, the console summary and the headless progress line, from real headless runs against the reference server."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from unittest.mock import patch

import pytest

from bootbench.stats import p99_note
from bootbench.views.text import console_summary
from support.cli import bootbench
from support.folders import failures, record_run, timings
from support.ground_truth import FIXED_RUN_ARGS, FIXED_RUN_SERVER, HOSTILE

SETUP_MS, FIRST_AUDIO_MS = (float(FIXED_RUN_SERVER[key]) for key in ("setup_delay", "first_audio_delay"))
ITERATIONS = int(FIXED_RUN_ARGS[FIXED_RUN_ARGS.index("-i") + 1])


@dataclass
class FixedRun:
    """A finished run, its console output and its ``bootbench`` log lines (``name: message``) in order."""

    folder: Path
    metrics: dict
    stdout: str
    log: list[str]


@pytest.fixture(scope="module")
def fixed_run(shared_fixed_run):
    """The session's shared run of 20 iterations against fixed delays, in this process (tests/conftest.py
    ``shared_fixed_run``): its system message is markup, and a progress line comes every 0.5 s instead of 5 s so
    that several come during the run."""
    run = shared_fixed_run
    metrics = json.loads((run.folder / "metrics.json").read_text())
    assert metrics["run"]["aborted"] is None and metrics["run"]["iterations"]["complete"], run.stdout
    return FixedRun(run.folder, metrics, run.stdout, run.log)


class Elements(HTMLParser):
    """Text and attributes of the elements that have an id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self._open: list[tuple[str, str | None]] = []
        self.feed(text)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("br", "img", "meta"):
            return
        ident = attrs.get("id")
        if ident:
            self.by_id[ident] = {"attrs": attrs, "text": ""}
        self._open.append((tag, ident))

    def handle_endtag(self, tag):
        while self._open:
            open_tag, _ = self._open.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for _, ident in self._open:
            if ident:
                self.by_id[ident]["text"] += data


def test_report_shows_the_headline_numbers_of_metrics_json(fixed_run):
    metrics = fixed_run.metrics
    html = (fixed_run.folder / "report.html").read_text()
    head = metrics["summary"]["phases"]["first_response_ms"]
    assert head["median"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
    elements = Elements(html)
    for key in ("median", "p95", "p99", "mean"):
        card = elements.by_id[f"stat-{key}"]
        assert card["text"].startswith(f"{key}{head[key]:.1f}ms"), card["text"]
        assert json.loads(card["attrs"]["data-value"]) == head[key]
    rate = elements.by_id["stat-success-rate"]
    assert rate["text"].startswith(f"success rate{metrics['summary']['success_rate'] * 100:.1f} %")
    assert elements.by_id["stat-iterations"]["text"].startswith(f"iterations{ITERATIONS}")
    assert p99_note(ITERATIONS) and p99_note(ITERATIONS) in elements.by_id["p99-note"]["text"]
    row = elements.by_id["phase-session_start_ms"]["text"]
    assert f"{metrics['summary']['phases']['session_start_ms']['median']:.1f}" in row


def test_report_says_which_clock_the_receive_stamps_are_on(fixed_run):
    """run.clock (--clock): the kernel's arrival stamps where this machine gives them, the process's otherwise."""
    from bootbench.providers import kernel_clock

    clock = fixed_run.metrics["run"]["clock"]
    assert clock == ("kernel" if kernel_clock.available() is None else "process")
    html = (fixed_run.folder / "report.html").read_text()
    shown = {"kernel": "kernel (arrival stamps)", "process": "process (handler stamps)"}[clock]
    assert f"receive clock <b>{shown}</b>" in html
    # every sample of a kernel-clock run has its count of late reads (0 on a quiet machine), and the summary adds them
    counts = [sample["late_stamp_reads"] for sample in fixed_run.metrics["samples"]]
    if clock == "kernel":
        assert all(isinstance(count, int) and count >= 0 for count in counts)
        assert fixed_run.metrics["summary"]["late_stamp_reads"] == sum(counts)
        assert fixed_run.metrics["summary"]["late_stamp_iterations"] == sum(1 for count in counts if count)
    else:
        assert counts == [None] * len(counts) and fixed_run.metrics["summary"]["late_stamp_reads"] is None


def test_report_has_five_plots_and_loads_nothing_from_the_network(fixed_run):
    html = (fixed_run.folder / "report.html").read_text()
    assert html.count("<svg") >= 5
    assert re.findall(r'data-plot="([\w-]+)"', html) == ["histogram", "cdf", "trend", "audible", "phases"]
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, re.I)
    assert not re.search(r"url\((?!#)|@import|<link|<script|<iframe", html, re.I)
    assert "http://www.w3.org" not in html


def test_report_escapes_every_value_from_the_run(fixed_run):
    html = (fixed_run.folder / "report.html").read_text()
    assert fixed_run.metrics["run"]["system_message"] == HOSTILE
    assert HOSTILE not in html and "<script" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quotes&quot;" in html


def test_report_lists_the_run_configuration(fixed_run):
    elements = Elements((fixed_run.folder / "report.html").read_text())
    config = elements.by_id["config"]["text"]
    run = fixed_run.metrics["run"]
    for key in ("provider", "target", "pace", "timeout_s", "connect_per_call", "audio", "wait_ms"):
        assert key in config and str(run[key]).lower() in config.lower()


def test_metrics_json_is_schema_v2_with_the_wait_under_its_option_name(fixed_run):
    metrics = fixed_run.metrics
    assert metrics["schema"] == "bootbench/metrics/v2"
    assert metrics["run"]["wait_ms"] == 100 and "delay_ms" not in metrics["run"]


def test_a_v1_result_folder_still_renders_with_its_delay_read_as_wait_ms(fixed_run, tmp_path):
    metrics = json.loads((fixed_run.folder / "metrics.json").read_text())
    run = {("delay_ms" if key == "wait_ms" else key): value for key, value in metrics["run"].items()}
    run["delay_ms"] = 250
    (tmp_path / "metrics.json").write_text(json.dumps({**metrics, "schema": "bootbench/metrics/v1", "run": run}))
    done = bootbench("report", tmp_path)
    assert done.returncode == 0, done.stderr
    elements = Elements((tmp_path / "report.html").read_text())
    config = elements.by_id["config"]["text"]
    assert "wait_ms250" in config and "delay_ms" not in config
    assert "bootbench/metrics/v1" in (tmp_path / "report.html").read_text()


def test_console_summary_prints_the_headline_with_the_p99_note(fixed_run):
    head = fixed_run.metrics["summary"]["phases"]["first_response_ms"]
    assert (f"  first response: median {head['median']:.1f} ms, p95 {head['p95']:.1f} ms, "
            f"p99 {head['p99']:.1f} ms ({p99_note(ITERATIONS)}), mean {head['mean']:.1f} ms") in fixed_run.stdout
    assert f"  iterations: {ITERATIONS} finished of {ITERATIONS} planned, {ITERATIONS} ok, 0 failed" in fixed_run.stdout


def test_headless_progress_lines_carry_exact_numbers_and_stop_with_the_run(fixed_run):
    lines = fixed_run.log
    progress = [(i, m) for i, line in enumerate(lines)
                if (m := re.search(r"bootbench: (\d+)/(\d+) iterations, median ([\d.]+) ms, p95 ([\d.]+) ms, "
                                   r"(\d+) failed$", line))]
    assert progress, lines
    for _, match in progress:
        done, planned, median, p95, failed = match.groups()
        assert 0 < int(done) < ITERATIONS and int(planned) == ITERATIONS and failed == "0"
        assert float(median) == pytest.approx(FIRST_AUDIO_MS, abs=15) and float(p95) >= float(median)
    end = next(i for i, line in enumerate(lines) if f"all {ITERATIONS} iterations accounted for" in line)
    assert all(i < end for i, _ in progress)
    assert not any(line.startswith("bootbench: bootbench:") for line in lines)  # the logger's name, once


def test_bootbench_report_re_renders_the_same_page_from_metrics_json(fixed_run, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for name in ("metrics.json", "report.html"):
        (folder / name).write_bytes((fixed_run.folder / name).read_bytes())
    original = (folder / "report.html").read_text()
    (folder / "report.html").unlink()
    done = bootbench("report", folder)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(folder / "report.html")
    assert (folder / "report.html").read_text() == original


def test_failed_iterations_show_in_the_error_table_and_the_plots(tmp_path):
    outcomes = timings(6, first_audio_ms=60, spread_ms=150)
    for index in (1, 4):  # two answers later than --timeout 0.25
        outcomes[index] = failures(1, "audio_timeout", "no audio within 0.25 s")[0]
    folder = record_run(tmp_path / "r", "-i", "6", "--timeout", "0.25", samples=outcomes)
    metrics = json.loads((folder / "metrics.json").read_text())
    html = (folder / "report.html").read_text()
    elements = Elements(html)
    failures_, kinds = metrics["summary"]["failures"], metrics["errors"]["by_kind"]
    assert 0 < failures_ < 6 and kinds == {"audio_timeout": failures_}
    assert (f'<tr data-kind="audio_timeout"><td><code>audio_timeout</code></td><td>{failures_}</td>'
            f"<td>{failures_ / 6 * 100:.1f} %</td></tr>") in html
    listed = elements.by_id["errors-first"]["text"]
    for error in metrics["errors"]["first"]:
        assert f"{error['iteration']}local" + "audio_timeout" + error["message"] in listed
    assert html.count(f"failed ({failures_})") == 2
    assert elements.by_id["stat-success-rate"]["text"].startswith(f"success rate{(6 - failures_) / 6 * 100:.1f} %")


def test_late_kernel_stamp_reads_are_totalled_and_said_in_the_console_summary_and_the_report(tmp_path):
    """Each sample's ``late_stamp_reads`` (reads that waited for the kernel clock's reader thread) adds up in
    metrics.json's summary, which the console summary and report.html say; a run with none says nothing of it, and
    a run under the process clock (no counts) has null totals."""
    outcomes = timings(6)
    for row, late in zip(outcomes, (0, 2, 0, 1, 0, 0)):
        row["late_stamp_reads"] = late
    folder = record_run(tmp_path / "late", "-i", "6", samples=outcomes)
    metrics = json.loads((folder / "metrics.json").read_text())
    summary = metrics["summary"]
    assert (summary["late_stamp_reads"], summary["late_stamp_iterations"]) == (3, 2)
    said = "kernel clock: 3 read(s) in 2 iteration(s) took bytes that had waited for the reader thread"
    assert said in console_summary(metrics)
    warnings = Elements((folder / "report.html").read_text()).by_id["warnings"]["text"]
    assert "Kernel clock: 3 read(s) in 2 iteration(s) took bytes that had waited" in warnings

    for row in outcomes:
        row["late_stamp_reads"] = 0
    quiet = json.loads((record_run(tmp_path / "none", "-i", "6", samples=outcomes, report=False)
                        / "metrics.json").read_text())
    assert (quiet["summary"]["late_stamp_reads"], quiet["summary"]["late_stamp_iterations"]) == (0, 0)
    assert "kernel clock:" not in console_summary(quiet)
    for row in outcomes:
        row["late_stamp_reads"] = None   # the process clock counts none
    process = json.loads((record_run(tmp_path / "process", "-i", "6", samples=outcomes, report=False)
                          / "metrics.json").read_text())
    assert (process["summary"]["late_stamp_reads"], process["summary"]["late_stamp_iterations"]) == (None, None)


def test_a_broken_renderer_leaves_the_other_result_files_and_logs_why(tmp_path):
    def broken(*_args, **_kwargs):
        raise ImportError("matplotlib is broken on purpose")

    with patch("bootbench.views.plots.to_svg", broken):
        folder = record_run(tmp_path / "r", "-i", "2", samples=timings(2))
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["summary"]["successes"] == 2
    assert {p.name for p in folder.iterdir()} >= {"metrics.json", "summary.csv", "samples.csv", "samples.jsonl"}
    assert not (folder / "report.html").exists()
    log = next(folder.glob("boot_*.log")).read_text()
    assert "report.html could not be written" in log
    assert "Traceback" in log and "matplotlib is broken on purpose" in log


@pytest.mark.parametrize("make, sentence", [
    (lambda tmp: tmp / "nowhere", "does not exist"),
    (lambda tmp: tmp, "is not a bootbench result folder (it has no metrics.json)"),
    (lambda tmp: (tmp / "metrics.json").write_text("{not json") and tmp, "cannot be read as JSON"),
    (lambda tmp: (tmp / "metrics.json").write_text('{"schema": "other/v1"}') and tmp, "is not a bootbench metrics file"),
])
def test_report_command_mistakes_are_one_sentence_and_exit_code_2(tmp_path, make, sentence):
    target = make(tmp_path)
    done = bootbench("report", target)
    assert done.returncode == 2
    assert sentence in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr + done.stdout


def test_report_lists_every_clip_and_every_lost_worker_in_the_configuration(tmp_path):
    """Issue 20 item 7: lists of objects in the run block (``clips``, ``workers_lost``) show their entries."""
    from bootbench.views.report import render

    folder = record_run(tmp_path, "-i", "2", "--audio", "sine", "--audio", "speech", samples=timings(2),
                        report=False)
    metrics = json.loads((folder / "metrics.json").read_text())
    lost = {"worker": "w-7f3a", "at": "2026-01-01T10:00:00.000+00:00", "reason": "quit", "in_flight": [14, 15]}
    metrics["run"]["workers_lost"] = [lost]
    elements = Elements(render(metrics))
    config = elements.by_id["config"]["text"]
    clips = metrics["run"]["clips"]
    assert [clip["name"] for clip in clips] == ["sine", "speech"]
    for clip in clips:
        for key in ("name", "source", "duration_ms", "rate", "sha256"):
            assert f"{key}{clip[key]}" in config, (key, config)
    assert "workerw-7f3a" in config and "reasonquit" in config and "in_flight14, 15" in config
    assert "clipsnone" not in config and "workers_lostnone" not in config


WRONG_TYPES = [
    (("summary", "phases", "first_response_ms", "median"), "fast", "summary.phases.first_response_ms.median"),
    (("summary", "iterations"), "twelve", "summary.iterations"),
    (("summary", "phases"), [], "summary.phases"),
    (("run", "iterations"), "all", "run.iterations"),
    (("errors", "by_kind"), {"timeout": "3"}, "errors.by_kind.timeout"),
    (("samples", 0, "first_response_ms"), "81.0", "samples[0].first_response_ms"),
    (("samples", 1), 5, "samples[1]"),
    (("run",), None, "run"),
]


@pytest.fixture(scope="module")
def plain_folder(tmp_path_factory):
    return record_run(tmp_path_factory.mktemp("typed"), "-i", "3", samples=timings(3), report=False)


@pytest.mark.parametrize("command", ["report", "compare"])
@pytest.mark.parametrize("path, value, named", WRONG_TYPES, ids=[named for _, _, named in WRONG_TYPES])
def test_a_wrong_typed_value_in_metrics_json_is_one_sentence_naming_the_key(plain_folder, tmp_path, command, path,
                                                                             value, named):
    """Issue 20 item 17: valid JSON with a value of the wrong type: one sentence naming the key, exit 2."""
    metrics = json.loads((plain_folder / "metrics.json").read_text())
    node = metrics
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    done = bootbench(command, tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr + done.stdout
    assert f" {named} " in done.stderr and str(tmp_path / "metrics.json") in done.stderr, done.stderr
    assert not (tmp_path / "report.html").exists()


def test_the_phases_chart_draws_connect_only_where_the_iteration_opened_the_connection():
    """Issue 20 item 22: a connection opened ahead is on record with the next cycle, which did not open it."""
    from bootbench.views import plots

    drawn = {}
    samples = [{"iteration": n, "ok": True, "connected_this_cycle": n == 1, "connect_ms": 5.0 if n in (1, 3) else None,
                "session_start_ms": 30.0, "first_response_ms": 80.0, "stop_ms": 2.0} for n in (1, 2, 3)]
    with patch.object(plots, "_bars", lambda ax, x, heights, bottom, width, color, label: drawn.setdefault(
            label, list(heights))):
        plots.phases_svg(samples)
    assert drawn["connect"] == [5.0, 0.0, 0.0]
    assert drawn["session start"] == [30.0, 30.0, 30.0]


def test_every_figure_keeps_its_labels_ticks_and_legend_inside_with_five_digit_times():
    """Figures have fixed margins (bootbench/views/plots.py ``Margins``, not a layout pass that measures them):
    tick labels of five digits, the axis labels, titles and the legends outside the axes still fit."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from bootbench.views import plots

    slow = [10_000.0 + 997.0 * n for n in range(60)]
    samples = [{"iteration": n + 1, "ok": n % 9 != 4, "connected_this_cycle": n == 0, "connect_ms": 4000.0,
                "session_start_ms": 30_000.0, "first_response_ms": value, "first_audible_ms": value + 9_000.0,
                "stop_ms": 20.0, "cold_penalty_ms": value - 60_000.0} for n, value in enumerate(slow)]
    levels = [{"users": users, "success_rate": 1.0 / users,
               "phases": {name: {"median": 20_000.0 * users, "p95": 30_000.0 * users}
                          for name in ("cold_start_ms", "first_response_ms")}} for users in (1, 2, 4, 8, 16, 32)]
    figures = []
    with patch.object(plots, "to_svg", lambda fig, name, label: figures.append((name, fig)) or "<svg/>"):
        plots.histogram_svg(slow, median=slow[30], p95=slow[56], p99=slow[59])
        plots.cdf_svg([("first response", slow)])
        plots.cdf_svg([(f"20261203-120000-aivoco run {n}", slow) for n in range(3)], name="compare-cdf",
                      mark_percentiles=False, size=(10, 4.2))
        plots.audible_svg(samples)
        plots.trend_svg(samples)
        plots.phases_svg(samples)
        plots.cold_warm_svg(slow, slow[::2])
        plots.penalty_svg(samples)
        plots.sweep_svg(levels, {"phase": "cold_start_ms", "users": 8, "limit_p95_ms": 45_000.0, "tolerance": 1.5})
    assert len(figures) == 9
    for name, fig in figures:
        renderer = FigureCanvasAgg(fig).get_renderer()
        page = fig.bbox
        for ax in fig.axes:
            drawn = ax.get_tightbbox(renderer)  # tick labels, axis labels, title, legend: all the axes draws
            assert page.x0 <= drawn.x0 and drawn.x1 <= page.x1 and page.y0 <= drawn.y0 and drawn.y1 <= page.y1, \
                f"{name}: drawn {drawn.bounds} outside the figure {page.bounds}"
