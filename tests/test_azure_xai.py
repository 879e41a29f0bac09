"""Azure (Voice Live, Azure OpenAI GA and preview) and xAI's Grok voice: configurations of the OpenAI Realtime driver,
served by the reference server's OpenAI emulation in each service's flavour (docs/protocols/azure.md, xai.md).

The drivers' endpoints, headers and session layouts in-process; bad provider options through the pre-flight
check; each service's upgrade refusals and session checks against a shared reference server, by hand; every
message the azure driver sends to Voice Live against the ``azure-ai-voicelive`` SDK's models (recorded by a
proxy); and runs read back with the server's ground truth. The shared burst and real-time runs (turns,
leading silence, a greeting) are in test_providers, test_turns and test_audible_runs, parametrized with the
other providers.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import numpy as np
import pytest
import soundfile
import websocket

from bootbench.audio import Stimulus
from bootbench.providers import DriverConfig, create, install_tuning
from bootbench.providers.openai_realtime import OpenAIRealtimeDriver
from bootbench.samples import ErrorKind, Timeline
from bootbench.server import ReferenceServer
from bootbench.stimuli import load_clips
from bootbench.wire import AZURE_OPENAI_PATH, AZURE_OPENAI_PREVIEW_PATH, AZURE_VOICE_LIVE_PATH, OPENAI_REALTIME_PATH
from support.ground_truth import FIXED_RUN_SERVER, ground_truth_run
from support.recording_proxy import RecordingProxy
from support.voicelive_schema import client_event_problems
from test_schemas import validate_openai_client

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, FIRST_AUDIO_MS = float(FIXED_RUN_SERVER["setup_delay"]), float(FIXED_RUN_SERVER["first_audio_delay"])
KEY = "the-right-key"
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2FpLmF6dXJlLmNvbSJ9.c2lnbmF0dXJl"
"""A Microsoft Entra access token's shape (a JWT): header, claims, signature."""
AZURE_BAD_KEY = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
                 "for an active subscription and use a correct regional API endpoint for your resource.")


def driver(provider: str, url: str = "http://127.0.0.1:9", *, key: str = "k-123456", model: str = "",
           options: tuple[tuple[str, str], ...] = (), clips: Any = None, **config: Any) -> OpenAIRealtimeDriver:
    model = model or {"azure": "gpt-realtime", "xai": "grok-voice-think-fast-2.0"}[provider]
    made = create(provider, DriverConfig(url=url, api_key=key, model=model, provider_options=options, **config),
                  clips or Stimulus.sine(seconds=0.3))
    assert isinstance(made, OpenAIRealtimeDriver)
    return made


# ---- the drivers, in-process


@pytest.mark.parametrize("url, options, model, endpoint", [
    ("http://127.0.0.1:8770", (), "gpt-realtime",
     "ws://127.0.0.1:8770/voice-live/realtime?api-version=2026-07-15&model=gpt-realtime"),
    ("https://myres.services.ai.azure.com", (), "gpt-4.1",
     "wss://myres.services.ai.azure.com/voice-live/realtime?api-version=2026-07-15&model=gpt-4.1"),
    ("https://myres.openai.azure.com", (), "my-deployment",
     "wss://myres.openai.azure.com/openai/v1/realtime?model=my-deployment"),
    ("https://myres.openai.azure.com", (("deployment", "prod-rt"),), "gpt-realtime",
     "wss://myres.openai.azure.com/openai/v1/realtime?model=prod-rt"),
    ("wss://myres.openai.azure.com/openai/realtime", (), "gpt-realtime",
     "wss://myres.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=gpt-realtime"),
    ("http://127.0.0.1:8770", (("flavour", "openai-preview"), ("api-version", "2024-12-17")), "gpt-realtime",
     "ws://127.0.0.1:8770/openai/realtime?api-version=2024-12-17&deployment=gpt-realtime"),
    ("wss://myres.services.ai.azure.com/voice-live/realtime?api-version=2026-04-10", (), "gpt-realtime",
     "wss://myres.services.ai.azure.com/voice-live/realtime?api-version=2026-04-10&model=gpt-realtime"),
])
def test_the_azure_endpoint_is_the_flavour_the_url_or_the_option_names_with_its_query(url, options, model, endpoint):
    assert driver("azure", url, model=model, options=options).endpoint() == endpoint


def test_the_xai_endpoint_is_xais_with_the_model_and_the_key_as_a_bearer_token():
    made = driver("xai", "wss://api.x.ai")
    assert made.endpoint() == "wss://api.x.ai/v1/realtime?model=grok-voice-think-fast-2.0"
    assert made.headers() == ["Authorization: Bearer k-123456"]


@pytest.mark.parametrize("key, options, header", [
    ("0123456789abcdef0123456789abcdef", (), "api-key: 0123456789abcdef0123456789abcdef"),
    (TOKEN, (), f"Authorization: Bearer {TOKEN}"),
    ("0123456789abcdef0123456789abcdef", (("auth", "bearer"),), "Authorization: Bearer 0123456789abcdef0123456789abcdef"),
    (TOKEN, (("auth", "api-key"),), f"api-key: {TOKEN}"),
])
def test_an_azure_key_goes_in_the_api_key_header_and_an_entra_token_as_a_bearer_token(key, options, header):
    assert driver("azure", key=key, options=options).headers() == [header]


def test_each_service_lays_out_its_session_update_its_own_way():
    vad = {"turn": "vad", "system_message": "Be brief."}
    assert driver("azure", "https://r.openai.azure.com", **vad).start_message()["session"] == {
        "type": "realtime", "output_modalities": ["audio"], "instructions": "Be brief.",
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500,
                                               "create_response": True}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}}}
    preview = {"modalities": ["text", "audio"], "voice": "alloy", "input_audio_format": "pcm16",
               "output_audio_format": "pcm16", "turn_detection": None}
    assert driver("azure", "wss://r.openai.azure.com/openai/realtime").start_message()["session"] == preview
    assert driver("azure").start_message()["session"] == {
        **preview, "voice": {"type": "openai", "name": "alloy"}, "input_audio_sampling_rate": 24000}
    azure_voice = driver("azure", voice="en-US-Ava:DragonHDLatestNeural").start_message()["session"]["voice"]
    assert azure_voice == {"type": "azure-standard", "name": "en-US-Ava:DragonHDLatestNeural"}
    assert driver("xai", **vad).start_message() == {"type": "session.update", "session": {
        "voice": "eve", "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}},
                  "output": {"format": {"type": "audio/pcm", "rate": 24000}}},
        "instructions": "Be brief."}}


@pytest.mark.parametrize("event, kind, text", [
    ({"type": "error", "error": {"type": "invalid_request_error", "code": "invalid_api_key", "message": "bad key"}},
     ErrorKind.AUTH_FAILED, "invalid_api_key: bad key"),
    ({"type": "error", "code": "rate_limit_exceeded", "message": "slow down"}, ErrorKind.SERVER_ERROR,
     "rate_limit_exceeded: slow down"),
    ({"type": "error", "error": "Session expired."}, ErrorKind.SERVER_ERROR, "error: Session expired."),
])
def test_an_error_event_in_openais_shape_or_xais_fails_the_session_with_its_words(event, kind, text):
    made = driver("xai")
    made.session = made.new_session(1)
    made.on_message(event, time.perf_counter_ns())
    assert (made.session.failure.kind, made.session.failure.message) == (kind, text)


def test_a_vad_run_of_the_tone_times_out_with_the_hint_to_send_speech():
    tone = load_clips(())   # no --audio: the sine
    for provider in ("azure", "xai"):
        assert driver(provider, turn="vad", clips=tone).timeout_hint() == (
            f"; {provider} ends turns by voice activity, which a pure tone may never trigger: try --audio speech")
        assert driver(provider, turn="manual", clips=tone).timeout_hint() == ""


# ---- bad options: one sentence before anything starts


