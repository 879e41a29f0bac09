"""report.html: the page people look at after a run, rendered from metrics.json.

One self-contained file (inline CSS and SVG, no scripts, no network) that
opens from disk: the headline numbers of ``first_response_ms``, the
``--check`` results (when the run had checks), the service stage waterfall (when a stage was seen), its histogram
and CDF, the first response of every iteration in order, the phases of every iteration, the recorded replies of the
slowest and the median call (``--record-replies``: players of the WAV files beside the page, each with its waveform),
the errors, and the run's configuration.
Every value from metrics.json is HTML-escaped. Headline numbers carry stable
ids and ``data-value`` attributes so tools can read them back.

    write_report(Path("results/20250101-120000-aivoco"))      # re-render from metrics.json
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from bootbench.checks import NO_DATA, format_value
from bootbench.replies import REPLIES_DIR, read_index
from bootbench.samples import HEADLINE, PHASE_BY_NAME, PHASES, TURN_PHASE_BY_NAME, TURN_PHASES
from bootbench.stats import finite, p99_note
from bootbench.views import plots
from bootbench.views.html import esc, page
from bootbench.views.load import load_metrics
from bootbench.views.text import (MISSING, counted, format_count, format_ms, format_rate, stage_waterfall,
                                  users_text)

REPORT_FILE = "report.html"

log = logging.getLogger("bootbench.report")


def write_report(folder: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Render ``metrics`` (default: the folder's metrics.json) to ``folder/report.html``; returns its path."""
    folder = Path(folder)
    if metrics is None:
        metrics = load_metrics(folder)
    started = time.perf_counter()
    text = render(metrics, replies=_replies(folder))
    path = folder / REPORT_FILE
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    log.info("report written to %s in %.2f s", path, time.perf_counter() - started)
    return path


def write_report_safely(folder: str | Path, metrics: dict[str, Any]) -> Path | None:
    """:func:`write_report` for the end of a run: a failure is logged with its traceback, never raised."""
    try:
        return write_report(folder, metrics)
    except Exception:
        log.exception("report.html could not be written; the other result files are complete "
                      "(retry with: bootbench report %s)", folder)
        return None


# ---------------------------------------------------------------- the page


def render(metrics: dict[str, Any], replies: str = "") -> str:
    """The complete report.html of one run (``replies``: its recorded replies' section, :func:`_replies`)."""
    run, summary = metrics["run"], metrics["summary"]
    title = f"bootbench report: {run.get('provider', '?')} at {run.get('target', '?')}"
    body = [
        _header(run),
        _warnings(metrics),
        _headline(summary),
        _checks(metrics),
        _stages(summary),
        _sweep(metrics),
        _plots(metrics),
        replies,
        _turns(metrics),
        _service_latency(summary),
        _phase_table(summary),
        _errors(metrics),
        _configuration(run),
        f'<footer>bootbench {esc(run.get("versions", {}).get("bootbench", ""))} · {esc(metrics.get("schema", ""))} · '
        f'{esc(len(metrics["samples"]))} samples in metrics.json · all times are milliseconds</footer>',
    ]
    return page(title, "\n".join(part for part in body if part))


def _header(run: dict[str, Any]) -> str:
    target = esc(run.get("target", "?"))
    where = " (embedded reference server)" if run.get("embedded_server") else ""
    facts = [("run", run.get("id")), ("started", run.get("started_at")), ("ended", run.get("ended_at")),
             ("mode", run.get("mode")), ("users", run.get("users")), ("receive clock", _clock(run.get("clock")))]
    meta = " · ".join(f'{esc(k)} <b>{esc(v)}</b>' for k, v in facts if v not in (None, ""))
    return (f'<header><h1>bootbench <span class="thin">cold-start report</span></h1>'
            f'<p class="subtitle" id="run-target"><b>{esc(run.get("provider", "?"))}</b> at '
            f'<code>{target}</code>{esc(where)}</p><p class="meta">{meta}</p></header>')


def _clock(clock: str | None) -> str | None:
    """How run.clock reads in the header (None: a run recorded before --clock, on the process's stamps)."""
    return {"kernel": "kernel (arrival stamps)", "process": "process (handler stamps)"}.get(clock or "", clock)


