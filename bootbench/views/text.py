"""bootbench as plain text: how numbers read, the summary printed at the end of a run, the progress line.

Every view (console, report, comparison, web tab) formats numbers through
:func:`format_ms`, :func:`format_rate` and :func:`format_count`, so one value
reads the same wherever it appears.

    >>> format_ms(151.2349), format_rate(0.975), format_count(1234)
    ('151.2', '97.5 %', '1234')
"""

from __future__ import annotations

import math
from typing import Any, Container, Sequence

from bootbench.samples import HEADLINE, PHASE_BY_NAME, STAGE_PHASES
from bootbench.stats import Snapshot, p99_note

MISSING = "–"


def format_ms(value: float | None) -> str:
    """A duration in milliseconds with one decimal, without the unit ("151.2"); "–" when absent."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{round(value, 1) + 0.0:.1f}"  # + 0.0: a value that rounds to zero reads "0.0", never "-0.0"


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
    headline = run.get("headline") if run.get("headline") in summary["phases"] else HEADLINE
    head = summary["phases"][headline]
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
        lines.append(f"  {PHASE_BY_NAME[headline].label}: median {head['median']:.1f} ms, p95 {head['p95']:.1f} ms, "
                     f"p99 {head['p99']:.1f} ms{f' ({note})' if note else ''}, mean {head['mean']:.1f} ms, "
                     f"min {head['min']:.1f}, max {head['max']:.1f}")
    for other in ("first_response_ms", "first_audible_ms", "session_start_ms"):
        phase = summary["phases"].get(other)
        if other != headline and phase and phase["count"]:
            lines.append(f"  {PHASE_BY_NAME[other].label}: median {phase['median']:.1f} ms, p95 {phase['p95']:.1f} ms")
    if summary.get("inaudible_replies"):
        lines.append(f"  inaudible replies: {summary['inaudible_replies']} (audio came back, but never above "
                     f"{run.get('audible_dbfs', -50):g} dBFS before it ended or the timeout)")
    if summary.get("late_stamp_reads"):
        lines.append(f"  kernel clock: {summary['late_stamp_reads']} read(s) in {summary['late_stamp_iterations']} "
                     f"iteration(s) took bytes that had waited for the reader thread; a timing of those may be "
                     f"late (samples.jsonl: late_stamp_reads; the run log gives each connection's window)")
    if summary.get("greetings"):
        lines.append(f"  greetings: {summary['greetings']} iteration(s) heard a reply they had not asked for")
    lines += stage_lines(summary)
    lines += turn_lines(summary)
    lines += service_latency_lines(summary)
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
    lines.extend(_run_events(run, budget, summary["iterations"]))
    lines += sweep_lines(metrics)
    return "\n".join(lines)


WATERFALL_END = "input_to_audio_ms"
"""The phase a stage waterfall ends with: the answer's first audio, from the same last input as every stage."""


def stage_waterfall(summary: dict[str, Any]) -> list[tuple[str, str, float, int]]:
    """The median service stage waterfall of a run (``summary`` of metrics.json): ``(phase, label, median, count)``
    for each stage phase the service reached (:data:`~bootbench.samples.STAGE_PHASES`, in the order of the stages),
    then the first audio; empty when no stage was reached (a protocol without such events, or an older file).
    Every median is from the last input sent, so a stage reached before it is negative."""
    rows = []
    for phase in STAGE_PHASES:
        stats = summary["phases"].get(phase)
        if stats and stats["count"] and stats["median"] is not None:
            rows.append((phase, PHASE_BY_NAME[phase].label, stats["median"], stats["count"]))
    end = summary["phases"].get(WATERFALL_END)
    if rows and end and end["count"] and end["median"] is not None:
        rows.append((WATERFALL_END, "first audio", end["median"], end["count"]))
    return rows


def stage_lines(summary: dict[str, Any]) -> list[str]:
    """The console line of the median stage waterfall (:func:`stage_waterfall`), when a stage was reached:
    ``stages (median from the last input): turn end 512.0 ms -> transcript 540.0 -> ... -> first audio 620.0``."""
    rows = stage_waterfall(summary)
    if not rows:
        return []
    steps = [f"{label} {format_ms(median)}{' ms' if index == 0 else ''}"
             for index, (_, label, median, _) in enumerate(rows)]
    return ["  stages (median from the last input): " + " -> ".join(steps)]


def turn_lines(summary: dict[str, Any]) -> list[str]:
    """The console lines of a run with ``--turns`` > 1: the cold penalty with its CI, cold vs warm; else none."""
    penalty = summary["phases"].get("cold_penalty_ms")
    warm = summary["phases"].get("warm_input_to_audio_ms")
    if not penalty or not warm or not penalty["count"]:
        return []
    ci = penalty.get("ci95_median")
    cold = summary["phases"]["input_to_audio_ms"]
    lines = [f"  cold penalty: median {format_ms(penalty['median'])} ms"
             f"{f' (95% CI {format_ms(ci[0])} to {format_ms(ci[1])})' if ci else ''}, "
             f"mean {format_ms(penalty['mean'])} ms, over {penalty['count']} sessions",
             f"  input to audio: cold (turn 1) median {format_ms(cold['median'])} ms, "
             f"warm median {format_ms(warm['median'])} ms, p95 {format_ms(warm['p95'])} ms "
             f"({warm['count']} warm turns)"]
    audible = summary["phases"].get("warm_input_to_audible_ms")
    if audible and audible["count"]:  # older files have no warm audible phase; a run may have heard no warm reply
        cold_audible = summary["phases"]["input_to_audible_ms"]
        lines.append(f"  input to audible: cold (turn 1) median {format_ms(cold_audible['median'])} ms, "
                     f"warm median {format_ms(audible['median'])} ms, p95 {format_ms(audible['p95'])} ms "
                     f"({audible['count']} warm turns heard)")
    return lines


