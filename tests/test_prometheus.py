"""Prometheus metrics of a run: metrics.json's exact numbers, served while it goes and after, pushed at the end.

In-process: runs on real Locust runners against a reference server, scraped
over HTTP (``--metrics-port``) or through the web UI's Flask app; the
collector over chosen samples; the option refusals; a failed push. A real
Prometheus and a real Pushgateway: tests/test_prometheus_real.py.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import gevent
import pytest

from bootbench.checks import CheckResult
from bootbench.run import harness
from bootbench.run.exposition import split_credentials
from bootbench.samples import PHASES, Sample
from bootbench.stats import snapshot
from bootbench.views.prometheus import ERROR_KINDS, METRICS, QUANTILE_STATISTICS, RunCollector, phase_label
from support.ground_truth import FIXED_RUN_SERVER
from support.inprocess import headless_run, local_environment
from support.processes import free_port
from support.prometheus import get, samples, value


def exposed(run) -> dict:
    """What the run's environment serves at /metrics now, parsed."""
    body, content_type = harness.of(run.env).exposition.exposition(None)
    assert content_type.startswith("text/plain; version=0.0.4")
    return samples(body.decode())


def assert_exact_phases(scraped: dict, metrics: dict, provider: str = "aivoco") -> None:
    """Every phase's quantiles are metrics.json's / 1000 to the last bit, its count metrics.json's."""
    for phase in PHASES:
        stats = metrics["summary"]["phases"][phase]
        labels = {"provider": provider, "phase": phase_label(phase)}
        for quantile, stat in QUANTILE_STATISTICS.items():
            got = value(scraped, "bootbench_phase_seconds", quantile=str(quantile), **labels)
            if stats[stat] is None:
                assert math.isnan(got), (phase, stat)
            else:
                assert got == stats[stat] / 1000, (phase, stat)
        assert value(scraped, "bootbench_phase_seconds_count", **labels) == stats["count"]


def test_a_finished_run_exposes_metrics_json_exact_quantiles_count_and_sum_of_every_phase(shared_reference_server,
                                                                                          tmp_path):
    server = shared_reference_server(**FIXED_RUN_SERVER)
    run = headless_run("-i", "12", host=server.url, results_dir=tmp_path / "r", users=2)
    assert run.exit_code == 0, run.stderr
    scraped, metrics = exposed(run), run.metrics
    assert_exact_phases(scraped, metrics)
    first = [s["first_response_ms"] for s in metrics["samples"]]
    assert value(scraped, "bootbench_phase_seconds_sum", phase="first_response") == pytest.approx(sum(first) / 1000)
    assert value(scraped, "bootbench_phase_seconds", phase="first_response", quantile="0.95") == \
        snapshot(run.run.samples).p95 / 1000  # the web UI tab's snapshot
    assert value(scraped, "bootbench_iterations_finished_total") == value(scraped, "bootbench_iterations_planned") == 12
    assert {dict(labels)["kind"] for (name, labels) in scraped if name == "bootbench_iterations_failed_total"} == \
        set(ERROR_KINDS)
    assert sum(v for (name, _), v in scraped.items() if name == "bootbench_iterations_failed_total") == 0
    assert value(scraped, "bootbench_success_ratio") == 1.0
    assert value(scraped, "bootbench_late_stamp_reads_total") == (metrics["summary"]["late_stamp_reads"] or 0)
    assert (value(scraped, "bootbench_run_running"), value(scraped, "bootbench_run_complete")) == (0, 1)
    assert value(scraped, "bootbench_run_start_time_seconds") > 1.7e9
    names = {name.removesuffix("_total").removesuffix("_count").removesuffix("_sum") for name, _ in scraped}
    assert names <= {m.name.removesuffix("_total") for m in METRICS}
    labels = {label for _, have in scraped for label, _ in have}
    assert labels == {"provider", "phase", "quantile", "kind"}  # no check, no sweep here; never a host or a key
    body = harness.of(run.env).exposition.exposition(None)[0].decode()
    assert "127.0.0.1" not in body and str(server.port) not in body


