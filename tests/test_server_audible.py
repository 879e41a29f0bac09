"""What a caller hears from the reference server: leading silence, greetings, and speech-only turns.

Each test talks to a real server process through a tiny client per protocol,
times the reply's chunks on arrival and checks them with the first-audible
detector against the server's ground truth.
"""

from __future__ import annotations

import base64
import json
import queue
import time
from typing import Any

import numpy as np
import pytest
import socketio
import websocket

from bootbench.audible import AudibleDetector
from bootbench.audio import CHUNK_SAMPLES, Stimulus
from bootbench.server import protocols as server_protocols
from bootbench.wire import GEMINI_LIVE_PATH, OPENAI_REALTIME_PATH
from support.processes import read_jsonl

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

NO_RAW_CLIENT = {
    "elevenlabs": "its conversation needs a signed URL first; tests/test_elevenlabs.py checks its leading silence and "
                  "greeting through the driver",
    "ultravox": "its call is created over REST first; tests/test_ultravox.py checks its leading silence and greeting "
                "through the driver",
    "deepgram": "raw PCM both ways after Welcome and Settings; the shared runs (tests/test_audible_runs.py) and "
                "tests/test_deepgram.py check its leading silence and greeting through the driver",
}
"""Protocols checked elsewhere, with where (a protocol of the server's table in neither fails
test_every_emulated_protocol_has_a_raw_client_or_a_reason)."""
PROTOCOLS = tuple(name for name in server_protocols.BUILTINS if name not in NO_RAW_CLIENT)
"""Every protocol the reference server ships but those above; each has a raw client here (:func:`client_class`)."""
DONE = "done"
KEY = "k-audible"


class AivocoClient:
    input_rate = 16_000

    def __init__(self, url: str, vad: bool) -> None:
        self.events: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self.sio = socketio.Client(reconnection=False)
        for name in ("auth_success", "session_ready", "audio_response", "text_response", "session_ended"):
            self.sio.on(name, lambda data=None, _n=name: self.events.put((_n, time.perf_counter_ns(), data)))
        self.sio.connect(url, transports=["websocket"], wait_timeout=5)

    def start(self) -> None:
        self.sio.emit("start_call", {"auth_key": KEY, "system_message": "t", "voice_choice": "female",
                                     "custom_functions": []})
        while self.events.get(timeout=5)[0] != "session_ready":
            pass

    def send(self, stim: Stimulus) -> None:
        for chunk in stim.chunks(CHUNK_SAMPLES):
            self.sio.emit("audio_data", {"audio_data": chunk.base64, "has_audio": chunk.has_audio,
                                         "max_amplitude": chunk.peak})

    def audio(self, timeout: float) -> tuple[bytes, int] | str | None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                name, at, data = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if name == "audio_response":
                return base64.b64decode(data["audio_data"]), at

    def close(self) -> None:
        self.sio.emit("stop_call")
        time.sleep(0.1)
        self.sio.disconnect()


