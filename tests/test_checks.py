"""--check expressions: parsing (every malformed form is one sentence), evaluation on real statistics, junit.xml."""

from __future__ import annotations

import io
import json
from contextlib import chdir, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import gevent
import pytest
from junitparser import Failure, JUnitXml

from bootbench.checks import (CHECK_FAILED_EXIT, NO_DATA, Check, CheckError, evaluate, exit_code, expressions,
                              parse_check, parse_checks, passed, split_env, text_table)
from bootbench.junit import write_junit
from bootbench.samples import PHASES, Sample
from bootbench.stats import summarize_samples
from bootbench.run import harness
from support.inprocess import environment, finish, headless_run, init, kept_signal_handlers, run_to_end
from support.processes import free_port, run_locust


def metrics_of(samples, **extra):
    return {"summary": summarize_samples(samples), **extra}


def ok_samples(values, phase="first_response_ms"):
    return [Sample(i, "local", 1, "t", True, **{phase: v}) for i, v in enumerate(values, 1)]


@pytest.mark.parametrize("expr, expected", [
    ("first_response_ms:p95<=800", Check("first_response_ms:p95<=800", "first_response_ms", "p95", "<=", 800.0)),
    ("  session_start_ms : median  <  120.5 ", Check("session_start_ms : median  <  120.5", "session_start_ms",
                                                      "median", "<", 120.5)),
    ("cold_start_ms:max >= 10ms", Check("cold_start_ms:max >= 10ms", "cold_start_ms", "max", ">=", 10.0)),
    ("connect_ms:count>19", Check("connect_ms:count>19", "connect_ms", "count", ">", 19.0)),
    ("success_rate>=95%", Check("success_rate>=95%", None, "success_rate", ">=", 0.95)),
    ("success_rate >= 0.95", Check("success_rate >= 0.95", None, "success_rate", ">=", 0.95)),
    ("success_rate > 99.5 %", Check("success_rate > 99.5 %", None, "success_rate", ">", 0.995)),
    ("capacity>=8", Check("capacity>=8", None, "capacity", ">=", 8.0)),
])
def test_valid_expressions_parse(expr, expected):
    assert parse_check(expr) == expected


def test_every_statistic_and_phase_is_accepted():
    for phase in PHASES:
        for stat in ("count", "mean", "median", "min", "max", "stdev", "p90", "p95", "p99"):
            check = parse_check(f"{phase}:{stat}<1")
            assert (check.phase, check.stat, check.op, check.threshold) == (phase, stat, "<", 1.0)


@pytest.mark.parametrize("expr, says", [
    ("", "is not a check"),
    ("first_response_ms:p95", "is not a check"),
    ("first_response_ms:p95 800", "is not a check"),
    ("first_response_ms:p95 == 800", "operator '=='"),
    ("first_response_ms:p95 = 800", "operator '='"),
    ("first_response_ms:p95 =< 800", "operator '=<'"),
    ("first_response_ms:p95 !=800", "operator '!='"),
    ("first_response_ms:p95 <=", "no value"),
    ("first_response_ms:p97<=800", "unknown statistic 'p97'"),
    ("first_response:p95<=800", "unknown phase 'first_response'"),
    ("first_response_ms<=800", "phase without a statistic"),
    ("latency<=800", "unknown quantity 'latency'"),
    ("first_response_ms:p95<=fast", "'fast'"),
    ("first_response_ms:p95<=-5", "'-5'"),
    ("first_response_ms:p95<=800%", "'800%'"),
    ("first_response_ms:p95<=800 s", "'800 s'"),
    ("connect_ms:count>=3ms", "'3ms'"),
    ("success_rate>=95", "fraction from 0 to 1"),
    ("success_rate>=101%", "fraction from 0 to 1"),
    ("success_rate>=0.9ms", "'0.9ms'"),
    ("capacity>=8%", "'8%'"),
    ("first_response_ms:p95<=800<=900", "'800<=900'"),
])
def test_malformed_expressions_say_one_sentence(expr, says):
    with pytest.raises(CheckError) as caught:
        parse_check(expr)
    message = str(caught.value)
    assert says in message
    assert message.startswith("--check ") and message.endswith(".") and "\n" not in message
    # One sentence: no full stop followed by another sentence.
    assert ". " not in message.replace("e.g. ", "")


