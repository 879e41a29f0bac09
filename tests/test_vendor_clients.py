"""The vendors' own SDK clients against the reference server: it is a stand-in for the real service to any client.

Each test runs one session with the SDK as its documentation shows it (the OpenAI SDK sends without waiting
for ``session.updated``; google-genai sends proto field names), checks that audio came back, that the
server's ground truth for that session matches what the client saw, and that its ``notes`` say what the
client did differently from bootbench's drivers (whose tests assert an empty list). Everything stays on
127.0.0.1. Also here: a raw client that sends early, so a driver doing it would be caught.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import numpy as np
import pytest
import websocket

from support.ground_truth import written_sessions
from bootbench.wire import OPENAI_REALTIME_PATH

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, FIRST_AUDIO_MS, REPLY_MS = 60.0, 40.0, 200
REPLY_SAMPLES = REPLY_MS * 24  # 24 kHz out, every protocol
KEY = "k-vendor"


def tone(seconds: float, rate: int, amplitude: float = 0.3) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * amplitude * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int) -> bytes:
    return bytes(2 * int(seconds * rate))


def start(reference_server):
    return reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                            reply_ms=REPLY_MS)


def session_truth(server) -> dict[str, Any]:
    """The one session's ground truth line, once the server has written it (at the session's end)."""
    (line,) = written_sessions(server)
    return line


def assert_answered_after_input(truth: dict[str, Any], audio_bytes: int, chunks: int) -> None:
    """The server's record of the session is what the client saw: every reply chunk, after the input."""
    assert truth["outcome"] == "ok" and truth["violations"] == [] and truth["violation_count"] == 0
    assert audio_bytes == 2 * truth["audio_out"]["samples"] == 2 * REPLY_SAMPLES
    assert chunks == truth["audio_out"]["chunks"] == REPLY_MS // 40
    turn = truth["turns"][0]
    assert turn["t_ns"]["last_input_received"] < turn["t_ns"]["first_audio_sent"] < turn["t_ns"]["reply_end_sent"]
    assert truth["measured"]["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=25)


# ---- OpenAI: the `openai` package's realtime client (client.realtime.connect)

async def openai_session(url: str, turn: str) -> tuple[int, int, list[str]]:
    """One turn with the SDK, sending everything at once as its examples do; (audio bytes, audio chunks, events)."""
    from openai import AsyncOpenAI

    # base_url is all it takes: the SDK turns http://HOST/v1 into ws://HOST/v1/realtime?model=...
    client = AsyncOpenAI(api_key=KEY, base_url=url + "/v1")
    audio_bytes, chunks, events = 0, 0, []
    async with client.realtime.connect(model="gpt-realtime") as connection:
        if turn != "default":
            detection = None if turn == "manual" else {"type": "server_vad", "silence_duration_ms": 500}
            await connection.session.update(session={
                "type": "realtime", "output_modalities": ["audio"],
                "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": detection}}})
        speech = tone(0.5, 24000) + (b"" if turn == "manual" else silence(0.7, 24000))
        await connection.input_audio_buffer.append(audio=base64.b64encode(speech).decode())
        if turn == "manual":
            await connection.input_audio_buffer.commit()
            await connection.response.create()
        async for event in connection:
            events.append(event.type)
            if event.type == "response.output_audio.delta":
                audio_bytes += len(base64.b64decode(event.delta))
                chunks += 1
            if event.type in ("response.done", "error"):
                break
    return audio_bytes, chunks, events


@pytest.mark.parametrize("turn, notes", [
    ("manual", ["input_audio_buffer.append before session.updated", "input_audio_buffer.commit before session.updated",
                "response.create before session.updated"]),
    ("server_vad", ["input_audio_buffer.append before session.updated"]),
    ("default", ["input_audio_buffer.append without a session.update first (the default session: server VAD)",
                 "input_audio_buffer.append before session.updated"]),
])
def test_openai_sdk_sending_without_waiting_gets_a_full_reply(reference_server, turn, notes):
    server = start(reference_server)
    audio_bytes, chunks, events = asyncio.run(asyncio.wait_for(openai_session(server.url, turn), 15))
    assert events[-1] == "response.done" and "error" not in events
    assert ("session.updated" in events) == (turn != "default")
    if turn != "manual":
        assert events.index("input_audio_buffer.speech_stopped") < events.index("response.created")
    truth = session_truth(server)
    assert_answered_after_input(truth, audio_bytes, chunks)
    assert truth["notes"] == notes
    # The events that waited for the session were taken when it was ready, and are timed from then.
    ready = truth["t_ns"]["ready_sent"]
    assert truth["t_ns"]["first_input_received"] == ready
    assert truth["measured"]["session_start_ms"] == pytest.approx(SETUP_MS, abs=25)
    if turn == "manual":
        assert truth["t_ns"]["last_input_received"] == ready
    assert truth["audio_in"]["samples"] == (12_000 if turn == "manual" else 28_800)
    assert server.stats()["violations"] == 0