class ObservedRun:
    """Exactly what the collector may read of a run (:class:`bootbench.views.prometheus.ObservedRun`)."""

    def __init__(self, samples: list[Sample], *, planned: int = 10, metrics: dict | None = None,
                 level: tuple[int, int] | None = None, lost: int = 0) -> None:
        self.samples, self.planned, self.metrics, self.level, self.lost = samples, planned, metrics, level, lost
        self.run_id = "20260101-120000-openai"
        self.started_at = "2026-01-01T12:00:00.000+00:00"
        self.provider = "openai"
        self.headline = "first_response_ms"

    def sweep_level(self) -> tuple[int, int] | None:
        return self.level


def collected(run: ObservedRun | None, **counts) -> dict:
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    registry.register(RunCollector(lambda: run, **counts))
    return samples(generate_latest(registry).decode())


def test_failures_by_kind_users_workers_the_sweep_level_and_the_checks_at_the_end():
    ok = [Sample(i, "w1", 1, "t", True, first_response_ms=100.0 + i, session_start_ms=20.0) for i in range(1, 4)]
    failed = [Sample(4, "w1", 1, "t", False, "audio_timeout", "no audio"),
              Sample(5, "w2", 1, "t", False, "audio_timeout", "no audio"),
              Sample(6, "w2", 1, "t", False, None, "?")]
    ok[0].late_stamp_reads, failed[0].late_stamp_reads = 2, 1
    run = ObservedRun(ok + failed, planned=8, level=(2, 4), lost=1)
    scraped = collected(run, users=lambda: 4, workers=lambda: 2)
    assert value(scraped, "bootbench_late_stamp_reads_total") == 3
    kinds = {dict(labels)["kind"]: v for (name, labels), v in scraped.items() if name == "bootbench_iterations_failed_total"}
    assert kinds["audio_timeout"] == 2 and kinds["unknown"] == 1 and kinds["auth_failed"] == 0
    assert value(scraped, "bootbench_iterations_finished_total", provider="openai") == 6
    assert value(scraped, "bootbench_iterations_lost_total") == 1
    assert value(scraped, "bootbench_success_ratio") == 0.5
    assert (value(scraped, "bootbench_users"), value(scraped, "bootbench_workers")) == (4, 2)
    assert (value(scraped, "bootbench_sweep_level"), value(scraped, "bootbench_sweep_level_users")) == (2, 4)
    assert value(scraped, "bootbench_phase_seconds", phase="first_response", quantile="0.5") == 0.102
    assert math.isnan(value(scraped, "bootbench_phase_seconds", phase="connect", quantile="0.99"))  # no value yet
    assert value(scraped, "bootbench_phase_seconds_count", phase="connect") == 0
    assert value(scraped, "bootbench_run_running") == 1
    assert not [name for name, _ in scraped if name in ("bootbench_check_passed", "bootbench_run_complete")]

    passed = CheckResult("success_rate>=50%", None, "success_rate", ">=", 0.5, 0.5, True, "50 % is >= 50 %")
    missed = CheckResult("first_response_ms:p95<=50", "first_response_ms", "p95", "<=", 50, 102.9, False, "no")
    run.metrics = {"run": {"iterations": {"complete": False}}, "checks": [passed.to_dict(), missed.to_dict()]}
    scraped = collected(run)
    assert value(scraped, "bootbench_check_passed", check="success_rate>=50%") == 1
    assert value(scraped, "bootbench_check_passed", check="first_response_ms:p95<=50") == 0
    assert (value(scraped, "bootbench_run_running"), value(scraped, "bootbench_run_complete")) == (0, 0)
    assert collected(None) == {}  # before the first run: nothing, not a made-up provider