@pytest.mark.parametrize("args, sentence", [
    (("--provider-option", "flavour=openai", "--provider-option", "api-version=2025-04-01-preview"),
     "provider option api-version: Azure OpenAI's GA endpoint (flavour=openai) takes no api-version (it refuses one "
     "with 401); leave it out, or use flavour=openai-preview"),
    (("--provider-option", "flavour=voicelive"),
     "provider option flavour='voicelive' is not one of voice-live, openai, openai-preview"),
    (("--provider-option", "api-version=latest"),
     "provider option api-version='latest': an api-version is a date like 2026-07-15, or one with -preview"),
    (("--provider-option", "resource=My_Res"),
     "provider option resource='My_Res': a resource name is lower-case letters, digits and hyphens (the first part "
     "of its host name, e.g. myres for myres.services.ai.azure.com)"),
    (("--provider-option", "region=eastus"),
     "the azure provider has no option 'region' (its options: flavour, resource, api-version, deployment, auth, "
     "transcription)"),
])
def test_a_bad_azure_option_is_one_sentence_before_anything_starts(refusals, tmp_path, args, sentence):
    assert refusals.sentence("--headless", "-u", "1", "--provider", "azure", *args) == sentence
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("provider, source", [
    ("azure", "Voice Live's and OpenAI's documented limit of input_audio_buffer.append"),
    ("xai", "OpenAI's documented limit of input_audio_buffer.append (xAI documents none)"),
])
def test_a_burst_message_over_the_documented_15_mib_is_refused_naming_where_the_limit_comes_from(
        refusals, tmp_path, provider, source):
    path = tmp_path / "five_minutes.wav"   # at 24 kHz: 19.2 MB of base64
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 440 * np.arange(300 * 8000) / 8000), 8000, subtype="PCM_16")
    sentence = refusals.sentence("--headless", "-u", "1", "--provider", provider, "--audio", str(path))
    assert sentence.startswith(f"at --pace burst the longest clip goes to {provider} in one 18.3 MiB message, over "
                               f"the 15.0 MiB a message may carry ({source}")


def test_with_a_key_and_no_host_azure_needs_its_resource_and_then_targets_it(refusals):
    key = {"AZURE_VOICELIVE_API_KEY": "0123456789abcdef"}
    assert refusals.sentence("--headless", "-u", "1", "--provider", "azure", env=key) == (
        "the azure provider has no public endpoint of its own: give your resource's URL with -H "
        "(https://NAME.services.ai.azure.com) or its name with --provider-option resource=NAME")
    checked = refusals.check("--headless", "-u", "1", "--provider", "azure", "--provider-option", "resource=myres",
                             env=key)
    assert (checked.host, checked.settings.embedded_server) == ("wss://myres.services.ai.azure.com/voice-live/realtime",
                                                                False)
    checked = refusals.check("--headless", "-u", "1", "--provider", "azure", "--provider-option", "resource=myres",
                             "--provider-option", "flavour=openai", env=key)
    assert checked.host == "wss://myres.openai.azure.com/openai/v1/realtime"


def test_with_a_key_and_no_host_xai_targets_its_public_endpoint_and_a_host_names_the_provider(refusals):
    checked = refusals.check("--headless", "-u", "1", "--provider", "xai", env={"XAI_API_KEY": "xai-0123456789"})
    assert checked.host == "wss://api.x.ai/v1/realtime" and checked.settings.voice == "eve"
    assert checked.settings.model == "grok-voice-think-fast-2.0"
    inferred = refusals.check("--headless", "-u", "1", "-H", "https://myres.services.ai.azure.com",
                              env={"AZURE_OPENAI_API_KEY": "0123456789abcdef"})
    assert (inferred.settings.provider, inferred.settings.model, inferred.settings.voice) == ("azure", "gpt-realtime",
                                                                                              "alloy")


# ---- the reference server's flavours, by hand


@pytest.fixture(scope="module")
def keyed_server(shared_reference_server):
    """The shared reference server with fixed delays and a key (the same one test_providers' leak test uses)."""
    return shared_reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                                   api_key=KEY)


def upgrade_refusal(server: ReferenceServer, path_query: str, headers: list[str]) -> tuple[int, Any]:
    """The HTTP status and JSON body of an upgrade the server refuses (fails the test if it accepts)."""
    url = server.url.replace("http", "ws", 1) + path_query
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, header=headers, timeout=5).close()
    return refused.value.status_code, json.loads(refused.value.resp_body)


@pytest.mark.parametrize("path_query, headers, status, error", [
    (f"{AZURE_VOICE_LIVE_PATH}?api-version=2026-07-15&model=gpt-realtime", ["api-key: nope"], 401,
     {"code": "401", "message": AZURE_BAD_KEY}),
    (f"{AZURE_VOICE_LIVE_PATH}?api-version=2026-07-15&model=gpt-realtime", [], 401,
     {"code": "401", "message": "Access denied due to missing subscription key. Make sure to include subscription "
                                "key when making requests to an API."}),
    (f"{AZURE_OPENAI_PATH}?model=gpt-realtime", ["Authorization: Bearer not-the-token"], 401,
     {"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is incorrect "
                                "(https://cognitiveservices.azure.com), or have expired."}),
    (f"{AZURE_VOICE_LIVE_PATH}?model=gpt-realtime", [f"api-key: {KEY}"], 400,
     {"code": "MissingApiVersionParameter",
      "message": "The api-version query parameter (?api-version=) is required for all requests."}),
    (f"{AZURE_OPENAI_PATH}?api-version=2025-04-01-preview&model=gpt-realtime", [f"api-key: {KEY}"], 401,
     {"code": "401", "message": AZURE_BAD_KEY}),
    (f"{AZURE_OPENAI_PREVIEW_PATH}?api-version=2025-04-01-preview", [f"api-key: {KEY}"], 404,
     {"code": "DeploymentNotFound", "message": "The API deployment for this resource does not exist. If you created "
                                               "the deployment within the last 5 minutes, please wait a moment and try "
                                               "again."}),
])
def test_azure_refuses_an_upgrade_in_azures_words(keyed_server, path_query, headers, status, error):
    assert upgrade_refusal(keyed_server, path_query, headers) == (status, {"error": error})


def test_xai_refuses_a_bad_key_with_400_and_its_words_and_openai_keeps_its_own(keyed_server):
    xai = f"{OPENAI_REALTIME_PATH}?model=grok-voice-think-fast-2.0"
    assert upgrade_refusal(keyed_server, xai, ["Authorization: Bearer nope"]) == (400, {
        "code": "invalid-argument",
        "error": "Incorrect API key provided. You can obtain an API key from https://console.x.ai."})
    status, body = upgrade_refusal(keyed_server, f"{OPENAI_REALTIME_PATH}?model=gpt-realtime",
                                   ["Authorization: Bearer nope"])
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")


def session_events(server: ReferenceServer, path_query: str, headers: list[str], update: dict[str, Any]) -> list:
    """Open a session, send one session.update, and return the events up to its answer (updated or error)."""
    ws = websocket.create_connection(server.url.replace("http", "ws", 1) + path_query, header=headers, timeout=5)
    try:
        events = [json.loads(ws.recv())]
        ws.send(json.dumps({"type": "session.update", "session": update}))
        while events[-1]["type"] not in ("session.updated", "error"):
            events.append(json.loads(ws.recv()))
        return events
    finally:
        ws.close()


