"""A run's live numbers as Prometheus metrics: a prometheus_client Collector over the live snapshot.

:class:`RunCollector` reads the current (or last) run each time it is
collected and yields the families of :data:`METRICS`. Its quantiles are
bootbench's exact ones, from :func:`bootbench.stats.snapshot` (the snapshot
the web UI tab shows, and after the run metrics.json's ``summary.phases``
to the last digit), never Prometheus histograms' approximations; times are
in seconds (``_seconds``, Prometheus's base unit): metrics.json's ms / 1000.
Labels are few and bounded: the provider, the phase, the error kind, a
check's expression. Nothing of the target (host, path, query, key) is ever
a label or a value.

    registry = CollectorRegistry()
    registry.register(RunCollector(harness.current_or_last, users=lambda: runner.user_count))
    generate_latest(registry)   # the text format

Where the metrics go (``/metrics``, the push at the end) is
:mod:`bootbench.run.exposition`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, Protocol, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bootbench.samples import PHASES, TURN_PHASES, ErrorKind, Sample
from bootbench.stats import Snapshot, snapshot

QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
"""The quantiles of each phase: metrics.json's median, p90, p95 and p99."""
QUANTILE_STATISTICS: dict[float, str] = {0.5: "median", 0.9: "p90", 0.95: "p95", 0.99: "p99"}
"""Each quantile's statistic in :func:`bootbench.stats.summarize` (and metrics.json)."""
ERROR_KINDS: tuple[str, ...] = (*(kind.value for kind in ErrorKind if kind is not ErrorKind.INTERRUPTED), "unknown")
"""The ``kind`` values exported from the start (0 until one fails), so a rate over them needs no first failure."""


@dataclass(frozen=True)
class MetricInfo:
    """One metric bootbench exports: its name, Prometheus type, labels and help (the README's table)."""

    name: str
    type: str
    labels: tuple[str, ...]
    help: str


METRICS: tuple[MetricInfo, ...] = (
    MetricInfo("bootbench_phase_seconds", "summary", ("provider", "phase"),
               "Exact quantiles (0.5, 0.9, 0.95, 0.99), count and sum of each phase over the successful iterations "
               "so far, in seconds (metrics.json summary.phases / 1000); phase is its name without _ms"),
    MetricInfo("bootbench_iterations_planned", "gauge", ("provider",),
               "Iterations the run plans (-i; a sweep's over all levels); 0 means no limit"),
    MetricInfo("bootbench_iterations_finished_total", "counter", ("provider",),
               "Iterations finished so far, successful or failed"),
    MetricInfo("bootbench_iterations_failed_total", "counter", ("provider", "kind"),
               "Failed iterations by error kind (every kind from the start, at 0 until one fails)"),
    MetricInfo("bootbench_iterations_lost_total", "counter", ("provider",),
               "Iterations lost in flight with a worker that went missing"),
    MetricInfo("bootbench_success_ratio", "gauge", ("provider",),
               "Successful iterations / finished iterations (0 to 1; NaN before the first one)"),
    MetricInfo("bootbench_inaudible_replies_total", "counter", ("provider",),
               "Successful iterations whose answer never became audible (not failures)"),
    MetricInfo("bootbench_late_stamp_reads_total", "counter", ("provider",),
               "Kernel clock: reads whose bytes waited for the reader thread, so a stamp in them may be late "
               "(metrics.json summary.late_stamp_reads; 0 under the process clock, which counts none)"),
    MetricInfo("bootbench_users", "gauge", ("provider",), "Users running now, over all workers (Locust's count)"),
    MetricInfo("bootbench_workers", "gauge", ("provider",),
               "Workers the master hears from (0 in a single local process)"),
    MetricInfo("bootbench_sweep_level", "gauge", ("provider",),
               "With --sweep: the level running now, from 1 (absent without a sweep)"),
    MetricInfo("bootbench_sweep_level_users", "gauge", ("provider",),
               "With --sweep: the users of the level running now (absent without a sweep)"),
    MetricInfo("bootbench_run_running", "gauge", ("provider",), "1 while the run goes, 0 once it has ended"),
    MetricInfo("bootbench_run_start_time_seconds", "gauge", ("provider",), "When the run started (Unix time)"),
    MetricInfo("bootbench_run_complete", "gauge", ("provider",),
               "Once the run has ended: 1 when every planned iteration finished, else 0"),
    MetricInfo("bootbench_check_passed", "gauge", ("provider", "check"),
               "Once the run has ended, per --check (its expression): 1 passed, 0 failed"),
)
"""Every metric bootbench exports, in the order a scrape lists them."""
METRIC_BY_NAME: dict[str, MetricInfo] = {m.name: m for m in METRICS}


