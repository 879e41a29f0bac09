"""Fidelity: the wire traffic of the drivers and of the reference server matches the vendors' published schemas.

The frames are real traffic, recorded by a proxy between bootbench's drivers
and a reference server process. OpenAI events are validated with the
``openai`` package's realtime models through a union discriminated on
``type``, plus a check for keys the models do not know (they accept
extras; the real service rejects unknown parameters). Gemini messages are
validated with ``google-genai``'s ``LiveClientMessage`` / ``LiveServerMessage``
(``extra='forbid'``, camelCase); ``setup.realtimeInputConfig``, which
``LiveClientSetup`` lacks, is validated on its own with ``RealtimeInputConfig``.
"""

from __future__ import annotations

import base64
import json
import time
import typing
from typing import Annotated, Any, Union

import pytest
import websocket
from google.genai import _live_converters as genai_wire
from google.genai import types as genai_types
from openai.types import realtime as openai_realtime
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from bootbench.audio import Stimulus
from bootbench.providers import DriverConfig, create, install_tuning
from bootbench.samples import Timeline
from bootbench.server import ReferenceServer
from bootbench.wire import GEMINI_LIVE_PATH, OPENAI_REALTIME_PATH
from support.recording_proxy import RecordingProxy

SERVER_SESSION_EXTRAS = {".session.id", ".session.object", ".session.expires_at"}
"""Keys the service reports in session.created/updated that the SDK's session model does not declare."""


def discriminated(union: Any) -> TypeAdapter:
    members = typing.get_args(typing.get_args(union)[0])
    return TypeAdapter(Annotated[Union[members], Field(discriminator="type")])


CLIENT_EVENT = discriminated(openai_realtime.RealtimeClientEvent)
SERVER_EVENT = discriminated(openai_realtime.RealtimeServerEvent)


