"""report.html: the page people look at after a run, rendered from metrics.json.

One self-contained file (inline CSS and SVG, no scripts, no network) that
opens from disk: the headline numbers of ``first_response_ms``, its
histogram and CDF, the first response of every iteration in order, the
phases of every iteration, the errors, and the run's configuration.
Every value from metrics.json is HTML-escaped. Headline numbers carry stable
ids and ``data-value`` attributes so tools can read them back.

    write_report(Path("results/20250101-120000-aivoco"))      # re-render from metrics.json
"""

from __future__ import annotations

import html
import json
import logging
import time
from pathlib import Path
from typing import Any, Iterable

from bootbench.views import plots
from bootbench.views.formatting import MISSING, format_count, format_ms, format_rate
from bootbench.samples import HEADLINE, PHASES, SMALL_SAMPLE

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
SCHEMA_PREFIX = "bootbench/metrics/"

log = logging.getLogger("bootbench.report")


class ResultFolderError(ValueError):
    """A path that is not a readable bootbench result folder; ``str()`` is the one sentence to show."""


def load_metrics(folder: str | Path) -> dict[str, Any]:
    """The metrics.json of a result folder; raises :class:`ResultFolderError` for anything else."""
    folder = Path(folder)
    if not folder.exists():
        raise ResultFolderError(f"{folder} does not exist")
    if not folder.is_dir():
        raise ResultFolderError(f"{folder} is not a folder (expected a bootbench result folder)")
    path = folder / METRICS_FILE
    if not path.is_file():
        raise ResultFolderError(f"{folder} is not a bootbench result folder (it has no {METRICS_FILE})")
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFolderError(f"{path} cannot be read as JSON ({exc})") from None
    if not isinstance(metrics, dict) or not str(metrics.get("schema", "")).startswith(SCHEMA_PREFIX):
        raise ResultFolderError(f"{path} is not a bootbench metrics file (no {SCHEMA_PREFIX}* schema)")
    for key in ("run", "summary", "errors", "samples"):
        if key not in metrics:
            raise ResultFolderError(f"{path} is incomplete (it has no {key!r} section)")
    return metrics


def write_report(folder: str | Path, metrics: dict[str, Any] | None = None) -> Path:
    """Render ``metrics`` (default: the folder's metrics.json) to ``folder/report.html``; returns its path."""
    folder = Path(folder)
    if metrics is None:
        metrics = load_metrics(folder)
    started = time.perf_counter()
    text = render(metrics)
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


def render(metrics: dict[str, Any]) -> str:
    """The complete report.html of one run."""
    run, summary = metrics["run"], metrics["summary"]
    title = f"bootbench report: {run.get('provider', '?')} at {run.get('target', '?')}"
    body = [
        _header(run),
        _warnings(metrics),
        _headline(summary),
        _plots(metrics),
        _phase_table(summary),
        _errors(metrics),
        _configuration(run),
        f'<footer>bootbench {esc(run.get("versions", {}).get("bootbench", ""))} · {esc(metrics.get("schema", ""))} · '
        f'{esc(len(metrics["samples"]))} samples in metrics.json · all times are milliseconds</footer>',
    ]
    return page(title, "\n".join(part for part in body if part))


def esc(value: Any) -> str:
    """``value`` as HTML-escaped text."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document with bootbench's stylesheet."""
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
            f"{body}\n</main>\n</body>\n</html>\n")


def _header(run: dict[str, Any]) -> str:
    target = esc(run.get("target", "?"))
    where = " (embedded reference server)" if run.get("embedded_server") else ""
    facts = [("run", run.get("id")), ("started", run.get("started_at")), ("ended", run.get("ended_at")),
             ("mode", run.get("mode")), ("users", run.get("users"))]
    meta = " · ".join(f'{esc(k)} <b>{esc(v)}</b>' for k, v in facts if v not in (None, ""))
    return (f'<header><h1>bootbench <span class="thin">cold-start report</span></h1>'
            f'<p class="subtitle" id="run-target"><b>{esc(run.get("provider", "?"))}</b> at '
            f'<code>{target}</code>{esc(where)}</p><p class="meta">{meta}</p></header>')


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
    p99_note = f"p99 = max (fewer than {SMALL_SAMPLE} samples)" if summary.get("p99_is_max") and head["count"] else ""
    ci_mean = head.get("ci95_mean")
    mean_note = f"95 % CI {format_ms(ci_mean[0])}–{format_ms(ci_mean[1])}" if ci_mean else ""
    rate_note = f"{summary['successes']} ok, {summary['failures']} failed"
    cards = [
        _stat("median", "median", head["median"], format_ms(head["median"]), "ms", ci_note),
        _stat("p95", "p95", head["p95"], format_ms(head["p95"]), "ms"),
        _stat("p99", "p99", head["p99"], format_ms(head["p99"]), "ms", p99_note),
        _stat("mean", "mean", head["mean"], format_ms(head["mean"]), "ms", mean_note),
        _stat("success-rate", "success rate", summary["success_rate"], format_rate(summary["success_rate"]),
              note=rate_note),
        _stat("iterations", "iterations", summary["iterations"], format_count(summary["iterations"]),
              note=f"min {format_ms(head['min'])} · max {format_ms(head['max'])} ms" if head["count"] else ""),
    ]
    p99_line = (f'<p class="note" id="p99-note">p99 = max: with fewer than {SMALL_SAMPLE} successful samples '
                f'({esc(head["count"])} here) the 99th percentile is interpolated between the two slowest iterations, '
                f'so read it as the maximum.</p>'
                if summary.get("p99_is_max") and head["count"] else "")
    return (f'<section id="headline"><h2>First response <span class="thin">session ready → first audio back'
            f'</span></h2><div class="stats">{"".join(cards)}</div>{p99_line}</section>')