class ObservedRun(Protocol):
    """What the collector reads of a run (:class:`bootbench.run.master.MasterRun` provides it)."""

    samples: Sequence[Sample]
    planned: int
    run_id: str
    started_at: str
    metrics: dict[str, Any] | None
    """The final metrics.json document; None while the run goes."""
    provider: str
    headline: str
    lost: int

    def sweep_level(self) -> tuple[int, int] | None:
        """The sweep's level running now (its number from 1, its users); None for a plain run."""
        ...


def phase_label(phase: str) -> str:
    """A phase's ``phase`` label: its name without the unit (``first_response_ms`` -> ``first_response``)."""
    return phase.removesuffix("_ms")


def seconds(ms: float | None) -> float:
    """Milliseconds as seconds; NaN for no value (Prometheus's "no observation")."""
    return ms / 1000 if ms is not None else math.nan


class RunCollector(Collector):
    """The metrics of :data:`METRICS` for the run ``current_run`` returns, computed when collected.

    The snapshot is computed again only when the run or its number of
    samples changed (a scrape every second costs one lookup between
    iterations). ``users`` and ``workers`` count what runs now.
    """

    def __init__(self, current_run: Callable[[], ObservedRun | None], *, users: Callable[[], int] = lambda: 0,
                 workers: Callable[[], int] = lambda: 0) -> None:
        self.current_run = current_run
        self.users = users
        self.workers = workers
        self._key: tuple | None = None
        self._snapshot: Snapshot | None = None

    def describe(self) -> list[Metric]:
        """No fixed names: the registry does not collect at registration (the run may not exist yet)."""
        return []

    def snapshot_of(self, run: ObservedRun) -> Snapshot:
        """The run's snapshot, recomputed only when its samples changed."""
        key = (run.run_id, len(run.samples), run.metrics is None)
        if key != self._key or self._snapshot is None:
            self._snapshot = snapshot(run.samples, run.planned, run.headline)
            self._key = key
        return self._snapshot

    def collect(self) -> Iterator[Metric]:
        run = self.current_run()
        if run is None:
            return
        snap = self.snapshot_of(run)
        provider = run.provider
        ended = run.metrics is not None

        def family(name: str, value: float | None = None) -> Metric:
            info = METRIC_BY_NAME[name]
            make = CounterMetricFamily if info.type == "counter" else GaugeMetricFamily
            metric = make(name, info.help, labels=info.labels)
            if value is not None:
                metric.add_metric([provider], value)
            return metric

        yield phase_family(provider, snap)
        yield family("bootbench_iterations_planned", run.planned)
        yield family("bootbench_iterations_finished_total", snap.iterations)
        failed = family("bootbench_iterations_failed_total")
        for kind in sorted({*ERROR_KINDS, *snap.errors_by_kind}):
            failed.add_metric([provider, kind], snap.errors_by_kind.get(kind, 0))
        yield failed
        yield family("bootbench_iterations_lost_total", run.lost)
        rate = snap.success_rate
        yield family("bootbench_success_ratio", rate if rate is not None else math.nan)
        yield family("bootbench_inaudible_replies_total", snap.inaudible_replies)
        yield family("bootbench_late_stamp_reads_total", snap.late_stamp_reads or 0)
        yield family("bootbench_users", self.users())
        yield family("bootbench_workers", self.workers())
        level = run.sweep_level()
        if level is not None:
            yield family("bootbench_sweep_level", level[0])
            yield family("bootbench_sweep_level_users", level[1])
        yield family("bootbench_run_running", 0 if ended else 1)
        yield family("bootbench_run_start_time_seconds", datetime.fromisoformat(run.started_at).timestamp())
        if ended:
            iterations = (run.metrics.get("run") or {}).get("iterations") or {}
            yield family("bootbench_run_complete", 1 if iterations.get("complete") else 0)
            results = run.metrics.get("checks") or []
            if results:
                checks = family("bootbench_check_passed")
                for result in results:
                    checks.add_metric([provider, result["expr"]], 1 if result["ok"] else 0)
                yield checks


def phase_family(provider: str, snap: Snapshot) -> Metric:
    """``bootbench_phase_seconds``: a summary per phase (quantiles, count, sum), from the snapshot's exact statistics.

    Every phase of the run's table is there from the start (count 0, NaN
    quantiles until it has a value); the turn phases only with ``--turns`` > 1.
    """
    name = "bootbench_phase_seconds"
    metric = Metric(name, METRIC_BY_NAME[name].help, "summary")
    for phase in (*PHASES, *(p for p in TURN_PHASES if p in snap.phases)):
        summary = snap.phases[phase]
        labels = {"provider": provider, "phase": phase_label(phase)}
        for quantile in QUANTILES:
            metric.add_sample(name, {**labels, "quantile": str(quantile)},
                              seconds(summary[QUANTILE_STATISTICS[quantile]]))
        metric.add_sample(name + "_count", labels, summary["count"])
        metric.add_sample(name + "_sum", labels, summary["sum"] / 1000)
    return metric
