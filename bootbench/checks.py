"""Pass/fail checks on a run's final statistics, for CI: parse ``--check`` expressions and evaluate them.

A check is ``PHASE:STAT OP VALUE`` (``first_response_ms:p95 <= 800``),
``success_rate OP VALUE`` (``success_rate >= 95%`` or ``>= 0.95``: a share, as :mod:`bootbench.shares` reads it) or
``capacity OP K`` (the users a load-levels run sustained; "no data" until a
run records ``metrics["capacity"]["users"]``). OP is one of ``< <= > >=``;
whitespace is allowed anywhere between the parts. :func:`parse_check` turns
an expression into a :class:`Check` or raises :class:`CheckError` with one
sentence for the user; :func:`evaluate` measures checks against a
metrics.json document, once, on the exact final statistics.

    checks = parse_checks(expressions(["first_response_ms:p95<=800", "success_rate>=95%;stop_ms:p99<50"]))
    results = evaluate(checks, metrics)
    print(text_table(results))
    sys.exit(exit_code(results, completed=True, failed_iterations=0))
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from bootbench import shares
from bootbench.errors import EXIT_CODE, UserError
from bootbench.views.text import format_count, format_ms, format_rate

STATS: tuple[str, ...] = ("count", "mean", "median", "min", "max", "stdev", "p90", "p95", "p99")
"""The statistics of a phase a check may name: the keys of ``summary["phases"][phase]``."""

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}

SUCCESS_RATE = "success_rate"
CAPACITY = "capacity"
NO_DATA = "no data"
EXIT_OK = 0
"""Every check passed (or, without checks, every iteration succeeded) and the run completed."""
EXIT_INCOMPLETE = 1
"""The run was interrupted, incomplete or stopped early (or, without checks, an iteration failed)."""
EXIT_BAD_INPUT = EXIT_CODE
"""Bad input: nothing started."""
CHECK_FAILED_EXIT = 3
"""The run completed but failed at least one check."""

_NUMBER = r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+"
_EXPRESSION = re.compile(
    rf"^\s*(?P<subject>[^<>=!]*?)\s*(?P<op><=|>=|==|!=|=<|=>|<|>|=)\s*(?P<value>\S.*?)?\s*$")
_VALUE = re.compile(rf"^(?P<number>{_NUMBER})\s*(?P<unit>%|ms)?$")


class CheckError(UserError, ValueError):
    """A ``--check`` expression that cannot be understood; the message is one sentence for the user."""


@dataclass(frozen=True)
class Check:
    """One parsed check: ``phase`` is None for ``success_rate`` and ``capacity`` (then ``stat`` names them)."""

    expr: str
    phase: str | None
    stat: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        """Whether a measured value satisfies this check."""
        return OPERATORS[self.op](value, self.threshold)


@dataclass(frozen=True)
class CheckResult:
    """A check measured on a run: what metrics.json's ``checks`` list and junit.xml carry."""

    expr: str
    phase: str | None
    stat: str
    op: str
    threshold: float
    value: float | None
    ok: bool
    reason: str
    """Why it passed or failed, readable on its own: ``"912.3 ms is not <= 800 ms"``, ``"no data"``."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_env(value: str | None) -> list[str]:
    """The expressions of a ``LOCUST_CHECK`` value: separated by ``;``, blanks dropped."""
    return [part.strip() for part in (value or "").split(";") if part.strip()]


def expressions(values: str | Iterable[str] | None) -> list[str]:
    """The check expressions of an option value, whatever its source, one per list item.

    Locust's parser hands ``--check`` (repeatable) as a list, and an
    environment variable ``LOCUST_CHECK="a;b"`` as the single item ``"a;b"``;
    every item is split on ``;`` here.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [expr for value in values for expr in split_env(value)]


