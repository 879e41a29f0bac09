"""bootbench's metrics in a real Prometheus and a real Pushgateway (Debian's packages; .ci/run installs them).

A real Locust process benchmarks its embedded reference server while a
real Prometheus scrapes its ``--metrics-port`` every second: what Prometheus
stores is metrics.json's numbers exactly, every metric name the Grafana
dashboard queries is in the scrape, and every query of the dashboard returns
data. A headless run pushes its final numbers to a real Pushgateway.
"""

from __future__ import annotations

import json
import math
import signal
import time

import pytest

from bootbench.samples import PHASES
from bootbench.views.prometheus import METRICS, QUANTILE_STATISTICS, phase_label
from support.ground_truth import FIXED_RUN_SERVER
from support.inprocess import headless_run
from support.processes import free_port, locust_process, stop_process
from support.prometheus import DASHBOARD, DASHBOARD_VARIABLES, PrometheusServer, Pushgateway, iter_exprs, value


def exported_names() -> set[str]:
    """Every sample name a scrape can hold (a summary's _count and _sum; a counter's _total)."""
    names = {m.name for m in METRICS}
    return names | {"bootbench_phase_seconds_count", "bootbench_phase_seconds_sum"}


def grafana_expr(expr: str) -> str:
    """A dashboard query as Grafana sends it, with its variables filled in ($provider = All)."""
    for variable, replacement in DASHBOARD_VARIABLES.items():
        expr = expr.replace(variable, replacement)
    return expr


@pytest.mark.slow
def test_prometheus_stores_metrics_json_exact_quantiles_and_every_dashboard_query_resolves(tmp_path):
    port = free_port()
    with PrometheusServer.start(tmp_path, targets=[f"127.0.0.1:{port}"]) as prometheus:
        # A sweep and a check, so that every metric exists: the level's and the check's too.
        process = locust_process("--headless", "--sweep", "1,2", "-i", "6", "--check", "first_response_ms:p95<=5000",
                                 "--metrics-port", str(port), "--metrics-linger", "60",
                                 "--results-dir", str(tmp_path / "r"), cwd=tmp_path, log=tmp_path / "locust.log")
        try:
            prometheus.wait_for("bootbench_run_running == 0", timeout=180)
            (metrics_file,) = (tmp_path / "r").glob("*/metrics.json")
            metrics = json.loads(metrics_file.read_text())
            assert metrics["summary"]["iterations"] == 12 and metrics["checks"][0]["ok"]

            p95 = prometheus.value('bootbench_phase_seconds{phase="first_response", quantile="0.95"}')
            assert float(p95) == metrics["summary"]["phases"]["first_response_ms"]["p95"] / 1000
            for phase in PHASES:
                for quantile, stat in QUANTILE_STATISTICS.items():
                    stored = float(prometheus.value(
                        f'bootbench_phase_seconds{{phase="{phase_label(phase)}", quantile="{quantile}"}}'))
                    expected = metrics["summary"]["phases"][phase][stat]
                    assert math.isnan(stored) if expected is None else stored == expected / 1000, (phase, stat)
            assert float(prometheus.value("bootbench_iterations_finished_total")) == 12
            assert float(prometheus.value("bootbench_sweep_level_users")) == 2

            stored_names = {r["metric"]["__name__"]
                            for r in prometheus.query('count by (__name__) ({__name__=~"bootbench_.+"})')}
            assert stored_names == exported_names()
            # rate()/increase() need two samples of a series in their window: a run shorter than two scrapes has
            # one, so wait for the next scrape of the final numbers (--metrics-linger keeps them served)
            prometheus.wait_for("min(count_over_time(bootbench_iterations_failed_total[1m])) >= 2", timeout=30)
            exprs = list(iter_exprs(json.loads(DASHBOARD.read_text())))
            for expr in exprs:
                assert prometheus.query(grafana_expr(expr)), f"the dashboard's {expr!r} returned nothing"
            provider_values = prometheus.query(
                'group by (provider) (bootbench_iterations_planned)')  # the $provider variable's label_values()
            assert [r["metric"]["provider"] for r in provider_values] == ["aivoco"]
        finally:
            started = time.monotonic()
            stop_process(process, signal.SIGTERM, 20)  # a signal cuts --metrics-linger short ...
        assert time.monotonic() - started < 10
        assert process.returncode == 0, (tmp_path / "locust.log").read_text()[-3000:]  # ... and keeps the exit code
        log = (tmp_path / "locust.log").read_text()
        assert "Traceback" not in log


def test_a_headless_run_pushes_its_final_metrics_to_a_real_pushgateway_under_its_job_and_provider(
        shared_reference_server, tmp_path):
    server = shared_reference_server(**FIXED_RUN_SERVER)
    with Pushgateway.start(tmp_path) as gateway:
        assert not [name for name, _ in gateway.metrics() if name.startswith("bootbench_")]
        run = headless_run("-i", "5", "--pushgateway", gateway.url, "--pushgateway-job", "nightly",
                           host=server.url, results_dir=tmp_path / "r")
        assert run.exit_code == 0 and "bootbench: warning" not in run.stderr
        pushed = gateway.metrics()
    grouping = {"job": "nightly", "provider": "aivoco", "instance": ""}
    stats = run.metrics["summary"]["phases"]["first_response_ms"]
    assert value(pushed, "bootbench_phase_seconds", phase="first_response", quantile="0.95", **grouping) == \
        stats["p95"] / 1000
    assert value(pushed, "bootbench_phase_seconds_count", phase="first_response", **grouping) == 5
    assert value(pushed, "bootbench_iterations_finished_total", **grouping) == 5
    assert value(pushed, "bootbench_run_running", **grouping) == 0
    assert value(pushed, "push_failure_time_seconds", **grouping) == 0
    assert value(pushed, "push_time_seconds", **grouping) > 1.7e9
