"""The reference server, driven over real sockets by a plain python-socketio client.

Each test starts the real server process with the launcher and checks what a
client sees against the ground truth the server recorded.
"""

from __future__ import annotations

import base64
import json
import math
import os
import queue
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import socketio

from bootbench.server import ReferenceServer
from bootbench.server.truth import STEP_TIMESTAMPS
from bootbench.wire import SILENCE_THRESHOLD

SERVER_EVENTS = ("auth_success", "auth_failed", "session_ready", "audio_response", "text_response",
                 "session_ended", "error")
KEY = "test-key-7f3a9c"


def start_call(key: str = KEY) -> dict[str, Any]:
    return {"auth_key": key, "system_message": "You are a test.", "voice_choice": "female", "custom_functions": []}


def pcm16(samples: list[int]) -> bytes:
    return b"".join(s.to_bytes(2, "little", signed=True) for s in samples)


def tone_chunks(n_chunks: int = 5, amplitude: float = 0.3, chunk: int = 1024, rate: int = 16000) -> list[bytes]:
    """Consecutive 64 ms chunks of a 440 Hz sine, raw PCM16 LE mono 16 kHz."""
    full = [round(amplitude * 32767 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(n_chunks * chunk)]
    return [pcm16(full[i:i + chunk]) for i in range(0, len(full), chunk)]


def audio_payload(raw: bytes, **override: Any) -> dict[str, Any]:
    """A correct ``audio_data`` payload for ``raw`` (fields can be overridden to make it wrong)."""
    n = len(raw) // 2
    peak = max((abs(int.from_bytes(raw[2 * i:2 * i + 2], "little", signed=True)) for i in range(n)), default=0)
    payload = {"audio_data": base64.b64encode(raw).decode("ascii"), "has_audio": peak / 32768 > SILENCE_THRESHOLD,
               "max_amplitude": peak / 32768}
    payload.update(override)
    return payload


class Probe:
    """A blocking Aivoco test client: every server event lands in a queue with its receive time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.Client(reconnection=False)
        self.events: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        for name in SERVER_EVENTS:
            self.sio.on(name, self._recorder(name))

    def _recorder(self, name: str) -> Any:
        def record(*args: Any) -> None:
            self.events.put((name, time.perf_counter_ns(), args[0] if args else None))
        return record

    def __enter__(self) -> Probe:
        self.sio.connect(self.url, transports=["websocket"], wait_timeout=5)
        return self

    def __exit__(self, *exc: object) -> None:
        self.sio.disconnect()

    def emit(self, event: str, *data: Any) -> None:
        self.sio.emit(event, *data)

    def expect(self, name: str, timeout: float = 5.0, skip: tuple[str, ...] = ()) -> tuple[int, Any]:
        """Wait for the next ``name`` event, passing over ``skip`` events; any other event is an error."""
        deadline = time.monotonic() + timeout
        while True:
            event, t_ns, data = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            if event not in skip:
                assert event == name, f"expected {name}, got {event} {data}"
                return t_ns, data


def read_truth(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for_stats(server: ReferenceServer, timeout: float = 5.0, **expected: int) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        stats = server.stats()
        if all(stats[k] == v for k, v in expected.items()) or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


@pytest.mark.slow
def test_call_cycle_streams_reply_and_ground_truth_matches_injected_and_client_timing(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    with ReferenceServer.start(ground_truth=truth, setup_delay="30", first_audio_delay="80", cold_penalty=50,
                               reply_ms=200) as server, Probe(server.url) as client:
        client_first_response = []
        payloads = [audio_payload(raw) for raw in tone_chunks(5)]
        for _ in range(2):
            client.emit("start_call", start_call())
            client.expect("auth_success")
            ready_ns, ready = client.expect("session_ready")
            for payload in payloads:
                client.emit("audio_data", payload)
            text_ns, _ = client.expect("text_response")   # the answer's text comes before its audio
            audio_ns, first = client.expect("audio_response")
            assert audio_ns > text_ns
            client_first_response.append((audio_ns - ready_ns) / 1e6)
            chunks = [base64.b64decode(first["audio_data"])]
            chunks += [base64.b64decode(client.expect("audio_response")[1]["audio_data"]) for _ in range(4)]
            client.emit("stop_call")
            _, ended = client.expect("session_ended")
            assert ready["message"] == "Session ready" and ended["reason"] == "user_requested"
            assert [len(c) for c in chunks] == [1920] * 5  # 40 ms of PCM16 at 24 kHz each
            time.sleep(0.1)
        stats = server.stats()

    lines = read_truth(truth)
    assert [line["outcome"] for line in lines] == ["ok", "ok"]
    assert lines[0]["injected"] == {"setup_delay_ms": 30.0, "first_audio_delay_ms": 80.0, "cold_penalty_ms": 50.0,
                                    "leading_silence_ms": 0.0, "greeting_ms": None}
    assert lines[1]["injected"]["cold_penalty_ms"] == 0.0
    assert 80 <= lines[0]["measured"]["session_start_ms"] < 95
    assert 30 <= lines[1]["measured"]["session_start_ms"] < 45
    for line, client_ms in zip(lines, client_first_response):
        assert line["violations"] == []
        assert line["audio_in"] == {"chunks": 5, "samples": 5 * 1024, "peak": pytest.approx(0.3, abs=0.001)}
        assert line["audio_out"]["chunks"] == 5
        assert abs(line["measured"]["first_response_ms"] - 80) <= 15
        assert abs(line["measured"]["input_to_audio_ms"] - 80) <= 15
        assert abs(client_ms - line["measured"]["first_response_ms"]) <= 15
        # every stamp of a session started in one request (the two-request steps are Ultravox's)
        assert all(line["t_ns"][k] is not None for k in line["t_ns"] if k not in STEP_TIMESTAMPS)
        assert all(line["t_ns"][k] is None for k in STEP_TIMESTAMPS)
    assert stats["sessions"] == 2 and stats["violations"] == 0 and stats["active"] == 0
    assert stats["tcp_nodelay"]["checked"] >= 1 and stats["tcp_nodelay"]["was_missing"] == 0


def test_wrong_key_gets_auth_failed_and_no_key_is_ever_written(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    wrong = "wrong-key-0c41d2"
    with ReferenceServer.start(api_key=KEY, ground_truth=truth, setup_delay="10") as server:
        assert KEY not in Path(f"/proc/{server.pid}/cmdline").read_bytes().decode(errors="replace")
        with Probe(server.url) as client:
            client.emit("start_call", start_call(wrong))
            _, failed = client.expect("auth_failed")
            client.emit("start_call", start_call(""))
            _, missing = client.expect("auth_failed")
            client.emit("start_call", start_call(KEY))
            client.expect("auth_success")
            client.expect("session_ready")
            client.emit("stop_call")
            client.expect("session_ended")
        stats = wait_for_stats(server, connections=0)
    stderr = server.stderr_text()

    assert failed == {"message": "Invalid API key", "credits": 0}
    assert missing == {"message": "Missing API key", "credits": 0}
    lines = read_truth(truth)
    assert [line["outcome"] for line in lines] == ["auth_failed", "auth_failed", "stopped_before_audio"]
    assert lines[0]["injected"] is None and lines[0]["t_ns"]["ready_sent"] is None
    assert stats["outcomes"] == {"auth_failed": 2, "stopped_before_audio": 1}
    for secret in (KEY, wrong):
        assert secret not in truth.read_text()
        assert secret not in stderr
    assert "auth failed: Invalid API key" in stderr


@pytest.mark.slow
def test_malformed_client_messages_are_counted_as_violations(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    raw = tone_chunks(1)[0]
    wav = b"RIFF" + (36 + len(raw)).to_bytes(4, "little") + b"WAVEfmt " + bytes(24) + b"data" + raw
    with ReferenceServer.start(ground_truth=truth, setup_delay="200", first_audio_delay="50") as server:
        with Probe(server.url) as client:
            client.emit("audio_data", audio_payload(raw))
            client.emit("start_call", start_call())
            client.emit("audio_data", audio_payload(raw))
            client.expect("auth_success")
            client.expect("session_ready")
            client.emit("audio_data", audio_payload(wav[:len(wav) // 2 * 2]))
            client.emit("audio_data", audio_payload(raw, has_audio="yes"))
            client.emit("audio_data", audio_payload(raw, max_amplitude=0.9))
            client.emit("hello_server", {"x": 1})
            client.emit("start_call", start_call())
            client.expect("audio_response", skip=("text_response",))
            client.emit("stop_call")
            client.expect("session_ended", skip=("audio_response", "text_response"))
            client.emit("stop_call")
            assert wait_for_stats(server, violations=8)["violations"] == 8
        with Probe(server.url) as client:
            client.emit("start_call", {"auth_key": KEY, "system_message": 5, "custom_functions": None})
            client.expect("auth_success")
            client.expect("session_ready")
            client.emit("stop_call")
            client.expect("session_ended")
        stats = wait_for_stats(server, connections=0)

    lines = read_truth(truth)
    first = next(line for line in lines if line["session"] == 1)
    outside = next(line for line in lines if line["outcome"] == "outside_session")
    second = next(line for line in lines if line["session"] == 2)
    expected = ["audio_data before session_ready", "RIFF header", "'has_audio' must be a boolean",
                "does not match the chunk peak", "unexpected event 'hello_server'", "start_call while session 1"]
    assert first["outcome"] == "ok" and len(first["violations"]) == len(expected)
    for needle, violation in zip(expected, first["violations"]):
        assert needle in violation
    assert len(outside["violations"]) == 2
    assert outside["violations"][0].startswith("audio_data outside a session")
    assert outside["violations"][1] == "stop_call with no active session"
    assert sorted(second["violations"]) == ["start_call: 'custom_functions' must be an array, got null",
                                            "start_call: 'system_message' must be a string, got number",
                                            "start_call: missing key 'voice_choice'"]
    assert stats["violations"] == 11 == sum(line["violation_count"] for line in lines)


@pytest.mark.slow
def test_capacity_one_queues_the_second_session_until_the_first_ends(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    with ReferenceServer.start(ground_truth=truth, capacity=1, setup_delay="20", first_audio_delay="30",
                               cold_penalty=0) as server, Probe(server.url) as a, Probe(server.url) as b:
        a.emit("start_call", start_call())
        a.expect("auth_success")
        a.expect("session_ready")
        b.emit("start_call", start_call())
        a.emit("audio_data", audio_payload(tone_chunks(1)[0]))
        a.expect("audio_response", skip=("text_response",))
        queued = wait_for_stats(server, queued=1)
        time.sleep(0.3)
        a.emit("stop_call")
        a.expect("session_ended", skip=("audio_response", "text_response"))
        b.expect("auth_success", timeout=3)
        b_ready_ns, _ = b.expect("session_ready")
        b.emit("stop_call")
        b.expect("session_ended")

    assert queued["queued"] == 1 and queued["active"] == 1
    first, second = read_truth(truth)[:2]
    a_length_after_b_start = (first["t_ns"]["stop_received"] - second["t_ns"]["start_received"]) / 1e6
    assert a_length_after_b_start > 300
    assert second["queued_ms"] >= a_length_after_b_start - 2
    assert second["t_ns"]["ready_sent"] > first["t_ns"]["stop_received"]
    assert second["measured"]["session_start_ms"] >= second["queued_ms"] + 20


@pytest.mark.parametrize("args, needle", [
    (["--setup-delay", "bogus:1"], "unknown distribution 'bogus'"),
    (["--first-audio-delay", "uniform:200:100"], "LOW must not exceed HIGH"),
    (["--capacity", "-1"], "must be at least 0"),
    (["--no-such-option"], "unrecognized arguments"),
])
def test_bad_command_line_exits_2_with_one_line_and_no_traceback(args: list[str], needle: str) -> None:
    result = subprocess.run([sys.executable, "-m", "bootbench.server", "--port", "0", *args],
                            capture_output=True, text=True, timeout=20, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert needle in result.stderr and "Traceback" not in result.stderr


def test_launcher_raises_with_the_servers_stderr_when_it_cannot_start() -> None:
    with pytest.raises(RuntimeError, match="exited with code 2 before listening(.|\n)*--reply-ms"):
        ReferenceServer.start(reply_ms=0)


def test_a_session_open_at_the_stop_is_in_the_ground_truth_and_the_server_exits_0(tmp_path: Path) -> None:
    """The stop's last writes (the open session's ground-truth line, the shutdown log line) survive the fast exit
    (``bootbench.server.__main__.exit_now``): the process leaves with code 0 and everything flushed."""
    truth = tmp_path / "truth.jsonl"
    server = ReferenceServer.start(ground_truth=truth, setup_delay="10")
    try:
        with Probe(server.url) as client:
            client.emit("start_call", start_call())
            client.expect("auth_success")
            client.expect("session_ready")
            assert server.stop() == 0
    finally:
        server.stop()
    assert [line["outcome"] for line in read_truth(truth)] == ["server_stopped"]
    assert "shutting down: {'sessions': 1" in server.stderr_text()


def test_every_reference_server_a_test_starts_runs_under_sched_fifo(reference_server):
    """tests/conftest.py ``_prompt_reference_servers``: the servers whose stamps the truth tests are held to run
    under SCHED_FIFO, every thread of them (it fails if ReferenceServer.start changes under the wrapper)."""
    from support.processes import SERVER_PRIORITY

    if os.geteuid() != 0:
        pytest.skip("SCHED_FIFO needs root here; the servers run under normal scheduling")

    def policies(pid: int) -> list[tuple[int, int]]:
        threads = [int(task) for task in os.listdir(f"/proc/{pid}/task")]
        return [(os.sched_getscheduler(t), os.sched_getparam(t).sched_priority) for t in threads]

    from_fixture = reference_server()
    with ReferenceServer.start() as started_directly:
        for server in (from_fixture, started_directly):
            found = policies(server.pid)
            assert found and found == [(os.SCHED_FIFO, SERVER_PRIORITY)] * len(found), found


def test_a_ground_truth_read_while_the_server_writes_leaves_the_unfinished_record_for_the_next_read(tmp_path):
    """A test polling a running server's ground truth can read a record half written (test_server_audible failed so
    under load: 'Unterminated string'): the helper returns the finished records and leaves the rest."""
    from support.processes import read_jsonl

    path = tmp_path / "truth.jsonl"
    path.write_text('{"session": 1}\n{"session": 2, "outc')
    assert read_jsonl(path) == [{"session": 1}]
    path.write_text('{"session": 1}\n{"session": 2, "outcome": "ok"}\n')
    assert read_jsonl(path) == [{"session": 1}, {"session": 2, "outcome": "ok"}]