def exit_code(results: Sequence[CheckResult] | None, *, completed: bool, failed_iterations: int) -> int:
    """The process exit code of a finished run (bad input, exit 2, never gets this far).

    1 when the run did not complete, whatever the checks say; with checks,
    3 when one failed and 0 otherwise; without checks (``results`` None or
    empty), today's rule: 1 when any iteration failed.
    """
    if not completed:
        return EXIT_INCOMPLETE
    if results:
        return EXIT_OK if passed(results) else CHECK_FAILED_EXIT
    return EXIT_INCOMPLETE if failed_iterations else EXIT_OK


def incomplete_reason(run: Mapping[str, Any]) -> str | None:
    """Why a run (metrics.json's ``run`` block) did not finish what it planned, in a few words; None if it did.

    E.g. ``stopped early: every connection failed``, ``34 of 100 planned
    iterations finished``, ``2 iteration(s) lost``. Such a run exits with
    :data:`EXIT_INCOMPLETE`, fails junit.xml's "run completed" case and is
    flagged by ``bootbench compare``.
    """
    budget = run.get("iterations") if isinstance(run.get("iterations"), dict) else {}
    if run.get("aborted"):
        return f"stopped early: {run['aborted']}"
    planned, finished = budget.get("planned") or 0, budget.get("finished")
    if run.get("in_progress"):
        return "still running when this metrics.json was written"
    if run.get("interrupted") or (planned and finished is not None and finished < planned):
        return f"{finished} of {planned} planned iterations finished"
    if budget.get("lost"):
        return f"{budget['lost']} iteration(s) lost"
    return None


def parse_check(expr: str, phases: Sequence[str] | None = None) -> Check:
    """One expression as a :class:`Check`; raises :class:`CheckError` (one sentence) when it is not valid.

    ``phases`` are the phase names a check may name; by default
    :data:`bootbench.samples.PHASES` and ``TURN_PHASES`` (no data unless the run had ``--turns`` > 1),
    read at call time.
    """
    if phases is None:
        from bootbench.samples import PHASES, TURN_PHASES
        phases = (*PHASES, *TURN_PHASES)
    text = expr.strip()
    where = f"--check {expr.strip()!r}"
    match = _EXPRESSION.match(text)
    if not text or match is None or not match["subject"]:
        raise CheckError(f"{where} is not a check: write PHASE:STAT OP VALUE (e.g. first_response_ms:p95<=800), "
                         f"success_rate OP VALUE (e.g. success_rate>=95%) or capacity OP USERS.")
    op = match["op"]
    if op not in OPERATORS:
        raise CheckError(f"{where} uses the operator {op!r}; use one of <, <=, > or >=.")
    if match["value"] is None:
        raise CheckError(f"{where} has no value after {op!r}.")
    subject = match["subject"]
    if ":" in subject:
        phase, _, stat = (part.strip() for part in subject.partition(":"))
        if phase not in phases:
            raise CheckError(f"{where} names the unknown phase {phase!r}; the phases are {', '.join(phases)}.")
        if stat not in STATS:
            raise CheckError(f"{where} names the unknown statistic {stat!r}; use one of {', '.join(STATS)}.")
        threshold = _threshold(where, match["value"], "ms" if stat != "count" else None)
        return Check(text, phase, stat, op, threshold)
    if subject == SUCCESS_RATE:
        number, unit = _number(where, match["value"], ("%",))
        try:
            threshold = shares.fraction(number, unit == "%")  # the one convention of shares (bootbench.shares)
        except shares.ShareError as exc:
            raise CheckError(f"{where}: {exc}.") from None
        if threshold > 1:
            raise CheckError(f"{where}: a success rate is at most 100%; write it as {shares.convention(0.95)}.")
        return Check(text, None, SUCCESS_RATE, op, threshold)
    if subject == CAPACITY:
        return Check(text, None, CAPACITY, op, _threshold(where, match["value"], None))
    if subject in phases:
        raise CheckError(f"{where} names a phase without a statistic; write {subject}:STAT with STAT one of "
                         f"{', '.join(STATS)}.")
    raise CheckError(f"{where} checks the unknown quantity {subject!r}; write PHASE:STAT with PHASE one of "
                     f"{', '.join(phases)}, or success_rate, or capacity.")


