"""Several runs side by side: a results table (plain text or Markdown) and a page of overlaid CDFs.

Runs compare only when they measured the same thing (:data:`DEFINITION`:
connection policy, audio, pacing, trailing silence, timeout, and the turn
mode among runs of one provider); :func:`definition_differences` names what
differs, and the command refuses such a comparison unless forced. Runs of
different providers necessarily differ in how a turn ends: that is shown as
a labelled difference (:func:`provider_differences`), not refused. A run that
did not finish what it planned is flagged in every format (:attr:`Run.incomplete`).

    runs = load_runs(["results/a", "results/b"])
    print(markdown_table(runs))
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from bootbench.checks import incomplete_reason
from bootbench.samples import HEADLINE
from bootbench.stats import finite, p99_note
from bootbench.views import plots
from bootbench.views.html import esc, page, table
from bootbench.views.load import load_metrics
from bootbench.views.text import MISSING, aligned, format_count, format_ms, format_rate, users_text

DEFINITION = (
    ("connect_per_call", "connect per call"),
    ("audio", "audio"),
    ("pace", "pace"),
    ("trailing_silence_ms", "trailing silence (ms)"),
    ("timeout_s", "timeout (s)"),
    ("turn", "provider turn mode"),
    ("turns", "turns per session"),
)
"""The run settings (metrics.json ``run`` keys) that define what a number means."""
RECORDED_DEFAULTS = {"turns": 1}
"""What a run measured where an older metrics.json did not record the setting (``--turns`` came later)."""
MAX_VALUES_SHOWN = 3
"""A setting with more distinct values than this is summarised as "N different values" in a refusal."""
MAX_VALUE_CHARS = 40
PER_PROVIDER = frozenset({"turn"})
"""Settings of :data:`DEFINITION` that are the provider's own: they must agree only among runs of one provider."""
INCOMPLETE = "incomplete"

HEADER = ("Run", "Provider", "Target", "Users", "N", "Success", "Mean (ms)", "Median (ms)", "P95 (ms)", "P99 (ms)",
          "Session start median (ms)", "First audible median (ms)")
NUMERIC_FROM = 3
LEVEL_SUMMARY_KEYS = ("iterations", "successes", "failures", "success_rate", "p99_is_max", "phases")
"""The keys a sweep level shares with a run's ``summary`` (see :func:`bootbench.levels.summarize_levels`)."""
TURN_HEADER = ("Cold penalty median (ms)", "Cold penalty 95 % CI (ms)", "Warm input→audio median (ms)",
               "Warm input→audible median (ms)")
"""Columns added when a compared run had ``--turns`` > 1 (``–`` for a run without warm turns)."""


