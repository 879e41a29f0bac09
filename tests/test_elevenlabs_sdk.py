"""ElevenLabs' own Python SDK (``elevenlabs``, a test-only dependency) against the driver and the emulation.

- Every message the driver sends in a real session is recorded and validated: the initiation message against
  the SDK's pydantic model (``ConversationInitiationClientDataRequestInput``, no field it does not know), the
  audio and pong messages against the required fields of ElevenLabs' AsyncAPI description of the wire (the SDK
  has no model of them; its conversation client builds them as plain dicts, with the same shape).
- The SDK's own conversation client (``Conversation``, signed URL, a fake microphone) talks to the reference
  server: the emulation accepts what the vendor's client sends (docs/protocols/elevenlabs.md).
"""

from __future__ import annotations

import base64
import threading
import time

import pytest
from pydantic import BaseModel

from elevenlabs.client import ElevenLabs
from elevenlabs.conversational_ai.conversation import AudioInterface, Conversation
from elevenlabs.types import ConversationInitiationClientDataRequestInput

from bootbench.audio import Stimulus
from bootbench.providers.base import DriverConfig
from bootbench.providers.elevenlabs import ElevenLabsDriver
from bootbench.samples import Timeline
from support.ground_truth import written_sessions

SERVER = dict(setup_delay="30", first_audio_delay="80", cold_penalty=0, reply_ms=200)


def unknown_fields(model: BaseModel, path: str = "") -> list[str]:
    """Every field the model took as an extra (the SDK's models allow extras: a typo would pass unnoticed)."""
    found = [f"{path}{name}" for name in (model.model_extra or {})]
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            found += unknown_fields(value, f"{path}{name}.")
    return found


def check_against_the_wire_description(message: dict) -> str:
    """The kind of one client message, asserting the AsyncAPI description's required fields and types."""
    if "user_audio_chunk" in message:   # UserAudioPayload: required user_audio_chunk, base64; no type
        assert set(message) == {"user_audio_chunk"}
        assert base64.b64decode(message["user_audio_chunk"], validate=True)
        return "audio"
    if message["type"] == "pong":       # PongPayload: required type (const pong) and an integer event_id
        assert set(message) == {"type", "event_id"} and type(message["event_id"]) is int
        return "pong"
    assert message["type"] == "conversation_initiation_client_data"
    model = ConversationInitiationClientDataRequestInput.model_validate(message)
    assert unknown_fields(model) == ["type"]   # the model has no field for the type; the wire requires it
    return "initiation"


@pytest.mark.parametrize("config", [
    dict(),
    dict(system_message="Answer in one word.", voice="21m00Tcm4TlvDq8ikWAM", model="gemini-2.5-flash",
         provider_options=(("override_prompt", "yes"),)),
])
def test_every_message_the_driver_sends_is_valid_for_the_sdk_and_the_wire_description(reference_server, config):
    server = reference_server(**SERVER)
    base = dict(url=server.url, api_key="k-123456", turn="vad", trailing_silence_ms=600, pace="realtime")
    driver = ElevenLabsDriver(DriverConfig(**{**base, **config}), Stimulus.sine())
    sent: list = []
    send = driver.send
    driver.send = lambda message: (sent.append(message), send(message))[1]
    timeline = Timeline()
    deadline = time.perf_counter_ns() + 10 * 10**9
    driver.connect(timeline)
    driver.start(timeline, deadline)
    driver.send_audio(timeline)
    driver.first_audio(timeline, deadline)
    driver.stop(timeline)
    assert timeline.first_audio is not None
    kinds = [check_against_the_wire_description(message) for message in sent]
    assert kinds[0] == "initiation" and kinds.count("initiation") == 1
    assert "pong" in kinds and kinds.count("audio") > 16   # the server pings right after the metadata
    (record,) = written_sessions(server)
    assert (record["outcome"], record["violations"], record["notes"]) == ("ok", [], [])
    if config:
        assert sent[0]["conversation_config_override"]["tts"] == {"voice_id": config["voice"]}


class Microphone(AudioInterface):
    """Speaks one clip at the SDK's recommended 250 ms chunks, then silence; keeps what the agent says."""

    def __init__(self, pcm: bytes) -> None:
        self.pcm = pcm
        self.heard: list[bytes] = []
        self.answered = threading.Event()
        self.interrupted = 0

    def start(self, input_callback) -> None:
        def speak() -> None:
            for offset in range(0, len(self.pcm), 8000):
                input_callback(self.pcm[offset:offset + 8000])
                time.sleep(0.25)
        threading.Thread(target=speak, daemon=True).start()

    def stop(self) -> None:
        pass

    def output(self, audio: bytes) -> None:
        self.heard.append(audio)
        self.answered.set()

    def interrupt(self) -> None:
        self.interrupted += 1


def test_the_sdks_conversation_client_gets_its_answer_from_the_emulation(reference_server):
    server = reference_server(**SERVER)
    clip = Stimulus.sine().at_rate(16_000).with_silence(600).chunks()[0].pcm
    microphone = Microphone(clip)
    conversation = Conversation(ElevenLabs(api_key="k-123456", base_url=server.url), "agent_sdk_check",
                                requires_auth=True, audio_interface=microphone)
    conversation.start_session()
    try:
        assert microphone.answered.wait(10)
    finally:
        conversation.end_session()
        conversation.wait_for_session_end()
    assert sum(len(chunk) for chunk in microphone.heard) > 0
    (record,) = written_sessions(server)
    assert record["outcome"] == "ok" and record["violations"] == []
    # The SDK streams the microphone without waiting for the metadata: accepted, and noted.
    assert record["notes"] == ["user_audio_chunk before conversation_initiation_metadata"]