# ---- Gemini: google-genai's live client (client.aio.live.connect)

def gemini_client(url: str):
    from google import genai
    from google.genai import types

    client = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=url, api_version="v1beta"))
    # Shim: google-genai always connects with wss:// (it rewrites the base URL's scheme and passes an SSL
    # context); the reference server speaks plain ws:// on 127.0.0.1, so point its WebSocket base there.
    api = client.aio.live._api_client
    api._websocket_base_url = lambda http_options=None: url.replace("http", "ws", 1)
    api._websocket_ssl_ctx = {}
    return client


async def gemini_session(url: str, turn: str) -> tuple[int, int]:
    """One turn with the SDK; (audio bytes, audio chunks) of the reply."""
    from google.genai import types

    manual = turn == "activity"
    config = types.LiveConnectConfig(response_modalities=["AUDIO"], realtime_input_config=types.RealtimeInputConfig(
        automatic_activity_detection=types.AutomaticActivityDetection(disabled=manual)))
    audio_bytes = chunks = 0
    async with gemini_client(url).aio.live.connect(model="gemini-2.5-flash-native-audio-preview-12-2025",
                                                   config=config) as session:
        if manual:
            await session.send_realtime_input(activity_start=types.ActivityStart())
        speech = tone(0.5, 16000) + (silence(0.7, 16000) if turn == "silence" else b"")
        await session.send_realtime_input(audio=types.Blob(data=speech, mime_type="audio/pcm;rate=16000"))
        if manual:
            await session.send_realtime_input(activity_end=types.ActivityEnd())
        elif turn == "stream_end":
            await session.send_realtime_input(audio_stream_end=True)
        async for message in session.receive():
            if message.data:
                audio_bytes += len(message.data)
                chunks += 1
            if message.server_content and message.server_content.turn_complete:
                break
    return audio_bytes, chunks


@pytest.mark.parametrize("turn", ["stream_end", "silence", "activity"])
def test_google_genai_live_client_with_proto_field_names_gets_a_full_reply(reference_server, turn):
    server = start(reference_server)
    audio_bytes, chunks = asyncio.run(asyncio.wait_for(gemini_session(server.url, turn), 15))
    truth = session_truth(server)
    assert_answered_after_input(truth, audio_bytes, chunks)
    # The SDK waits for setupComplete: the only difference from bootbench's driver is the proto names it
    # leaves in its messages (its converters rename the rest: audioStreamEnd, activityStart, activityEnd).
    proto_names = ["automatic_activity_detection", "realtime_input", "mime_type"]
    assert truth["notes"] == [f"snake_case (proto) field name: {name}" for name in proto_names]
    assert truth["audio_in"]["samples"] == (19_200 if turn == "silence" else 8_000)
    assert truth["t_ns"]["first_input_received"] > truth["t_ns"]["ready_sent"]
    assert server.stats()["violations"] == 0


# ---- a raw client that sends early: the note that would catch a driver doing it

def test_a_client_sending_before_session_updated_is_noted_and_still_answered(reference_server):
    server = start(reference_server)
    ws = websocket.create_connection(server.url.replace("http", "ws", 1) + OPENAI_REALTIME_PATH
                                     + "?model=gpt-realtime", header=[f"Authorization: Bearer {KEY}"], timeout=5)
    assert json.loads(ws.recv())["type"] == "session.created"
    sent_ns = time.perf_counter_ns()
    ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "audio": {
        "input": {"turn_detection": None}}}}))
    ws.send(json.dumps({"type": "input_audio_buffer.append",
                        "audio": base64.b64encode(tone(0.2, 24000)).decode()}))
    ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    ws.send(json.dumps({"type": "response.create"}))
    kinds: list[str] = []
    while not kinds or kinds[-1] != "response.done":
        kinds.append(json.loads(ws.recv())["type"])
    ws.close()
    # In order, as the service processes them: the update, the commit, then the response.
    assert kinds.index("session.updated") < kinds.index("input_audio_buffer.committed") \
        < kinds.index("response.created") < kinds.index("response.output_audio.delta")
    assert kinds.count("response.output_audio.delta") == REPLY_MS // 40
    truth = session_truth(server)
    assert truth["notes"] == ["input_audio_buffer.append before session.updated",
                              "input_audio_buffer.commit before session.updated",
                              "response.create before session.updated"]
    assert truth["note_count"] == 3 and truth["violations"] == []
    assert truth["t_ns"]["last_input_received"] == truth["t_ns"]["ready_sent"] > sent_ns
    stats = server.stats()
    assert (stats["notes"], stats["violations"], stats["outcomes"]) == (3, 0, {"ok": 1})