def service_latency_lines(summary: dict[str, Any]) -> list[str]:
    """"Service says X, measured Y": the service's own total latency beside bootbench's input to audio (medians over
    the turns it reported, metrics.json ``summary.service_latency``); none when it reported no total."""
    block = summary.get("service_latency") or {}
    total = (block.get("service") or {}).get("total_ms")
    if total is None:
        return []
    return [f"  service says {format_ms(total)} ms, measured {format_ms(block['measured']['input_to_audio_ms'])} "
            f"ms (median total latency it reported vs input to audio, {counted(block['turns'], 'turn')})"]


def _run_events(run: dict[str, Any], budget: dict[str, Any], finished: int) -> list[str]:
    """What the run went through: interruption, lost workers, iterations lost or run again, warnings."""
    lines = []
    unfinished = budget.get("unfinished_at_stop") or []
    lost_with_workers = sum(len(w.get("in_flight", [])) for w in run.get("workers_lost") or [])
    if run.get("rebuilt_from_samples"):
        lines.append("  incomplete: rebuilt from samples.jsonl (the run's process ended without writing its results)")
    if run.get("interrupted"):
        planned = budget.get("planned")
        if planned:
            lines.append(f"  interrupted ({run['interrupted']}) at {finished} of {planned}: "
                         f"{len(unfinished)} in flight not finished, {budget.get('never_started', 0)} never started")
        else:
            lines.append(f"  stopped ({run['interrupted']}) after {finished} iterations"
                         + (f", {len(unfinished)} in flight not finished" if unfinished else ""))
    for worker in run.get("workers_lost") or []:
        held = worker.get("in_flight") or []
        lines.append(f"  worker lost: {worker['worker']} at {worker['at']} ({worker.get('reason', 'missing')}), "
                     + (f"iteration(s) {', '.join(map(str, held))} lost in flight" if held else "no iteration in flight")
                     + (f"; back at {worker['back_at']}" if worker.get("back_at") else ""))
    other_lost = (budget.get("lost") or 0) - lost_with_workers - (len(unfinished) if run.get("interrupted") else 0)
    if other_lost > 0:
        lines.append(f"  incomplete: {other_lost} iteration(s) lost in flight")
    if budget.get("interrupted"):
        lines.append(f"  {len(budget['interrupted'])} cycle(s) cut short by Locust moving users and run again "
                     f"(iterations {', '.join(str(i['iteration']) for i in budget['interrupted'])})")
    if budget.get("recovered"):
        lines.append(f"  iteration(s) {', '.join(map(str, budget['recovered']))} arrived after their worker was "
                     "written off, and count as finished")
    lines.extend(f"  warning: {warning}" for warning in run.get("warnings") or [])
    return lines


def sweep_lines(metrics: dict[str, Any]) -> list[str]:
    """A sweep's levels (cold-start median and p95, success rate) and its capacity, for the console summary."""
    levels, capacity = metrics.get("levels"), metrics.get("capacity")
    if not levels or not capacity:
        return []
    phase = capacity.get("phase", "cold_start_ms")
    lines = [f"  sweep ({phase[:-3].replace('_', ' ')}, ms):"]
    for level in levels:
        stats = level["phases"][phase]
        bound = " harness-bound" if level.get("harness_bound") else ""
        lines.append(f"    {users_text(level['users']):>9}: median {format_ms(stats['median'])}, p95 {format_ms(stats['p95'])},"
                     f" success {format_rate(level['success_rate'])}, {level['iterations']} iterations{bound}")
    lines.append(f"  capacity: {users_text(capacity['users'])} ({capacity['reason']})")
    return lines


def counted(count: int, noun: str) -> str:
    """``1 level``, ``4 levels``: a count with its noun in the right number (nouns that take an s)."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def users_text(count: int | None) -> str:
    """``1 user``, ``4 users``; "–" when absent."""
    return MISSING if count is None else counted(count, "user")


def progress_line(snap: Snapshot, level: str = "") -> str:
    """The headless progress line: ``37/100 iterations, median 151.2 ms, p95 230.1 ms, 0 failed``.

    It goes through the ``bootbench`` logger, whose name Locust's log format
    puts before it (``.../INFO/bootbench: 37/100 iterations, ...``).
    The median and p95 are the headline phase's, named when it is not ``first_response_ms``.
    In a sweep ``level`` names the current level: ``level 2/4: 2 users (running), 37/200 ...``.
    """
    done = f"{snap.iterations}/{snap.planned}" if snap.planned else f"{snap.iterations}"
    parts = [f"{level + ', ' if level else ''}{done} iterations"]
    if snap.median is not None:
        label = "" if snap.headline == HEADLINE else f"{PHASE_BY_NAME[snap.headline].label} "
        parts.append(f"{label}median {format_ms(snap.median)} ms")
        parts.append(f"p95 {format_ms(snap.p95)} ms")
    if snap.cold_penalty_median is not None:
        parts.append(f"cold penalty {format_ms(snap.cold_penalty_median)} ms")
    parts.append(f"{snap.failures} failed")
    if snap.errors_by_kind:
        parts[-1] += " (" + ", ".join(f"{kind} x{count}" for kind, count in snap.errors_by_kind.items()) + ")"
    return ", ".join(parts)


def aligned(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Container[int]) -> list[str]:
    """Rows as aligned plain-text lines, a rule under the header; the ``numeric`` columns right-aligned."""
    everything = [list(header)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]
    lines = []
    for index, row in enumerate(everything):
        cells = [cell.rjust(width) if i in numeric else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines
