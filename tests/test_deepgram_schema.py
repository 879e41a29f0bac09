"""Fidelity: the Deepgram driver's messages, and the emulation's, against the typed models of ``deepgram-sdk``.

Real traffic, recorded by a proxy between the driver and a reference server
process, in every mode the driver has (manual and VAD turns, burst and
real-time pace, a greeting, a system message, the experimental flag, a
keep-alive while a slow answer is awaited). Each client JSON message is
validated with its ``deepgram.agent.v1.types`` model, and since those models
accept undeclared fields (``extra="allow"``), no field may be one the model
does not declare, at any level. The emulation's JSON messages are validated
with the models of the SDK's server-message union.
"""

from __future__ import annotations

import json
import time
import typing
from typing import Any

import pytest
from deepgram.agent.v1 import socket_client
from deepgram.agent.v1.types import AgentV1ForceEndTurn, AgentV1KeepAlive, AgentV1Settings
from pydantic import BaseModel

from bootbench.audio import Stimulus
from bootbench.providers import DriverConfig, create, install_tuning
from bootbench.samples import Timeline
from bootbench.server import ReferenceServer
from bootbench.wire import DEEPGRAM_AGENT_PATH
from support.recording_proxy import RecordingProxy

CLIENT_MODELS = {"Settings": AgentV1Settings, "KeepAlive": AgentV1KeepAlive, "ForceEndTurn": AgentV1ForceEndTurn}
SERVER_MODELS = {model.model_fields["type"].default: model
                 for model in typing.get_args(socket_client.V1SocketClientResponse) if isinstance(model, type)
                 and issubclass(model, BaseModel)}
KEEPALIVE_S = 0.15
SLOW_SETUP_MS = SLOW_AUDIO_MS = 600
CYCLES: list[dict[str, Any]] = [
    dict(turn="manual"),
    dict(turn="manual", pace="realtime"),
    dict(turn="vad", trailing_silence_ms=600),
    dict(turn="manual", system_message="Answer in one short sentence.",
         provider_options=(("greeting", "Hello, how can I help?"), ("experimental", "true"),
                           ("listen_model", "flux-general-en"), ("think_provider", "anthropic")),
         model="claude-haiku-4-5", voice="aura-2-andromeda-en"),
    dict(turn="manual", keepalive=True),   # session 5: its setup is slow (no KeepAlive before SettingsApplied)
    dict(turn="manual", keepalive=True),   # session 6: its answer is slow (KeepAlive while waiting)
    dict(turn="vad", trailing_silence_ms=600, turns=2),   # two whole replies: AgentAudioDone, LatencyReport
]


def undeclared(value: Any, path: str = "") -> list[str]:
    """Paths of fields a model accepted without declaring them, anywhere inside ``value``."""
    if isinstance(value, BaseModel):
        found = [f"{path}.{key}" for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += undeclared(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, (list, tuple)):
        return [key for index, item in enumerate(value) for key in undeclared(item, f"{path}[{index}]")]
    return []


def run_cycle(url: str, keepalive: bool = False, turns: int = 1, **options: Any) -> dict[str, float | None]:
    install_tuning()
    driver = create("deepgram", DriverConfig(url=url, api_key="k-schema-1234", timeout=5, **options),
                    Stimulus.speech())
    if keepalive:
        driver.keepalive_s = KEEPALIVE_S
    timeline = Timeline()
    timeline.cycle_start = time.perf_counter_ns()
    deadline = timeline.cycle_start + int(5e9)
    try:
        driver.connect(timeline)
        driver.start(timeline, deadline)
        driver.send_audio(timeline)
        driver.first_audio(timeline, deadline)
        for _ in range(turns - 1):
            driver.reply_end(timeline, deadline)
            driver.next_turn()
            warm = Timeline()
            driver.send_audio(warm)
            driver.first_audio(warm, deadline)
            driver.reply_end(warm, deadline)
        driver.stop(timeline)
    finally:
        driver.close()
    return timeline.phases()


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """The frames of :data:`CYCLES`, in order, and the server's counters after them."""
    truth = tmp_path_factory.mktemp("deepgram-schema") / "truth.jsonl"
    faults = ["--fault", f"slow:phase=setup:ms={SLOW_SETUP_MS}:at=5",
              "--fault", f"slow:phase=audio:ms={SLOW_AUDIO_MS}:at=6"]
    with ReferenceServer.start(ground_truth=truth, setup_delay="5", first_audio_delay="5", cold_penalty=0,
                               reply_ms=120, extra_args=faults) as server, RecordingProxy(server.url) as proxy:
        phases = [run_cycle(proxy.url, **cycle) for cycle in CYCLES]
        time.sleep(0.2)
        stats = server.stats()
    return {"frames": [f for f in proxy.frames if f.path == DEEPGRAM_AGENT_PATH], "stats": stats, "phases": phases}


def sessions(traffic) -> list[list]:
    """The frames split into sessions: each starts with the server's Welcome."""
    found: list[list] = []
    for frame in traffic["frames"]:
        if frame.sender == "server" and not frame.binary and json.loads(frame.data)["type"] == "Welcome":
            found.append([])
        found[-1].append(frame)
    return found


def client_messages(frames) -> list[dict[str, Any]]:
    return [json.loads(f.data) for f in frames if f.sender == "client" and not f.binary]


def test_every_cycle_got_its_answer_and_the_server_saw_no_violation_and_no_note(traffic):
    assert all(p["first_response_ms"] is not None for p in traffic["phases"])
    assert traffic["stats"]["outcomes"] == {"ok": len(CYCLES)}
    assert traffic["stats"]["violations"] == 0 and traffic["stats"]["notes"] == 0


def test_every_json_message_the_driver_sends_is_its_sdk_model_with_no_undeclared_field(traffic):
    sent = client_messages(traffic["frames"])
    kinds = []
    for message in sent:
        model = CLIENT_MODELS[message["type"]].model_validate(message)
        assert undeclared(model) == [], (message["type"], undeclared(model))
        kinds.append(message["type"])
    assert set(kinds) == {"Settings", "KeepAlive", "ForceEndTurn"}
    assert kinds.count("Settings") == len(CYCLES)


def test_the_settings_of_each_mode_say_what_the_driver_documents(traffic):
    settings = [m for m in client_messages(traffic["frames"]) if m["type"] == "Settings"]
    audio = {"input": {"encoding": "linear16", "sample_rate": 16000},
             "output": {"encoding": "linear16", "sample_rate": 24000, "container": "none"}}
    assert all(s["audio"] == audio for s in settings)
    listen = [s["agent"]["listen"]["provider"] for s in settings]
    flux = {"type": "deepgram", "version": "v2", "model": "flux-general-en"}
    nova = {"type": "deepgram", "version": "v1", "model": "nova-3"}
    assert listen == [flux, flux, nova, flux, flux, flux, nova]
    default_think = {"provider": {"type": "open_ai", "model": "gpt-4o-mini"}}
    assert [s["agent"]["think"] for s in settings[:3]] == [default_think] * 3
    assert all(s["agent"]["speak"] == {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}}
               for s in settings[:3])
    options = settings[3]
    assert options["agent"]["think"] == {"provider": {"type": "anthropic", "model": "claude-haiku-4-5"},
                                         "prompt": "Answer in one short sentence."}
    assert options["agent"]["speak"]["provider"]["model"] == "aura-2-andromeda-en"
    assert options["agent"]["greeting"] == "Hello, how can I help?" and options["experimental"] is True
    assert all("greeting" not in s["agent"] and "experimental" not in s for s in settings[:3])


