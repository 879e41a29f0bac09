"""junit.xml: a run's checks as JUnit test results, so GitHub, GitLab and Jenkins list them.

One test suite named ``bootbench`` per run, one test case per check (named
by its expression, class ``bootbench.<run id>``); a failed check carries a
``<failure>`` whose message holds the measured value and the threshold.
Written with junitparser.

    write_junit(run_folder, evaluate(checks, metrics), run_id="20261125-103711-aivoco")
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from junitparser import Failure, JUnitXml, TestCase, TestSuite

from bootbench.checks import NO_DATA, CheckResult, format_value

FILENAME = "junit.xml"


def junit_suite(results: Sequence[CheckResult], run_id: str) -> TestSuite:
    """The checks of one run as a JUnit test suite (one test case per check)."""
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
    suite.update_statistics()
    return suite


def failure_message(result: CheckResult) -> str:
    """One sentence for a failed check: ``first_response_ms:p95 measured 912.3 ms, expected <= 800.0 ms.``"""
    subject = f"{result.phase}:{result.stat}" if result.phase else result.stat
    expected = f"expected {result.op} {format_value(result.stat, result.threshold)}"
    if result.value is None:
        return f"{subject} has no data, {expected}."
    return f"{subject} measured {format_value(result.stat, result.value)}, {expected}."


def write_junit(folder: str | Path, results: Sequence[CheckResult], run_id: str) -> Path:
    """Write ``junit.xml`` with the checks into a run folder; returns its path."""
    path = Path(folder) / FILENAME
    document = JUnitXml("bootbench")
    document.add_testsuite(junit_suite(results, run_id))
    document.update_statistics()
    document.write(str(path), pretty=True)
    return path