def test_phases_are_a_parameter_for_later_phases():
    assert parse_check("future_phase_ms:p90<300", PHASES + ("future_phase_ms",)).phase == "future_phase_ms"
    with pytest.raises(CheckError, match="unknown phase 'future_phase_ms'"):
        parse_check("future_phase_ms:p90<300")


def test_split_env_takes_several_checks_separated_by_semicolons():
    assert split_env(" first_response_ms:p95<=800 ;success_rate>=95%;; ") == [
        "first_response_ms:p95<=800", "success_rate>=95%"]
    assert split_env("") == [] and split_env(None) == []
    with pytest.raises(CheckError, match="unknown statistic 'p42'"):
        parse_checks(split_env("success_rate>=95%;stop_ms:p42<5"))


def test_expressions_flatten_repeated_options_and_environment_values():
    # Locust gives a repeated --check as a list, and LOCUST_CHECK="a;b" as one item.
    assert expressions(["first_response_ms:p95<=800", "success_rate>=95%; stop_ms:p99<50"]) == [
        "first_response_ms:p95<=800", "success_rate>=95%", "stop_ms:p99<50"]
    assert expressions("success_rate>=95%;capacity>=2") == ["success_rate>=95%", "capacity>=2"]
    assert expressions(None) == [] and expressions([]) == []


def test_exit_codes_follow_the_table():
    metrics = metrics_of(ok_samples([100.0, 200.0]))
    good, bad = evaluate([parse_check("first_response_ms:max<=250")], metrics), \
        evaluate([parse_check("first_response_ms:max<=150")], metrics)
    assert exit_code(good, completed=True, failed_iterations=3) == 0  # checks decide, not failed iterations
    assert exit_code(good + bad, completed=True, failed_iterations=0) == CHECK_FAILED_EXIT == 3
    assert exit_code(bad, completed=False, failed_iterations=0) == 1
    assert exit_code(good, completed=False, failed_iterations=0) == 1
    assert exit_code(None, completed=True, failed_iterations=0) == 0
    assert exit_code([], completed=True, failed_iterations=1) == 1
    assert exit_code(None, completed=False, failed_iterations=0) == 1


def test_evaluation_on_exact_statistics_passes_and_fails_with_the_measured_value():
    values = [100.0 + i for i in range(100)]  # p95 = 194.05, median 149.5
    bad = Sample(101, "local", 1, "t", False, "audio_timeout", "no audio")
    metrics = metrics_of(ok_samples(values) + [bad])
    results = evaluate(parse_checks(["first_response_ms:p95<=200", "first_response_ms:p95 < 194",
                                     "first_response_ms:median>=149.5", "success_rate>=99%",
                                     "success_rate>=0.995", "first_response_ms:count>=100"]), metrics)
    assert [r.ok for r in results] == [True, False, True, True, False, True]
    assert results[0].value == pytest.approx(194.05)
    assert results[1].reason == "194.1 ms is not < 194.0 ms"
    assert results[3].value == pytest.approx(100 / 101) and results[3].threshold == 0.99
    assert results[4].reason == "99.0 % is not >= 99.5 %"
    assert not passed(results) and passed(results[:1]) and passed([])
    assert set(results[0].to_dict()) == {"expr", "phase", "stat", "op", "threshold", "value", "ok", "reason"}
    json.dumps([r.to_dict() for r in results])