def test_warm_turn_phases_appear_only_with_several_turns():
    from bootbench.samples import Turn

    turns = [Turn(1, 300.0, 310.0, 500.0), Turn(2, 100.0, 110.0, 400.0), Turn(3, 120.0, 125.0, 400.0)]
    sample = Sample(1, "local", 1, "t", True, first_response_ms=300.0, turns=turns, cold_penalty_ms=190.0)
    scraped = collected(ObservedRun([sample]))
    assert value(scraped, "bootbench_phase_seconds_count", phase="warm_input_to_audio") == 2
    assert value(scraped, "bootbench_phase_seconds", phase="warm_input_to_audio", quantile="0.5") == 0.11
    assert value(scraped, "bootbench_phase_seconds_count", phase="warm_input_to_audible") == 2
    assert value(scraped, "bootbench_phase_seconds", phase="warm_input_to_audible", quantile="0.5") == 0.1175
    assert value(scraped, "bootbench_phase_seconds", phase="cold_penalty", quantile="0.5") == 0.19
    plain = collected(ObservedRun([Sample(1, "local", 1, "t", True, first_response_ms=300.0)]))
    assert not [labels for (_, labels) in plain if ("phase", "cold_penalty") in labels]


def test_metrics_port_is_scraped_while_the_run_goes_and_lingers_with_the_final_numbers(shared_reference_server,
                                                                                       tmp_path):
    server = shared_reference_server(**FIXED_RUN_SERVER)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    scrapes: list[dict] = []

    def scrape_every_50_ms() -> None:
        while True:
            try:
                scrapes.append(samples(get(url, timeout=2)))
            except OSError:
                pass
            gevent.sleep(0.05)

    scraper = gevent.spawn(scrape_every_50_ms)
    try:
        run = headless_run("-i", "10", "--metrics-port", str(port), "--metrics-linger", "1",
                           host=server.url, results_dir=tmp_path / "r")
    finally:
        scraper.kill()
    assert run.exit_code == 0
    assert "--metrics-linger" in run.stderr  # one line saying it serves on
    finished = [value(s, "bootbench_iterations_finished_total") for s in scrapes]
    assert finished == sorted(finished) and finished[-1] == 10
    assert any(value(s, "bootbench_run_running") == 1 and 0 < value(s, "bootbench_iterations_finished_total") < 10
               for s in scrapes), "no scrape saw the run going"
    final = [s for s in scrapes if value(s, "bootbench_run_running") == 0]
    assert len(final) >= 5, "the final numbers were not served during --metrics-linger 1"
    assert_exact_phases(final[-1], run.metrics)
    with pytest.raises(OSError):  # stopped once the process ends
        get(url, timeout=2)


def test_metrics_port_answers_only_metrics(tmp_path):
    env = local_environment("--metrics-port", str(port := free_port()), results_dir=tmp_path)
    try:
        assert "bootbench_" not in get(f"http://127.0.0.1:{port}/metrics")  # no run yet: nothing to show
        with pytest.raises(OSError, match="404"):
            get(f"http://127.0.0.1:{port}/")
    finally:
        harness.of(env).exposition.stop()
        env.runner.quit()


@pytest.fixture
def ui_app(monkeypatch):
    """Locust's web UI app under --web-base-path /base with bootbench's /metrics, and the run it shows."""
    from locust.argument_parser import get_parser
    from locust.env import Environment

    monkeypatch.setattr("sys.argv", ["locust"])
    environment = Environment(parsed_options=get_parser().parse_args(["--web-base-path", "/base"]))
    environment.create_local_runner()
    environment.create_web_ui("127.0.0.1", 0, web_base_path="/base", delayed_start=True)
    shown: dict = {"run": None}
    harness.of(environment).exposition.install(environment, lambda: shown["run"])
    yield environment.web_ui.app.test_client(), shown
    environment.runner.quit()