@dataclass
class Run:
    """One result folder and its metrics.json; or one level of a sweep's (``level``: its users), see :meth:`units`."""

    folder: Path
    metrics: dict[str, Any]
    level: int | None = None

    @property
    def run_name(self) -> str:
        """The run's id (its folder's name for an old run without one)."""
        return str(self.metrics["run"].get("id") or self.folder.name)

    @property
    def name(self) -> str:
        """The run's id; a sweep level's row adds its level: ``ID (level 4)``."""
        return self.run_name if self.level is None else f"{self.run_name} (level {self.level})"

    @property
    def provider(self) -> str:
        return str(self.metrics["run"].get("provider", "?"))

    @property
    def target(self) -> str:
        return str(self.metrics["run"].get("target", "?"))

    @property
    def users(self) -> int | None:
        """The users that ran at once: a sweep level's, else ``-u`` (None where not recorded)."""
        return self.level if self.level is not None else self.metrics["run"].get("users")

    @property
    def is_sweep(self) -> bool:
        return bool(self.metrics.get("levels"))

    def units(self) -> list[Run]:
        """What compares like with like: a sweep level by level (each with its level's summary and samples),
        any other run whole."""
        if self.level is not None or not self.is_sweep:
            return [self]
        units = []
        for level in self.metrics["levels"]:
            users = level["users"]
            metrics = {**self.metrics, "summary": {key: level.get(key) for key in LEVEL_SUMMARY_KEYS},
                       "samples": [s for s in self.metrics["samples"] if s.get("level") == users]}
            units.append(Run(self.folder, metrics, level=users))
        return units

    @property
    def first_response(self) -> list[float]:
        return finite(s.get(HEADLINE) for s in self.metrics["samples"] if s.get("ok"))

    @property
    def incomplete(self) -> str | None:
        """Why the run did not finish what it planned (a few words), or None for a complete run."""
        return incomplete_reason(self.metrics["run"])

    def definition(self) -> dict[str, Any]:
        """The values of :data:`DEFINITION` for this run (None where not recorded and no default applies)."""
        run = self.metrics["run"]
        return {key: run[key] if run.get(key) is not None else RECORDED_DEFAULTS.get(key) for key, _ in DEFINITION}

    def row(self) -> list[str]:
        """The table cells of this run, formatted like every other bootbench output."""
        summary = self.metrics["summary"]
        head = summary["phases"][HEADLINE]
        session = summary["phases"].get("session_start_ms", {})
        audible = summary["phases"].get("first_audible_ms", {})
        name = f"{self.name} ({INCOMPLETE})" if self.incomplete else self.name
        return [name, self.provider, self.target, format_count(self.users), format_count(summary["iterations"]),
                format_rate(summary["success_rate"]), format_ms(head["mean"]), format_ms(head["median"]),
                format_ms(head["p95"]), format_ms(head["p99"]), format_ms(session.get("median")),
                format_ms(audible.get("median"))]

    @property
    def has_turns(self) -> bool:
        return "cold_penalty_ms" in self.metrics["summary"]["phases"]

    def turn_cells(self) -> list[str]:
        """The cells of :data:`TURN_HEADER` for this run."""
        phases = self.metrics["summary"]["phases"]
        penalty, warm = phases.get("cold_penalty_ms") or {}, phases.get("warm_input_to_audio_ms") or {}
        audible = phases.get("warm_input_to_audible_ms") or {}
        ci = penalty.get("ci95_median")
        return [format_ms(penalty.get("median")), f"{format_ms(ci[0])} to {format_ms(ci[1])}" if ci else format_ms(None),
                format_ms(warm.get("median")), format_ms(audible.get("median"))]


def units(runs: Sequence[Run]) -> list[Run]:
    """The table's rows as runs: each run whole, a sweep one per level (:meth:`Run.units`)."""
    return [unit for run in runs for unit in run.units()]


def table_header(runs: Sequence[Run]) -> tuple[str, ...]:
    """The table's columns: :data:`HEADER`, plus :data:`TURN_HEADER` when any run had warm turns."""
    return HEADER + TURN_HEADER if any(run.has_turns for run in units(runs)) else HEADER


def table_rows(runs: Sequence[Run]) -> list[list[str]]:
    """The table's rows, matching :func:`table_header`: one per run, one per level of a sweep."""
    rows = units(runs)
    turns = any(run.has_turns for run in rows)
    return [run.row() + (run.turn_cells() if turns else []) for run in rows]


def load_runs(folders: Sequence[str | Path]) -> list[Run]:
    """Every folder's metrics.json; raises :class:`~bootbench.views.load.ResultFolderError` for the first bad one."""
    return [Run(Path(folder), load_metrics(folder)) for folder in folders]


def definition_differences(runs: Sequence[Run]) -> list[str]:
    """One short phrase per setting that changes the measurement and on which the runs disagree.

    E.g. ``pace: burst in A vs realtime in 3 runs``: a run is named when it is
    alone with its value, else counted; a setting with more than
    :data:`MAX_VALUES_SHOWN` values is ``timeout (s): 14 different values``, so
    the phrase stays short whatever the number of runs. A
    :data:`PER_PROVIDER` setting counts only where runs of the same provider
    disagree on it.
    """
    differences = []
    for key, label in DEFINITION:
        sets = _by_provider(runs).values() if key in PER_PROVIDER else [runs]
        for subset in sets:
            groups: dict[str, list[str]] = {}
            for run in subset:
                groups.setdefault(_shown(run.definition()[key]), []).append(run.name)
            if len(groups) > MAX_VALUES_SHOWN:
                differences.append(f"{label}: {len(groups)} different values")
            elif len(groups) > 1:
                differences.append(f"{label}: " + " vs ".join(f"{_cut(value)} in {_who(names)}"
                                                              for value, names in groups.items()))
    return differences