def test_a_check_without_data_fails_with_no_data():
    metrics = metrics_of([Sample(1, "local", 1, "t", False, "connect_failed", "refused")])
    results = evaluate(parse_checks(["first_response_ms:p95<=800", "first_response_ms:count<5",
                                     "capacity>=1", "success_rate>=0%"]), metrics)
    assert [(r.ok, r.reason) for r in results[:3]] == [(False, NO_DATA)] * 3
    assert results[0].value is None and results[2].value is None
    assert results[3].ok and results[3].value == 0.0
    empty = evaluate(parse_checks(["success_rate>=0%"]), metrics_of([]))
    assert (empty[0].ok, empty[0].reason) == (False, NO_DATA)
    # A phase some iterations never reach (stop_ms without acks) is no data even though others have samples.
    only_first = metrics_of(ok_samples([120.0, 130.0]))
    assert evaluate([parse_check("stop_ms:max<10")], only_first)[0].reason == NO_DATA


def test_capacity_is_evaluated_when_the_run_recorded_it():
    metrics = metrics_of(ok_samples([100.0]), capacity={"users": 12})
    results = evaluate(parse_checks(["capacity>=8", "capacity > 12"]), metrics)
    assert [(r.ok, r.value) for r in results] == [(True, 12.0), (False, 12.0)]
    assert results[1].reason == "12 is not > 12"


def test_console_table_lists_expression_value_and_verdict():
    metrics = metrics_of(ok_samples([100.0, 200.0, 300.0]))
    table = text_table(evaluate(parse_checks(["first_response_ms:median<=250", "first_response_ms:p95<=250",
                                              "stop_ms:p95<=250", "success_rate>=95%"]), metrics))
    lines = table.splitlines()
    assert lines[0].split() == ["Check", "Measured", "Result"]
    assert lines[2].split() == ["first_response_ms:median<=250", "200.0", "ms", "pass"]
    assert lines[3].split() == ["first_response_ms:p95<=250", "290.0", "ms", "FAIL"]
    assert lines[4].split() == ["stop_ms:p95<=250", "–", "FAIL", "(no", "data)"]
    assert lines[5].split() == ["success_rate>=95%", "100.0", "%", "pass"]
    assert lines[6] == "checks: 2 passed, 2 failed"


def test_junit_xml_reads_back_with_one_case_per_check_and_the_failures(tmp_path):
    metrics = metrics_of(ok_samples([100.0, 200.0, 300.0]))
    results = evaluate(parse_checks(["first_response_ms:median<=250", "first_response_ms:p95<=250",
                                     "stop_ms:p95<=250", "success_rate>=95%"]), metrics)
    path = write_junit(tmp_path, results, run_id="20261125-103711-aivoco")
    assert path == tmp_path / "junit.xml"
    document = JUnitXml.fromfile(str(path))
    suites = list(document)
    assert len(suites) == 1 and suites[0].name == "bootbench"
    suite = suites[0]
    assert (suite.tests, suite.failures, suite.errors) == (4, 2, 0)
    cases = {case.name: case for case in suite}
    assert list(cases) == [r.expr for r in results]
    assert cases["first_response_ms:median<=250"].is_passed
    assert cases["success_rate>=95%"].is_passed
    assert all(case.classname == "bootbench.20261125-103711-aivoco" for case in suite)
    (failure,) = cases["first_response_ms:p95<=250"].result
    assert isinstance(failure, Failure)
    assert failure.message == "first_response_ms:p95 measured 290.0 ms, expected <= 250.0 ms."
    assert "measured: 290.0 ms" in failure.text and "threshold: <= 250.0 ms" in failure.text
    (no_data,) = cases["stop_ms:p95<=250"].result
    assert no_data.type == "no data" and "has no data" in no_data.message


def test_checks_on_a_real_run_against_the_reference_server(passing_run, tmp_path):
    """Checks evaluated on the metrics.json of a real run: a fixed 200 ms first audio passes <=400 and fails <=150."""
    metrics = json.loads((passing_run.folder / "metrics.json").read_text())
    assert metrics["run"]["aborted"] is None and metrics["run"]["iterations"]["complete"]
    results = evaluate(parse_checks(["first_response_ms:p95<=400", "first_response_ms:min>=150",
                                     "first_response_ms:p95<=150", "success_rate>=100%",
                                     "session_start_ms:median<200", "first_response_ms:count>=5"]), metrics)
    assert [r.ok for r in results] == [True, True, False, True, True, True], text_table(results)
    assert 200 <= results[0].value <= 400
    path = write_junit(tmp_path, results, run_id=metrics["run"]["id"])
    suite = next(iter(JUnitXml.fromfile(str(path))))
    assert (suite.tests, suite.failures) == (6, 1)


