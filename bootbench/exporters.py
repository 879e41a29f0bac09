"""The result files of a run: samples.jsonl, metrics.json, summary.csv, samples.csv, boot_<timestamp>.log, junit.xml.

A :class:`RunRecorder` owns one run folder ``<results-dir>/<run-id>/``. It
writes run.json (the run's configuration) when the run opens, appends every sample to ``samples.jsonl`` the moment it arrives (flushed,
so a crash keeps every finished iteration), captures the run's log, and at
the end writes metrics.json and the CSV files from the raw samples (and
asks :mod:`bootbench.views.report` for report.html). With ``--check``s,
the checks are evaluated on the final metrics, recorded in metrics.json's
``checks`` and written to junit.xml (:mod:`bootbench.junit`).

    recorder = RunRecorder("results", "aivoco")
    recorder.describe(run_block)            # run.json: what the run is, in case it never finishes
    recorder.add(sample)                    # at once into samples.jsonl and the run log
    metrics = recorder.finish(run_block, checks)  # metrics.json, summary.csv, samples.csv, report.html, junit.xml

A folder whose process was killed has run.json and samples.jsonl but no
metrics.json: :func:`rebuild_metrics` makes one from them, marked incomplete.
"""

from __future__ import annotations

import json
import logging
import math
import platform
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from bootbench.checks import Check, CheckResult, evaluate
from bootbench.junit import write_junit
from bootbench.levels import estimate_capacity, summarize_levels
from bootbench.provenance import provenance
from bootbench.samples import MULTI_TURN_FIELDS, PHASES, SAMPLE_FIELDS, TURN_PHASES, Sample, Turn
from bootbench.secrets import RedactingFilter, redact
from bootbench.stats import STATISTICS, LiveSamples, summarize_errors, summarize_samples
from bootbench.views.report import write_report_safely

if TYPE_CHECKING:  # pandas is imported where the CSV files are made: a worker or a refused run never pays for it
    import pandas as pd

SCHEMA = "bootbench/metrics/v2"
"""v2: the pause between cycles is ``run.wait_ms`` (v1: ``run.delay_ms``)."""
RUN_FILE = "run.json"
"""The run's ``run`` block as it opened (configuration, no results): enough to rebuild metrics.json."""
SESSION_LOG = logging.getLogger("bootbench.sessions")
"""Per-iteration lines: into the run log only, not onto the console."""
SESSION_LOG.propagate = False
SESSION_LOG.setLevel(logging.INFO)
LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
CSV_DECIMALS = 3
"""Milliseconds in the CSV files are rounded to microseconds (metrics.json keeps every digit)."""
log = logging.getLogger("bootbench")