def unknown_keys(value: Any, path: str = "") -> list[str]:
    """Paths of keys a model accepted as extras, anywhere inside ``value``."""
    if isinstance(value, BaseModel):
        found = [f"{path}.{key}" for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += unknown_keys(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, (list, tuple)):
        return [key for index, item in enumerate(value) for key in unknown_keys(item, f"{path}[{index}]")]
    return []


def validate_openai_client(data: str | bytes) -> Any:
    event = CLIENT_EVENT.validate_json(data)
    assert unknown_keys(event) == [], f"unknown parameters in {event.type}: {unknown_keys(event)}"
    return event


def validate_gemini_client(data: str | bytes) -> Any:
    message = json.loads(data)
    setup = message.get("setup")
    if isinstance(setup, dict) and "realtimeInputConfig" in setup:
        genai_types.RealtimeInputConfig.model_validate(setup.pop("realtimeInputConfig"))
    return genai_types.LiveClientMessage.model_validate_json(json.dumps(message))


def validate_gemini_server(data: str | bytes) -> Any:
    """A server message as the SDK reads it: its Developer API converter first (the wire's ``voiceActivity.type`` is
    the model's ``voice_activity_type``), then the model, which forbids unknown fields. The converter drops a
    top-level field it does not know, so none may be dropped."""
    raw = json.loads(data)
    converted = genai_wire._LiveServerMessage_from_mldev(raw)
    assert len(converted) == len(raw), f"a top-level field the SDK does not read, in {sorted(raw)}"
    return genai_types.LiveServerMessage.model_validate(converted)


def run_cycle(provider: str, url: str, **options: Any) -> dict[str, float | None]:
    """One full driver cycle (connect, start, audio, first audio, stop); its phases."""
    install_tuning()  # the frames a run sends: websocket-client as a run's users patch it
    config = DriverConfig(url=url, api_key="k-schema-1234", timeout=5, **options)
    driver = create(provider, config, Stimulus.sine(seconds=0.3))
    timeline = Timeline()
    timeline.cycle_start = time.perf_counter_ns()
    deadline = timeline.cycle_start + int(5e9)
    try:
        driver.connect(timeline)
        driver.start(timeline, deadline)
        driver.send_audio(timeline)
        driver.first_audio(timeline, deadline)
        driver.stop(timeline)
    finally:
        driver.close()
    return timeline.phases()


def openai_raw_session(url: str) -> None:
    """A hand-driven session with what a driver's cycle never sees: error, cleared, cancel, a completed response, the
    transcription of the input (asked for in the session)."""
    ws = websocket.create_connection(url.replace("http", "ws", 1) + OPENAI_REALTIME_PATH + "?model=gpt-realtime",
                                     header=["Authorization: Bearer k-raw-1234"], timeout=5)
    events = []

    def send(event: dict[str, Any]) -> None:
        ws.send(json.dumps(event))

    def until(kind: str) -> dict[str, Any]:
        while True:
            event = json.loads(ws.recv())
            events.append(event["type"])
            if event["type"] == kind:
                return event

    until("session.created")
    send({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": None, "transcription": {"model": "gpt-4o-mini-transcribe"}}}}})
    until("session.updated")
    send({"type": "input_audio_buffer.commit"})
    assert until("error")["error"]["code"] == "input_audio_buffer_commit_empty"
    send({"type": "input_audio_buffer.append", "audio": "AAAAAA=="})
    send({"type": "input_audio_buffer.clear"})
    until("input_audio_buffer.cleared")
    send({"type": "response.create"})
    until("response.created")
    send({"type": "response.cancel"})
    assert until("response.done")["response"]["status"] == "cancelled"
    send({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(2 * 24000 // 5)).decode()})
    send({"type": "input_audio_buffer.commit"})
    send({"type": "response.create"})
    assert until("response.done")["response"]["status"] == "completed"
    ws.close()


def gemini_raw_session(url: str) -> None:
    """A hand-driven session that waits for the whole reply: generationComplete, turnComplete."""
    ws = websocket.create_connection(url.replace("http", "ws", 1) + GEMINI_LIVE_PATH,
                                     header=["x-goog-api-key: k-raw-1234"], timeout=5)
    audio = base64.b64encode(Stimulus.sine(seconds=0.2).chunks()[0].pcm).decode()
    ws.send(json.dumps({"setup": {"model": "models/gemini-live-2.5-flash-preview",
                                  "generationConfig": {"responseModalities": ["AUDIO"]},
                                  "realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}}}}))
    assert "setupComplete" in json.loads(ws.recv())
    for message in ({"activityStart": {}}, {"audio": {"mimeType": "audio/pcm;rate=16000", "data": audio}},
                    {"activityEnd": {}}):
        ws.send(json.dumps({"realtimeInput": message}))
    while not json.loads(ws.recv()).get("serverContent", {}).get("turnComplete"):
        pass
    ws.close()


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """Frames of driver cycles in every mode (and one hand-driven OpenAI session), by path and sender."""
    truth = tmp_path_factory.mktemp("schemas") / "truth.jsonl"
    with ReferenceServer.start(ground_truth=truth, setup_delay="5", first_audio_delay="5", cold_penalty=0,
                               reply_ms=120) as server, RecordingProxy(server.url) as proxy:
        for provider in ("openai", "gemini"):
            run_cycle(provider, proxy.url, turn="manual")
            run_cycle(provider, proxy.url, turn="manual", pace="realtime")
            run_cycle(provider, proxy.url, turn="vad", trailing_silence_ms=600)
        run_cycle("gemini", proxy.url, turn="vad", pace="realtime")
        time.sleep(0.2)
        stats = server.stats()
        openai_raw_session(proxy.url)
        gemini_raw_session(proxy.url)
        time.sleep(0.2)
    return {"frames": proxy.frames, "stats": stats}


def _bytes(data: str | bytes) -> bytes:
    return data if isinstance(data, bytes) else data.encode()


def frames(traffic, path: str, sender: str) -> list:
    return [f for f in traffic["frames"] if f.path == path and f.sender == sender]


@pytest.mark.slow
def test_the_recorded_driver_cycles_committed_no_violation(traffic):
    assert traffic["stats"]["violations"] == 0 and traffic["stats"]["notes"] == 0
    assert traffic["stats"]["outcomes"] == {"ok": 7}


def test_every_openai_client_event_the_driver_sends_matches_the_published_schema(traffic):
    sent = frames(traffic, OPENAI_REALTIME_PATH, "client")
    assert sent and not any(f.binary for f in sent)
    kinds = [validate_openai_client(f.data).type for f in sent]
    assert set(kinds) == {"session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
                          "response.create", "input_audio_buffer.clear", "response.cancel"}
    updates = [json.loads(f.data)["session"] for f in sent if json.loads(f.data)["type"] == "session.update"]
    driver_updates = [u for u in updates if "output_modalities" in u]
    assert len(driver_updates) == 3
    assert [u["audio"]["input"]["turn_detection"] for u in driver_updates[:2]] == [None, None]
    assert driver_updates[2]["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert all(u["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000} for u in driver_updates)


def test_every_openai_server_event_matches_the_published_schema(traffic):
    received = frames(traffic, OPENAI_REALTIME_PATH, "server")
    kinds = []
    for frame in received:
        event = SERVER_EVENT.validate_json(frame.data)
        assert set(unknown_keys(event)) <= SERVER_SESSION_EXTRAS, (event.type, unknown_keys(event))
        kinds.append(event.type)
    assert set(kinds) == {
        "session.created", "session.updated", "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped", "input_audio_buffer.committed", "input_audio_buffer.cleared",
        "response.created", "response.output_item.added", "response.content_part.added",
        "response.output_audio.delta", "response.output_audio.done", "response.output_audio_transcript.delta",
        "response.output_audio_transcript.done", "response.content_part.done", "response.output_item.done",
        "response.done", "error", "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed"}


def test_every_gemini_client_message_the_driver_sends_matches_the_published_schema(traffic):
    sent = frames(traffic, GEMINI_LIVE_PATH, "client")
    messages = [validate_gemini_client(f.data) for f in sent]
    setups = [m.setup for m in messages if m.setup is not None]
    assert len(setups) == 5 and all(s.generation_config.response_modalities == ["AUDIO"] for s in setups)
    inputs = [m.realtime_input for m in messages if m.realtime_input is not None]
    assert {m.audio.mime_type for m in inputs if m.audio} == {"audio/pcm;rate=16000"}
    assert sum(1 for m in inputs if m.activity_start is not None) == 3
    assert sum(1 for m in inputs if m.activity_end is not None) == 3
    assert sum(1 for m in inputs if m.audio_stream_end) == 2


def test_every_gemini_server_message_matches_the_published_schema_in_text_and_binary_frames(traffic):
    received = frames(traffic, GEMINI_LIVE_PATH, "server")
    messages = [validate_gemini_server(f.data) for f in received]
    assert {f.binary for f in received} == {True, False}
    first_audio = [next(f.binary for f in received[i + 1:] if b"modelTurn" in _bytes(f.data))
                   for i, f in enumerate(received) if b"setupComplete" in _bytes(f.data)]
    assert set(first_audio) == {True, False}, "the first audio of a session came in one frame kind only"
    assert sum(1 for m in messages if m.setup_complete is not None) == 5
    audio = [p.inline_data for m in messages if m.server_content and m.server_content.model_turn
             for p in m.server_content.model_turn.parts]
    assert audio and {blob.mime_type for blob in audio} == {"audio/pcm;rate=24000"}
    assert sum(1 for m in messages if m.server_content and m.server_content.generation_complete) == 1
    last = messages[-1]
    assert last.server_content.turn_complete and last.usage_metadata.total_token_count > 0
    # the service stages' messages (docs/protocols/gemini-live.md): the SDK reads them as what they are
    assert any(m.voice_activity and m.voice_activity.voice_activity_type == "ACTIVITY_END" for m in messages)
    assert any(m.server_content and m.server_content.input_transcription for m in messages)
    assert any(m.server_content and m.server_content.output_transcription for m in messages)


@pytest.mark.parametrize("event, needle", [
    ({"type": "session.update", "session": {"modalities": ["audio"], "voice": "alloy"}}, "Field required"),
    ({"type": "input_audio_buffer.append"}, "Field required"),
    ({"type": "response.audio.create"}, "does not match any of the expected tags"),
])
def test_the_openai_validation_rejects_malformed_and_beta_shaped_events(event, needle):
    with pytest.raises(ValidationError, match=needle):
        validate_openai_client(json.dumps(event))


def test_the_openai_validation_flags_keys_the_models_only_tolerate():
    beta_field = {"type": "session.update", "session": {"type": "realtime", "voice": "alloy"}}
    with pytest.raises(AssertionError, match=r"\.session\.voice"):
        validate_openai_client(json.dumps(beta_field))


def test_the_gemini_validation_rejects_snake_case_slips_and_unknown_fields():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        validate_gemini_client(json.dumps({"realtimeInput": {"audio_stream_ended": True}}))
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        validate_gemini_client(json.dumps({"setup": {"model": "models/x", "realtimeInputConfig": {
            "automaticActivityDetection": {"disable": True}}}}))