# ---------------------------------------------------------------- real runs: options, exit codes, files


def sentences(stderr: str) -> list[str]:
    """bootbench's sentences on stderr (Locust's own log lines left out)."""
    return [line for line in stderr.splitlines() if line.startswith("bootbench:")]


@pytest.fixture
def fixed_server(shared_reference_server):
    """A reference server whose first audio comes 200 ms after the input and sessions start in 20 ms."""
    return shared_reference_server(setup_delay="20", first_audio_delay="200", cold_penalty=0, reply_ms=100)


@dataclass
class InProcessRun:
    """A run on a LocalRunner in this process, as the tests below read a Locust process: exit code, console, folder."""

    returncode: int
    stdout: str
    folder: Path
    metrics: dict


@pytest.fixture(scope="module")
def passing_run(shared_reference_server, tmp_path_factory):
    """Checks from a config file that all hold: exit 0 (in this process, started in the config file's folder)."""
    server = shared_reference_server(setup_delay="20", first_audio_delay="200", cold_penalty=0, reply_ms=100)
    cwd = tmp_path_factory.mktemp("passing")
    (cwd / "smoke.conf").write_text("check = [first_response_ms:p95 <= 400, success_rate>=95%]\n")
    done = headless_run("--config", str(cwd / "smoke.conf"), "-i", "5", "--wait-ms", "20", host=server.url,
                        results_dir=cwd / "results", cwd=cwd)
    return InProcessRun(done.exit_code, done.stdout, done.folder, done.metrics)


FAILING = ("success_rate>=0%", "success_rate>=95%", "first_response_ms:p95<=800", "session_start_ms:median<1000")
"""On a run without a successful iteration: one holds, one fails on its value, two have no data (timings are over
successful iterations only)."""


@pytest.fixture(scope="module")
def failing_run(shared_reference_server, tmp_path_factory):
    """Checks from LOCUST_CHECK on a run whose first audio always comes after --timeout: exit 3, not 1 (a real
    Locust process: the exit code is the behaviour)."""
    fixed_server = shared_reference_server(setup_delay="20", first_audio_delay="200", cold_penalty=0, reply_ms=100)
    cwd = tmp_path_factory.mktemp("failing")
    return run_locust("-u", "1", "-i", "4", "--wait-ms", "20", "--timeout", "0.1", "-H", fixed_server.url,
                      "--results-dir", str(cwd / "results"), cwd=cwd, env={"LOCUST_CHECK": " ; ".join(FAILING)})


def test_passing_checks_exit_0_with_the_table_before_the_folder(passing_run):
    assert passing_run.returncode == 0, passing_run.stdout[-2000:]
    lines = passing_run.stdout.strip().splitlines()
    assert lines[-2] == "checks: 2 passed, 0 failed"
    assert lines[-6].split() == ["Check", "Measured", "Result"]
    assert lines[-3].split() == ["success_rate>=95%", "100.0", "%", "pass"]
    words = lines[-4].split()
    assert words[0] == "first_response_ms:p95" and words[-1] == "pass"
    metrics = passing_run.metrics
    (p95, rate) = metrics["checks"]
    assert p95["expr"] == "first_response_ms:p95 <= 400" and p95["ok"]
    assert p95["value"] == metrics["summary"]["phases"]["first_response_ms"]["p95"]
    assert 200 <= p95["value"] <= 400
    assert rate == {"expr": "success_rate>=95%", "phase": None, "stat": "success_rate", "op": ">=",
                    "threshold": 0.95, "value": 1.0, "ok": True, "reason": "100.0 % >= 95.0 %"}
    suite = next(iter(JUnitXml.fromfile(str(passing_run.folder / "junit.xml"))))
    assert (suite.tests, suite.failures, suite.errors) == (3, 0, 0)  # the two checks and "run completed"
    assert {case.name: case.is_passed for case in suite}["run completed"]
    assert "checks" not in metrics["run"]


