"""What a run records about itself, on real Locust processes: the concurrency that ran, interruptions, a
killed run read back, and a web UI start with bad input refused."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from support.cli import bootbench as cli
from support.folders import record_run, timings
from support.inprocess import local_environment, run_to_end
from support.processes import free_port, locust_process, read_jsonl, stop_process, wait_for_samples

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_more_users_than_ran_records_the_peak_and_per_sample_concurrency_and_warns(
        shared_reference_server, tmp_path, capsys, monkeypatch):
    # 50 users at 1 per second, but 10 iterations are over long before: only the first few users ever ran.
    # In-process (tests/support/inprocess.py): the peak is counted by the run object, no process boundary.
    # report.html is not what this test reads, and drawing its plots is most of a short run's time.
    monkeypatch.setattr("bootbench.exporters.write_report_safely", lambda folder, metrics: None)
    server = shared_reference_server(setup_delay="5", first_audio_delay="20", cold_penalty=0)
    env = local_environment("-u", "50", "-i", "10", host=server.url, results_dir=tmp_path / "r")
    finished = run_to_end(env, users=50, spawn_rate=1)
    metrics = finished.metrics
    users_seen = {(s["worker"], s["user"]) for s in metrics["samples"]}
    assert metrics["run"]["users"] == 50
    assert len(users_seen) <= metrics["run"]["peak_users"] < 50
    assert all(1 <= s["users_active"] <= metrics["run"]["peak_users"] for s in metrics["samples"])
    assert max(s["users_active"] for s in metrics["samples"]) == metrics["run"]["peak_users"]
    (warning,) = metrics["run"]["warnings"]
    assert "before all 50 users had started" in warning
    assert f"warning: {warning}" in capsys.readouterr().out
    assert all(s["users_active"] is not None for s in read_jsonl(finished.recorder.folder / "samples.jsonl"))


def interrupt(tmp_path: Path, server_url: str, sig: int, *extra: str) -> tuple[int, Path, str]:
    proc = locust_process("--headless", "-u", "2", "-i", "100", "-H", server_url, "--results-dir",
                          str(tmp_path / "r"), *extra, cwd=tmp_path, log=tmp_path / "out.log")
    try:
        assert wait_for_samples(tmp_path / "r", 8), (tmp_path / "out.log").read_text()[-3000:]
        proc.send_signal(sig)
        code = proc.wait(60)
    finally:
        proc.kill()
        proc.wait()
    (folder,) = (tmp_path / "r").iterdir()
    return code, folder, (tmp_path / "out.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_says_how_it_was_interrupted_and_what_never_started(shared_reference_server, tmp_path, sig):
    # a 300 ms answer and no pause: each user nearly always has an iteration in flight when the signal comes
    server = shared_reference_server(setup_delay="5", first_audio_delay="300", cold_penalty=0)
    code, folder, output = interrupt(tmp_path, server.url, sig, "--wait-ms", "0")
    assert code == 1
    run = json.loads((folder / "metrics.json").read_text())["run"]
    budget = run["iterations"]
    name = signal.Signals(sig).name
    assert run["interrupted"] == name and run["aborted"] is None
    finished, unfinished = budget["finished"], len(budget["unfinished_at_stop"])
    assert 8 <= finished < 100 and 0 <= unfinished <= 2
    assert budget["never_started"] == 100 - budget["started"] == 100 - finished - unfinished
    assert budget["lost"] == unfinished, "a stop is not a loss of the service"
    assert (f"interrupted ({name}) at {finished} of 100: {unfinished} in flight not finished, "
            f"{budget['never_started']} never started") in output
    assert "lost in flight" not in output.split("bootbench:")[-1]
    # issue 20 item 22: the line that explains the exit code comes before Locust's "Shutting down"
    assert (output.index("exit code 1: the run was interrupted with ")
            < output.index("Shutting down (exit code 1)")), output[-3000:]
    # Locust shuts down once: one set of final tables, one bootbench summary, the folder last
    assert output.count("Response time percentiles (approximated)") == 1
    assert output.count(f"interrupted ({name}) at") == 1
    assert output.strip().splitlines()[-1].strip() == str(folder)


def test_a_killed_run_is_rebuilt_from_its_samples_by_report_and_read_by_compare(tmp_path):
    # What a killed process leaves (run.json and the samples so far, no metrics.json), built in this process.
    host = "http://127.0.0.1:9"
    folder = record_run(tmp_path / "r", "-u", "2", "-i", "100", host=host, samples=timings(8),
                        users=2, killed=True)
    assert not (folder / "metrics.json").exists()
    opened = json.loads((folder / "run.json").read_text())
    assert opened["run"]["id"] == folder.name and opened["run"]["iterations"]["planned"] == 100
    assert opened["run"]["target"] == host.rstrip("/") or opened["run"]["target"].startswith(host)
    samples = read_jsonl(folder / "samples.jsonl")

    compared = cli("compare", str(folder), "--html", str(tmp_path / "c.html"))
    assert compared.returncode == 0, compared.stderr
    assert folder.name in compared.stdout and not (folder / "metrics.json").exists(), "compare only reads"

    report = cli("report", str(folder))
    assert report.returncode == 0, report.stderr
    assert report.stdout.strip() == str(folder / "report.html") and (folder / "report.html").is_file()
    assert "rebuilt it from" in report.stderr
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["run"]["rebuilt_from_samples"] is True and metrics["run"]["ended_at"] is None
    assert metrics["run"]["iterations"]["complete"] is False
    assert metrics["run"]["iterations"]["finished"] == len(samples) == metrics["summary"]["iterations"]
    assert metrics["samples"] == sorted(samples, key=lambda s: s["iteration"])
    assert (folder / "summary.csv").is_file() and (folder / "samples.csv").is_file()


def test_a_folder_without_metrics_or_run_json_is_still_refused_in_one_sentence(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "samples.jsonl").write_text("")
    result = cli("report", str(folder))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (f"bootbench: {folder} has no metrics.json, and no run.json to rebuild it "
                                     "from samples.jsonl (it was written by an older bootbench)")


@pytest.fixture
def web_ui(tmp_path):
    """A Locust process with its web UI on 127.0.0.1 and no run started; its URL."""
    port = free_port()
    log = tmp_path / "locust.log"
    process = locust_process("--web-host", "127.0.0.1", "--web-port", str(port), "-i", "3",
                             "--results-dir", str(tmp_path / "results"), cwd=tmp_path, log=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            NO_PROXY.open(url + "/", timeout=5).read()
            break
        except OSError:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the web UI did not come up"
            time.sleep(0.1)
    yield url
    stop_process(process, signal.SIGINT, 30)


@pytest.mark.parametrize("form, message", [
    ({"host": "foo"}, "host 'foo' is not a URL like wss://example.com or http://127.0.0.1:8080"),
    ({"host": "", "timeout": "0"}, "--timeout must be a positive number of seconds, not 0"),
], ids=["host", "option"])
def test_a_web_ui_start_with_bad_input_is_refused_in_the_ui_and_nothing_starts(web_ui, tmp_path, form, message):
    data = urllib.parse.urlencode({"user_count": "1", "spawn_rate": "1", **form}).encode()
    reply = json.loads(NO_PROXY.open(web_ui + "/swarm", data=data, timeout=10).read())
    assert reply["success"] is False and reply["message"] == message
    time.sleep(1.5)
    state = json.loads(NO_PROXY.open(web_ui + "/stats/requests", timeout=10).read())
    assert state["state"] in ("ready", "stopped") and state["user_count"] == 0
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").iterdir())
    assert message in (tmp_path / "locust.log").read_text()