def test_voice_live_and_xai_each_check_a_session_in_their_own_layout(keyed_server):
    voice_live = (f"{AZURE_VOICE_LIVE_PATH}?api-version=2026-07-15&model=gpt-realtime", [f"api-key: {KEY}"])
    ga = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
    events = session_events(keyed_server, *voice_live, ga)
    assert events[0]["type"] == "session.created" and events[0]["session"]["input_audio_format"] == "pcm16"
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "unknown_parameter"
    assert "session: unknown parameter 'type' (a GA field" in events[-1]["error"]["message"]
    accepted = session_events(keyed_server, *voice_live, {"modalities": ["text", "audio"], "turn_detection": None,
                                                          "voice": {"type": "azure-standard", "name": "en-US-AvaNeural"}})
    assert accepted[-1]["type"] == "session.updated"
    assert accepted[-1]["session"]["voice"] == {"type": "azure-standard", "name": "en-US-AvaNeural"}
    only_audio = session_events(keyed_server, *voice_live, {"modalities": ["audio"]})
    assert only_audio[-1]["error"]["param"] == "session.modalities"

    xai = (f"{OPENAI_REALTIME_PATH}?model=grok-voice-think-fast-2.0", [f"Authorization: Bearer {KEY}"])
    events = session_events(keyed_server, *xai, {"voice": "ara", "modalities": ["audio"]})
    assert events[0]["type"] == "conversation.created"
    assert events[-1]["error"]["message"] == "session: unknown parameter 'modalities' (not an xAI session field)"
    assert session_events(keyed_server, *xai, {"voice": "ara", "turn_detection": None})[-1]["type"] == "session.updated"


# ---- every message the azure driver sends, against the Voice Live SDK's models


def run_cycle(provider: str, url: str, **options: Any) -> None:
    """One full driver cycle (connect, start, audio, first audio, stop)."""
    install_tuning()
    made = driver(provider, url, key="k-schema-1234", timeout=5, **options)
    timeline = Timeline()
    timeline.cycle_start = time.perf_counter_ns()
    deadline = timeline.cycle_start + int(5e9)
    try:
        made.connect(timeline)
        made.start(timeline, deadline)
        made.send_audio(timeline)
        made.first_audio(timeline, deadline)
        made.stop(timeline)
    finally:
        made.close()
    assert timeline.first_audio is not None


@pytest.fixture(scope="module")
def azure_traffic(tmp_path_factory):
    """Frames of azure driver cycles on each flavour and in each mode, recorded between the driver and a server.

    A greeting starts 150 ms after the session is ready and lasts 400 ms: a 0.3 s clip sent at real-time pace
    ends while it speaks, so the driver cancels it (response.cancel); at burst pace the answer comes first.
    """
    truth = tmp_path_factory.mktemp("azure-schemas") / "truth.jsonl"
    with ReferenceServer.start(ground_truth=truth, setup_delay="5", first_audio_delay="5", cold_penalty=0,
                               reply_ms=120, extra_args=["--greeting-ms", "150"]) as server, \
            RecordingProxy(server.url) as proxy:
        for flavour in ("voice-live", "openai", "openai-preview"):
            flavoured = {"options": (("flavour", flavour),)}
            run_cycle("azure", proxy.url, turn="manual", **flavoured)
            run_cycle("azure", proxy.url, turn="manual", pace="realtime", system_message="Be brief.", **flavoured)
            run_cycle("azure", proxy.url, turn="vad", trailing_silence_ms=600, voice="en-US-AvaNeural", **flavoured)
        run_cycle("xai", proxy.url, turn="manual", pace="realtime")
        run_cycle("xai", proxy.url, turn="vad", trailing_silence_ms=600)
        time.sleep(0.2)
        stats = server.stats()
    return {"frames": proxy.frames, "stats": stats}


def sent(traffic, path: str) -> list[dict[str, Any]]:
    return [json.loads(f.data) for f in traffic["frames"] if f.path == path and f.sender == "client"]


@pytest.mark.slow
def test_every_message_the_azure_driver_sends_to_voice_live_conforms_to_the_voicelive_sdk_models(azure_traffic):
    messages = sent(azure_traffic, AZURE_VOICE_LIVE_PATH)
    assert {m["type"] for m in messages} == {"session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
                                             "response.create", "response.cancel"}
    assert {m["type"]: client_event_problems(m) for m in messages if client_event_problems(m)} == {}
    # the Azure OpenAI preview's flat layout is the same protocol generation: it conforms too
    preview = sent(azure_traffic, AZURE_OPENAI_PREVIEW_PATH)
    assert len(preview) > 6 and [m for m in preview if client_event_problems(m)] == []