def _warnings(metrics: dict[str, Any]) -> str:
    summary, budget = metrics["summary"], metrics["run"].get("iterations") or {}
    notes = []
    if metrics["run"].get("aborted"):
        notes.append(f"The run stopped early: {metrics['run']['aborted']}")
    if not summary["successes"]:
        notes.append("No iteration succeeded, so there are no timings to show; see the errors below.")
    if budget.get("lost"):
        notes.append(f"{budget['lost']} iteration(s) were lost in flight (a worker died or the run was stopped).")
    planned, finished = budget.get("planned"), budget.get("finished", summary["iterations"])
    if planned and finished < planned and not budget.get("lost"):
        notes.append(f"The run ended after {finished} of {planned} planned iterations.")
    notes += [f"Warning: {warning}" for warning in metrics["run"].get("warnings") or []]
    if summary.get("late_stamp_reads"):
        notes.append(f"Kernel clock: {summary['late_stamp_reads']} read(s) in {summary['late_stamp_iterations']} "
                     f"iteration(s) took bytes that had waited for the reader thread (the thread holding Python's "
                     f"GIL kept off the CPU); a timing of those iterations may be late. Each sample's "
                     f"late_stamp_reads says which; the run log gives each connection's window.")
    if not notes:
        return ""
    return '<div class="warning" id="warnings">' + "".join(f"<p>{esc(n)}</p>" for n in notes) + "</div>"


def _stat(key: str, label: str, value: Any, shown: str, unit: str = "", note: str = "") -> str:
    data = esc(json.dumps(value))
    note_html = f'<span class="note">{esc(note)}</span>' if note else ""
    unit_html = f'<span class="unit">{esc(unit)}</span>' if unit and shown != MISSING else ""
    return (f'<div class="stat" id="stat-{esc(key)}" data-value="{data}"><span class="label">{esc(label)}</span>'
            f'<span class="value">{esc(shown)}</span>{unit_html}{note_html}</div>')


def _headline(summary: dict[str, Any]) -> str:
    head = summary["phases"][HEADLINE]
    ci = head.get("ci95_median")
    ci_note = f"95 % CI {format_ms(ci[0])}–{format_ms(ci[1])}" if ci else ""
    ci_mean = head.get("ci95_mean")
    mean_note = f"95 % CI {format_ms(ci_mean[0])}–{format_ms(ci_mean[1])}" if ci_mean else ""
    rate_note = f"{summary['successes']} ok, {summary['failures']} failed"
    cards = [
        _stat("median", "median", head["median"], format_ms(head["median"]), "ms", ci_note),
        _stat("p95", "p95", head["p95"], format_ms(head["p95"]), "ms"),
        _stat("p99", "p99", head["p99"], format_ms(head["p99"]), "ms"),
        _stat("mean", "mean", head["mean"], format_ms(head["mean"]), "ms", mean_note),
        _stat("success-rate", "success rate", summary["success_rate"], format_rate(summary["success_rate"]),
              note=rate_note),
        _stat("iterations", "iterations", summary["iterations"], format_count(summary["iterations"]),
              note=f"min {format_ms(head['min'])} · max {format_ms(head['max'])} ms" if head["count"] else ""),
    ]
    note = p99_note(head["count"])
    p99_line = (f'<p class="note" id="p99-note">p99: {esc(note)} ({esc(head["count"])} successful iterations here).'
                f"</p>" if note else "")
    return (f'<section id="headline"><h2>First response <span class="thin">session ready → first audio back'
            f'</span></h2><div class="stats">{"".join(cards)}</div>{p99_line}</section>')