def test_failing_checks_exit_3_with_measured_values_no_data_and_junit_failures(failing_run):
    assert failing_run.returncode == 3, failing_run.stderr[-2000:]
    metrics = failing_run.metrics
    assert metrics["summary"]["failures"] == 4 and metrics["summary"]["successes"] == 0
    results = metrics["checks"]
    assert [r["expr"] for r in results] == list(FAILING)
    assert [r["ok"] for r in results] == [True, False, False, False]
    assert (results[0]["value"], results[0]["reason"]) == (0.0, "0.0 % >= 0.0 %")
    assert (results[1]["value"], results[1]["reason"]) == (0.0, "0.0 % is not >= 95.0 %")
    assert [(r["value"], r["reason"]) for r in results[2:]] == [(None, NO_DATA)] * 2
    lines = failing_run.stdout.strip().splitlines()
    assert lines[-1] == str(failing_run.folder) and lines[-2] == "checks: 1 passed, 3 failed"
    assert lines[-4].split() == ["first_response_ms:p95<=800", "–", "FAIL", "(no", "data)"]
    suite = next(iter(JUnitXml.fromfile(str(failing_run.folder / "junit.xml"))))
    assert (suite.tests, suite.failures) == (5, 3)  # the four checks and "run completed" (passed: 4 of 4 finished)
    cases = {case.name: case for case in suite}
    assert cases["run completed"].is_passed
    assert cases["success_rate>=0%"].is_passed
    (rate,) = cases["success_rate>=95%"].result
    assert rate.message == "success_rate measured 0.0 %, expected >= 95.0 %." and rate.type == "threshold"
    (no_data,) = cases["first_response_ms:p95<=800"].result
    assert no_data.type == "no data"
    assert no_data.message == "first_response_ms:p95 has no data, expected <= 800.0 ms."


def test_report_html_shows_the_checks(passing_run, failing_run):
    html = (failing_run.folder / "report.html").read_text()
    assert '<section id="checks">' in html and "1 passed, 3 failed" in html
    assert 'id="check-2" class="check-fail"' in html and "success_rate&gt;=95%" in html
    assert "FAIL (no data)" in html and "&gt;= 95.0 %" in html and "&lt;= 800.0 ms" in html
    assert 'id="check-1" class="check-pass"' in (passing_run.folder / "report.html").read_text()


def test_without_checks_a_failed_iteration_still_exits_1_and_no_junit(fixed_server, tmp_path):
    run = run_locust("-u", "1", "-i", "2", "--wait-ms", "20", "--timeout", "0.1", "-H", fixed_server.url,
                     "--results-dir", str(tmp_path / "results"), cwd=tmp_path)
    assert run.returncode == 1, run.stderr[-2000:]
    assert run.metrics["checks"] == [] and not (run.folder / "junit.xml").exists()
    assert "checks:" not in run.stdout


@pytest.mark.parametrize("how, says", [
    ("cli", "bootbench: --check 'first_response_ms:p97<=800' names the unknown statistic 'p97'; use one of "),
    ("env", "bootbench: --check 'latency<5' checks the unknown quantity 'latency'; "),
    ("conf", "bootbench: --check 'first_response_ms:p95 == 800' uses the operator '=='; use one of <, <=, > or >=."),
])
def test_a_malformed_check_from_any_source_is_one_sentence_exit_2_and_nothing_starts(refusals, tmp_path, how, says):
    args, env = [], {}
    if how == "cli":
        args = ["--check", "success_rate>=95%", "--check", "first_response_ms:p97<=800"]
    elif how == "env":
        env = {"LOCUST_CHECK": "success_rate>=95%;latency<5"}
    else:
        (tmp_path / "bad.conf").write_text("check = first_response_ms:p95 == 800\n")
        args = ["--config", "bad.conf"]
    # in-process (tests/support/refusals.py); the real command's exit code 2: tests/test_bad_input.py
    line = refusals.line("--headless", *args, "-u", "1", "-i", "1", "--results-dir", "results", env=env)
    assert line.startswith(says)
    assert not (tmp_path / "results").exists()


