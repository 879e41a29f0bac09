"""Several runs side by side: a results table (plain text or Markdown) and a page of overlaid CDFs.

Runs compare only when they measured the same thing (:data:`DEFINITION`:
connection policy, audio, pacing, trailing silence, timeout, the provider's
turn mode); :func:`definition_differences` names what differs, and the
command refuses such a comparison unless forced.

    runs = load_runs(["results/a", "results/b"])
    print(markdown_table(runs))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bootbench.samples import HEADLINE
from bootbench.stats import finite, p99_note
from bootbench.views import plots
from bootbench.views.html import esc, page, table
from bootbench.views.load import load_metrics
from bootbench.views.text import MISSING, format_count, format_ms, format_rate, users_text

DEFINITION = (
    ("connect_per_call", "connect per call"),
    ("audio", "audio"),
    ("pace", "pace"),
    ("trailing_silence_ms", "trailing silence (ms)"),
    ("timeout_s", "timeout (s)"),
    ("turn", "provider turn mode"),
)
"""The run settings (metrics.json ``run`` keys) that define what a number means."""

HEADER = ("Run", "Provider", "Target", "N", "Success", "Mean (ms)", "Median (ms)", "P95 (ms)", "P99 (ms)",
          "Session start median (ms)", "First audible median (ms)")
NUMERIC_FROM = 3


@dataclass
class Run:
    """One result folder and its metrics.json."""

    folder: Path
    metrics: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.metrics["run"].get("id") or self.folder.name)

    @property
    def provider(self) -> str:
        return str(self.metrics["run"].get("provider", "?"))

    @property
    def target(self) -> str:
        return str(self.metrics["run"].get("target", "?"))

    @property
    def first_response(self) -> list[float]:
        return finite(s.get(HEADLINE) for s in self.metrics["samples"] if s.get("ok"))

    def definition(self) -> dict[str, Any]:
        """The values of :data:`DEFINITION` for this run (None where not recorded)."""
        return {key: self.metrics["run"].get(key) for key, _ in DEFINITION}

    def row(self) -> list[str]:
        """The table cells of this run, formatted like every other bootbench output."""
        summary = self.metrics["summary"]
        head = summary["phases"][HEADLINE]
        session = summary["phases"].get("session_start_ms", {})
        audible = summary["phases"].get("first_audible_ms", {})
        return [self.name, self.provider, self.target, format_count(summary["iterations"]),
                format_rate(summary["success_rate"]), format_ms(head["mean"]), format_ms(head["median"]),
                format_ms(head["p95"]), format_ms(head["p99"]), format_ms(session.get("median")),
                format_ms(audible.get("median"))]


def load_runs(folders: Sequence[str | Path]) -> list[Run]:
    """Every folder's metrics.json; raises :class:`~bootbench.views.load.ResultFolderError` for the first bad one."""
    return [Run(Path(folder), load_metrics(folder)) for folder in folders]


def definition_differences(runs: Sequence[Run]) -> list[str]:
    """One phrase per setting on which the runs disagree, e.g. ``pace: burst in A vs realtime in B``."""
    differences = []
    for key, label in DEFINITION:
        groups: dict[str, list[str]] = {}
        for run in runs:
            groups.setdefault(_shown(run.definition()[key]), []).append(run.name)
        if len(groups) > 1:
            differences.append(f"{label}: " + " vs ".join(f"{value} in {', '.join(names)}"
                                                          for value, names in groups.items()))
    return differences


def _shown(value: Any) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _p99_note(runs: Sequence[Run]) -> str:
    """One sentence naming the runs whose p99 needs the :func:`~bootbench.stats.p99_note`, or ""."""
    notes: dict[str, list[str]] = {}
    for run in runs:
        note = p99_note(run.metrics["summary"]["phases"][HEADLINE]["count"])
        if note:
            notes.setdefault(note, []).append(run.name)
    return " ".join(f"{', '.join(names)}: {note}." for note, names in notes.items())


SWEEP_COLUMNS = ("cold start median (ms)", "cold start p95 (ms)", "success")


