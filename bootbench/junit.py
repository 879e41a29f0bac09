"""junit.xml: a run's checks as JUnit test results, so GitHub, GitLab and Jenkins list them.

One test suite named ``bootbench`` per run, one test case per check (named
by its expression, class ``bootbench.<run id>``); a failed check carries a
``<failure>`` whose message holds the measured value and the threshold.
Given the run block, one more case, ``run completed``, fails when the run
was interrupted, lost iterations or stopped early (it exits with 1 then,
whatever the checks say: a CI test tab must not show green).
Written with junitparser.

    write_junit(run_folder, evaluate(checks, metrics), run_id="20261125-103711-aivoco", run=metrics["run"])
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from junitparser import Failure, JUnitXml, TestCase, TestSuite

from bootbench.checks import NO_DATA, CheckResult, format_value, incomplete_reason

FILENAME = "junit.xml"
COMPLETED = "run completed"
"""The name of the test case that fails for an incomplete run."""


def junit_suite(results: Sequence[CheckResult], run_id: str, run: Mapping[str, Any] | None = None) -> TestSuite:
    """The checks of one run as a JUnit test suite (one test case per check; with ``run``, :data:`COMPLETED` too)."""
    suite = TestSuite("bootbench")
    suite.timestamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    suite.add_property("run", run_id)
    for result in results:
        case = TestCase(result.expr, classname=f"bootbench.{run_id}", time=0.0)
        if not result.ok:
            failure = Failure(failure_message(result), type_="no data" if result.reason == NO_DATA else "threshold")
            failure.text = (f"check: {result.expr}\nmeasured: {format_value(result.stat, result.value)}\n"
                            f"threshold: {result.op} {format_value(result.stat, result.threshold)}\n")
            case.result = [failure]
        case.system_out = f"measured {format_value(result.stat, result.value)}; {result.reason}"
        suite.add_testcase(case)
    if run is not None:
        suite.add_testcase(completion_case(run, run_id))
    suite.update_statistics()
    return suite


def completion_case(run: Mapping[str, Any], run_id: str) -> TestCase:
    """The :data:`COMPLETED` test case of a run block: a failure naming why when the run is incomplete."""
    case = TestCase(COMPLETED, classname=f"bootbench.{run_id}", time=0.0)
    reason = incomplete_reason(run)
    if reason:
        failure = Failure(f"The run did not complete: {reason}.", type_="incomplete")
        failure.text = (f"reason: {reason}\ninterrupted: {run.get('interrupted')}\naborted: {run.get('aborted')}\n"
                        f"iterations: {run.get('iterations')}\n")
        case.result = [failure]
    case.system_out = f"incomplete: {reason}" if reason else "every planned iteration finished"
    return case


def failure_message(result: CheckResult) -> str:
    """One sentence for a failed check: ``first_response_ms:p95 measured 912.3 ms, expected <= 800.0 ms.``"""
    subject = f"{result.phase}:{result.stat}" if result.phase else result.stat
    expected = f"expected {result.op} {format_value(result.stat, result.threshold)}"
    if result.value is None:
        return f"{subject} has no data, {expected}."
    return f"{subject} measured {format_value(result.stat, result.value)}, {expected}."


def write_junit(folder: str | Path, results: Sequence[CheckResult], run_id: str,
                run: Mapping[str, Any] | None = None) -> Path:
    """Write ``junit.xml`` with the checks (and, given the run block, :data:`COMPLETED`) into a run folder."""
    path = Path(folder) / FILENAME
    document = JUnitXml("bootbench")
    document.add_testsuite(junit_suite(results, run_id, run))
    document.update_statistics()
    document.write(str(path), pretty=True)
    return path
