"""The ready-made CI files in examples/ci/: valid for GitHub and GitLab, with checks bootbench accepts, scripts that work.

The schemas are check-jsonschema's vendored copies (no network); the shell
scripts of the smoke step run here with a recording ``locust`` first on PATH,
to show which arguments and which key the real one would get and that its
exit code and run folder come through, and with the real ``locust`` against
the embedded reference server (the path a CI without a service takes).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from junitparser import JUnitXml

from bootbench.checks import parse_check
from support.processes import LOCUSTFILE, ROOT, clean_env

EXAMPLES = ROOT / "examples" / "ci"
GITHUB = EXAMPLES / "github-actions.yml"
GITLAB = EXAMPLES / "gitlab-ci.yml"
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
OFFLINE = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
"""Any network access by the validator fails: the built-in schemas must be enough."""


def validate(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **OFFLINE})


@pytest.mark.parametrize("path, schema", [(GITHUB, "vendor.github-workflows"), (GITLAB, "vendor.gitlab-ci")])
def test_examples_validate_against_the_builtin_schemas(path, schema):
    result = validate(path, schema)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validation_catches_a_broken_workflow(tmp_path):
    workflow = yaml.safe_load(GITHUB.read_text())
    del workflow["jobs"]["smoke"]["runs-on"]
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(workflow))
    assert validate(broken, "vendor.github-workflows").returncode == 1
    pipeline = yaml.safe_load(GITLAB.read_text())
    pipeline["bootbench-smoke"]["artifacts"]["when"] = "sometimes"
    broken.write_text(yaml.safe_dump(pipeline))
    assert validate(broken, "vendor.gitlab-ci").returncode == 1


def github_smoke_step() -> dict:
    steps = yaml.safe_load(GITHUB.read_text())["jobs"]["smoke"]["steps"]
    return next(step for step in steps if step.get("id") == "smoke")


def gitlab_smoke_script() -> str:
    return yaml.safe_load(GITLAB.read_text())["bootbench-smoke"]["script"][-1]


def test_both_examples_run_the_same_smoke_run_with_checks_bootbench_accepts():
    for script in (github_smoke_step()["run"], gitlab_smoke_script()):
        checks = re.findall(r"--check '([^']+)'", script)
        assert checks == ["first_response_ms:p95<=800", "success_rate>=95%"]
        for expr in checks:
            parse_check(expr)
        words = shlex.split(script.replace("\\\n", " "), comments=True)
        assert words[words.index("-i") + 1] == "20" and words[words.index("--results-dir") + 1] == "results"
    steps = yaml.safe_load(GITHUB.read_text())["jobs"]["smoke"]["steps"]
    assert any(step.get("run") == "python -m pip install ." for step in steps)
    assert yaml.safe_load(GITLAB.read_text())["bootbench-smoke"]["script"][0] == "python -m pip install ."
    # Secrets come from the CI's secret store, never from the file.
    assert github_smoke_step()["env"] == {"BOOTBENCH_HOST": "${{ secrets.BOOTBENCH_HOST }}",
                                          "AIVOCO_API_KEY": "${{ secrets.AIVOCO_API_KEY }}"}


def test_github_publishes_the_printed_run_folder_and_its_junit_xml():
    steps = yaml.safe_load(GITHUB.read_text())["jobs"]["smoke"]["steps"]
    upload = next(step for step in steps if str(step.get("uses", "")).startswith("actions/upload-artifact@"))
    report = next(step for step in steps if str(step.get("uses", "")).startswith("mikepenz/action-junit-report@"))
    assert upload["with"]["path"] == "${{ steps.smoke.outputs.folder }}"
    assert report["with"]["report_paths"] == "${{ steps.smoke.outputs.folder }}/junit.xml"
    assert upload["if"].startswith("always()") and report["if"].startswith("always()")


def test_gitlab_keeps_the_results_and_reports_junit_even_when_the_job_fails():
    artifacts = yaml.safe_load(GITLAB.read_text())["bootbench-smoke"]["artifacts"]
    assert artifacts["when"] == "always"
    assert artifacts["paths"] == ["results/"] and artifacts["reports"]["junit"] == "results/*/junit.xml"


RECORDING_LOCUST = """#!/bin/sh
# Stands in for locust: records its arguments and whether it got a key, makes a run folder, prints it last.
printf '%s\\n' "$@" > "$RECORD/argv"
printf '%s' "${AIVOCO_API_KEY-<unset>}" > "$RECORD/key"
mkdir -p results/20261125-103711-aivoco
echo "bootbench: summary"
echo "results/20261125-103711-aivoco"
exit "$EXIT_CODE"
"""


REPLAYING_LOCUST = """#!/bin/sh
# Stands in for locust: records its arguments and whether it got a key, prints what a real run printed.
printf '%s\\n' "$@" > "$RECORD/argv"
printf '%s' "${AIVOCO_API_KEY-<unset>}" > "$RECORD/key"
cat "$REPLAY"
exit "$EXIT_CODE"
"""


def run_script(shell: list[str], script: str, tmp_path: Path, env: dict[str, str],
               fake_locust: str = RECORDING_LOCUST) -> subprocess.CompletedProcess:
    bin_dir, record = tmp_path / "bin", tmp_path / "record"
    bin_dir.mkdir(exist_ok=True)
    record.mkdir(exist_ok=True)
    fake = bin_dir / "locust"
    fake.write_text(fake_locust)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    base = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "RECORD": str(record)}
    return subprocess.run([*shell, script], cwd=work, env={**base, **env}, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("exit_code", [0, 3])
def test_github_script_with_a_host_passes_it_and_the_key_and_keeps_the_exit_code(tmp_path, exit_code):
    output = tmp_path / "github_output"
    result = run_script(["bash", "-e", "-c"], github_smoke_step()["run"], tmp_path, {
        "BOOTBENCH_HOST": "wss://sts.example.test", "AIVOCO_API_KEY": "k-123", "EXIT_CODE": str(exit_code),
        "GITHUB_OUTPUT": str(output)})
    assert result.returncode == exit_code, result.stderr
    argv = (tmp_path / "record" / "argv").read_text().split("\n")
    assert argv[argv.index("-H") + 1] == "wss://sts.example.test"
    assert (tmp_path / "record" / "key").read_text() == "k-123"
    assert output.read_text() == "folder=results/20261125-103711-aivoco\n"
    assert result.stdout.splitlines()[-1] == "results/20261125-103711-aivoco"


def test_github_script_without_a_host_measures_the_embedded_server_without_the_key(tmp_path):
    output = tmp_path / "github_output"
    result = run_script(["bash", "-e", "-c"], github_smoke_step()["run"], tmp_path, {
        "BOOTBENCH_HOST": "", "AIVOCO_API_KEY": "k-123", "EXIT_CODE": "0", "GITHUB_OUTPUT": str(output)})
    assert result.returncode == 0, result.stderr
    assert "-H" not in (tmp_path / "record" / "argv").read_text().split("\n")
    assert (tmp_path / "record" / "key").read_text() == "<unset>"


@pytest.mark.parametrize("shell", [["sh", "-e", "-c"], ["bash", "-e", "-o", "pipefail", "-c"]])
@pytest.mark.parametrize("host, exit_code", [("wss://sts.example.test", 3), ("", 0), (None, 1)])
def test_gitlab_script_in_posix_sh_and_bash(tmp_path, shell, host, exit_code):
    env = {"AIVOCO_API_KEY": "k-123", "EXIT_CODE": str(exit_code)}
    if host is not None:
        env["BOOTBENCH_HOST"] = host
    result = run_script(shell, gitlab_smoke_script(), tmp_path, env)
    assert result.returncode == exit_code, result.stderr
    argv = (tmp_path / "record" / "argv").read_text().split("\n")
    assert argv[:6] == ["--headless", "-u", "1", "-i", "20", "--results-dir"]
    assert argv.count("--check") == 2
    if host:
        assert argv[argv.index("-H") + 1] == host and (tmp_path / "record" / "key").read_text() == "k-123"
    else:
        assert "-H" not in argv and (tmp_path / "record" / "key").read_text() == "<unset>"
    assert "bootbench run folder: results/20261125-103711-aivoco" in result.stdout


@pytest.fixture(scope="module")
def real_smoke(tmp_path_factory):
    """The GitHub smoke step run for real (bash, the real locust, no host, a key in the environment): its result,
    its work folder and its GITHUB_OUTPUT file. The GitLab script runs the same locust command (see below)."""
    tmp_path = tmp_path_factory.mktemp("smoke")
    work, output = tmp_path / "work", tmp_path / "github_output"
    work.mkdir()
    env = clean_env({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                     "LOCUST_LOCUSTFILE": str(LOCUSTFILE), "AIVOCO_API_KEY": "k-123", "BOOTBENCH_HOST": "",
                     "GITHUB_OUTPUT": str(output)})
    result = subprocess.run(["bash", "-e", "-c", github_smoke_step()["run"]], cwd=work, env=env, capture_output=True,
                            text=True, timeout=180)
    return result, work, output


@pytest.mark.slow
def test_the_smoke_script_with_the_real_locust_passes_its_checks_on_the_embedded_server(real_smoke):
    """No host configured and a key in the environment: the script drops the key, the run measures the embedded
    server (not the public endpoint the key would pick), passes both checks and leaves junit.xml in its folder."""
    result, work, output = real_smoke
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    (folder,) = (work / "results").iterdir()
    assert output.read_text() == f"folder=results/{folder.name}\n"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["run"]["embedded_server"] is True and metrics["summary"]["successes"] == 20
    assert [check["ok"] for check in metrics["checks"]] == [True, True]
    suite = next(iter(JUnitXml.fromfile(str(folder / "junit.xml"))))
    assert (suite.tests, suite.failures, suite.errors) == (3, 0, 0)  # the two checks and "run completed"


@pytest.mark.slow
def test_the_gitlab_script_runs_the_same_locust_command_and_prints_the_real_run_folder(real_smoke, tmp_path):
    """Without a host, both scripts start locust with the same arguments and without the key, so the real run
    above stands for both; the GitLab script, given that run's real output, names its folder."""
    result, work, _ = real_smoke
    (folder,) = (work / "results").iterdir()
    replay = tmp_path / "replay"
    replay.write_text(result.stdout)
    seen = {}
    for example, shell, script in (("github", ["bash", "-e", "-c"], github_smoke_step()["run"]),
                                   ("gitlab", ["sh", "-e", "-c"], gitlab_smoke_script())):
        done = run_script(shell, script, tmp_path, {
            "BOOTBENCH_HOST": "", "AIVOCO_API_KEY": "k-123", "EXIT_CODE": "0", "REPLAY": str(replay),
            "GITHUB_OUTPUT": str(tmp_path / "github_output")}, fake_locust=REPLAYING_LOCUST)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "record" / "key").read_text() == "<unset>"
        seen[example] = ((tmp_path / "record" / "argv").read_text(), done.stdout)
    assert seen["github"][0] == seen["gitlab"][0]
    assert f"bootbench run folder: results/{folder.name}" in seen["gitlab"][1]