def users_difference(runs: Sequence[Run]) -> str | None:
    """``users differ: 1 in A vs 8 in B`` when the rows of the table ran at different concurrency, else None."""
    groups: dict[str, list[str]] = {}
    for run in runs:
        if run.is_sweep:
            sweep = run.metrics["run"].get("sweep")
            shown = ",".join(map(str, sweep)) if isinstance(sweep, list) else sweep or "levels"
            groups.setdefault(f"a sweep of {shown}", []).append(run.name)
        else:
            groups.setdefault(format_count(run.users), []).append(run.name)
    if len(groups) < 2:
        return None
    if len(groups) > MAX_VALUES_SHOWN:
        return f"users differ: {len(groups)} different values"
    return "users differ: " + " vs ".join(f"{value} in {_who(names)}" for value, names in groups.items())


def unlike(baseline: Run, run: Run) -> list[str]:
    """What makes ``run`` a different measurement from ``baseline`` (rows, see :meth:`Run.units`): their users
    and the settings of :data:`DEFINITION`; empty when they compare like with like."""
    differences = [] if baseline.users == run.users else [f"users {format_count(baseline.users)} vs "
                                                          f"{format_count(run.users)}"]
    ours, theirs = baseline.definition(), run.definition()
    differences += [f"{label} {_cut(_shown(ours[key]))} vs {_cut(_shown(theirs[key]))}"
                    for key, label in DEFINITION if ours[key] != theirs[key]]
    return differences


def pairs(baseline: Run, run: Run) -> tuple[list[tuple[Run, Run, list[str]]], list[str]]:
    """The rows of ``run`` against the rows of ``baseline`` they compare with: pairs of equal users (a sweep
    level by level), each with :func:`unlike`'s differences; with no such pair, the two runs whole, labelled.
    Also one phrase per row of ``run`` left without a baseline row."""
    mine, theirs = run.units(), baseline.units()
    matched = [(b, c, unlike(b, c)) for c in mine for b in theirs if b.users == c.users]
    if not matched:
        return [(baseline, run, unlike(baseline, run) or ["a sweep against a run of one concurrency"])], []
    paired = {id(c) for _, c, _ in matched}
    alone = [f"{c.name}: no baseline row with {users_text(c.users)}" for c in mine if id(c) not in paired]
    return matched, alone


def _who(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else f"{len(names)} runs"


def _cut(value: str) -> str:
    return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS - 3] + "..."


def provider_differences(runs: Sequence[Run]) -> list[str]:
    """The labelled differences between providers, e.g. ``turn mode differs: aivoco vad, openai manual``.

    Each provider ends a user's turn its own way; comparing providers is what
    the table is for, so this is said, not refused.
    """
    notes = []
    for key, label in DEFINITION:
        if key not in PER_PROVIDER:
            continue
        values = {provider: _shown(group[0].definition()[key]) for provider, group in _by_provider(runs).items()}
        if len(set(values.values())) > 1:
            short = label.removeprefix("provider ")
            notes.append(f"{short} differs: " + ", ".join(f"{provider} {value}" for provider, value in values.items()))
    return notes


def incomplete_notes(runs: Sequence[Run]) -> list[str]:
    """One phrase per run that did not finish what it planned, e.g. ``A is incomplete (34 of 100 ...)``."""
    return [f"{run.name} is {INCOMPLETE} ({run.incomplete})" for run in runs if run.incomplete]


def _by_provider(runs: Sequence[Run]) -> dict[str, list[Run]]:
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.provider, []).append(run)
    return groups


def _notes(runs: Sequence[Run], forced: Sequence[str] = ()) -> list[str]:
    """The sentences under every form of the table: a forced comparison, provider and users differences,
    incomplete runs."""
    notes = [f"Forced: compared with --force although measured differently ({'; '.join(forced)})."] if forced else []
    notes += [f"Note: {note} (each provider's own way of ending a turn)." for note in provider_differences(runs)]
    users = users_difference(runs)
    if users:
        notes.append(f"Note: {users} (latency depends on how many calls run at once: compare rows of equal users).")
    notes += [f"Flagged: {note}." for note in incomplete_notes(runs)]
    return notes


def _shown(value: Any) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _p99_note(runs: Sequence[Run]) -> str:
    """One sentence naming the runs whose p99 needs the :func:`~bootbench.stats.p99_note`, or ""."""
    notes: dict[str, list[str]] = {}
    rows = units(runs)
    for run in rows:
        note = p99_note(run.metrics["summary"]["phases"][HEADLINE]["count"])
        if note:
            notes.setdefault(note, []).append(run.name)
    if len(rows) > 2 and len(notes) == 1 and len(next(iter(notes.values()))) == len(rows):
        return f"Every row: {next(iter(notes))}."  # naming them all would repeat the table
    return " ".join(f"{', '.join(names)}: {note}." for note, names in notes.items())