def _checks(metrics: dict[str, Any]) -> str:
    """The run's checks (metrics.json ``checks``): expression, measured value, threshold, pass or fail."""
    results = metrics.get("checks") or []
    if not results:
        return ""
    rows = []
    for number, result in enumerate(results, 1):
        verdict = "pass" if result["ok"] else ("FAIL (no data)" if result["reason"] == NO_DATA else "FAIL")
        state = "pass" if result["ok"] else "fail"
        rows.append(f'<tr id="check-{number}" class="check-{state}" data-ok="{esc(json.dumps(result["ok"]))}">'
                    f'<td><code>{esc(result["expr"])}</code></td>'
                    f'<td data-value="{esc(json.dumps(result["value"]))}">'
                    f'{esc(format_value(result["stat"], result["value"]))}</td>'
                    f'<td>{esc(result["op"])} {esc(format_value(result["stat"], result["threshold"]))}</td>'
                    f"<td><b>{esc(verdict)}</b></td></tr>")
    failed = sum(not result["ok"] for result in results)
    return (f'<section id="checks"><h2>Checks <span class="thin">{len(results) - failed} passed, {failed} failed'
            f'</span></h2><table id="checks-table" class="numbers"><thead><tr><th>check</th><th>measured</th>'
            f'<th>threshold</th><th>result</th></tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _sweep(metrics: dict[str, Any]) -> str:
    """A sweep's capacity, its curve against users, and the per-level table ("" for a plain run)."""
    levels, capacity = metrics.get("levels"), metrics.get("capacity") or {}
    if not levels:
        return ""
    phase = capacity.get("phase", "cold_start_ms")
    bound = ' <span class="note">(harness-bound)</span>' if capacity.get("harness_bound") else ""
    verdict = (f'<p id="capacity" data-value="{esc(json.dumps(capacity.get("users")))}">Capacity: '
               f'<b>{esc(users_text(capacity.get("users")))}</b>{bound}. {esc(capacity.get("reason", ""))}.</p>')
    header = ["users", "iterations", "success", f"{phase} median", f"{phase} p95", "p95 / lowest",
              "first response median", "first response p95", "session start p95", "duration (s)",
              "busiest process (cores)"]
    baseline = capacity.get("baseline_p95_ms")
    rows = []
    for level in levels:
        cold, head = level["phases"][phase], level["phases"][HEADLINE]
        ratio = f"{cold['p95'] / baseline:.2f}" if cold["p95"] is not None and baseline else MISSING
        cores = level.get("busiest_process_cores")
        cells = [format_count(level["users"]), format_count(level["iterations"]), format_rate(level["success_rate"]),
                 format_ms(cold["median"]), format_ms(cold["p95"]), ratio, format_ms(head["median"]),
                 format_ms(head["p95"]), format_ms(level["phases"]["session_start_ms"]["p95"]),
                 MISSING if level.get("duration_s") is None else f"{level['duration_s']:.1f}",
                 MISSING if cores is None else f"{cores:.2f}" + (" harness-bound" if level.get("harness_bound") else "")]
        mark = ' class="headline"' if level["users"] == capacity.get("users") else ""
        rows.append(f'<tr data-users="{esc(level["users"])}"{mark}>' + "".join(f"<td>{esc(c)}</td>" for c in cells)
                    + "</tr>")
    table = (f'<div class="scroll"><table class="numbers" id="levels"><thead><tr>'
             f'{"".join(f"<th>{esc(h)}</th>" for h in header)}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')
    figure = (f'<figure class="plot wide" id="plot-sweep"><h3>Latency and success against users</h3>'
              f'{plots.sweep_svg(levels, capacity)}<figcaption>{esc(_sweep_caption(phase))}</figcaption></figure>')
    return (f'<section id="sweep"><h2>Concurrency sweep <span class="thin">calls starting at once</span></h2>'
            f'{verdict}<div class="plots">{figure}</div>{table}</section>')


def _sweep_caption(phase: str) -> str:
    return (f"Each level starts its calls in rounds, all users at once. The capacity is judged on {phase} "
            f"(cycle start → first audio), which includes any wait for a free session; first response starts "
            f"at session ready and cannot show it.")


def _plots(metrics: dict[str, Any]) -> str:
    summary, samples = metrics["summary"], metrics["samples"]
    head = summary["phases"][HEADLINE]
    values = finite(s.get(HEADLINE) for s in samples if s.get("ok"))
    if not values or not samples:
        return ('<section id="plots"><h2>Distribution</h2><p class="empty">No successful iterations: '
                'nothing to plot.</p></section>')
    figures = [
        ("histogram", "Histogram", "How often each first-response time occurred.",
         plots.histogram_svg(values, median=head["median"], p95=head["p95"], p99=head["p99"])),
        ("cdf", "Cumulative distribution", "Share of iterations that got their first audio within a time.",
         plots.cdf_svg([("first response", values)])),
        ("trend", "First response per iteration",
         "In the order iterations started: warm-up and drift show here; ✕ marks a failed iteration.",
         plots.trend_svg(samples)),
        ("audible", "First response and first audible",
         "Per iteration: when the answer's first audio arrived (x) and when its first audible sample played (y); "
         "the height above the diagonal is its leading silence.",
         plots.audible_svg(samples)),
        ("phases", "Phases per iteration",
         "Connect (only where this iteration opened the connection), session start, first response and stop.",
         plots.phases_svg(samples)),
    ]
    cells = []
    for key, heading, caption, svg in figures:
        wide = " wide" if key in ("trend", "phases") else ""
        cells.append(f'<figure class="plot{wide}" id="plot-{key}"><h3>{esc(heading)}</h3>{svg}'
                     f'<figcaption>{esc(caption)}</figcaption></figure>')
    return f'<section id="plots"><h2>Distribution and timeline</h2><div class="plots">{"".join(cells)}</div></section>'


def _stages(summary: dict[str, Any]) -> str:
    """The median service stage waterfall (:func:`~bootbench.views.text.stage_waterfall`, the console's line) as a
    table with a horizontal bar per stage, from the last input sent (0) to its median; none when no stage was seen."""
    rows = stage_waterfall(summary)
    if not rows:
        return ""
    low = min(0.0, *(median for _, _, median, _ in rows))
    span = (max(0.0, *(median for _, _, median, _ in rows)) - low) or 1.0
    body = []
    for phase, label, median, count in rows:
        start, end = sorted((0.0 - low, median - low))  # a stage reached before the last input: a bar left of 0
        bar = f'<span style="margin-left:{100 * start / span:.2f}%;width:{100 * (end - start) / span:.2f}%"></span>'
        body.append(f'<tr id="stage-{esc(phase)}" data-value="{esc(json.dumps(median))}"><td>{esc(label)}</td>'
                    f'<td><code>{esc(phase)}</code></td><td>{esc(format_ms(median))}</td>'
                    f'<td>{esc(format_count(count))}</td><td class="bar">{bar}</td></tr>')
    return (f'<section id="stages"><h2>Where the time went <span class="thin">the service\'s own stages, median ms '
            f'from the last input sent</span></h2><div class="scroll"><table class="numbers" id="stage-waterfall">'
            f'<thead><tr><th>stage</th><th>phase</th><th>median</th><th>count</th><th></th></tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div><p class="note">Each stage is the arrival of the first of '
            f'the service\'s events of that kind in the answer (docs/architecture.md); a stage reached before the '
            f'last input went out is negative. Stages the service has no event for are not shown.</p></section>')

PLAYED_ROLES = (("slowest", "The slowest call"), ("median", "The median call"))
"""The recorded replies report.html plays (``--record-replies``), by their role in replies/index.json."""


def _replies(folder: Path) -> str:
    """Players for the slowest and the median call's recorded reply, each with its waveform and first-audible mark."""
    index = read_index(folder)
    if index is None:
        return ""
    import soundfile

    from bootbench.views.verify import onset

    figures = []
    for role, title in PLAYED_ROLES:
        entry = next((e for e in index["replies"] if e.get("role") == role), None)
        if entry is None:
            continue
        wav = f"{REPLIES_DIR}/{entry['wav']}"
        try:
            pcm, rate = soundfile.read(folder / wav, dtype="float64", always_2d=False)
        except (OSError, RuntimeError) as exc:
            figures.append(f'<p class="empty">{esc(title)}: {esc(wav)} cannot be read ({esc(exc)}).</p>')
            continue
        found = onset(pcm, rate, float(index.get("audible_dbfs", -50.0))) if len(pcm) else None
        heard = (f"first audible {format_ms(entry['first_audible_ms'])} ms after session ready, "
                 f"{format_ms(entry['leading_silence_ms'])} ms after its first audio"
                 if entry.get("first_audible_ms") is not None else "never audible")
        svg = plots.waveform_svg(pcm, rate, onset_sample=found, name=f"reply-{role}",
                                 label=f"Waveform of iteration {entry['iteration']}'s reply ({role})")
        figures.append(
            f'<figure class="plot wide" id="reply-{role}"><h3>{esc(title)}: iteration {esc(entry["iteration"])} '
            f'<span class="thin">clip {esc(entry.get("clip", "?"))} · {esc(heard)}</span></h3>'
            f'<audio controls preload="metadata" src="{esc(wav)}" data-iteration="{esc(entry["iteration"])}"></audio>'
            f'{svg}<figcaption>What the caller heard, as it arrived until the session was stopped; the line marks '
            f'the first audible sample (10 ms level above {esc(index.get("audible_dbfs"))} dBFS).</figcaption></figure>')
    if not figures:
        return ""
    return (f'<section id="replies"><h2>Hear what the slowest caller heard <span class="thin">'
            f'{esc(len(index["replies"]))} recorded replies in {esc(REPLIES_DIR)}/ (bootbench verify checks them)'
            f'</span></h2><div class="plots">{"".join(figures)}</div></section>')


def _turns(metrics: dict[str, Any]) -> str:
    """``--turns`` > 1: the cold penalty, cold vs warm input to audio side by side, the penalty per iteration."""
    summary, samples = metrics["summary"], metrics["samples"]
    penalty = summary["phases"].get("cold_penalty_ms")
    warm = summary["phases"].get("warm_input_to_audio_ms")
    if penalty is None or warm is None:
        return ""
    cold = summary["phases"]["input_to_audio_ms"]
    ci, ci_mean = penalty.get("ci95_median"), penalty.get("ci95_mean")
    cards = [
        _stat("cold-penalty", "cold penalty median", penalty["median"], format_ms(penalty["median"]), "ms",
              f"95 % CI {format_ms(ci[0])}–{format_ms(ci[1])}" if ci else ""),
        _stat("cold-penalty-mean", "cold penalty mean", penalty["mean"], format_ms(penalty["mean"]), "ms",
              f"95 % CI {format_ms(ci_mean[0])}–{format_ms(ci_mean[1])}" if ci_mean else ""),
        _stat("cold-input-to-audio", "cold input to audio", cold["median"], format_ms(cold["median"]), "ms",
              "median of turn 1"),
        _stat("warm-input-to-audio", "warm input to audio", warm["median"], format_ms(warm["median"]), "ms",
              f"median of {format_count(warm['count'])} warm turns"),
    ]
    audible = summary["phases"].get("warm_input_to_audible_ms")
    if audible is not None:  # absent from files written before it existed
        cards.append(_stat("warm-input-to-audible", "warm input to audible", audible["median"],
                           format_ms(audible["median"]), "ms", f"median of {format_count(audible['count'])} "
                           f"warm turns heard"))
    ok = [s for s in samples if s.get("ok") and s.get("turns")]
    cold_values = finite(s["turns"][0].get("input_to_audio_ms") for s in ok)
    warm_values = finite(t.get("input_to_audio_ms") for s in ok for t in s["turns"][1:])
    if cold_values and warm_values:
        figures = (f'<div class="plots"><figure class="plot wide" id="plot-cold-warm"><h3>Input to audio: cold vs '
                   f'warm</h3>{plots.cold_warm_svg(cold_values, warm_values)}<figcaption>Turn 1 of each session '
                   f'(left) and every warm turn (right), on one time axis.</figcaption></figure>'
                   f'<figure class="plot wide" id="plot-cold-penalty"><h3>Cold penalty per iteration</h3>'
                   f'{plots.penalty_svg(samples)}<figcaption>Turn 1\'s input to audio minus the median of the '
                   f'same session\'s warm turns; above zero, the first turn was slower.</figcaption></figure></div>')
    else:
        figures = '<p class="empty">No successful session with warm turns: nothing to plot.</p>'
    return (f'<section id="turns"><h2>Cold vs warm turns <span class="thin">{esc(metrics["run"].get("turns", "?"))} '
            f'turns per session</span></h2><div class="stats">{"".join(cards)}</div>{figures}</section>')


def _service_latency(summary: dict[str, Any]) -> str:
    """"Service says X, measured Y" (metrics.json ``summary.service_latency``): the median of each figure the service
    reported (Deepgram's ``LatencyReport``) beside bootbench's input to audio over the same turns; "" without one."""
    block = summary.get("service_latency")
    if not block:
        return ""
    measured = block["measured"]["input_to_audio_ms"]
    cards = [_stat(f"service-{name}", f"service says: {name[:-3].replace('_', ' ')}", value, format_ms(value), "ms",
                   "median the service reported") for name, value in block["service"].items()]
    cards.insert(1 if "total_ms" in block["service"] else 0, _stat(  # its total first, ours beside it
        "service-measured", "measured: input to audio", measured, format_ms(measured), "ms",
        "median bootbench measured, same turns"))
    return (f'<section id="service-latency"><h2>Service says, measured <span class="thin">its own latency report '
            f'beside ours, over {esc(counted(block["turns"], "turn"))}</span></h2>'
            f'<div class="stats">{"".join(cards)}</div></section>')


def _phase_table(summary: dict[str, Any]) -> str:
    columns = ("count", "mean", "median", "p90", "p95", "p99", "min", "max", "stdev")
    head = "".join(f"<th>{esc(c)}</th>" for c in ("phase", *columns, "median 95 % CI"))
    rows = []
    for phase in (*PHASES, *(p for p in TURN_PHASES if p in summary["phases"])):
        stats = summary["phases"][phase]
        cells = [f'<th scope="row"><code>{esc(phase)}</code> <span class="thin">{esc((PHASE_BY_NAME.get(phase) or TURN_PHASE_BY_NAME[phase]).label)}'
                 f"</span></th>", f"<td>{esc(format_count(stats['count']))}</td>"]
        cells += [f'<td data-stat="{esc(c)}">{esc(format_ms(stats[c]))}</td>' for c in columns[1:]]
        ci = stats.get("ci95_median")
        cells.append(f"<td>{esc(format_ms(ci[0]) + '–' + format_ms(ci[1])) if ci else MISSING}</td>")
        highlight = ' class="headline"' if phase == HEADLINE else ""
        rows.append(f'<tr id="phase-{esc(phase)}"{highlight}>{"".join(cells)}</tr>')
    return (f'<section id="phases"><h2>All phases <span class="thin">exact statistics over successful iterations, '
            f'ms</span></h2><div class="scroll"><table class="numbers"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div></section>')


def _errors(metrics: dict[str, Any]) -> str:
    errors, summary = metrics["errors"], metrics["summary"]
    parts = ['<section id="errors"><h2>Errors</h2>']
    by_kind = errors.get("by_kind") or {}
    if not by_kind:
        parts.append('<p class="empty" id="no-errors">No failed iterations.</p>')
    else:
        total = summary["iterations"] or 1
        rows = "".join(f'<tr data-kind="{esc(kind)}"><td><code>{esc(kind)}</code></td><td>{esc(count)}</td>'
                       f"<td>{esc(format_rate(count / total))}</td></tr>"
                       for kind, count in sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0])))
        parts.append(f'<table id="errors-by-kind" class="numbers"><thead><tr><th>kind</th><th>iterations</th>'
                     f"<th>share</th></tr></thead><tbody>{rows}</tbody></table>")
        first = errors.get("first") or []
        if first:
            rows = "".join(f"<tr><td>{esc(e.get('iteration'))}</td><td>{esc(e.get('worker'))}</td>"
                           f"<td><code>{esc(e.get('kind'))}</code></td><td>{esc(e.get('message') or '')}</td></tr>"
                           for e in first)
            parts.append(f'<h3>First {len(first)} failure(s)</h3><div class="scroll"><table id="errors-first">'
                         f"<thead><tr><th>iteration</th><th>worker</th><th>kind</th><th>message</th></tr></thead>"
                         f"<tbody>{rows}</tbody></table></div>")
    anomalies = errors.get("anomalies") or {}
    if anomalies:
        listed = ", ".join(f"{k} × {v}" for k, v in sorted(anomalies.items()))
        parts.append(f'<p class="note" id="anomalies">Protocol anomalies (late or stray events, never counted as a '
                     f"first response): {esc(listed)}</p>")
    parts.append("</section>")
    return "".join(parts)


def _configuration(run: dict[str, Any]) -> str:
    return (f'<section id="configuration"><h2>Configuration <span class="thin">metrics.json → run</span></h2>'
            f'<div class="scroll">{_mapping_table(run, "config")}</div></section>')


def _mapping_table(mapping: dict[str, Any], table_id: str | None = None) -> str:
    rows = []
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            shown = _mapping_table(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, dict) for v in value):
            # clips, workers_lost: one small table per entry, numbered when there are several
            shown = "".join(_mapping_table({"#": number, **entry} if len(value) > 1 else entry)
                            for number, entry in enumerate(value, 1))
        else:
            shown = esc(_plain(value))
        rows.append(f'<tr data-key="{esc(key)}"><th scope="row">{esc(key)}</th><td>{shown}</td></tr>')
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f'<table class="config"{ident}><tbody>{"".join(rows)}</tbody></table>'


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) if value else "none"
    if value is None:
        return MISSING
    if isinstance(value, dict):
        return ", ".join(f"{k} {_plain(v)}" for k, v in value.items()) if value else "none"
    return json.dumps(value)