def sweep_table(runs: Sequence[Run]) -> tuple[list[str], list[list[str]]] | None:
    """The sweeps among ``runs`` side by side: one row per level (users), then their capacities; None if none."""
    sweeps = [run for run in runs if run.metrics.get("levels")]
    if not sweeps:
        return None
    header = ["Users", *(f"{run.name} {column}" for run in sweeps for column in SWEEP_COLUMNS)]
    by_users = [{level["users"]: level for level in run.metrics["levels"]} for run in sweeps]
    rows = []
    for users in sorted({users for levels in by_users for users in levels}):
        row = [str(users)]
        for run, levels in zip(sweeps, by_users):
            level = levels.get(users)
            phase = (run.metrics.get("capacity") or {}).get("phase", "cold_start_ms")
            if level is None:
                row += [MISSING] * len(SWEEP_COLUMNS)
                continue
            stats = level["phases"][phase]
            row += [format_ms(stats["median"]), format_ms(stats["p95"]), format_rate(level["success_rate"])]
        rows.append(row)
    capacity_row = ["capacity"]
    for run in sweeps:
        capacity = run.metrics.get("capacity") or {}
        shown = users_text(capacity.get("users")) + (" (harness-bound)" if capacity.get("harness_bound") else "")
        capacity_row += [shown] + [""] * (len(SWEEP_COLUMNS) - 1)
    rows.append(capacity_row)
    return header, rows


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]], numeric_from: int) -> list[str]:
    """Rows as aligned plain-text lines, a rule under the header; numbers right-aligned."""
    everything = [list(header)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]
    lines = []
    for index, row in enumerate(everything):
        cells = [cell.rjust(width) if i >= numeric_from else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def text_table(runs: Sequence[Run]) -> str:
    """The results table as aligned plain text, first response in ms; numbers right-aligned."""
    rows = [list(HEADER)] + [run.row() for run in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.rjust(width) if i >= NUMERIC_FROM else cell.ljust(width)
                 for i, (cell, width) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    note = _p99_note(runs)
    lines.append("First response: session ready to first audio back. N = iterations; "
                 "timings over successful iterations." + (f" {note}" if note else ""))
    sweeps = sweep_table(runs)
    if sweeps is not None:
        lines += ["", "Concurrency sweeps (cold start: cycle start to first audio, per level):",
                  *_aligned(*sweeps, numeric_from=1)]
    return "\n".join(lines)


def markdown_table(runs: Sequence[Run]) -> str:
    """The results table in Markdown (GitHub table syntax), with the p99 note below it."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("\\", "\\\\").replace("|", "\\|") for cell in cells) + " |"

    align = ["---" if i < NUMERIC_FROM else "---:" for i in range(len(HEADER))]
    lines = [line(HEADER), "| " + " | ".join(align) + " |", *(line(run.row()) for run in runs)]
    note = _p99_note(runs)
    lines += ["", "First response: session ready to first audio back. N = iterations; timings over successful "
              "iterations." + (f" {note}" if note else "")]
    sweeps = sweep_table(runs)
    if sweeps is not None:
        header, rows = sweeps
        lines += ["", line(header), "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
                  *(line(row) for row in rows)]
    return "\n".join(lines)


def _sweep_section(runs: Sequence[Run]) -> str:
    sweeps = sweep_table(runs)
    if sweeps is None:
        return ""
    header, rows = sweeps
    return (f'<section id="sweeps"><h2>Concurrency sweeps <span class="thin">cold start per level, ms</span></h2>'
            f'<div class="scroll">{table(header, rows, table_id="sweep-comparison", numeric_from=1)}</div></section>')


def render_html(runs: Sequence[Run], differences: Sequence[str] = (), extra: str = "") -> str:
    """The comparison page: the table, overlaid CDFs of the first response, ``extra`` HTML, each run's definition."""
    warning = ""
    if differences:
        warning = ('<div class="warning" id="forced"><p>Compared with --force although the runs were measured '
                   "differently:</p><ul>" + "".join(f"<li>{esc(d)}</li>" for d in differences) + "</ul></div>")
    series = [(run.name, run.first_response) for run in runs]
    if any(values for _, values in series):
        cdf = (f'<figure class="plot wide" id="plot-cdf"><h3>Cumulative distribution of the first response</h3>'
               f'{plots.cdf_svg(series, name="compare-cdf", mark_percentiles=False, size=(10, 4.2))}'
               f"<figcaption>Share of each run's successful iterations that got their first audio within a time."
               f"</figcaption></figure>")
    else:
        cdf = '<p class="empty">No run has a successful iteration: nothing to plot.</p>'
    note = _p99_note(runs)
    definitions = table(["Run", *(label for _, label in DEFINITION)],
                        [[run.name, *(_shown(run.definition()[key]) for key, _ in DEFINITION)] for run in runs],
                        table_id="definitions")
    body = (f'<header><h1>bootbench <span class="thin">comparison of {len(runs)} runs</span></h1></header>{warning}'
            f'<section id="results"><h2>First response <span class="thin">session ready → first audio back, '
            f'ms</span></h2><div class="scroll">'
            f'{table(HEADER, [run.row() for run in runs], table_id="comparison", numeric_from=NUMERIC_FROM)}</div>'
            f'{f"<p class=note>{esc(note)}</p>" if note else ""}</section>'
            f'{_sweep_section(runs)}'
            f'<section id="distribution"><h2>Distribution</h2><div class="plots">{cdf}</div></section>{extra}'
            f'<section id="definition"><h2>What each run measured</h2><div class="scroll">{definitions}</div>'
            f"</section><footer>Folders: {esc(', '.join(str(run.folder) for run in runs))}</footer>")
    return page(f"bootbench comparison: {', '.join(run.name for run in runs)}", body)