def test_the_web_ui_serves_metrics_under_its_base_path_in_text_or_openmetrics_format(ui_app):
    client, shown = ui_app
    empty = client.get("/base/metrics")
    assert empty.status_code == 200 and "bootbench_" not in empty.get_data(as_text=True)
    shown["run"] = ObservedRun([Sample(1, "local", 1, "t", True, first_response_ms=150.0)])
    text = client.get("/base/metrics")
    assert text.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert value(samples(text.get_data(as_text=True)), "bootbench_phase_seconds", phase="first_response",
                 quantile="0.99") == 0.15
    openmetrics = client.get("/base/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.get_data(as_text=True).rstrip().endswith("# EOF")
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("args, sentence", [
    (["--metrics-port", "70000"], "--metrics-port must be a TCP port from 1 to 65535 (or 0 for none), not 70000"),
    (["--metrics-port", "-1"], "--metrics-port must be a TCP port from 1 to 65535 (or 0 for none), not -1"),
    (["--metrics-linger", "-1"], "--metrics-linger cannot be negative (-1)"),
    (["--metrics-linger", "3601", "--metrics-port", "9646"], "--metrics-linger must be at most 3600, not 3601"),
    (["--metrics-linger", "5"], "--metrics-linger 5 keeps serving --metrics-port after the run, but no --metrics-port "
                                "is given; give one (like --metrics-port 9646) or leave --metrics-linger out"),
    (["--pushgateway", "ftp://gw:9091"],
     "--pushgateway must be an http:// or https:// URL like http://127.0.0.1:9091, not 'ftp://gw:9091'"),
    (["--pushgateway", "http://bob:PUSH-SECRET@:9091/?k=Q-SECRET"],
     "--pushgateway must be an http:// or https:// URL like http://127.0.0.1:9091, not 'http://:9091/'"),
    (["--pushgateway", "gw:9091"],
     "--pushgateway must be an http:// or https:// URL like http://127.0.0.1:9091, not 'gw:9091'"),
    (["--pushgateway-job", " "], "--pushgateway-job cannot be empty: it names the job the metrics are pushed under"),
])
def test_bad_metrics_options_are_refused_in_one_sentence(refusals, tmp_path, args, sentence):
    assert refusals.line("--headless", "-u", "1", *args) == f"bootbench: {sentence}"
    assert not (tmp_path / "results").exists()


def test_pushgateway_with_the_web_ui_is_a_warning_not_a_refusal(refusals):
    checked = refusals.check("--pushgateway", "http://127.0.0.1:9091")
    assert checked.warnings == ("--pushgateway pushes at the end of a headless run only; with the web UI, "
                                "let Prometheus scrape its /metrics",)


def test_a_metrics_port_in_use_is_one_sentence_and_exit_code_2_before_anything_starts(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exited:
            local_environment("--metrics-port", str(port), results_dir=tmp_path / "r")
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"bootbench: --metrics-port {port} cannot be used on 127.0.0.1 (address already in use); choose another port"]
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("check, code", [(None, 0), ("first_response_ms:p95<=1", 3)])
def test_a_failed_push_is_one_warning_and_changes_neither_the_results_nor_the_exit_code(shared_reference_server,
                                                                                       tmp_path, check, code):
    server = shared_reference_server(**FIXED_RUN_SERVER)
    port = free_port()  # nothing listens there
    args = ["-i", "3", "--pushgateway", f"http://bob:PUSH-SECRET-77@127.0.0.1:{port}/"]
    run = headless_run(*args, *(["--check", check] if check else []), host=server.url, results_dir=tmp_path / "r")
    assert run.exit_code == code
    warnings = [line for line in run.stderr.splitlines() if line.startswith("bootbench: warning:")]
    assert warnings == [f"bootbench: warning: the push to the Pushgateway at http://127.0.0.1:{port}/ failed "
                        f"([Errno 111] Connection refused); the run's results are in its folder as usual"]
    assert run.metrics["summary"]["successes"] == 3 and (run.folder / "metrics.json").is_file()
    outputs = [run.stdout, run.stderr, *(p.read_text(errors="replace") for p in Path(tmp_path).rglob("*") if p.is_file())]
    assert not [o for o in outputs if "PUSH-SECRET-77" in o]


def test_credentials_in_the_pushgateway_url_become_basic_auth():
    assert split_credentials("https://bob:p%40ss@gw.example:9091/x") == ("https://gw.example:9091/x", "bob", "p@ss")
    assert split_credentials("http://127.0.0.1:9091") == ("http://127.0.0.1:9091", None, "")
