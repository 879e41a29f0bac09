"""Result files of a run: samples.jsonl, metrics.json, summary.csv, samples.csv, boot_<timestamp>.log.

A :class:`RunRecorder` owns one run folder ``<results-dir>/<run-id>/``. It
appends every sample to ``samples.jsonl`` the moment it arrives (flushed,
so a crash keeps every finished iteration), captures the run's log, and
at the end writes the summaries computed from the raw samples.
"""

from __future__ import annotations

import json
import logging
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from bootbench.views.report import write_report_safely
from bootbench.samples import HEADLINE, PHASES, Sample, summarize_errors, summarize_samples
from bootbench.secrets import RedactingFilter, redact

SCHEMA = "bootbench/metrics/v1"
STAT_COLUMNS = ("count", "mean", "median", "min", "max", "stdev", "p90", "p95", "p99")
SESSION_LOG = logging.getLogger("bootbench.sessions")
"""Per-iteration lines: into the run log only, not onto the console."""
SESSION_LOG.propagate = False
SESSION_LOG.setLevel(logging.INFO)
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunRecorder:
    """The one writer of a run's folder (on the master, or the single local process)."""

    def __init__(self, results_dir: str | Path, provider: str) -> None:
        self.started = datetime.now(timezone.utc)
        stamp = self.started.strftime("%Y%m%d-%H%M%S")
        self.folder = _new_folder(Path(results_dir), f"{stamp}-{provider}")
        self.run_id = self.folder.name
        self.samples: list[Sample] = []
        self._jsonl = open(self.folder / "samples.jsonl", "a", encoding="utf-8")
        self.log_path = self.folder / f"boot_{stamp}.log"
        self._log_handler = logging.FileHandler(self.log_path, encoding="utf-8")
        self._log_handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%d %H:%M:%S"))
        self._log_handler.addFilter(RedactingFilter())
        self._log_handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(self._log_handler)
        SESSION_LOG.addHandler(self._log_handler)

    def add(self, sample: Sample) -> None:
        """Keep a finished sample and append it to samples.jsonl at once."""
        self.samples.append(sample)
        self._jsonl.write(redact(json.dumps(sample.to_dict())) + "\n")
        self._jsonl.flush()
        SESSION_LOG.info("%s", describe_sample(sample))

    def finish(self, run: dict[str, Any]) -> dict[str, Any]:
        """Write metrics.json, summary.csv, samples.csv and report.html; stop capturing the log. Returns the metrics."""
        run = {"id": self.run_id, "started_at": self.started.isoformat(timespec="milliseconds"),
               "ended_at": now_iso(), **run, "versions": versions()}
        metrics = build_metrics(run, self.samples)
        write_metrics(self.folder, metrics)
        write_report_safely(self.folder, metrics)
        self._jsonl.close()
        logging.getLogger().removeHandler(self._log_handler)
        SESSION_LOG.removeHandler(self._log_handler)
        self._log_handler.close()
        return metrics


def describe_sample(sample: Sample) -> str:
    """One line per iteration for the run log."""
    who = f"iteration {sample.iteration} ({sample.worker} user {sample.user})"
    phases = ", ".join(f"{p[:-3]} {getattr(sample, p):.1f} ms" for p in PHASES if getattr(sample, p) is not None)
    outcome = "ok" if sample.ok else f"FAILED {sample.error_kind}: {sample.error}"
    strays = f"; anomalies {sample.anomalies}" if sample.anomalies else ""
    return f"{who}: {outcome}{'; ' + phases if phases else ''}{strays}"


def build_metrics(run: dict[str, Any], samples: list[Sample]) -> dict[str, Any]:
    """The metrics.json document: run description, exact summary, errors, and every sample."""
    ordered = sorted(samples, key=lambda s: s.iteration)
    return {
        "schema": SCHEMA,
        "run": run,
        "summary": summarize_samples(ordered),
        "errors": summarize_errors(ordered),
        "samples": [s.to_dict() for s in ordered],
    }