def test_the_voicelive_schema_check_finds_what_the_service_would_refuse():
    """The strict check is not a formality: the SDK's own deserializer takes all of these."""
    problems = client_event_problems({"type": "session.update", "session": {
        "modalities": "audio", "voice": {"type": "openai"}, "input_audio_sampling_rate": "24000", "temperature": 1,
        "audio": {}}})
    assert any(p.startswith("event.session.modalities:") for p in problems)
    assert any(p.startswith("event.session.voice:") for p in problems)
    assert any(p.startswith("event.session.input_audio_sampling_rate:") for p in problems)
    assert "event.session.audio: not a field of RequestSession" in problems
    assert not any("temperature" in p for p in problems)   # an int is a number
    assert client_event_problems({"type": "input_audio_buffer.append"}) == [
        "event.audio: required by ClientEventInputAudioBufferAppend, missing"]
    assert client_event_problems({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\0\0").decode()}) == []
    assert client_event_problems({"type": "session.updated"})[0].startswith("event: type='session.updated' is none of")


@pytest.mark.slow
def test_every_message_the_azure_driver_sends_to_azure_openai_ga_conforms_to_openais_models(azure_traffic):
    messages = sent(azure_traffic, AZURE_OPENAI_PATH)
    assert {validate_openai_client(json.dumps(m)).type for m in messages} == {
        "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "response.create",
        "response.cancel"}


@pytest.mark.slow
def test_the_azure_and_xai_driver_cycles_committed_no_violation_and_no_note(azure_traffic):
    assert azure_traffic["stats"]["violations"] == 0 and azure_traffic["stats"]["notes"] == 0
    assert azure_traffic["stats"]["outcomes"] == {"ok": 11}
    assert {m["type"] for m in sent(azure_traffic, OPENAI_REALTIME_PATH)} >= {"session.update", "response.cancel"}


# ---- runs read back with the server's ground truth


def check_against_truth(run, provider: str, turn: str, iterations: int) -> None:
    """Every sample against its session, in the bounds test_providers holds OpenAI and Gemini to."""
    assert run.exit_code == 0, run.stderr[-3000:]
    truth = run.sessions
    assert [t["protocol"] for t in truth] == [provider] * iterations and all(t["outcome"] == "ok" for t in truth)
    assert len(run.samples) == iterations
    for sample, session in zip(run.samples, truth):
        measured = session["measured"]
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
        assert sample["session_start_ms"] == pytest.approx(SETUP_MS, abs=15)
        assert measured["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
        assert sample["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
        assert sample["stop_ms"] is not None and sample["stop_ms"] < 50
    assert run.violations == 0
    assert run.notes == 0 and all(t["notes"] == [] for t in truth)
    assert (run.metrics["run"]["provider"], run.metrics["run"]["turn"]) == (provider, turn)


@pytest.mark.parametrize("provider, args, turn", [
    ("azure", (), "manual"),
    ("xai", ("--turn", "vad", "--trailing-silence-ms", "600"), "vad"),
])
def test_twenty_iterations_match_the_servers_ground_truth(shared_reference_server, tmp_path, provider, args, turn):
    server = shared_reference_server(**FIXED_RUN_SERVER)
    run = ground_truth_run(server, tmp_path / "r", "-i", "20", "--provider", provider, *args)
    check_against_truth(run, provider, turn, iterations=20)


@pytest.mark.parametrize("flavour", ["openai", "openai-preview"])
def test_azure_openai_ga_and_preview_endpoints_match_the_servers_ground_truth(shared_reference_server, tmp_path,
                                                                               flavour):
    server = shared_reference_server(**FIXED_RUN_SERVER)
    run = ground_truth_run(server, tmp_path / "r", "-i", "5", "--provider", "azure",
                           "--provider-option", f"flavour={flavour}", "--turn", "vad", "--trailing-silence-ms", "600")
    check_against_truth(run, "azure", "vad", iterations=5)
    assert run.metrics["run"]["provider_options"]["flavour"] == flavour
