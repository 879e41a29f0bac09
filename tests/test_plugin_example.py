"""examples/provider-plugin: a provider from an installed package, with no edit to bootbench.

One test walks a plugin's life on a machine: the example is installed (offline: no dependencies, no build
isolation) into a fresh venv layered on the test run's own (tests/support/plugins.py ``layered_venv``, so the
test run's venv never sees it), its own tests pass (bootbench.testing), ``bootbench providers`` names its package,
real ``locust --headless`` runs with ``--provider toyvoice`` succeed against the embedded server and match a
reference server's ground truth; then it is uninstalled, and a run naming it fails in one sentence with exit 2
before anything starts.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bootbench import providers
from support.ground_truth import ground_truth_run
from support.plugins import layered_venv
from support.processes import ROOT, clean_env, run_locust

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

EXAMPLE = ROOT / "examples" / "provider-plugin"
PACKAGE = "bootbench-toyvoice"
SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0


def run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_the_example_plugin_installs_runs_a_real_benchmark_and_uninstalls(reference_server, tmp_path):
    python = layered_venv(tmp_path / "venv")
    source = shutil.copytree(EXAMPLE, tmp_path / "provider-plugin")  # pip builds in the source folder: a copy
    installed = run(python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-input", "-q",
                    str(source), cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-3000:]
    try:
        listed = run(python, "-m", "bootbench.views.cli", "providers", "toyvoice", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert (f"  from:             the package {PACKAGE} (entry point toyvoice = toyvoice.driver:ToyVoiceDriver)"
                in listed.stdout.splitlines())
        assert "  reference server: emulates it" in listed.stdout.splitlines()

        own_tests = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=source)
        assert own_tests.returncode == 0, own_tests.stdout[-3000:]
        assert " passed" in own_tests.stdout.splitlines()[-1] and "skipped" not in own_tests.stdout.splitlines()[-1]

        embedded = run_locust("-u", "1", "-i", "3", "--provider", "toyvoice", "--provider-option", "room=demo",
                              "--results-dir", str(tmp_path / "embedded"), cwd=tmp_path, python=python)
        assert embedded.returncode == 0, embedded.stderr[-3000:]
        block = embedded.metrics["run"]
        assert (block["provider"], block["embedded_server"], block["provider_options"]) == ("toyvoice", True,
                                                                                            {"room": "demo"})
        assert embedded.metrics["summary"]["successes"] == 3

        server = reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                                  python=python)
        (tmp_path / "truth").mkdir()
        truth = ground_truth_run(server, tmp_path / "truth" / "r", "-i", "10", "--provider", "toyvoice",
                                 in_subprocess=True, python=str(python))
        assert truth.exit_code == 0, truth.stderr[-3000:]
        assert [s["protocol"] for s in truth.sessions] == ["toyvoice"] * 10
        assert all(s["outcome"] == "ok" for s in truth.sessions) and truth.violations == 0
        for sample, session in zip(truth.samples, truth.sessions):
            measured = session["measured"]
            assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
            assert sample["session_start_ms"] == pytest.approx(SETUP_MS, abs=15)
            assert sample["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
    finally:
        uninstalled = run(python, "-m", "pip", "uninstall", "-y", "-q", PACKAGE, cwd=tmp_path)
    assert uninstalled.returncode == 0, uninstalled.stderr[-3000:]

    refused = run_locust("-u", "1", "-i", "1", "--provider", "toyvoice", "--results-dir", str(tmp_path / "after"),
                         cwd=tmp_path, python=python)
    assert refused.returncode == 2
    said = [line for line in refused.stderr.splitlines() if line.startswith("bootbench: ")]
    assert said == [f"bootbench: unknown provider 'toyvoice'; choose one of {', '.join(providers.names())} (or install "
                    f"the package that provides it: `bootbench providers` lists what this machine has)"]
    assert "Traceback" not in refused.stderr and not (tmp_path / "after").exists()
