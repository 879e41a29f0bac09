"""Ultravox end to end against the reference server's emulation: the call created over HTTPS and joined over a
WebSocket, timed as two steps of session start, checked against the server's ground truth (docs/protocols/ultravox.md).

In-process runs against shared reference servers (tests/support/ground_truth.py); one real Locust process for the
wrong key, whose outputs are searched for the key.
"""

from __future__ import annotations

import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from support.ground_truth import ground_truth_run
from bootbench.audio import Stimulus
from bootbench.providers.base import CycleError, DriverConfig
from bootbench.providers.ultravox import UltravoxDriver
from bootbench.samples import PHASE_TABLE, Timeline
from bootbench.stimuli import load_clips

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0
ULTRAVOX = ("--provider", "ultravox", "--trailing-silence-ms", "400")
"""The provider and the trailing silence its VAD needs (turnEndpointDelay 384 ms), one chunk's worth at real time."""


def fixed_server(shared_reference_server, *extra: str, **kwargs):
    return shared_reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS),
                                   cold_penalty=0, extra_args=list(extra), **kwargs)


@pytest.mark.parametrize("pace", ["burst", "realtime"])
def test_twenty_calls_match_the_ground_truth_with_create_and_join_timed_apart(shared_reference_server, tmp_path, pace):
    iterations = 20 if pace == "burst" else 4
    run = ground_truth_run(fixed_server(shared_reference_server), tmp_path / "r", "-i", str(iterations),
                           "--pace", pace, *ULTRAVOX)
    assert run.exit_code == 0, run.stderr[-3000:]
    assert [t["protocol"] for t in run.sessions] == ["ultravox"] * iterations
    assert all(t["outcome"] == "ok" for t in run.sessions)
    for sample, session in zip(run.samples, run.sessions):
        measured = session["measured"]
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
        # Session start spans two requests; the server's figure runs from the create request's arrival to the
        # first state, so the client's exceeds it by two transits, as a one-request session start does.
        assert sample["session_start_ms"] == pytest.approx(measured["session_start_ms"], abs=15)
        assert measured["join_ms"] == pytest.approx(SETUP_MS, abs=15)   # the injected setup runs from the join
        assert sample["call_create_ms"] + sample["join_ms"] <= sample["session_start_ms"] + 0.01
        assert sample["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
        assert measured["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
        assert sample["stop_ms"] is not None and sample["stop_ms"] < 50
        assert session["t_ns"]["stop_received"] is not None
    # Each step's client figure holds what the server's cannot see: the create request's two transits; the join's
    # name lookup, TCP connect, upgrade request and first message. Within a few ms, with room for a loaded machine.
    for step in ("call_create_ms", "join_ms"):
        gaps = [sample[step] - session["measured"][step] for sample, session in zip(run.samples, run.sessions)]
        assert min(gaps) >= 0 and statistics.median(gaps) < 10 and max(gaps) < 25, (step, gaps)
    # one HTTPS (here HTTP) connection for every create request: connected once, outside the timed cycles
    assert [s["connect_ms"] is not None for s in run.samples] == [True] + [False] * (iterations - 1)
    assert not any(s["connected_this_cycle"] for s in run.samples)
    assert run.violations == 0 and run.notes == 0
    phases = run.metrics["summary"]["phases"]
    assert {p.name for p in PHASE_TABLE if phases[p.name]["count"]} == {p.name for p in PHASE_TABLE}
    assert run.request_counts["call_create_ms"] == run.request_counts["join_ms"] == iterations
    run_block = run.metrics["run"]
    assert (run_block["provider"], run_block["turn"], run_block["model"], run_block["voice"]) == (
        "ultravox", "vad", "ultravox-v0.7", "Mark")
    assert run_block["provider_options"] == {"first_speaker": "user", "client_buffer_ms": ""}


def test_every_call_connects_anew_with_connect_per_call(shared_reference_server, tmp_path):
    """--connect-per-call: the REST connection is opened inside every cycle, so connect_ms counts in cold_start_ms."""
    run = ground_truth_run(fixed_server(shared_reference_server), tmp_path / "r", "-i", "3", "--connect-per-call",
                           *ULTRAVOX)
    assert run.exit_code == 0, run.stderr[-3000:]
    for sample in run.samples:
        assert sample["connected_this_cycle"] and sample["connect_ms"] is not None
        assert sample["cold_start_ms"] > sample["connect_ms"] + sample["session_start_ms"]


@pytest.mark.parametrize("args, sentence", [
    (("--trailing-silence-ms", "300"), "--turn vad needs --trailing-silence-ms of at least 384 for ultravox"),
    (("--turn", "manual", "--trailing-silence-ms", "400"), "--turn manual is not available for ultravox; choose vad"),
    (("--trailing-silence-ms", "400", "--provider-option", "first_speaker=bot"),
     "provider option first_speaker='bot' is not one of user, agent"),
    (("--trailing-silence-ms", "400", "--provider-option", "client_buffer_ms=lots"),
     "provider option client_buffer_ms='lots': give a whole number of milliseconds"),
    (("--trailing-silence-ms", "400", "--provider-option", "agent_id=42"),
     "the ultravox provider has no option 'agent_id' (its options: first_speaker, client_buffer_ms)"),
])
def test_what_ultravox_cannot_do_is_refused_in_one_sentence_before_anything_starts(refusals, tmp_path, args,
                                                                                      sentence):
    line = refusals.line("--headless", "-u", "1", "--provider", "ultravox", *args)
    assert line.startswith(f"bootbench: {sentence}"), line
    assert not (tmp_path / "results").exists()


# ---- the driver's reading of the call, message by message (no server)

LOUD = np.full(240, 8000, dtype="<i2").tobytes()


def joined_driver(**options: str) -> UltravoxDriver:
    config = DriverConfig(url="http://127.0.0.1:9", api_key="k", turn="vad", trailing_silence_ms=400,
                          provider_options=tuple(options.items()))
    driver = UltravoxDriver(config, Stimulus.sine())
    driver.session = driver.new_session(1)
    driver.reset_turn()
    return driver


def test_the_create_request_asks_for_raw_pcm_at_bootbenchs_rates_and_who_speaks_first():
    body = joined_driver().call_request()
    assert body["medium"] == {"serverWebSocket": {"inputSampleRate": 16000, "outputSampleRate": 24000}}
    assert body["firstSpeakerSettings"] == {"user": {}} and (body["model"], body["voice"]) == ("ultravox-v0.7", "Mark")
    body = joined_driver(first_speaker="agent", client_buffer_ms="30000").call_request()
    assert body["firstSpeakerSettings"] == {"agent": {}}
    assert body["medium"]["serverWebSocket"]["clientBufferSizeMs"] == 30000
    assert UltravoxDriver(DriverConfig(url="https://api.ultravox.ai", api_key="k"), Stimulus.sine()).create_url() \
        == "https://api.ultravox.ai/api/calls"
    assert joined_driver().audio_message(Stimulus.sine().chunks(16000)[0])[:4] == \
        Stimulus.sine().chunks(16000)[0].pcm[:4]


def test_a_greeting_is_the_agents_turn_before_the_service_heard_the_caller():
    driver = joined_driver(first_speaker="agent")
    session = driver.session
    driver.on_message({"type": "state", "state": "idle"}, 5)
    assert session.ready_ns is None                      # warming up: not ready
    driver.on_message({"type": "state", "state": "listening"}, 10)
    assert session.ready_ns == 10
    driver.input_starting()                              # the caller starts while the agent greets
    driver.on_message({"type": "state", "state": "speaking"}, 20)
    driver.on_binary(LOUD, 21)
    assert session.greeting_ns == 21 and session.first_audio_ns is None
    driver.on_message({"type": "playback_clear_buffer"}, 30)   # the caller interrupts it
    driver.on_message({"type": "state", "state": "listening"}, 31)
    driver.on_message({"type": "state", "state": "thinking"}, 40)   # heard the caller's turn
    driver.on_message({"type": "state", "state": "speaking"}, 50)
    driver.on_binary(LOUD, 51)
    assert session.first_audio_ns == 51 and session.audible.is_set() and session.greeting_ns == 21
    driver.on_message({"type": "transcript", "role": "agent", "medium": "voice", "text": "Hi", "final": True,
                       "ordinal": 3}, 60)
    assert not session.reply_ended.is_set()              # the text's end is not the audio's
    driver.on_message({"type": "playback_clear_buffer"}, 65)
    driver.on_message({"type": "state", "state": "listening"}, 70)
    assert session.reply_end_ns == 70 and session.between_turns
    driver.on_binary(LOUD, 80)
    assert driver.anomalies == {"playback_clear_buffer": 1, "audio_between_turns": 1}


def test_a_service_that_sends_no_state_is_answered_by_its_first_audio_after_the_input():
    driver = joined_driver()
    session = driver.session
    driver.on_binary(LOUD, 5)                            # before the input: a greeting, and the call is live
    assert session.ready_ns == 5 and session.greeting_ns == 5
    driver.reset_turn()
    driver.input_starting()
    driver.on_binary(LOUD, 9)
    assert session.first_audio_ns == 9


@pytest.mark.parametrize("frame, message", [
    (b"\x00\x01\x02", "a binary audio frame of 3 bytes, not whole PCM16 samples"),
    ({"type": "state", "state": None}, "a state message whose 'state' is NoneType, not a string"),
    ({"state": "speaking"}, "a data message without a 'type'"),
])
def test_a_malformed_frame_fails_the_session_with_a_protocol_error(frame, message):
    driver = joined_driver()
    if isinstance(frame, bytes):
        driver.on_binary(frame, 1)
    else:
        driver.on_message(frame, 1)
    assert driver.session.failure.kind == "protocol_error" and driver.session.failure.message == message


def test_a_close_frame_is_the_call_ending_and_no_close_frame_a_dropped_connection():
    driver = joined_driver()
    assert driver.close_error(1000, "agent_hangup").message == "the call ended (code 1000: agent_hangup)"
    assert driver.close_error(1000, "").kind == "server_error"
    assert driver.close_error(None, "").kind == "disconnected"


def test_an_audio_timeout_with_the_sine_says_the_services_vad_may_never_hear_a_tone():
    config = DriverConfig(url="http://127.0.0.1:9", api_key="k", turn="vad", trailing_silence_ms=400)
    assert "ultravox ends turns by voice activity" in UltravoxDriver(config, load_clips(("sine",))).timeout_hint()
    assert UltravoxDriver(config, load_clips(("speech",))).timeout_hint() == ""


@pytest.fixture
def rest_host():
    """A stand-in REST host on loopback answering each create request with the next (status, body, close) given."""
    answers: list[tuple[int, bytes, bool]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            status, body, close = answers.pop(0)
            if close:   # hang up without an answer
                self.close_connection = True
                return
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answers
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("answer, kind, message", [
    ((401, b'{"detail": "Invalid API key."}', False), "auth_failed",
     "the call could not be created: HTTP 401: Invalid API key."),
    ((429, b'{"detail": "Request was throttled."}', False), "server_error",
     "the call could not be created: HTTP 429: Request was throttled."),
    ((500, b"Internal Server Error\nmore", False), "server_error",
     "the call could not be created: HTTP 500: Internal Server Error"),
    ((201, b'{"callId": "c"}', False), "protocol_error", "the create request's HTTP 201 answer has no ws:// or wss:// "
                                                         "joinUrl"),
    ((0, b"", True), "disconnected", "got no answer"),
])
def test_a_create_request_that_fails_fails_the_cycle_in_the_services_words(rest_host, answer, kind, message):
    url, answers = rest_host
    answers.append(answer)
    driver = UltravoxDriver(DriverConfig(url=url, api_key="k", timeout=5, turn="vad"), Stimulus.sine())
    timeline = Timeline()
    driver.connect(timeline)
    assert timeline.connected > timeline.connect_start and driver.connected
    with pytest.raises(CycleError) as failed:
        driver.start(timeline, time.perf_counter_ns() + int(5e9))
    assert failed.value.kind == kind and message in failed.value.message
    assert timeline.start_sent is not None and timeline.join_sent is None
    driver.close()
