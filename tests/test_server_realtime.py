"""The reference server's OpenAI Realtime and Gemini Live emulations: turn detection and strict message checks."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pytest
import websocket

from bootbench.server import ReferenceServer
from bootbench.server.turns import SilenceDetector
from bootbench.wire import GEMINI_LIVE_PATH, OPENAI_REALTIME_PATH


def pcm(seconds: float, amplitude: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * amplitude * 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("chunk_ms", [None, 64, 7])
def test_silence_detector_finds_the_end_of_speech_whatever_the_chunk_size(chunk_ms):
    audio = pcm(0.2, 0, 16000) + pcm(1.0, 0.5, 16000) + pcm(0.7, 0, 16000)
    step = len(audio) if chunk_ms is None else 2 * 16 * chunk_ms
    detector = SilenceDetector(16000, 500)
    edges = [detector.feed(audio[i:i + step]) for i in range(0, len(audio), step)]
    started = [e.started_ms for e in edges if e.started_ms is not None]
    stopped = [e.stopped_ms for e in edges if e.stopped_ms is not None]
    assert started == [pytest.approx(200, abs=0.2)]
    assert stopped == [pytest.approx(1700, abs=0.2)]


def test_silence_detector_ignores_silence_before_speech_and_short_pauses():
    detector = SilenceDetector(24000, 500)
    assert detector.feed(pcm(2.0, 0, 24000)).started_ms is None
    for part in (pcm(0.3, 0.5, 24000), pcm(0.4, 0, 24000), pcm(0.3, 0.5, 24000), pcm(0.4, 0, 24000)):
        assert detector.feed(part).stopped_ms is None
    assert detector.feed(pcm(0.2, 0, 24000)).stopped_ms == pytest.approx(3500, abs=0.1)


class Socket:
    """A raw WebSocket client that reads JSON from text and binary frames."""

    def __init__(self, url: str, path: str, header: list[str]) -> None:
        self.ws = websocket.create_connection(url.replace("http", "ws", 1) + path, header=header, timeout=5)

    def send(self, message: Any, binary: bool = False) -> None:
        data = json.dumps(message) if not isinstance(message, str) else message
        if binary:
            self.ws.send_binary(data.encode())
        else:
            self.ws.send(data)

    def until(self, match) -> dict[str, Any]:
        while True:
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return {"closed": int.from_bytes(data[:2], "big"), "reason": data[2:].decode()}
            message = json.loads(data)
            if match(message):
                return message


def wait_violations(server: ReferenceServer, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while server.stats()["violations"] < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return server.stats()


def test_openai_emulation_answers_rejected_events_like_the_service_and_counts_every_violation(tmp_path):
    with ReferenceServer.start(ground_truth=tmp_path / "t.jsonl", setup_delay="5", first_audio_delay="5") as server:
        client = Socket(server.url, OPENAI_REALTIME_PATH + "?model=gpt-realtime", ["Authorization: Bearer k-1"])
        assert client.until(lambda m: True)["type"] == "session.created"
        client.send({"type": "input_audio_buffer.append", "audio": "AAAAAA=="})
        client.send({"type": "session.update", "session": {"type": "realtime", "modalities": ["audio"]}})
        error = client.until(lambda m: m["type"] == "error")["error"]
        assert (error["code"], error["param"]) == ("unknown_parameter", "session.modalities")
        assert "GA: session.output_modalities" in error["message"]
        client.send({"type": "session.update", "session": {"type": "realtime"}}, binary=True)
        client.until(lambda m: m["type"] == "session.updated")
        client.send({"type": "input_audio_buffer.append", "audio": "not base64!"})
        assert client.until(lambda m: m["type"] == "error")["error"]["param"] == "input_audio_buffer.append.audio"
        client.send({"type": "response.audio.create"})
        client.until(lambda m: m["type"] == "error")
        stats = wait_violations(server, 3)
        client.ws.close()
    truth = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    violations = [v for line in truth for v in line["violations"]]
    assert stats["violations"] == 3 == len(violations)
    for needle in ("unknown parameter 'modalities'", "not valid base64",
                   "unknown client event type 'response.audio.create'"):
        assert any(needle in v for v in violations), needle
    # What the service accepts (the early append is processed once the session is ready) is a note, not a violation.
    notes = [n for line in truth for n in line["notes"]]
    assert stats["notes"] == 3 == len(notes)
    for needle in ("input_audio_buffer.append without a session.update first", "append before session.updated",
                   "a binary frame"):
        assert any(needle in n for n in notes), needle


def test_gemini_emulation_closes_with_1007_on_an_unknown_field_after_counting_earlier_violations(tmp_path):
    with ReferenceServer.start(ground_truth=tmp_path / "t.jsonl", setup_delay="5", first_audio_delay="5") as server:
        client = Socket(server.url, GEMINI_LIVE_PATH + "?key=k-1", [])
        client.send({"realtimeInput": {"activityStart": {}}})
        client.send({"setup": {"model": "models/x", "realtimeInputConfig": {
            "automaticActivityDetection": {"disabled": True}}}})
        assert client.until(lambda m: True) == {"setupComplete": {}}
        client.send({"realtimeInput": {"audio": {"mimeType": "audio/pcm;rate=16000", "data": "AAAAAA=="}}})
        client.send({"realtimeInput": {"activityEnd": {}}})
        client.send({"realtime_input": {"audio_stream_end": True}})   # proto names: accepted, as by the service
        client.send({"realtimeInput": {"audioStreamEnded": True}})
        closed = client.until(lambda m: False)
        stats = wait_violations(server, 2)
    assert closed == {"closed": 1007, "reason": "realtimeInput: unknown parameter 'audioStreamEnded'"}
    assert stats["violations"] == 2 and stats["outcomes"] == {"rejected": 1, "outside_session": 1}
    # What the service tolerates is noted: audio outside an activity, an activityEnd without activityStart,
    # the proto field names realtime_input and audio_stream_end, audioStreamEnd under manual activity detection.
    assert stats["notes"] == 5
