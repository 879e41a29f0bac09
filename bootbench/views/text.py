"""bootbench as plain text: how numbers read, the summary printed at the end of a run, the progress line.

Every view (console, report, comparison, web tab) formats numbers through
:func:`format_ms`, :func:`format_rate` and :func:`format_count`, so one value
reads the same wherever it appears.

    >>> format_ms(151.2349), format_rate(0.975), format_count(1234)
    ('151.2', '97.5 %', '1234')
"""

from __future__ import annotations

import math
from typing import Any

from bootbench.samples import HEADLINE
from bootbench.stats import Snapshot, p99_note

MISSING = "–"


def format_ms(value: float | None) -> str:
    """A duration in milliseconds with one decimal, without the unit ("151.2"); "–" when absent."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.1f}"


def format_rate(value: float | None) -> str:
    """A share (0..1) as a percentage with one decimal ("97.5 %"); "–" when absent."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value * 100:.1f} %"


def format_count(value: int | None) -> str:
    """A count as plain digits; "–" when absent."""
    return MISSING if value is None else str(int(value))


def console_summary(metrics: dict[str, Any]) -> str:
    """The short summary of a finished run (a metrics.json document) printed on the console."""
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
        note = p99_note(head["count"])
        lines.append(f"  first response: median {head['median']:.1f} ms, p95 {head['p95']:.1f} ms, "
                     f"p99 {head['p99']:.1f} ms{f' ({note})' if note else ''}, mean {head['mean']:.1f} ms, "
                     f"min {head['min']:.1f}, max {head['max']:.1f}")
        session = summary["phases"]["session_start_ms"]
        if session["count"]:
            lines.append(f"  session start: median {session['median']:.1f} ms, p95 {session['p95']:.1f} ms")
    errors = metrics["errors"]["by_kind"]
    if errors:
        lines.append("  errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(errors.items())))
        first = metrics["errors"]["first"][0]
        worker = first.get("worker") or "local"
        on = f" on {worker}" if worker != "local" and worker not in (first["message"] or "") else ""
        lines.append(f"  first error (iteration {first['iteration']}{on}): {first['kind']}: {first['message']}")
    anomalies = metrics["errors"].get("anomalies") or {}
    if anomalies:
        lines.append("  anomalies (events outside a live session, never taken as an answer): "
                     + ", ".join(f"{name} x{count}" for name, count in sorted(anomalies.items())))
    if budget.get("lost"):
        lines.append(f"  incomplete: {budget['lost']} iteration(s) lost in flight")
    return "\n".join(lines)


def progress_line(snap: Snapshot) -> str:
    """The headless progress line: ``bootbench: 37/100 iterations, median 151.2 ms, p95 230.1 ms, 0 failed``."""
    done = f"{snap.iterations}/{snap.planned}" if snap.planned else f"{snap.iterations}"
    parts = [f"bootbench: {done} iterations"]
    if snap.median is not None:
        parts.append(f"median {format_ms(snap.median)} ms")
        parts.append(f"p95 {format_ms(snap.p95)} ms")
    parts.append(f"{snap.failures} failed")
    if snap.errors_by_kind:
        parts[-1] += " (" + ", ".join(f"{kind} x{count}" for kind, count in snap.errors_by_kind.items()) + ")"
    return ", ".join(parts)