def now_iso() -> str:
    """The current UTC time as ISO 8601 with milliseconds, the form of every time in metrics.json."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RunRecorder:
    """The one writer of a run's folder (on the master, or the single local process)."""

    def __init__(self, results_dir: str | Path, provider: str) -> None:
        self.started = datetime.now(timezone.utc)
        stamp = self.started.strftime("%Y%m%d-%H%M%S")
        self.folder = _new_folder(Path(results_dir), f"{stamp}-{provider}")
        self.run_id = self.folder.name
        self.samples: list[Sample] = LiveSamples()
        """Every sample so far, in arrival order, with the columns the live snapshot is computed from."""
        self._jsonl = open(self.folder / "samples.jsonl", "a", encoding="utf-8")
        self.log_path = self.folder / f"boot_{stamp}.log"
        self._log_handler = logging.FileHandler(self.log_path, encoding="utf-8")
        self._log_handler.setFormatter(logging.Formatter(LOG_FORMAT, "%Y-%m-%d %H:%M:%S"))
        self._log_handler.addFilter(RedactingFilter())
        self._log_handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(self._log_handler)
        SESSION_LOG.addHandler(self._log_handler)

    @property
    def started_at(self) -> str:
        """When the run started, as in metrics.json (ISO 8601, UTC, milliseconds)."""
        return self.started.isoformat(timespec="milliseconds")

    def describe(self, run_block: dict[str, Any]) -> None:
        """Write run.json: the ``run`` block at the start (id, start time, configuration, versions)."""
        document = {"schema": SCHEMA, "run": {"id": self.run_id, "started_at": self.started_at, **run_block,
                                              "versions": dict(versions())}}
        (self.folder / RUN_FILE).write_text(redact(json.dumps(document, indent=2, allow_nan=False)) + "\n",
                                            encoding="utf-8")

    def add(self, sample: Sample) -> None:
        """Keep a finished sample and append it to samples.jsonl at once."""
        self.samples.append(sample)
        self._jsonl.write(redact(sample_line(sample)) + "\n")
        self._jsonl.flush()
        SESSION_LOG.info("%s", log_line(sample))

    def finish(self, run_block: dict[str, Any], checks: Sequence[Check] = (),
               levels: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Write metrics.json, summary.csv, samples.csv, report.html (and junit.xml with checks); stop capturing the log.

        ``run_block`` describes the run (metrics.json ``run`` without id, times
        and versions). ``levels`` are a sweep's levels as they ran
        (:meth:`bootbench.run.sweep.Sweep.records`). ``checks`` are evaluated
        once, on the exact final statistics (a sweep's capacity included);
        their results are metrics.json's ``checks``. Returns the metrics.
        """
        metrics = finite_or_null(build_metrics(self.run_id, self.started_at, run_block, self.samples,
                                               ended_at=now_iso(), levels=levels), "metrics.json")
        results = evaluate(checks, metrics)
        metrics["checks"] = [result.to_dict() for result in results]
        write_metrics(self.folder, metrics, self.samples)
        if results:
            write_junit_safely(self.folder, results, self.run_id, metrics["run"])
        write_report_safely(self.folder, metrics)
        self._jsonl.close()
        logging.getLogger().removeHandler(self._log_handler)
        SESSION_LOG.removeHandler(self._log_handler)
        self._log_handler.close()
        return metrics


def write_junit_safely(folder: Path, results: Sequence[CheckResult], run_id: str,
                       run: dict[str, Any] | None = None) -> Path | None:
    """:func:`~bootbench.junit.write_junit` at the end of a run: a failure is logged, never raised."""
    try:
        return write_junit(folder, results, run_id, run)
    except Exception:
        logging.getLogger("bootbench").exception("junit.xml could not be written; metrics.json holds the checks")
        return None


def sample_line(sample: Sample) -> str:
    """``sample`` as one line of samples.jsonl (not redacted), a number that is not finite written as null.

    JSON has no NaN or infinity: ``json.dumps(allow_nan=False)`` refuses one, and only then is the sample walked
    through :func:`finite_or_null` (which also logs the warning): the common case costs one ``dumps``.
    """
    plain = sample.to_dict()
    try:
        return json.dumps(plain, allow_nan=False)
    except ValueError:
        return json.dumps(finite_or_null(plain, f"iteration {sample.iteration}"), allow_nan=False)


def log_line(sample: Sample) -> str:
    """The run log's line about one iteration."""
    who = f"iteration {sample.iteration} ({sample.worker} user {sample.user})"
    phases = ", ".join(f"{p[:-3]} {getattr(sample, p):.1f} ms" for p in PHASES if getattr(sample, p) is not None)
    outcome = "ok" if sample.ok else f"FAILED {sample.error_kind}: {sample.error}"
    strays = f"; anomalies {sample.anomalies}" if sample.anomalies else ""
    if sample.late_stamp_reads:
        strays += (f"; {sample.late_stamp_reads} read(s) waited for the kernel clock's reader thread "
                   f"(a stamp may be late)")
    turns = ""
    if sample.turns:
        turns = "; turns " + ", ".join(f"{t.turn}: input to audio {_ms(t.input_to_audio_ms)}, reply {_ms(t.reply_ms)}"
                                       for t in sample.turns)
        if sample.cold_penalty_ms is not None:
            turns += f"; cold penalty {sample.cold_penalty_ms:.1f} ms"
    return f"{who}: {outcome}{'; ' + phases if phases else ''}{turns}{strays}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def build_metrics(run_id: str, started_at: str, run_block: dict[str, Any], samples: Sequence[Sample], *,
                  ended_at: str | None = None, levels: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The metrics.json document: run description, exact summary, errors, and every sample.

    Without ``ended_at`` the document describes a run still going: its ``run``
    block says ``in_progress`` and when the snapshot was taken. With a sweep's
    ``levels`` (as they ran) it also holds ``levels`` (per level statistics
    and CPU) and ``capacity`` (:mod:`bootbench.levels`).
    """
    times = {"ended_at": ended_at} if ended_at else {"snapshot_at": now_iso(), "in_progress": True}
    ordered = sorted(samples, key=lambda s: s.iteration)
    metrics: dict[str, Any] = {
        "schema": SCHEMA,
        "run": {"id": run_id, "started_at": started_at, **times, **run_block, "versions": dict(versions()),
                "provenance": provenance()},
        "summary": summarize_samples(ordered),
        "errors": summarize_errors(ordered),
    }
    if levels is not None:
        metrics["levels"] = summarize_levels(ordered, levels)
        metrics["capacity"] = estimate_capacity(metrics["levels"], run_block.get("sweep_tolerance", 1.5))
    metrics["samples"] = [s.to_dict() for s in ordered]
    return metrics


def read_samples(folder: Path) -> list[Sample]:
    """The samples of ``folder``/samples.jsonl; a last line cut short (the process was killed mid-write) is skipped."""
    samples = []
    lines = (folder / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            samples.append(Sample.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            if number < len(lines):
                raise
    return samples


def rebuild_metrics(folder: Path) -> tuple[dict[str, Any], list[Sample]]:
    """metrics.json of a run that never wrote one (its process was killed), from run.json and samples.jsonl.

    Marked ``run.rebuilt_from_samples: true``, incomplete, with no end time:
    the iteration accounting holds what the samples show (what was in flight
    when the process died is not known). Raises OSError, ValueError (bad JSON).
    """
    opened = json.loads((folder / RUN_FILE).read_text(encoding="utf-8"))["run"]
    samples = read_samples(folder)
    planned = int((opened.get("iterations") or {}).get("planned") or 0)
    run_block = {key: value for key, value in opened.items() if key not in ("id", "started_at", "versions")}
    run_block["iterations"] = {"planned": planned, "started": None, "finished": len(samples), "lost": None,
                               "lost_iterations": {}, "complete": False,
                               "workers": sorted({s.worker for s in samples}),
                               "never_started": None, "interrupted": [], "recovered": [],
                               "unfinished_at_stop": []}
    metrics = build_metrics(opened["id"], opened["started_at"], run_block, samples, ended_at=now_iso())
    metrics["run"].update(ended_at=None, rebuilt_from_samples=True, rebuilt_at=now_iso(),
                          versions=opened.get("versions", metrics["run"]["versions"]))
    metrics["checks"] = []
    return metrics, samples


def write_metrics(folder: Path, metrics: dict[str, Any], samples: Sequence[Sample]) -> None:
    """Write metrics.json, summary.csv and samples.csv into ``folder`` (non-finite numbers as null)."""
    metrics = finite_or_null(metrics, "metrics.json")
    text = redact(json.dumps(metrics, indent=2, allow_nan=False))
    (folder / "metrics.json").write_text(text + "\n", encoding="utf-8")
    # each CSV file on its own: a failure in one (a bug) is logged and costs neither the other nor report.html
    for name, frame in (("summary.csv", lambda: summary_frame(metrics["summary"], metrics.get("levels"))),
                        ("samples.csv", lambda: samples_frame(samples))):
        try:
            frame().to_csv(folder / name, index=False)
        except Exception:
            log.exception("%s could not be written; metrics.json holds the same numbers", name)


def finite_or_null(value: Any, where: str = "the results") -> Any:
    """``value`` with every NaN or infinite float replaced by None, so that no number can break the final write.

    JSON has no NaN or infinity (``json.dumps(allow_nan=False)`` refuses them).
    A replaced number is a bug upstream, so each call that replaces any logs one warning naming ``where``.
    """
    replaced: list[str] = []

    def clean(item: Any, path: str) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            replaced.append(f"{path} = {item}")
            return None
        if isinstance(item, dict):
            return {key: clean(v, f"{path}.{key}") for key, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(v, f"{path}[{i}]") for i, v in enumerate(item)]
        return item

    cleaned = clean(value, "")
    if replaced:
        log.warning("%s: %d number(s) that are not finite written as null (%s%s)", where, len(replaced),
                    ", ".join(p.lstrip(".") for p in replaced[:3]), ", ..." if len(replaced) > 3 else "")
    return cleaned


def summary_frame(summary: dict[str, Any], levels: Sequence[dict[str, Any]] | None = None) -> pd.DataFrame:
    """One row per phase with its exact statistics and the run's success rate (summary.csv).

    ``level`` is empty on these whole-run rows; a sweep adds one row per level and phase, ``level`` = its users.
    """
    import pandas as pd

    rows = _summary_rows(summary, None)
    for level in levels or ():
        rows += _summary_rows(level, level["users"])
    frame = pd.DataFrame(rows)
    frame["level"] = whole_numbers(frame["level"])  # empty on whole-run rows
    in_ms = [c for c in frame.columns
             if c not in ("level", "phase", "count", "iterations", "successes", "failures", "success_rate")]
    return frame.round({**{c: CSV_DECIMALS for c in in_ms}, "success_rate": 6})


def _summary_rows(summary: dict[str, Any], level: int | None) -> list[dict[str, Any]]:
    rows = []
    for phase in (*PHASES, *(p for p in TURN_PHASES if p in summary["phases"])):
        stats = summary["phases"][phase]
        row = {"level": level, "phase": phase, **{c: stats[c] for c in STATISTICS}}
        for name in ("ci95_mean", "ci95_median"):
            row[f"{name}_low"], row[f"{name}_high"] = stats[name] or (None, None)
        row.update(iterations=summary["iterations"], successes=summary["successes"],
                   failures=summary["failures"], success_rate=summary["success_rate"])
        rows.append(row)
    return rows


def whole_numbers(column: pd.Series) -> pd.Series:
    """A column of whole numbers (or None) as pandas' nullable Int64; as Python ints when one is beyond 64 bits.

    Int64 prints ``4`` where a float column would print ``4.0``; a number it
    cannot hold (OverflowError) is written with every digit, as metrics.json has it.
    """
    try:
        return column.astype("Int64")
    except (OverflowError, TypeError, ValueError):
        return column.astype(object)


def _pairs(values: dict[str, Any] | None) -> str:
    """A dict of a sample (anomalies, the service's latency figures) as one samples.csv cell: ``name=value;...``."""
    return ";".join(f"{k}={v}" for k, v in sorted((values or {}).items()))


def samples_frame(samples: Sequence[Sample]) -> pd.DataFrame:
    """Every sample as a row in iteration order, anomalies as ``name=count;...`` text (samples.csv), the service's
    latency figures as ``name=ms;...``.

    A run with ``--turns`` > 1 adds ``cold_penalty_ms`` and one column per
    turn and figure (``turn2_input_to_audio_ms``, ``turn2_reply_ms``, ..., ``turn2_clip``, ``turn2_stages_ms``);
    a single-turn run's columns are those it always had.
    """
    import pandas as pd

    ordered = sorted(samples, key=lambda s: s.iteration)
    multi_turn = any(s.turns is not None for s in ordered)
    columns = [f for f in SAMPLE_FIELDS if multi_turn or f not in MULTI_TURN_FIELDS]
    frame = pd.DataFrame([vars(s) for s in ordered], columns=columns)
    frame["anomalies"] = [_pairs(a) for a in frame["anomalies"]]
    frame["service_latency_ms"] = [_pairs(v) for v in frame["service_latency_ms"]]
    frame["level"] = whole_numbers(frame["level"])  # a sweep level's users; empty outside a sweep
    timings = list(PHASES)
    if multi_turn:
        frame = frame.drop(columns="turns")
        timings.append("cold_penalty_ms")
        most = max(len(s.turns or []) for s in ordered)
        figures = [f for f in vars(Turn(1)) if f not in ("turn", *TURN_TEXT_FIELDS)]
        for number in range(1, most + 1):
            reached = [s.turns[number - 1] if s.turns and len(s.turns) >= number else None for s in ordered]
            for figure in figures:
                frame[f"turn{number}_{figure}"] = [None if t is None else getattr(t, figure) for t in reached]
                timings.append(f"turn{number}_{figure}")
            frame[f"turn{number}_clip"] = ["" if t is None or t.clip is None else t.clip for t in reached]
            for figure in ("service_latency_ms", "stages_ms"):  # name=ms;... like the sample's own
                frame[f"turn{number}_{figure}"] = ["" if t is None else _pairs(getattr(t, figure)) for t in reached]
    for phase in timings:  # NaN would print as an empty cell anyway; inf would print as "inf"
        frame[phase] = pd.to_numeric(frame[phase], errors="coerce").replace([math.inf, -math.inf], math.nan)
    return frame.round({phase: CSV_DECIMALS for phase in timings})


TURN_TEXT_FIELDS = ("clip", "service_latency_ms", "stages_ms")
"""The :class:`~bootbench.samples.Turn` fields that are no number: samples.csv writes them as text (the clip's name,
``name=ms;...``); every other field of a turn is a ``turnK_...`` number column."""


@cache
def versions() -> dict[str, str]:
    """Versions of what produced the numbers."""
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("bootbench", "locust", "python-socketio", "python-engineio", "gevent", "websocket-client"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


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