def write_metrics(folder: Path, metrics: dict[str, Any]) -> None:
    """Write metrics.json, summary.csv and samples.csv of ``metrics`` into ``folder``."""
    text = redact(json.dumps(metrics, indent=2, allow_nan=False))
    (folder / "metrics.json").write_text(text + "\n", encoding="utf-8")
    summary_frame(metrics).to_csv(folder / "summary.csv", index=False)
    samples_frame(metrics).to_csv(folder / "samples.csv", index=False)


def summary_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """One row per phase with its exact statistics and the run's success rate."""
    summary = metrics["summary"]
    rows = []
    for phase in PHASES:
        stats = summary["phases"][phase]
        row = {"phase": phase, **{c: stats[c] for c in STAT_COLUMNS}}
        for name in ("ci95_mean", "ci95_median"):
            low, high = stats[name] or (None, None)
            row[f"{name}_low"], row[f"{name}_high"] = low, high
        row.update(iterations=summary["iterations"], successes=summary["successes"],
                   failures=summary["failures"], success_rate=summary["success_rate"])
        rows.append(row)
    return pd.DataFrame(rows)


def samples_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """Every sample as a row; anomalies as a compact text column."""
    rows = []
    for s in metrics["samples"]:
        row = {k: v for k, v in s.items() if k != "anomalies"}
        row["anomalies"] = ";".join(f"{k}={v}" for k, v in sorted(s.get("anomalies", {}).items()))
        rows.append(row)
    columns = ["iteration", "worker", "user", "started_at", "ok", "error_kind", "error", *PHASES,
               "connected_this_cycle", "anomalies"]
    return pd.DataFrame(rows, columns=columns)


def console_summary(metrics: dict[str, Any]) -> str:
    """The short human summary printed at the end of a run."""
    summary, run = metrics["summary"], metrics["run"]
    head = summary["phases"][HEADLINE]
    budget = run.get("iterations", {})
    lines = [f"bootbench: {run.get('provider')} at {run.get('target')}"
             f"{' (embedded reference server)' if run.get('embedded_server') else ''}"]
    rate = summary["success_rate"]
    lines.append(f"  iterations: {summary['iterations']} finished"
                 f"{' of ' + str(budget['planned']) + ' planned' if budget.get('planned') else ''}, "
                 f"{summary['successes']} ok, {summary['failures']} failed"
                 f" (success rate {rate * 100:.1f}%)" if rate is not None else "  iterations: none finished")
    if head["count"]:
        p99_note = " (fewer than 100 samples: p99 is in effect the max)" if summary["p99_is_max"] else ""
        lines.append(f"  first response: median {head['median']:.1f} ms, p95 {head['p95']:.1f} ms, "
                     f"p99 {head['p99']:.1f} ms{p99_note}, mean {head['mean']:.1f} ms, "
                     f"min {head['min']:.1f}, max {head['max']:.1f}")
        session = summary["phases"]["session_start_ms"]
        if session["count"]:
            lines.append(f"  session start: median {session['median']:.1f} ms, p95 {session['p95']:.1f} ms")
    errors = metrics["errors"]["by_kind"]
    if errors:
        lines.append("  errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(errors.items())))
        first = metrics["errors"]["first"][0]
        lines.append(f"  first error (iteration {first['iteration']}): {first['kind']}: {first['message']}")
    if budget.get("lost"):
        lines.append(f"  incomplete: {budget['lost']} iteration(s) lost in flight")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("bootbench", "locust", "python-socketio", "python-engineio", "gevent", "websocket-client"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def load_samples(path: str | Path) -> list[Sample]:
    """Read a samples.jsonl (a torn last line from a crash is skipped)."""
    samples = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            samples.append(Sample.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return samples


def _new_folder(results_dir: Path, base: str) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        folder = results_dir / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run folder name under {results_dir}")
