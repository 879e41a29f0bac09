"""Is a run really slower than a baseline? Per-phase differences with intervals, a rank test and a verdict.

For each phase, :func:`compare_phase` takes the raw successful samples of a
baseline and a candidate run and gives the difference (candidate minus
baseline) of medians and of p95s, each with a seeded bootstrap 95% interval
(both groups resampled independently), and a two-sided Mann-Whitney U
p-value. The verdict is "slower" or "faster" only when the interval of the
median difference excludes 0 *and* p < 0.05; otherwise "no significant
difference". :func:`slower_than_allowed` is the ``--fail-if-slower PCT``
rule: one sentence when a run is significantly slower by more than PCT.

    comparisons = compare_metrics(baseline_metrics, candidate_metrics)
    problem = slower_than_allowed(comparisons[HEADLINE], parse_percent("10%"), run="today", baseline="last-week")
    print(text_table(comparisons.values()))     # or markdown_table, or html_section for compare.html
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from bootbench import shares
from bootbench.errors import UserError
from bootbench.samples import HEADLINE
from bootbench.stats import BOOTSTRAP_MIN_VALUES, BOOTSTRAP_RESAMPLES, finite
from bootbench.views.html import esc, table
from bootbench.views.text import MISSING, aligned, format_count, format_ms

SLOWER = "slower"
FASTER = "faster"
NO_DIFFERENCE = "no significant difference"
NO_DATA = "no data"
TOO_FEW = "too few samples"
"""The verdict when a run has fewer values than :data:`~bootbench.stats.BOOTSTRAP_MIN_VALUES`: no interval, no p."""
ALPHA = 0.05
"""Significance level of the verdict; the intervals are the matching 95%."""

_CHUNK_VALUES = 2_000_000
"""Resampled values drawn at once, to bound memory on large runs."""


class RegressionError(UserError, ValueError):
    """A comparison option that cannot be understood; the message is one sentence for the user."""


@dataclass(frozen=True)
class PhaseComparison:
    """One phase of a candidate run against the baseline: differences are candidate minus baseline, in ms."""

    phase: str
    baseline_count: int
    candidate_count: int
    baseline_median: float | None
    candidate_median: float | None
    median_diff: float | None
    median_ci: tuple[float, float] | None
    baseline_p95: float | None
    candidate_p95: float | None
    p95_diff: float | None
    p95_ci: tuple[float, float] | None
    p_value: float | None
    verdict: str

    @property
    def median_change_pct(self) -> float | None:
        """The median's change relative to the baseline's size, in percent (+18.0 = 18% slower).

        Relative to its magnitude: a service stage reached before the last input is negative, and a stage that
        moved from -20 to +20 ms is 200 % slower, not -200 %."""
        if self.median_diff is None or not self.baseline_median:
            return None
        return 100.0 * self.median_diff / abs(self.baseline_median)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["median_change_pct"] = self.median_change_pct
        for key in ("median_ci", "p95_ci"):
            data[key] = None if data[key] is None else list(data[key])
        return data


def compare_phase(phase: str, baseline: Sequence[float], candidate: Sequence[float], *, seed: int = 0,
                  resamples: int = BOOTSTRAP_RESAMPLES) -> PhaseComparison:
    """The candidate's samples of one phase against the baseline's (raw values in ms, failures excluded)."""
    base = np.asarray(finite(baseline), dtype=np.float64)
    cand = np.asarray(finite(candidate), dtype=np.float64)
    if base.size == 0 or cand.size == 0:
        return PhaseComparison(phase, int(base.size), int(cand.size), _median(base), _median(cand), None, None,
                               _p95(base), _p95(cand), None, None, None, NO_DATA)
    if min(base.size, cand.size) < BOOTSTRAP_MIN_VALUES:  # a resample of one value is that value: a 0-wide CI
        return PhaseComparison(phase, int(base.size), int(cand.size), _median(base), _median(cand),
                               float(np.median(cand) - np.median(base)), None, _p95(base), _p95(cand),
                               float(np.percentile(cand, 95) - np.percentile(base, 95)), None, None, TOO_FEW)
    from scipy.stats import mannwhitneyu  # here, not at import: only a comparison with samples needs scipy

    rng = np.random.default_rng(seed)
    base_medians, base_p95s = _bootstrap(base, resamples, rng)
    cand_medians, cand_p95s = _bootstrap(cand, resamples, rng)
    median_ci = _interval(cand_medians - base_medians)
    p95_ci = _interval(cand_p95s - base_p95s)
    p_value = float(mannwhitneyu(cand, base, alternative="two-sided").pvalue)
    if not math.isfinite(p_value):
        p_value = 1.0
    median_diff = float(np.median(cand) - np.median(base))
    verdict = NO_DIFFERENCE
    if p_value < ALPHA and (median_ci[0] > 0 or median_ci[1] < 0):
        verdict = SLOWER if median_diff > 0 else FASTER
    return PhaseComparison(phase, int(base.size), int(cand.size), _median(base), _median(cand), median_diff,
                           median_ci, _p95(base), _p95(cand), float(np.percentile(cand, 95) - np.percentile(base, 95)),
                           p95_ci, p_value, verdict)


def _median(values: np.ndarray) -> float | None:
    return float(np.median(values)) if values.size else None


def _p95(values: np.ndarray) -> float | None:
    return float(np.percentile(values, 95)) if values.size else None


def _bootstrap(values: np.ndarray, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Medians and p95s of ``resamples`` resamples with replacement (drawn in chunks to bound memory)."""
    per_chunk = max(1, _CHUNK_VALUES // values.size)
    medians, p95s = [], []
    for start in range(0, resamples, per_chunk):
        draws = rng.choice(values, size=(min(per_chunk, resamples - start), values.size), replace=True)
        medians.append(np.median(draws, axis=1))
        p95s.append(np.percentile(draws, 95, axis=1))
    return np.concatenate(medians), np.concatenate(p95s)


def _interval(estimates: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(estimates, [2.5, 97.5])
    return float(low), float(high)


def compare_groups(phase: str, baseline: Sequence[Sequence[float | None]], candidate: Sequence[Sequence[float | None]],
                   *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> PhaseComparison:
    """:func:`compare_phase` of a phase with several values per sample (``warm_input_to_audio_ms``: one list per
    session in each run).

    Medians and p95s are exact over every value pooled, as metrics.json has them. The turns of one session are not
    independent (a slow session is slow on every turn), so the intervals come from a cluster bootstrap that resamples
    whole sessions of each run, and the rank test compares the sessions' own medians (one independent value per
    session); the counts are values, the "too few" rule counts sessions. With at most one value per session this is
    :func:`compare_phase` itself.
    """
    base, cand = _clusters(baseline), _clusters(candidate)
    if all(c.size == 1 for c in (*base, *cand)):
        return compare_phase(phase, [float(c[0]) for c in base], [float(c[0]) for c in cand], seed=seed,
                             resamples=resamples)
    pooled_base = np.concatenate(base) if base else np.empty(0)
    pooled_cand = np.concatenate(cand) if cand else np.empty(0)
    counts = (int(pooled_base.size), int(pooled_cand.size))
    if not base or not cand:
        return PhaseComparison(phase, *counts, _median(pooled_base), _median(pooled_cand), None, None,
                               _p95(pooled_base), _p95(pooled_cand), None, None, None, NO_DATA)
    median_diff = float(np.median(pooled_cand) - np.median(pooled_base))
    p95_diff = float(np.percentile(pooled_cand, 95) - np.percentile(pooled_base, 95))
    if min(len(base), len(cand)) < BOOTSTRAP_MIN_VALUES:
        return PhaseComparison(phase, *counts, _median(pooled_base), _median(pooled_cand), median_diff, None,
                               _p95(pooled_base), _p95(pooled_cand), p95_diff, None, None, TOO_FEW)
    from scipy.stats import mannwhitneyu  # here, not at import: only a comparison with samples needs scipy

    rng = np.random.default_rng(seed)
    base_medians, base_p95s = _cluster_bootstrap(base, resamples, rng)
    cand_medians, cand_p95s = _cluster_bootstrap(cand, resamples, rng)
    median_ci = _interval(cand_medians - base_medians)
    p95_ci = _interval(cand_p95s - base_p95s)
    p_value = float(mannwhitneyu([np.median(c) for c in cand], [np.median(c) for c in base],
                                 alternative="two-sided").pvalue)
    if not math.isfinite(p_value):
        p_value = 1.0
    verdict = NO_DIFFERENCE
    if p_value < ALPHA and (median_ci[0] > 0 or median_ci[1] < 0):
        verdict = SLOWER if median_diff > 0 else FASTER
    return PhaseComparison(phase, *counts, _median(pooled_base), _median(pooled_cand), median_diff, median_ci,
                           _p95(pooled_base), _p95(pooled_cand), p95_diff, p95_ci, p_value, verdict)


def _clusters(groups: Sequence[Sequence[float | None]]) -> list[np.ndarray]:
    """Each group's finite values as an array; groups without any left out."""
    clusters = [np.asarray(finite(group), dtype=np.float64) for group in groups]
    return [c for c in clusters if c.size]


def _cluster_bootstrap(clusters: list[np.ndarray], resamples: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Medians and p95s of ``resamples`` resamples of whole clusters with replacement, over the values they bring.

    The clusters sit in one NaN-padded matrix, so a resample of sessions of different sizes is one array operation
    (``nanmedian`` and ``nanpercentile`` skip the padding); drawn in chunks to bound memory.
    """
    width = max(c.size for c in clusters)
    padded = np.full((len(clusters), width), np.nan)
    for index, cluster in enumerate(clusters):
        padded[index, :cluster.size] = cluster
    per_chunk = max(1, _CHUNK_VALUES // padded.size)
    medians, p95s = [], []
    for start in range(0, resamples, per_chunk):
        picks = rng.integers(0, len(clusters), size=(min(per_chunk, resamples - start), len(clusters)))
        draws = padded[picks].reshape(picks.shape[0], -1)
        medians.append(np.nanmedian(draws, axis=1))
        p95s.append(np.nanpercentile(draws, 95, axis=1))
    return np.concatenate(medians), np.concatenate(p95s)


def phase_values(metrics: Mapping[str, Any], phase: str) -> list[float]:
    """A phase's values over the successful samples of a metrics.json document (every warm turn's for a phase with
    several values per sample, pooled)."""
    return finite(value for group in phase_groups(metrics, phase) for value in group)


def phase_groups(metrics: Mapping[str, Any], phase: str) -> list[list[float | None]]:
    """A phase's values per successful sample: one each, or for :data:`~bootbench.samples.WARM_TURN_FIELDS` (the
    phases with one value per warm turn) the values of the sample's turns 2..N."""
    from bootbench.samples import WARM_TURN_FIELDS

    ok = [sample for sample in metrics.get("samples") or () if sample.get("ok")]
    if phase in WARM_TURN_FIELDS:
        field = WARM_TURN_FIELDS[phase]
        return [[turn.get(field) for turn in (sample.get("turns") or [])[1:]] for sample in ok]
    return [[sample.get(phase)] for sample in ok]


def compare_metrics(baseline: Mapping[str, Any], candidate: Mapping[str, Any], phases: Sequence[str] | None = None,
                    *, seed: int = 0) -> dict[str, PhaseComparison]:
    """Every phase of a candidate metrics.json against a baseline's (default: :data:`bootbench.samples.PHASES`, the
    service stage phases among them, then ``TURN_PHASES``: no data unless a run had ``--turns`` > 1; see
    :func:`measured` for the rows a table shows)."""
    if phases is None:
        from bootbench.samples import PHASES, TURN_PHASES
        phases = (*PHASES, *TURN_PHASES)
    return {phase: compare_one(baseline, candidate, phase, seed=seed) for phase in phases}


def compare_one(baseline: Mapping[str, Any], candidate: Mapping[str, Any], phase: str, *,
                seed: int = 0) -> PhaseComparison:
    """One phase of a candidate metrics.json against a baseline's (:func:`compare_groups` for a phase with several
    values per sample)."""
    from bootbench.samples import WARM_TURN_FIELDS

    if phase in WARM_TURN_FIELDS:
        return compare_groups(phase, phase_groups(baseline, phase), phase_groups(candidate, phase), seed=seed)
    return compare_phase(phase, phase_values(baseline, phase), phase_values(candidate, phase), seed=seed)


def measured(comparisons: Iterable[PhaseComparison]) -> list[PhaseComparison]:
    """The comparisons a table shows: a phase neither run has a value of (a step or a service stage the protocol
    does not have, a turn phase of single-turn runs) is left out; one only a run has stays, as "no data"."""
    return [c for c in comparisons if c.baseline_count or c.candidate_count]


def parse_percent(text: str) -> float:
    """``--fail-if-slower``'s value as a number of percent: a share (``10%``, ``10 %`` or ``0.1``; :mod:`bootbench.shares`).

    One sentence if invalid; a bare number above 1 is refused as ambiguous.
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(%?)\s*", str(text))
    if match is None:
        raise RegressionError(f"--fail-if-slower expects a non-negative percentage such as 10%, not {text!r} "
                              f"(or a fraction from 0 to 1 such as 0.1).")
    number, percent = float(match[1]), bool(match[2])
    try:
        shares.fraction(number, percent)
    except shares.ShareError as exc:
        raise RegressionError(f"--fail-if-slower {exc}.") from None
    return number if percent else round(number * 100, 9)  # 0.1 is 10 %, not 10.000000000000002


def slower_than_allowed(comparison: PhaseComparison, pct: float, *, run: str, baseline: str) -> str | None:
    """The ``--fail-if-slower`` rule: one sentence when ``run`` is significantly slower by more than ``pct`` percent.

    None when the verdict is not "slower" or the median rose by ``pct`` or less.
    """
    change = comparison.median_change_pct
    if comparison.verdict != SLOWER or change is None or change <= pct:
        return None
    low, high = comparison.median_ci
    return (f"{run} is slower than the baseline {baseline} on {comparison.phase}: median "
            f"{format_ms(comparison.candidate_median)} ms against {format_ms(comparison.baseline_median)} ms, "
            f"{_signed(comparison.median_diff)} ms ({_signed(change)}%, 95% CI {_signed(low)} to {_signed(high)} ms, "
            f"p {_p(comparison.p_value, relation=True)}), more than the allowed {pct:g}%.")


def undecided(comparison: PhaseComparison) -> str | None:
    """One phrase when ``--fail-if-slower`` cannot judge this phase (too few samples or no data), else None."""
    if comparison.verdict == TOO_FEW:
        return (f"--fail-if-slower cannot judge {comparison.phase}: too few samples ({comparison.baseline_count} in "
                f"the baseline, {comparison.candidate_count} in the run; the bootstrap needs at least "
                f"{BOOTSTRAP_MIN_VALUES} in each)")
    if comparison.verdict == NO_DATA:
        return (f"--fail-if-slower cannot judge {comparison.phase}: no data ({comparison.baseline_count} successful "
                f"values in the baseline, {comparison.candidate_count} in the run)")
    return None


def fail_if_slower(baseline: Mapping[str, Any], candidate: Mapping[str, Any], pct: float, *, run: str,
                   baseline_name: str, phase: str = HEADLINE, seed: int = 0) -> str | None:
    """``--fail-if-slower PCT --phase PHASE`` on two metrics.json documents: the sentence to fail with, or None."""
    comparison = compare_one(baseline, candidate, phase, seed=seed)
    return slower_than_allowed(comparison, pct, run=run, baseline=baseline_name)


def _signed(value: float | None) -> str:
    """A difference with its sign and one decimal; one that rounds to zero reads "+0.0", never "-0.0"."""
    return MISSING if value is None else f"{round(value, 1) + 0.0:+.1f}"


def _p(value: float | None, relation: bool = False) -> str:
    """A p-value with four decimals ("< 0.0001" below); with ``relation``, "= 0.0123" to follow a "p"."""
    if value is None:
        return MISSING
    if value < 1e-4:
        return "< 0.0001"
    return f"= {value:.4f}" if relation else f"{value:.4f}"


HEADER = ("Phase", "N base", "N run", "Median base (ms)", "Median run (ms)", "Δ median (ms)", "95% CI",
          "Δ p95 (ms)", "95% CI p95", "p (Mann-Whitney)", "Verdict")
"""The columns of a per-phase comparison table; :func:`row` gives the cells (text, Markdown and HTML share them)."""


def row(comparison: PhaseComparison) -> list[str]:
    """The table cells of one phase comparison, formatted like every other bootbench output."""
    def ci(bounds: tuple[float, float] | None) -> str:
        return MISSING if bounds is None else f"{_signed(bounds[0])} to {_signed(bounds[1])}"

    return [comparison.phase, format_count(comparison.baseline_count), format_count(comparison.candidate_count),
            format_ms(comparison.baseline_median), format_ms(comparison.candidate_median),
            _signed(comparison.median_diff), ci(comparison.median_ci), _signed(comparison.p95_diff),
            ci(comparison.p95_ci), _p(comparison.p_value), comparison.verdict]



NUMERIC_FROM = 1
NOTE = ("Differences are run minus baseline over successful iterations, with bootstrap 95% intervals; "
        "a phase is slower or faster only when the median's interval excludes 0 and Mann-Whitney p < 0.05; "
        f"with fewer than {BOOTSTRAP_MIN_VALUES} values in a run there is no interval: {TOO_FEW}. "
        "A phase with a value per warm turn resamples whole sessions and ranks the sessions' medians; "
        "a phase neither run measured is left out.")


def heading(run: str, baseline: str) -> str:
    """The line above a comparison table: which run against which baseline."""
    return f"{run} against the baseline {baseline}"


def text_table(comparisons: Iterable[PhaseComparison]) -> str:
    """The per-phase comparison as aligned plain text; numbers right-aligned."""
    rows = [row(comparison) for comparison in comparisons]
    return "\n".join(aligned(HEADER, rows, range(NUMERIC_FROM, len(HEADER) - 1)))  # the verdict reads left-aligned


def markdown_table(comparisons: Iterable[PhaseComparison]) -> str:
    """The per-phase comparison in Markdown (GitHub table syntax)."""
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    align = ["---" if i < NUMERIC_FROM or i == len(HEADER) - 1 else "---:" for i in range(len(HEADER))]
    return "\n".join([line(HEADER), "| " + " | ".join(align) + " |", *(line(row(c)) for c in comparisons)])


def html_section(baseline: str, compared: Sequence[tuple[str, str, Iterable[PhaseComparison]]]) -> str:
    """compare.html's section with one per-phase comparison table per row (run, or sweep level) against the
    baseline's row it was paired with: ``compared`` holds (row, baseline row, comparisons)."""
    parts = [f'<section id="regression"><h2>Against the baseline <span class="thin">{esc(baseline)}</span></h2>'
             f'<p class="note">{esc(NOTE)}</p>']
    for number, (run, base, comparisons) in enumerate(compared, 1):
        parts.append(f"<h3>{esc(heading(run, base))}</h3><div class=\"scroll\">"
                     f"{table(HEADER, [row(c) for c in comparisons], table_id=f'regression-{number}', numeric_from=NUMERIC_FROM)}"
                     f"</div>")
    parts.append("</section>")
    return "".join(parts)