def test_checks_in_master_worker_mode_are_evaluated_once_on_the_master(fixed_server, tmp_path):
    """A master and one worker in this process: one verdict, exit code 3, files written by the master only."""
    port = free_port()
    stdout = io.StringIO()
    with kept_signal_handlers(), redirect_stdout(stdout), chdir(tmp_path):
        master = environment("-u", "2", "-i", "6", "--wait-ms", "20", "--expect-workers", "1",
                             "--check", "first_response_ms:p95<=1", "--check", "success_rate>=95%",
                             host=fixed_server.url, results_dir=tmp_path / "r")
        master.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
        init(master)
        worker = environment(host=fixed_server.url)
        worker.create_worker_runner("127.0.0.1", port)
        init(worker)
        try:
            with gevent.Timeout(20):
                while len(master.runner.clients.ready) < 1:
                    gevent.sleep(0.05)
            run_to_end(master, users=2)
        finally:
            worker.runner.quit()
            finish(worker)
    assert master.process_exit_code == 3, stdout.getvalue()
    assert harness.of(worker).last is None, "the worker owns no run"
    assert [p.name for p in tmp_path.iterdir()] == ["r"], "nothing written outside the master's results"
    (folder,) = (tmp_path / "r").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["run"]["mode"] == "master" and metrics["summary"]["successes"] == 6
    assert {s["worker"] for s in metrics["samples"]} == {worker.runner.client_id}
    p95, rate = metrics["checks"]
    assert not p95["ok"] and p95["value"] == metrics["summary"]["phases"]["first_response_ms"]["p95"] > 1
    assert rate["ok"] and rate["value"] == 1.0
    suite = next(iter(JUnitXml.fromfile(str(folder / "junit.xml"))))
    assert (suite.tests, suite.failures) == (3, 1)  # the two checks and "run completed", which passed
    assert {case.name: case.is_passed for case in suite}["run completed"]
    assert stdout.getvalue().count("checks: 1 passed, 1 failed") == 1, "the checks are evaluated and shown once"
    assert stdout.getvalue().count("checks:") == 1


@pytest.mark.parametrize("plan, samples, reason", [
    (["-i", "6"], "three of six", "3 of 6 planned iterations finished"),
    (["-i", "6"], "refused", "stopped early: "),
])
def test_an_incomplete_or_early_stopped_run_has_a_failing_junit_case(tmp_path, plan, samples, reason):
    """Issue 20 item 14: a run that did not finish what it planned fails in junit.xml too (a CI tab shows red),
    though every check passed on the iterations it has."""
    from support.folders import failures, record_run, timings

    given = timings(3) if samples == "three of six" else failures(6, "connect_failed", "connection refused")
    folder = record_run(tmp_path, *plan, "--check", "success_rate>=0%", samples=given, report=False)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert [check["ok"] for check in metrics["checks"]] == [True]
    suite = next(iter(JUnitXml.fromfile(str(folder / "junit.xml"))))
    assert (suite.tests, suite.failures, suite.errors) == (2, 1, 0)
    cases = {case.name: case for case in suite}
    assert cases["success_rate>=0%"].is_passed
    (failure,) = cases["run completed"].result
    assert isinstance(failure, Failure) and failure.type == "incomplete"
    assert failure.message.startswith(f"The run did not complete: {reason}"), failure.message


def test_a_complete_run_passes_its_junit_completeness_case(tmp_path):
    from support.folders import record_run, timings

    folder = record_run(tmp_path, "-i", "3", "--check", "first_response_ms:count>=3", samples=timings(3), report=False)
    suite = next(iter(JUnitXml.fromfile(str(folder / "junit.xml"))))
    assert (suite.tests, suite.failures) == (2, 0)
    assert {case.name: case.is_passed for case in suite} == {"first_response_ms:count>=3": True, "run completed": True}
