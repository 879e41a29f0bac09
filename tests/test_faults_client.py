"""Runs that cannot work stop early with one sentence; interrupted runs keep what finished."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from support.processes import free_port, locust_process, read_jsonl, run_locust, stop_process, wait_for_samples
from support.prometheus import NO_PROXY


@pytest.mark.slow
def test_a_dead_target_stops_the_run_early_with_one_sentence(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # free, so nothing listens there
    started = time.monotonic()
    run = run_locust("-u", "1", "-i", "100", "-H", url, "--results-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert run.returncode == 1
    assert f"bootbench: cannot reach {url}: connection refused" in run.stderr.splitlines()
    assert "Traceback" not in run.stderr
    metrics = run.metrics
    assert metrics["summary"]["iterations"] == 3
    assert metrics["errors"]["by_kind"] == {"connect_failed": 3}
    assert metrics["run"]["aborted"] == f"cannot reach {url}: connection refused"
    assert metrics["run"]["iterations"]["complete"] is False
    assert time.monotonic() - started < 30


def test_a_key_rejected_on_every_attempt_stops_the_run_early_and_is_written_nowhere(reference_server, tmp_path):
    """Nowhere: console, log, result files, Locust's CSV and HTML, and the Prometheus /metrics (scraped after the run)."""
    server = reference_server(api_key="right-key", setup_delay="5", first_audio_delay="5", cold_penalty=0)
    secret = "sk-wrong-SECRET-4242"
    metrics_port = free_port()
    process = locust_process("--headless", "-u", "2", "-i", "100", "-H", server.url,
                             "--results-dir", str(tmp_path / "r"), "--csv", str(tmp_path / "locust"),
                             "--html", str(tmp_path / "locust.html"),
                             "--metrics-port", str(metrics_port), "--metrics-linger", "30",
                             cwd=tmp_path, log=tmp_path / "out.log", env={"AIVOCO_API_KEY": secret})
    try:
        exposition = final_metrics(f"http://127.0.0.1:{metrics_port}/metrics", process)
    finally:
        stop_process(process, signal.SIGTERM)  # ends the linger; the exit code stays the run's
    assert process.returncode == 1
    output = (tmp_path / "out.log").read_text()
    assert "bootbench: authentication failed: Invalid API key" in output.splitlines()
    (folder,) = (tmp_path / "r").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 3 <= metrics["summary"]["iterations"] <= 4
    assert metrics["summary"]["successes"] == 0
    assert metrics["errors"]["by_kind"] == {"auth_failed": metrics["summary"]["iterations"]}
    assert {s["error"] for s in metrics["samples"]} == {"Invalid API key"}
    assert f'bootbench_iterations_failed_total{{kind="auth_failed",provider="aivoco"}} ' \
           f'{float(metrics["summary"]["iterations"])}' in exposition
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"locust_stats.csv", "locust.html", "metrics.json", "samples.jsonl"} <= {p.name for p in files}
    outputs = {"/metrics": exposition, **{str(p): p.read_text(errors="replace") for p in files}}
    assert [where for where, text in outputs.items() if secret in text] == []


def final_metrics(url: str, process: subprocess.Popen, timeout: float = 60) -> str:
    """The /metrics text of a run once it has ended (``bootbench_run_running`` 0, served during --metrics-linger)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the process ended before its run's metrics were scraped"
        try:
            text = NO_PROXY.open(url, timeout=5).read().decode()
        except OSError:
            text = ""
        if 'bootbench_run_running{provider="aivoco"} 0.0' in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{url} never showed the run's end")


def interrupted_run(tmp_path: Path, server_url: str, sig: int) -> tuple[int, Path, str]:
    proc = locust_process("--headless", "-u", "2", "-i", "500", "-H", server_url, "--results-dir", str(tmp_path / "r"),
                          cwd=tmp_path, log=tmp_path / "out.log")
    try:
        assert wait_for_samples(tmp_path / "r", 8), "the run did not get going"
        proc.send_signal(sig)
        code = proc.wait(60)
    finally:
        proc.kill()
    (folder,) = (tmp_path / "r").iterdir()
    return code, folder, (tmp_path / "out.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_mid_run_writes_every_result_file_marked_incomplete(shared_reference_server, tmp_path, sig):
    server = shared_reference_server(setup_delay="20", first_audio_delay="40", cold_penalty=0)
    code, folder, output = interrupted_run(tmp_path, server.url, sig)
    assert code != 0
    metrics = json.loads((folder / "metrics.json").read_text())
    jsonl = read_jsonl(folder / "samples.jsonl")
    assert len(jsonl) >= 8 and len(metrics["samples"]) == len(jsonl)
    budget = metrics["run"]["iterations"]
    assert budget["complete"] is False and budget["planned"] == 500
    assert budget["finished"] == metrics["summary"]["iterations"] == len(jsonl) < 500
    assert (folder / "summary.csv").is_file() and (folder / "samples.csv").is_file()
    assert (folder / "report.html").is_file()
    assert output.strip().splitlines()[-1].strip() == str(folder)


@pytest.mark.slow
def test_sigkill_mid_run_keeps_every_finished_iteration_in_samples_jsonl(shared_reference_server, tmp_path):
    # the server is shared with the interrupt tests: its ground truth holds their sessions too (hence >=)
    server = shared_reference_server(setup_delay="20", first_audio_delay="40", cold_penalty=0)
    code, folder, _ = interrupted_run(tmp_path, server.url, signal.SIGKILL)
    assert code == -signal.SIGKILL
    samples = read_jsonl(folder / "samples.jsonl")
    assert len(samples) >= 8 and all(s["ok"] for s in samples)
    assert len({s["iteration"] for s in samples}) == len(samples)
    assert not (folder / "metrics.json").exists()
    truth = read_jsonl(server.ground_truth)
    assert len([t for t in truth if t["outcome"] == "ok"]) >= len(samples)


def tls_server(tmp_path: Path):
    """A TLS listener on 127.0.0.1 with a self-signed certificate that speaks no WebSocket."""
    import ssl
    import threading

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(2)
                    tls.recv(4096)
                    tls.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], cert, lambda: (stop.set(), listener.close())


@pytest.mark.slow
def test_tls_certificates_are_verified_by_default_and_a_ca_bundle_can_be_named(tmp_path):
    port, cert, stop = tls_server(tmp_path)
    url = f"wss://127.0.0.1:{port}"
    try:
        untrusted = run_locust("-i", "5", "-H", url, "--results-dir", str(tmp_path / "a"), cwd=tmp_path)
        trusted = run_locust("-i", "5", "-H", url, "--ca-bundle", str(cert), "--results-dir", str(tmp_path / "b"),
                             cwd=tmp_path)
    finally:
        stop()
    assert untrusted.returncode == 1
    assert f"bootbench: cannot reach {url}: TLS certificate verification failed" in untrusted.stderr
    assert trusted.returncode == 1
    assert (f"bootbench: cannot reach {url}: the server accepted the connection but the WebSocket handshake failed"
            in trusted.stderr)