def _turn_note(runs: Sequence[Run]) -> str:
    if not any(run.has_turns for run in runs):
        return ""
    return (" Cold penalty: turn 1's input to audio minus the median of the same session's warm turns (2..N); "
            "warm input→audio pools every warm turn.")


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


def text_table(runs: Sequence[Run], forced: Sequence[str] = ()) -> str:
    """The results table as aligned plain text, first response in ms; numbers right-aligned.

    ``forced``: the :func:`definition_differences` of runs compared with ``--force`` (said under the table).
    """
    columns = table_header(runs)
    lines = aligned(columns, table_rows(runs), range(NUMERIC_FROM, len(columns)))
    note = _p99_note(runs)
    lines.append("First response: session ready to first audio back. N = iterations; "
                 "timings over successful iterations." + (f" {note}" if note else "") + _turn_note(runs))
    sweeps = sweep_table(runs)
    if sweeps is not None:
        lines += ["", "Concurrency sweeps (cold start: cycle start to first audio, per level):",
                  *aligned(*sweeps, numeric=range(1, len(sweeps[0])))]
    lines += _notes(runs, forced)
    return "\n".join(lines)


def markdown_table(runs: Sequence[Run], forced: Sequence[str] = ()) -> str:
    """The results table in Markdown (GitHub table syntax), with the p99 note below it (``forced``: see
    :func:`text_table`)."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("\\", "\\\\").replace("|", "\\|") for cell in cells) + " |"

    columns = table_header(runs)
    align = ["---" if i < NUMERIC_FROM else "---:" for i in range(len(columns))]
    lines = [line(columns), "| " + " | ".join(align) + " |", *(line(row) for row in table_rows(runs))]
    note = _p99_note(runs)
    lines += ["", "First response: session ready to first audio back. N = iterations; timings over successful "
              "iterations." + (f" {note}" if note else "") + _turn_note(runs)]
    sweeps = sweep_table(runs)
    if sweeps is not None:
        header, rows = sweeps
        lines += ["", line(header), "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
                  *(line(row) for row in rows)]
    lines += [f"\n{line}" for line in _notes(runs, forced)]
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
    series = [(run.name, run.first_response) for run in units(runs)]
    if any(values for _, values in series):
        cdf = (f'<figure class="plot wide" id="plot-cdf"><h3>Cumulative distribution of the first response</h3>'
               f'{plots.cdf_svg(series, name="compare-cdf", mark_percentiles=False, size=(10, 4.2))}'
               f"<figcaption>Share of each run's successful iterations that got their first audio within a time."
               f"</figcaption></figure>")
    else:
        cdf = '<p class="empty">No run has a successful iteration: nothing to plot.</p>'
    note = _p99_note(runs)
    notes = "".join(f'<p class="note">{esc(line)}</p>' for line in _notes(runs))  # --force: the warning above
    definitions = table(["Run", *(label for _, label in DEFINITION)],
                        [[run.name, *(_shown(run.definition()[key]) for key, _ in DEFINITION)] for run in runs],
                        table_id="definitions")
    body = (f'<header><h1>bootbench <span class="thin">comparison of {len(runs)} runs</span></h1></header>{warning}'
            f'<section id="results"><h2>First response <span class="thin">session ready → first audio back, '
            f'ms</span></h2><div class="scroll">'
            f'{table(table_header(runs), table_rows(runs), table_id="comparison", numeric_from=NUMERIC_FROM)}</div>'
            f'{f"<p class=note>{esc(note)}</p>" if note else ""}{notes}</section>'
            f'{_sweep_section(runs)}'
            f'<section id="distribution"><h2>Distribution</h2><div class="plots">{cdf}</div></section>{extra}'
            f'<section id="definition"><h2>What each run measured</h2><div class="scroll">{definitions}</div>'
            f"</section><footer>Folders: {esc(', '.join(str(run.folder) for run in runs))}</footer>")
    return page(f"bootbench comparison: {', '.join(run.name for run in runs)}", body, wide=True)