def _plots(metrics: dict[str, Any]) -> str:
    summary, samples = metrics["summary"], metrics["samples"]
    head = summary["phases"][HEADLINE]
    values = plots.finite(s.get(HEADLINE) for s in samples if s.get("ok"))
    if not values or not samples:
        return ('<section id="plots"><h2>Distribution</h2><p class="empty">No successful iterations: '
                'nothing to plot.</p></section>')
    figures = [
        ("histogram", "Histogram", "How often each first-response time occurred.",
         plots.histogram_svg(values, median=head["median"], p95=head["p95"], p99=head["p99"],
                             p99_is_max=summary.get("p99_is_max", False))),
        ("cdf", "Cumulative distribution", "Share of iterations that got their first audio within a time.",
         plots.cdf_svg([("first response", values)])),
        ("trend", "First response per iteration",
         "In the order iterations started: warm-up and drift show here; ✕ marks a failed iteration.",
         plots.trend_svg(samples)),
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


PHASE_NAMES = {
    "connect_ms": "connect",
    "session_start_ms": "session start",
    "first_response_ms": "first response",
    "input_to_audio_ms": "input to audio",
    "cold_start_ms": "cold start",
    "stop_ms": "stop",
}


def _phase_table(summary: dict[str, Any]) -> str:
    columns = ("count", "mean", "median", "p90", "p95", "p99", "min", "max", "stdev")
    head = "".join(f"<th>{esc(c)}</th>" for c in ("phase", *columns, "median 95 % CI"))
    rows = []
    for phase in PHASES:
        stats = summary["phases"][phase]
        cells = [f'<th scope="row"><code>{esc(phase)}</code> <span class="thin">{esc(PHASE_NAMES.get(phase, ""))}'
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
        return "none"
    return json.dumps(value)


def table(header: Iterable[str], rows: Iterable[Iterable[str]], table_id: str = "", numeric_from: int = 0) -> str:
    """An HTML table of already-formatted text cells (escaped here); columns from ``numeric_from`` align right."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(f'<td{" class=num" if i >= numeric_from and numeric_from else ""}>{esc(c)}</td>'
                        for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f'<table{ident}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


STYLE = """
:root { --ink: #24292f; --muted: #6a737d; --line: #e1e4e8; --accent: #dd8452; --bg: #f6f8fa; --bad: #c44e52; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 -apple-system, "Segoe UI", "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 30px 0 12px; border-bottom: 1px solid var(--line); padding-bottom: 6px; }
h3 { font-size: 14px; margin: 0 0 6px; }
section > h3 { margin-top: 18px; }
.thin { font-weight: normal; color: var(--muted); font-size: 0.85em; }
.subtitle { margin: 0; font-size: 15px; }
.meta { margin: 4px 0 0; color: var(--muted); font-size: 12.5px; }
.meta b { color: var(--ink); font-weight: 600; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.92em; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; }
.stat { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.stat .label { display: block; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.stat .value { font-size: 28px; font-weight: 600; font-variant-numeric: tabular-nums; }
.stat .unit { margin-left: 4px; color: var(--muted); }
.stat .note { display: block; color: var(--muted); font-size: 12px; margin-top: 2px; }
#stat-median { border-top: 3px solid var(--accent); }
p.note { color: var(--muted); font-size: 13px; }
.warning { background: #fff5f5; border: 1px solid #f3c2c2; border-left: 4px solid var(--bad); border-radius: 6px;
  padding: 4px 14px; margin-top: 16px; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 14px; }
figure.plot { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
figure.plot.wide { grid-column: 1 / -1; }
figure.plot svg { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 4px; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); font-size: 13px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: #f0f2f4; font-weight: 600; white-space: nowrap; }
table.numbers td, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.numbers td:first-child { text-align: left; }
#comparison td:first-child { white-space: nowrap; }
#comparison thead th { white-space: normal; vertical-align: bottom; }
tr.headline { background: #fdf3ec; }
table.config { min-width: 50%; }
table.config table.config { min-width: 0; border: none; background: transparent; font-size: 12.5px; }
table.config table.config th, table.config table.config td { padding: 2px 10px 2px 0; border: none; }
table.config th { font-weight: 600; white-space: nowrap; width: 1%; }
.scroll { overflow-x: auto; }
.empty { color: var(--muted); font-style: italic; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""