def _number(where: str, text: str, units: Sequence[str]) -> tuple[float, str | None]:
    match = _VALUE.match(text.strip())
    if match is None or (match["unit"] and match["unit"] not in units):
        accepted = f" (optionally followed by {' or '.join(units)})" if units else ""
        raise CheckError(f"{where} has the value {text.strip()!r} where a non-negative number{accepted} "
                         f"is expected.")
    return float(match["number"]), match["unit"]


def _threshold(where: str, text: str, unit: str | None) -> float:
    return _number(where, text, (unit,) if unit else ())[0]


def parse_checks(exprs: Iterable[str], phases: Sequence[str] | None = None) -> list[Check]:
    """Every expression parsed, in order; the first invalid one raises :class:`CheckError`."""
    return [parse_check(expr, phases) for expr in exprs]


def measured(check: Check, metrics: Mapping[str, Any]) -> float | None:
    """The value a check is about in a metrics.json document; None when the run has no data for it."""
    summary = metrics.get("summary") or {}
    if check.stat == SUCCESS_RATE:
        return _finite(summary.get(SUCCESS_RATE))
    if check.stat == CAPACITY:
        capacity = metrics.get(CAPACITY)
        return _finite(capacity.get("users")) if isinstance(capacity, Mapping) else None
    stats = (summary.get("phases") or {}).get(check.phase) or {}
    if not stats.get("count"):
        return None
    return _finite(stats.get(check.stat))


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def evaluate(checks: Iterable[Check], metrics: Mapping[str, Any]) -> list[CheckResult]:
    """Each check measured on a metrics.json document (its ``summary``, and ``capacity`` when present).

    A check on something the run has no data for (a phase without a
    successful sample, no iterations, no capacity search) fails with
    reason ``"no data"``.
    """
    results = []
    for check in checks:
        value = measured(check, metrics)
        if value is None:
            results.append(CheckResult(check.expr, check.phase, check.stat, check.op, check.threshold,
                                       None, False, NO_DATA))
            continue
        ok = check.holds(value)
        shown, limit = format_value(check.stat, value), format_value(check.stat, check.threshold)
        reason = f"{shown} {check.op} {limit}" if ok else f"{shown} is not {check.op} {limit}"
        results.append(CheckResult(check.expr, check.phase, check.stat, check.op, check.threshold,
                                   value, ok, reason))
    return results


def passed(results: Iterable[CheckResult]) -> bool:
    """Whether every check passed (True for no checks)."""
    return all(result.ok for result in results)


def format_value(stat: str, value: float | None) -> str:
    """A measured value or threshold with its unit: ``912.3 ms``, ``97.5 %``, ``20``; "–" when absent."""
    if stat == SUCCESS_RATE:
        return format_rate(value)
    if stat in ("count", CAPACITY):
        return format_count(value) if value is None or float(value).is_integer() else f"{value:g}"
    shown = format_ms(value)
    return shown if value is None else f"{shown} ms"


def text_table(results: Sequence[CheckResult]) -> str:
    """The console table: one line per check with its expression, measured value and pass/FAIL."""
    rows = [("Check", "Measured", "Result")] + [
        (result.expr, format_value(result.stat, result.value),
         "pass" if result.ok else ("FAIL (no data)" if result.reason == NO_DATA else "FAIL"))
        for result in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for index, (expr, value, verdict) in enumerate(rows):
        lines.append(f"{expr.ljust(widths[0])}  {value.rjust(widths[1])}  {verdict}".rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    failed = sum(not result.ok for result in results)
    lines.append(f"checks: {len(results) - failed} passed, {failed} failed")
    return "\n".join(lines)
