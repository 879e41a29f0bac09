"""What a run records about itself: its target, voice, anomalies and provenance.

Each test runs Locust against a reference server (given with ``-H``, or the
embedded one) and reads the console, the run log, metrics.json, the CSVs
and report.html back. One is a real process (the command line a run records
is the real one, its query redacted); the others run in-process
(tests/support/inprocess.py ``headless_run``).
"""

from __future__ import annotations

import re
import socket
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bootbench.server.launcher import ReferenceServer
from support.inprocess import headless_run
from support.processes import ROOT, run_locust

TOKEN = "tok-5ecret-q"


def results_dir(tmp_path: Path) -> tuple[str, str]:
    return "--results-dir", str(tmp_path / "results")


def every_text(run, folder: Path) -> str:
    """The console output and every file of the run folder, as one text."""
    return run.stdout + run.stderr + "".join(p.read_text(errors="replace") for p in folder.iterdir() if p.is_file())


@pytest.mark.slow
def test_a_host_path_is_the_socketio_prefix_and_its_query_is_never_written_out(tmp_path):
    with ReferenceServer.start(setup_delay="20", first_audio_delay="40", cold_penalty=0,
                               extra_args=["--socketio-path", "/some/prefix/socket.io/"]) as server:
        host = f"{server.url}/some/prefix?token={TOKEN}"
        run = run_locust(*results_dir(tmp_path), "-i", "2", "--wait-ms", "0", "-H", host, cwd=tmp_path)
        served = server.stats()["sessions"]
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.metrics
    assert metrics["summary"]["successes"] == 2 and served == 2
    assert metrics["run"]["target"] == f"{server.url}/some/prefix"
    assert TOKEN not in every_text(run, run.folder)
    assert metrics["run"]["provenance"]["command_line"].endswith(f"-H '{server.url}/some/prefix?***'")
    (start,) = [line for line in run.stderr.splitlines() if re.search(r"run \S+: aivoco at ", line)]
    assert f"aivoco at {server.url}/some/prefix, 2 iterations" in start


@pytest.mark.slow
def test_a_run_records_the_voice_it_sends_its_anomalies_and_its_provenance(tmp_path):
    # its own server: the stray fault strikes by the server's session count
    with ReferenceServer.start(setup_delay="20", first_audio_delay="40", cold_penalty=0,
                               extra_args=["--fault", "stray:chunks=3:at=1"]) as server:
        run = headless_run("-i", "3", "--wait-ms", "0", host=server.url, results_dir=tmp_path / "results",
                           command_line=True)
    assert run.exit_code == 0, run.stderr[-3000:]
    metrics = run.metrics
    assert metrics["errors"]["anomalies"] == {"audio_before_ready": 3}
    summary_lines = run.stdout.splitlines()
    assert "  anomalies (events outside a live session, never taken as an answer): audio_before_ready x3" \
        in summary_lines
    assert metrics["run"]["voice"] == "female"

    provenance = metrics["run"]["provenance"]  # the command line: sys.argv as a real run has it (headless_run)
    assert provenance["command_line"].startswith("locust -f ") and " -i 3 " in provenance["command_line"]
    assert provenance["hostname"] == socket.gethostname() and provenance["cpu_count"] >= 1
    assert provenance["cpu_model"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert provenance["git_commit"].removesuffix("+dirty") == head
    assert metrics["run"]["reference_server"] is None  # not the embedded server: bootbench cannot know its model

    for name in ("summary.csv", "samples.csv"):
        decimals = [len(cell.split(".")[1]) for line in (run.folder / name).read_text().splitlines()[1:]
                    for cell in line.split(",") if re.fullmatch(r"-?\d+\.\d+", cell)]
        assert decimals and max(decimals) <= 3, name
    assert pd.read_csv(run.folder / "summary.csv").set_index("phase").loc["first_response_ms", "median"] == \
        pytest.approx(metrics["summary"]["phases"]["first_response_ms"]["median"], abs=0.0005)
    assert metrics["summary"]["phases"]["connect_ms"]["count"] == 1
    assert metrics["summary"]["phases"]["connect_ms"]["stdev"] is None  # one value has no spread to speak of


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_target_keeps_its_brackets_wherever_it_is_written(tmp_path):
    with ReferenceServer.start(host="::1", setup_delay="20", first_audio_delay="40", cold_penalty=0) as server:
        target = f"http://[::1]:{server.port}"
        run = headless_run("-i", "2", "--wait-ms", "0", host=target, results_dir=tmp_path / "results")
    assert run.exit_code == 0, run.stderr[-3000:]
    assert run.metrics["run"]["target"] == target and run.metrics["summary"]["successes"] == 2
    assert f"bootbench: aivoco at {target}" in run.stdout.splitlines()
    log = next(run.folder.glob("boot_*.log")).read_text()
    assert f"aivoco at {target}, 2 iterations" in log and f"connected to {target}" in log
    assert f"{target}" in (run.folder / "report.html").read_text()
    assert "http://::1" not in every_text(run, run.folder)


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}).stdout.strip()


def commit_seen_from(root: Path) -> str | None:
    """provenance.git_commit() as bootbench at ``root`` would record it (its cache bypassed)."""
    from unittest.mock import patch

    from bootbench import provenance

    with patch.object(provenance, "PROJECT_ROOT", root):
        return provenance.git_commit.__wrapped__()


def test_the_git_commit_is_bootbench_s_own_and_dirty_only_for_changes_under_bootbench(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "bootbench").mkdir(parents=True)
    (checkout / "bootbench" / "x.py").write_text("x = 1\n")
    (checkout / "notes.txt").write_text("notes\n")
    assert commit_seen_from(checkout) is None  # not a checkout yet
    git(checkout, "init", "-q")
    assert commit_seen_from(checkout) is None  # a checkout without a commit
    git(checkout, "add", ".")
    git(checkout, "commit", "-q", "-m", "one")
    head = git(checkout, "rev-parse", "HEAD")
    assert commit_seen_from(checkout) == head
    (checkout / "notes.txt").write_text("changed outside bootbench/\n")
    (checkout / "bootbench" / "new.py").write_text("untracked\n")
    assert commit_seen_from(checkout) == head
    (checkout / "bootbench" / "x.py").write_text("x = 2\n")
    assert commit_seen_from(checkout) == f"{head}+dirty"
    # bootbench installed inside another project's checkout (a virtualenv in it): not bootbench's commit
    assert commit_seen_from(checkout / "bootbench") is None