def test_settings_waits_for_welcome_and_audio_for_settings_applied(traffic):
    for frames in sessions(traffic):
        order = [("binary" if f.binary else json.loads(f.data)["type"], f.sender) for f in frames]
        assert order[0] == ("Welcome", "server") and order[1] == ("Settings", "client")
        applied = order.index(("SettingsApplied", "server"))
        assert all(sender == "server" for _, sender in order[2:applied])


def test_forceendturn_goes_after_userstartedspeaking_and_only_in_manual_turns(traffic):
    for cycle, frames in zip(CYCLES, sessions(traffic)):
        order = [("binary" if f.binary else json.loads(f.data)["type"], f.sender) for f in frames]
        forced = [i for i, item in enumerate(order) if item == ("ForceEndTurn", "client")]
        if cycle["turn"] == "vad":
            assert forced == []
            continue
        assert len(forced) == 1
        assert order.index(("UserStartedSpeaking", "server")) < forced[0]
        last_audio = max(i for i, item in enumerate(order) if item == ("binary", "client"))
        assert last_audio < forced[0]


def test_keepalive_goes_only_when_idle_and_only_after_settingsapplied(traffic):
    found = sessions(traffic)
    for cycle, frames in zip(CYCLES, found):
        order = [("binary" if f.binary else json.loads(f.data)["type"], f.sender) for f in frames]
        keepalives = [i for i, item in enumerate(order) if item == ("KeepAlive", "client")]
        if not cycle.get("keepalive"):
            assert keepalives == []   # the default interval, 8 s, is never reached here
            continue
        applied = order.index(("SettingsApplied", "server"))
        assert all(i > applied for i in keepalives)
    slow_setup, slow_answer = ([("binary" if f.binary else json.loads(f.data)["type"], f.sender) for f in frames]
                               for frames in found[4:6])
    assert slow_setup.count(("KeepAlive", "client")) == 0   # 600 ms of setup: nothing may go before Settings is applied
    # 600 ms waiting for the answer after ForceEndTurn, at one KeepAlive per 150 ms idle
    waiting = slow_answer[slow_answer.index(("ForceEndTurn", "client")):slow_answer.index(("binary", "server"))]
    assert 2 <= waiting.count(("KeepAlive", "client")) <= SLOW_AUDIO_MS / (KEEPALIVE_S * 1000)


def test_audio_goes_as_whole_linear16_samples_in_binary_frames_both_ways(traffic):
    binary = [f for f in traffic["frames"] if f.binary]
    assert {f.sender for f in binary} == {"client", "server"}
    assert all(len(f.data) % 2 == 0 and len(f.data) > 0 for f in binary)
    burst = sessions(traffic)[0]
    assert [len(f.data) for f in burst if f.binary and f.sender == "client"] == [2 * 64000]  # 4 s at 16 kHz, whole


def test_every_json_message_of_the_emulation_is_the_sdks_server_model(traffic):
    received = [json.loads(f.data) for f in traffic["frames"] if f.sender == "server" and not f.binary]
    kinds = []
    for message in received:
        model = SERVER_MODELS[message["type"]].model_validate(message)
        assert undeclared(model) == [], (message["type"], undeclared(model))
        kinds.append(message["type"])
    assert set(kinds) == {"Welcome", "SettingsApplied", "UserStartedSpeaking", "ConversationText", "AgentThinking",
                          "AgentStartedSpeaking", "AgentAudioDone", "LatencyReport"}