class WebSocketClient:
    def __init__(self, url: str, path: str, header: list[str]) -> None:
        self.ws = websocket.create_connection(url.replace("http", "ws", 1) + path, header=header, timeout=5)

    def send_json(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def receive(self, timeout: float) -> tuple[dict[str, Any], int] | None:
        self.ws.settimeout(max(timeout, 0.001))
        try:
            _, data = self.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            return None
        return json.loads(data), time.perf_counter_ns()

    def close(self) -> None:
        self.ws.close()


class OpenAIClient(WebSocketClient):
    input_rate = 24_000

    def __init__(self, url: str, vad: bool) -> None:
        super().__init__(url, OPENAI_REALTIME_PATH + "?model=gpt-realtime", [f"Authorization: Bearer {KEY}"])
        self.vad = vad

    def start(self) -> None:
        detection = {"type": "server_vad", "silence_duration_ms": 500} if self.vad else None
        self.send_json({"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"turn_detection": detection}}}})
        while self.receive(5)[0]["type"] != "session.updated":
            pass

    def send(self, stim: Stimulus) -> None:
        for chunk in stim.chunks(2400):
            self.send_json({"type": "input_audio_buffer.append", "audio": chunk.base64})
        if not self.vad:
            self.send_json({"type": "input_audio_buffer.commit"})
            self.send_json({"type": "response.create"})

    def audio(self, timeout: float) -> tuple[bytes, int] | str | None:
        deadline = time.monotonic() + timeout
        while (got := self.receive(deadline - time.monotonic())) is not None:
            message, at = got
            if message["type"] == "response.output_audio.delta":
                return base64.b64decode(message["delta"]), at
            if message["type"] == "response.done":
                return DONE
        return None


class GeminiClient(WebSocketClient):
    input_rate = 16_000

    def __init__(self, url: str, vad: bool) -> None:
        super().__init__(url, GEMINI_LIVE_PATH + f"?key={KEY}", [])
        self.vad = vad

    def start(self) -> None:
        config = {} if self.vad else {"realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}}}
        self.send_json({"setup": {"model": "models/x", **config}})
        while "setupComplete" not in self.receive(5)[0]:
            pass

    def send(self, stim: Stimulus) -> None:
        if not self.vad:
            self.send_json({"realtimeInput": {"activityStart": {}}})
        for chunk in stim.chunks(CHUNK_SAMPLES):
            self.send_json({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": chunk.base64}}})
        if not self.vad:
            self.send_json({"realtimeInput": {"activityEnd": {}}})

    def audio(self, timeout: float) -> tuple[bytes, int] | str | None:
        deadline = time.monotonic() + timeout
        while (got := self.receive(deadline - time.monotonic())) is not None:
            message, at = got
            content = message.get("serverContent", {})
            for part in content.get("modelTurn", {}).get("parts", []):
                return base64.b64decode(part["inlineData"]["data"]), at
            if content.get("turnComplete"):
                return DONE
        return None


CLIENTS = {"aivoco": AivocoClient, "openai": OpenAIClient, "gemini": GeminiClient}


def test_every_emulated_protocol_has_a_raw_client_or_a_reason():
    missing = [name for name in server_protocols.BUILTINS if name not in CLIENTS and name not in NO_RAW_CLIENT]
    assert missing == [], f"add a raw client to CLIENTS, or a reason to NO_RAW_CLIENT, for {missing}"


def client_class(protocol: str):
    """The raw client of ``protocol``; a protocol without one fails its tests saying so."""
    try:
        return CLIENTS[protocol]
    except KeyError:
        raise LookupError(f"tests/test_server_audible.py has no raw client for the protocol {protocol!r}: add one "
                          f"to CLIENTS") from None


def connect(server, protocol: str, vad: bool = False):
    client = client_class(protocol)(server.url, vad)
    client.start()
    return client


def collect(client, first_timeout: float = 3.0, gap: float = 0.3) -> list[tuple[bytes, int]]:
    """One reply's chunks with their arrival times: until its end event, or (Aivoco) a pause of ``gap``."""
    chunks: list[tuple[bytes, int]] = []
    while True:
        got = client.audio(first_timeout if not chunks else gap)
        if got is None or got == DONE:
            return chunks
        chunks.append(got)


def dominant_hz(chunks: list[tuple[bytes, int]], rate: int = 24_000) -> float:
    samples = np.frombuffer(b"".join(c for c, _ in chunks), dtype="<i2").astype(float)
    return float(np.argmax(np.abs(np.fft.rfft(samples)))) * rate / samples.size


def truth(server, since_ns: int = 0, count: int = 1) -> list[dict[str, Any]]:
    """The server's sessions that started after ``since_ns`` (a server shared by the session serves other tests),
    once ``count`` of them have ended (the server writes a session's record when it notices its end)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = read_jsonl(server.ground_truth) if server.ground_truth.exists() else []
        sessions = [line for line in lines if line["session"] is not None
                    and (line["t_ns"]["start_received"] or 0) >= since_ns]
        if len(sessions) >= count and all(line["outcome"] for line in sessions):
            return sessions
        time.sleep(0.05)
    raise AssertionError("no ground truth written")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_leading_silence_is_noise_and_the_first_audible_sample_plays_after_it(shared_reference_server, protocol):
    server = shared_reference_server(setup_delay=5, first_audio_delay=20, cold_penalty=0,
                                     extra_args=["--leading-silence-ms", "230"])
    since = time.perf_counter_ns()
    client = connect(server, protocol)
    client.send(Stimulus.sine(seconds=0.3).at_rate(client_class(protocol).input_rate))
    chunks = collect(client)
    client.close()

    detector = AudibleDetector(24_000)
    found = None
    for pcm, at in chunks:
        found = detector.feed(pcm, at)
    first = np.frombuffer(chunks[0][0], dtype="<i2").astype(int)
    assert 0 < np.abs(first).max() < 0.01 * 32768, "leading silence must be low-level noise, not digital zeros"
    assert sum(len(c) for c, _ in chunks) == 2 * 24 * 830   # 230 ms of noise + the 600 ms reply
    assert found is not None
    assert 229 <= found.leading_silence_ms <= 240 + found.underrun_ms, found
    (record,) = truth(server, since)
    assert record["injected"]["leading_silence_ms"] == 230.0
    measured = record["measured"]
    assert measured["first_audible_ms"] == pytest.approx(measured["first_response_ms"] + 230, abs=0.01)
    assert measured["input_to_audible_ms"] == pytest.approx(measured["input_to_audio_ms"] + 230, abs=0.01)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_greeting_comes_unasked_and_is_recorded_apart_from_the_answer(shared_reference_server, protocol):
    server = shared_reference_server(setup_delay=5, first_audio_delay=20, cold_penalty=0,
                                     extra_args=["--greeting-ms", "50"])
    since = time.perf_counter_ns()
    client = connect(server, protocol)
    ready = time.perf_counter_ns()
    greeting = collect(client)
    client.send(Stimulus.sine(seconds=0.3).at_rate(client_class(protocol).input_rate))
    answer = collect(client)
    client.close()

    assert sum(len(c) for c, _ in greeting) == 2 * 24 * 400
    assert 40 <= (greeting[0][1] - ready) / 1e6 <= 80
    assert dominant_hz(greeting) == pytest.approx(660, abs=5)
    assert sum(len(c) for c, _ in answer) == 2 * 24 * 600
    assert dominant_hz(answer) == pytest.approx(440, abs=5)
    (record,) = truth(server, since)
    assert record["greeting"]["chunks"] == 10 and record["greeting"]["interrupted"] is False
    assert 45 <= record["measured"]["greeting_ms"] <= 70
    assert record["measured"]["first_response_ms"] > record["measured"]["greeting_ms"] + 360   # its last chunk
    assert record["audio_out"]["chunks"] == 15 and record["injected"]["greeting_ms"] == 50.0


def test_an_answer_cuts_a_greeting_still_being_sent_short(reference_server):
    server = reference_server(setup_delay=5, first_audio_delay=100, cold_penalty=0, extra_args=["--greeting-ms", "0"])
    client = connect(server, "aivoco")
    client.send(Stimulus.sine(seconds=0.1))
    chunks = collect(client)
    client.close()
    (record,) = truth(server)
    assert record["greeting"]["interrupted"] is True
    assert 1 <= record["greeting"]["chunks"] < 10
    assert len(chunks) == record["greeting"]["chunks"] + 15


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_vad_needs_speech_ignores_the_sine_and_answers_the_speech_clip(shared_reference_server, protocol):
    server = shared_reference_server(setup_delay=5, first_audio_delay=20, cold_penalty=0,
                                     extra_args=["--vad-needs-speech"])
    since = time.perf_counter_ns()
    rate = client_class(protocol).input_rate
    answered = []
    for stim in (Stimulus.sine(), Stimulus.speech()):
        client = connect(server, protocol, vad=True)
        client.send(stim.at_rate(rate).with_silence(700))
        answered.append(len(collect(client, first_timeout=1.5)))
        client.close()
    assert answered[0] == 0 and answered[1] == 15
    records = truth(server, since, count=2)
    assert [r["input_speech"] for r in records] == [False, True]
    assert [r["outcome"] for r in records] == ["stopped_before_audio", "ok"]


def test_the_speech_test_passes_the_arctic_clip_at_both_rates_and_fails_tones_and_noise():
    from bootbench.server.speechlike import is_speech_like

    t = np.arange(16_000) / 16_000
    tremolo = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t) * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))).astype(np.int16)
    sweep = (0.3 * 32767 * np.sin(2 * np.pi * (200 + 800 * t) * t)).astype(np.int16)
    noise = np.random.default_rng(0).normal(0, 3000, 16_000).astype(np.int16)
    for stim in (Stimulus.speech(), Stimulus.speech().at_rate(24_000).with_silence(500)):
        assert is_speech_like(stim.samples, stim.rate)
    for samples in (Stimulus.sine().samples, tremolo, sweep, noise, np.zeros(16_000, dtype=np.int16)):
        assert not is_speech_like(samples, 16_000)


def test_leading_silence_and_greeting_draws_leave_a_seeds_delays_unchanged():
    from bootbench.server.latency import LatencyModel, parse_delay

    plain = LatencyModel(parse_delay("lognormal:50:0.2"), parse_delay("lognormal:150:0.25"), 200, seed=7)
    fixed = LatencyModel(parse_delay("lognormal:50:0.2"), parse_delay("lognormal:150:0.25"), 200, seed=7,
                         leading_silence=parse_delay("230"), greeting=parse_delay("50"))
    for _ in range(5):
        a, b = plain.draw(), fixed.draw()
        assert (a.setup_delay_ms, a.first_audio_delay_ms) == (b.setup_delay_ms, b.first_audio_delay_ms)
        assert (a.leading_silence_ms, a.greeting_ms) == (0.0, None)
        assert (b.leading_silence_ms, b.greeting_ms) == (230.0, 50.0)
    drawn = LatencyModel(parse_delay("5"), parse_delay("5"), 0, seed=1, leading_silence=parse_delay("uniform:100:300"))
    values = [drawn.draw().leading_silence_ms for _ in range(20)]
    assert all(100 <= v <= 300 for v in values) and len(set(values)) == 20
