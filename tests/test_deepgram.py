"""Deepgram Voice Agent against the reference server's emulation (docs/protocols/deepgram.md).

The ground-truth bounds of the other providers hold for it too (test_providers.py, test_turns.py and
test_audible_runs.py run it with them); here: what is Deepgram's own. Its figures beside ours, the
``ForceEndTurn`` that waits for ``UserStartedSpeaking``, a greeting asked for in ``Settings``, every fault of the
reference server in the service's words, what the emulation refuses and notes, and the keep-alive.
In-process runs (tests/support/ground_truth.py) and raw sockets against reference server processes.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
import websocket
from aiohttp import WSMsgType, web

from bootbench.audio import Stimulus
from bootbench.providers import DriverConfig, create, install_tuning
from bootbench.providers.base import CycleError
from bootbench.samples import Timeline
from bootbench.server.faults import parse_fault
from bootbench.server.protocols.deepgram.protocol import SPEECH_REPORT_MS
from bootbench.wire import DEEPGRAM_AGENT_PATH, DEEPGRAM_IDLE_TIMEOUT_S, DEEPGRAM_INPUT_RATE
from support.ground_truth import ground_truth_run, records_between, written_sessions

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0
TRUTH_BOUND_MS = 10.0
"""How far a sample may be from the server's own interval (test_accuracy.py's bound)."""
BOUND_MS = 15.0
FAST = dict(setup_delay="5", first_audio_delay="5", cold_penalty=0, reply_ms=120)
SPEECH_PCM = Stimulus.speech().chunks()[0].pcm
SILENCE_PCM = bytes(2 * DEEPGRAM_INPUT_RATE * 6 // 10)


def fixed_server(shared_reference_server, *extra: str):
    return shared_reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                                   reply_ms=200, extra_args=list(extra))


# ---------------------------------------------------------------- runs against the ground truth


def test_twenty_iterations_match_the_ground_truth(shared_reference_server, tmp_path):
    run = ground_truth_run(fixed_server(shared_reference_server), tmp_path / "r", "-i", "20", "--provider", "deepgram")
    assert run.exit_code == 0, run.stderr[-3000:]
    assert len(run.samples) == len(run.sessions) == 20
    for sample, session in zip(run.samples, run.sessions):
        measured = session["measured"]
        assert session["protocol"] == "deepgram" and session["outcome"] == "ok"
        assert sample["session_start_ms"] == pytest.approx(measured["session_start_ms"], abs=TRUTH_BOUND_MS)
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=TRUTH_BOUND_MS)
        assert sample["input_to_audio_ms"] == pytest.approx(measured["input_to_audio_ms"], abs=TRUTH_BOUND_MS)
        assert measured["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=BOUND_MS)
        assert sample["stop_ms"] is not None and session["t_ns"]["stop_received"] is not None
    assert run.violations == 0 and run.notes == 0
    run_block = run.metrics["run"]
    assert (run_block["provider"], run_block["turn"], run_block["model"], run_block["voice"]) == (
        "deepgram", "manual", "gpt-4o-mini", "aura-2-thalia-en")


def test_forceendturn_waits_until_the_service_has_heard_the_burst(shared_ground_truth_run):
    """Burst pace: the clip lands at once, the agent says UserStartedSpeaking 100 ms later, then ForceEndTurn goes.

    The server ignores (and notes) a ForceEndTurn with no turn in progress: none was noted, and each turn ended
    (its last input, the ForceEndTurn) at least that 100 ms after its audio arrived.
    """
    run = shared_ground_truth_run("deepgram")
    assert run.notes == 0 and run.violations == 0
    for session in run.sessions:
        for turn in session["turns"]:
            t = turn["t_ns"]
            assert (t["last_input_received"] - t["first_input_received"]) / 1e6 >= SPEECH_REPORT_MS - 1


def test_the_services_latency_report_is_kept_beside_our_figures_for_every_turn(shared_ground_truth_run):
    """The shared burst run, three turns: each turn's LatencyReport (after its AgentAudioDone), in ms."""
    run = shared_ground_truth_run("deepgram")
    assert len(run.samples) == len(run.sessions) == 4
    for sample, session in zip(run.samples, run.sessions):
        assert sample["service_latency_ms"] == sample["turns"][0]["service_latency_ms"]
        for mine, theirs in zip(sample["turns"], session["turns"]):
            figures = mine["service_latency_ms"]
            assert set(figures) == {"total_ms", "stt_ms", "ttt_token_ms", "ttt_text_ms", "tts_ms"}
            # the emulation reports its own turn end -> first audio byte, as its ground truth measures it
            assert figures["total_ms"] == pytest.approx(theirs["measured"]["input_to_audio_ms"], abs=0.01)
            assert figures["total_ms"] == pytest.approx(mine["input_to_audio_ms"], abs=BOUND_MS)
            assert figures["stt_ms"] + figures["ttt_text_ms"] + figures["tts_ms"] == pytest.approx(
                figures["total_ms"], abs=0.01)
    with open(run.folder / "samples.csv") as f:
        header, first = f.readline().strip().split(","), f.readline().strip().split(",")
    cell = dict(zip(header, first))["turn3_service_latency_ms"]
    assert dict(pair.split("=") for pair in cell.split(";")).keys() == set(
        run.samples[0]["turns"][2]["service_latency_ms"])


def test_a_single_turn_ends_before_the_report_and_records_none(shared_reference_server, tmp_path):
    """The report follows the turn, the single-turn cycle stops at the first audible audio: nothing to record."""
    run = ground_truth_run(fixed_server(shared_reference_server), tmp_path / "r", "-i", "2", "--provider", "deepgram")
    assert run.exit_code == 0
    assert [s["service_latency_ms"] for s in run.samples] == [None, None]
    assert all(s["anomalies"] == {} for s in run.samples)


def test_a_greeting_asked_for_in_settings_is_the_greeting_and_never_the_answer(shared_reference_server, tmp_path):
    run = ground_truth_run(fixed_server(shared_reference_server), tmp_path / "r", "-i", "2", "--provider", "deepgram",
                           "--provider-option", "greeting=Hello, how can I help?")
    assert run.exit_code == 0, run.stderr[-3000:]
    for sample, session in zip(run.samples, run.sessions):
        measured = session["measured"]
        assert session["greeting"] is not None and session["greeting"]["interrupted"] is True  # the user spoke
        assert sample["greeting_ms"] == pytest.approx(measured["greeting_ms"], abs=TRUTH_BOUND_MS)
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=TRUTH_BOUND_MS)
        assert sample["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=BOUND_MS)
    assert run.violations == 0 and run.notes == 0
    assert run.metrics["run"]["provider_options"]["greeting"] == "Hello, how can I help?"


def test_a_tone_the_service_does_not_take_for_speech_times_out_saying_why(shared_reference_server, tmp_path):
    """--vad-needs-speech: the pure tone never makes the agent say UserStartedSpeaking; the speech clip does."""
    server = fixed_server(shared_reference_server, "--vad-needs-speech")
    tone = ground_truth_run(server, tmp_path / "tone", "-i", "1", "--provider", "deepgram", "--timeout", "1.5")
    (sample,) = tone.samples
    assert sample["error_kind"] == "audio_timeout"
    assert sample["error"] == ("no audio within 1.5 s; the service never said UserStartedSpeaking, so ForceEndTurn was "
                               "never sent, which a pure tone may never make it say: try --audio speech")
    speech = ground_truth_run(server, tmp_path / "speech", "-i", "1", "--provider", "deepgram", "--audio", "speech")
    assert speech.exit_code == 0 and speech.samples[0]["ok"]
    assert speech.sessions[0]["input_speech"] is None   # judged only at a turn end the server detects itself


def test_a_bad_provider_option_is_refused_with_one_sentence(refusals, tmp_path):
    line = refusals.line("--headless", "-u", "1", "--provider", "deepgram", "--provider-option", "think_provider=x")
    assert line == "bootbench: provider option think_provider='x' is not one of open_ai, anthropic, google, nvidia"
    line = refusals.line("--headless", "-u", "1", "--provider", "deepgram", "--provider-option", "voice=x")
    assert line.startswith("bootbench: the deepgram provider has no option 'voice' (its options: listen_model,")
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- faults, in the service's words


@dataclass(frozen=True)
class Case:
    fault: str
    kind: str | None
    words: str = ""


LEAK_KEY = "dg-LEAKCHECK-5e1f00d"
CASES = [
    Case("auth", "auth_failed", "INVALID_AUTH: Invalid credentials."),
    Case("auth:echo=yes", "auth_failed", "INVALID_AUTH: Invalid credentials. (key: ***)"),
    Case("error:type=invalid_api_key", "auth_failed", "INVALID_AUTH: Invalid credentials."),
    Case("error:type=insufficient_credits", "server_error",
         "INSUFFICIENT_CREDITS: Project does not have enough credits for an agent session."),
    Case("error:type=rate_limit_exceeded:echo=yes", "server_error",
         "TOO_MANY_REQUESTS: Too many concurrent agent sessions for this project; retry later. (key: ***)"),
    Case("never_ready", "session_timeout", "no session ready within 1 s"),
    Case("silence", "audio_timeout", "no audio within 1 s"),
    Case("drop:when=before_ready", "disconnected", "connection closed by the server"),
    Case("drop:when=after_input", "disconnected", "connection closed by the server"),
    Case("drop:when=mid_reply", None),
    Case("end", "server_error", "SERVER_GOING_AWAY: The server running this agent session is shutting down."),
    Case("malformed:what=not_json", "protocol_error", "a frame that is not JSON"),
    Case("malformed:what=not_object", "protocol_error", "a JSON frame that is not an object"),
    Case("malformed:what=wrong_type", "protocol_error", "a server message whose 'type' is a number, not a string"),
    Case("malformed:what=missing_field", "protocol_error", "a server message without a 'type'"),
    Case("malformed:what=bad_base64", "protocol_error", "a frame that is not JSON"),
    Case("malformed:what=huge", "protocol_error", "a frame that is not JSON"),
    Case("stray", None),   # one session per socket: no form on this wire
    Case("slow:phase=setup:ms=1100", "session_timeout", "no session ready within 1 s"),
    Case("slow:phase=audio:ms=1100", "audio_timeout", "no audio within 1 s"),
]


def deepgram_forms():
    from bootbench.server.protocols.deepgram import fault_forms

    return fault_forms()


@pytest.fixture(scope="module")
def faulted(shared_reference_server, tmp_path_factory):
    """One in-process run: session 2k+2 struck by case k, every other one clean; a recognisable fake key.

    The faults strike the server's sessions by number, so the run has a server of its own (its own ground truth
    file is part of the shared cache's key): under pytest-xdist a worker that comes back to this module builds the
    fixture again, and against the first build's server its sessions would be numbered on from there, unfaulted.
    """
    faults = [arg for index, case in enumerate(CASES) for arg in ("--fault", f"{case.fault}:at={2 * index + 2}")]
    folder = tmp_path_factory.mktemp("deepgram-faults")
    server = shared_reference_server(setup_delay="20", first_audio_delay="40", cold_penalty=0, reply_ms=200,
                                     extra_args=faults, ground_truth=str(folder / "truth.jsonl"))
    run = ground_truth_run(server, folder / "r", "-i", str(2 * len(CASES) + 1), "--provider", "deepgram",
                           "--timeout", "1", "--wait-ms", "50", environ={"DEEPGRAM_API_KEY": LEAK_KEY})
    return run, folder, server


@pytest.mark.parametrize("index, case", list(enumerate(CASES)), ids=[c.fault for c in CASES])
def test_each_fault_gives_its_error_kind_in_the_services_words(faulted, index, case):
    run, _, _ = faulted
    sample, following = run.samples[2 * index + 1], run.samples[2 * index + 2]
    session = run.sessions[2 * index + 1]
    assert sample["iteration"] == session["session"] == 2 * index + 2
    # the ground truth records the fault in Deepgram's words (its default end reason filled in)
    expected = None if case.fault == "stray" else deepgram_forms().resolve(parse_fault(case.fault)).record()
    assert session["fault"] == expected
    if case.kind is None:
        assert sample["ok"], sample
    else:
        assert (sample["ok"], sample["error_kind"], sample["error"]) == (False, case.kind, sample["error"])
        assert case.words in sample["error"], sample["error"]
    assert following["ok"], f"the cycle did not recover after {case.fault}: {following}"
    assert following["anomalies"] == {}


def test_no_fault_lets_the_key_out_and_the_clean_sessions_commit_no_violation(faulted):
    run, folder, server = faulted
    outputs = {"stdout": run.stdout, "stderr": run.stderr, "server": server.stderr_text(),
               **{str(p): p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file()}}
    assert [where for where, text in outputs.items() if LEAK_KEY in text] == []
    assert any("(key: ***)" in s["error"] for s in run.samples if s["error"])
    assert run.violations == 0 and run.notes == 0
    assert run.metrics["summary"]["successes"] == len(CASES) + 1 + sum(c.kind is None for c in CASES)


# ---------------------------------------------------------------- the emulation, with a raw socket


class Raw:
    """A hand-driven agent socket: send JSON or audio, read until a message type (binary frames counted)."""

    def __init__(self, url: str, key: str = "k-raw-1234") -> None:
        self.ws = websocket.create_connection(url.replace("http", "ws", 1) + DEEPGRAM_AGENT_PATH,
                                              header=[f"Authorization: Token {key}"], timeout=5)
        self.seen: list[str] = []

    def send(self, message: dict[str, Any] | bytes) -> None:
        if isinstance(message, bytes):
            self.ws.send_binary(message)
        else:
            self.ws.send(json.dumps(message))

    def until(self, kind: str) -> dict[str, Any]:
        while True:
            opcode, data = self.ws.recv_data()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise AssertionError(f"closed before {kind}; seen {self.seen}")
            if opcode == websocket.ABNF.OPCODE_BINARY:
                self.seen.append("binary")
                continue
            message = json.loads(data)
            self.seen.append(message["type"])
            if message["type"] == kind:
                return message

    def closed(self) -> int | None:
        """The close code the server ends with (after whatever it still sends)."""
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big") if len(data) >= 2 else None


def settings(listen: dict[str, Any] | None = None, **agent: Any) -> dict[str, Any]:
    return {"type": "Settings",
            "audio": {"input": {"encoding": "linear16", "sample_rate": DEEPGRAM_INPUT_RATE}},
            "agent": {"listen": {"provider": listen or {"type": "deepgram", "version": "v2",
                                                        "model": "flux-general-en"}},
                      "think": {"provider": {"type": "open_ai", "model": "gpt-4o-mini"}},
                      "speak": {"provider": {"type": "deepgram", "model": "aura-2-thalia-en"}}, **agent}}


@pytest.mark.parametrize("frames, code", [
    ([{"type": "KeepAlive"}], "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS"),
    ([b"\x00\x01" * 160], "NON_SETTINGS_MESSAGE_BEFORE_SETTINGS"),
    (["{not json"], "UNPARSABLE_CLIENT_MESSAGE"),
    ([{"type": "Setings"}], "UNPARSABLE_CLIENT_MESSAGE"),
    ([{"type": "Settings", "agent": {}}], "UNPARSABLE_CLIENT_MESSAGE"),
    ([{**settings(), "audio": {"input": {"encoding": "mulaw", "sample_rate": 8000}}}], "INVALID_SETTINGS"),
    ([{**settings(), "audio": {"input": {"encoding": "linear16", "sample_rate": "16000"}}}],
     "UNPARSABLE_CLIENT_MESSAGE"),
    ([settings(think={"provider": {"type": "openai", "model": "gpt-4o-mini"}})], "UNPARSABLE_CLIENT_MESSAGE"),
    ([settings(), settings()], "SETTINGS_ALREADY_APPLIED"),
], ids=["keepalive-first", "audio-first", "not-json", "unknown-type", "no-audio", "mulaw", "rate-as-text",
        "unknown-llm-provider", "second-settings"])
def test_the_emulation_answers_what_the_service_refuses_with_its_error_and_closes(shared_reference_server, frames,
                                                                                  code):
    server = shared_reference_server(**FAST)
    before = server.stats()["violations"]
    raw = Raw(server.url)
    raw.until("Welcome")
    for frame in frames:
        if isinstance(frame, str):
            raw.ws.send(frame)
        else:
            raw.send(frame)
    error = raw.until("Error")
    assert error["code"] == code and error["description"]
    assert raw.closed() == 1008
    assert server.stats()["violations"] == before + 1


def test_forceendturn_without_flux_gets_the_services_warning_and_the_turn_goes_on(shared_reference_server):
    server = shared_reference_server(**FAST)
    raw = Raw(server.url)
    raw.until("Welcome")
    raw.send(settings({"type": "deepgram", "model": "nova-3"}))   # version omitted: v1
    raw.until("SettingsApplied")
    raw.send(SPEECH_PCM)
    raw.until("UserStartedSpeaking")
    raw.send({"type": "ForceEndTurn"})
    warning = raw.until("Warning")
    assert warning["code"] == "FORCE_END_TURN_UNSUPPORTED"
    raw.send(SILENCE_PCM)   # the turn ends the other way: trailing silence
    raw.until("AgentAudioDone")
    assert raw.seen.count("binary") >= 1 and raw.until("LatencyReport")["total_latency"] > 0
    raw.ws.close()


def test_the_emulation_notes_what_it_accepts_but_a_careful_client_does_not_do(reference_server):
    server = reference_server(**FAST)
    raw = Raw(server.url)
    raw.until("Welcome")
    raw.send({**settings(), "mystery": 1})
    raw.send(SPEECH_PCM)                      # before SettingsApplied: held until ready
    raw.until("SettingsApplied")
    raw.until("UserStartedSpeaking")
    raw.send({"type": "KeepAlive"})           # while the user's turn is in progress
    raw.send({"type": "ForceEndTurn"})
    raw.until("AgentAudioDone")
    raw.send({"type": "ForceEndTurn"})        # no turn in progress any more
    raw.send({"type": "KeepAlive"})           # idle: as it should be
    time.sleep(0.2)
    raw.ws.close()
    (record,) = written_sessions(server)
    assert record["outcome"] == "ok" and record["violations"] == []
    assert record["notes"] == [
        "Settings: field 'mystery', which the SDK's model does not declare (ignored)",
        "audio before SettingsApplied (held until the session is ready)",
        "KeepAlive while the user's audio is streaming (send it only when idle)",
        "ForceEndTurn with no turn in progress (ignored)",
    ]


def test_a_wrong_key_fails_the_upgrade_with_the_services_body(shared_reference_server):
    server = shared_reference_server(api_key="right-key", **FAST)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        Raw(server.url, key="wrong-key")
    assert refused.value.status_code == 401
    body = json.loads(refused.value.resp_body)
    assert (body["err_code"], body["err_msg"]) == ("INVALID_AUTH", "Invalid credentials.") and body["request_id"]


# ---------------------------------------------------------------- keep-alive


@pytest.mark.slow
def test_a_client_silent_past_the_idle_timeout_is_ended_and_keepalive_prevents_it(shared_reference_server):
    """An answer 1 s later than the idle timeout: the driver's KeepAlive keeps its session; a silent one is ended."""
    server = shared_reference_server(setup_delay="5", first_audio_delay=str(DEEPGRAM_IDLE_TIMEOUT_S * 1000 + 1000),
                                     cold_penalty=0, reply_ms=120)
    install_tuning()
    outcomes: dict[str, Any] = {}

    def cycle(name: str, keepalive_s: float) -> None:
        config = DriverConfig(url=server.url, api_key="k-keepalive", timeout=DEEPGRAM_IDLE_TIMEOUT_S + 5)
        driver = create("deepgram", config, Stimulus.speech())
        driver.keepalive_s = keepalive_s
        timeline = Timeline()
        timeline.cycle_start = time.perf_counter_ns()
        deadline = timeline.cycle_start + int((DEEPGRAM_IDLE_TIMEOUT_S + 5) * 1e9)
        try:
            driver.connect(timeline)
            driver.start(timeline, deadline)
            driver.send_audio(timeline)
            driver.first_audio(timeline, deadline)
            outcomes[name] = timeline.phases()["input_to_audio_ms"]
            driver.stop(timeline)
        except CycleError as exc:
            outcomes[name] = exc
        finally:
            driver.close()

    threads = [threading.Thread(target=cycle, args=("kept", 8.0)), threading.Thread(target=cycle, args=("silent", 1e9))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEEPGRAM_IDLE_TIMEOUT_S + 10)
    assert outcomes["kept"] == pytest.approx(DEEPGRAM_IDLE_TIMEOUT_S * 1000 + 1000, abs=BOUND_MS)
    silent = outcomes["silent"]
    assert isinstance(silent, CycleError) and silent.kind == "server_error"
    assert silent.message.startswith("CLIENT_MESSAGE_TIMEOUT: No message from the client for 10 s")


# ---------------------------------------------------------------- the vendor's own client


def test_the_sdks_own_agent_client_gets_a_full_answer_from_the_emulation(shared_reference_server):
    """deepgram-sdk's sync agent client, as its ForceEndTurn example uses it: typed Settings, media, ForceEndTurn
    on UserStartedSpeaking. The SDK sends its audio without waiting for SettingsApplied (a note when it is early)."""
    from deepgram import DeepgramClient
    from deepgram.agent.v1.types import (AgentV1Settings, AgentV1SettingsAgent, AgentV1SettingsAgentListen,
                                         AgentV1SettingsAgentListenProvider_V2, AgentV1SettingsAudio,
                                         AgentV1SettingsAudioInput)
    from deepgram.environment import DeepgramClientEnvironment
    from deepgram.types.speak_settings_v1 import SpeakSettingsV1
    from deepgram.types.speak_settings_v1provider import SpeakSettingsV1Provider_Deepgram
    from deepgram.types.think_settings_v1 import ThinkSettingsV1
    from deepgram.types.think_settings_v1provider import ThinkSettingsV1Provider_OpenAi

    server = fixed_server(shared_reference_server)
    ws = server.url.replace("http", "ws", 1)
    client = DeepgramClient(api_key="k-vendor", reconnect=False,
                            environment=DeepgramClientEnvironment(base=server.url, production=ws, agent=ws,
                                                                  agent_rest=server.url))
    settings = AgentV1Settings(
        audio=AgentV1SettingsAudio(input=AgentV1SettingsAudioInput(encoding="linear16", sample_rate=16000)),
        agent=AgentV1SettingsAgent(
            listen=AgentV1SettingsAgentListen(provider=AgentV1SettingsAgentListenProvider_V2(
                type="deepgram", model="flux-general-en")),
            think=ThinkSettingsV1(provider=ThinkSettingsV1Provider_OpenAi(type="open_ai", model="gpt-4o-mini"),
                                  prompt="Reply briefly."),
            speak=SpeakSettingsV1(provider=SpeakSettingsV1Provider_Deepgram(type="deepgram",
                                                                            model="aura-2-asteria-en"))))
    seen, audio = [], 0
    started = time.perf_counter_ns()
    with client.agent.v1.connect() as agent:
        agent.send_settings(settings)
        agent.send_media(SPEECH_PCM)
        for message in agent:
            if isinstance(message, bytes):
                audio += len(message)
                continue
            seen.append(message.type)
            if message.type == "UserStartedSpeaking":
                agent.send_force_end_turn()
            if message.type == "LatencyReport":
                latency = message.total_latency
                break
    assert seen == ["Welcome", "SettingsApplied", "UserStartedSpeaking", "ConversationText", "AgentThinking",
                    "ConversationText", "AgentAudioDone", "LatencyReport"]
    (truth,) = [r for r in records_between(server, started, time.perf_counter_ns()) if r["session"] is not None]
    assert truth["outcome"] == "ok" and truth["violations"] == []
    assert set(truth["notes"]) <= {"audio before SettingsApplied (held until the session is ready)"}
    assert audio == 2 * truth["audio_out"]["samples"] == 2 * 200 * 24  # fixed_server's 200 ms reply
    assert latency * 1000 == pytest.approx(truth["measured"]["input_to_audio_ms"], abs=0.01)


# ---------------------------------------------------------------- Welcome first


class LateWelcome:
    """A scripted agent socket on 127.0.0.1 that sends its Welcome ``delay_s`` after the upgrade (None: never)
    and answers Settings with SettingsApplied; it notes when each happened."""

    def __init__(self, delay_s: float | None) -> None:
        self.delay_s = delay_s
        self.events: list[tuple[str, int]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LateWelcome:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get(DEEPGRAM_AGENT_PATH, self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)

        async def welcome() -> None:
            if self.delay_s is not None:
                await asyncio.sleep(self.delay_s)
                self.events.append(("welcome_sent", time.perf_counter_ns()))
                await ws.send_str(json.dumps({"type": "Welcome", "request_id": "r-1"}))

        greeter = asyncio.ensure_future(welcome())
        async for msg in ws:
            if msg.type is WSMsgType.TEXT and json.loads(msg.data).get("type") == "Settings":
                self.events.append(("settings_received", time.perf_counter_ns()))
                await ws.send_str(json.dumps({"type": "SettingsApplied"}))
        greeter.cancel()
        return ws


def start_session(url: str, timeout: float) -> tuple[Timeline, Any]:
    install_tuning()
    driver = create("deepgram", DriverConfig(url=url, api_key="k-welcome", timeout=timeout), Stimulus.sine())
    timeline = Timeline()
    timeline.cycle_start = time.perf_counter_ns()
    deadline = timeline.cycle_start + int(timeout * 1e9)
    try:
        driver.connect(timeline)
        driver.start(timeline, deadline)
        return timeline, None
    except CycleError as exc:
        return timeline, exc
    finally:
        driver.close()


def test_settings_waits_for_a_late_welcome_and_session_start_is_settings_to_settingsapplied():
    with LateWelcome(0.3) as peer:
        timeline, error = start_session(peer.url, timeout=5)
    assert error is None
    events = dict(peer.events)
    assert events["welcome_sent"] < events["settings_received"]
    assert timeline.connected < events["welcome_sent"] < timeline.start_sent   # the wait is before start sent
    assert (timeline.start_sent - timeline.connected) / 1e6 >= 290
    assert timeline.phases()["session_start_ms"] < 100


def test_no_welcome_is_a_session_timeout_and_no_settings_go():
    with LateWelcome(None) as peer:
        timeline, error = start_session(peer.url, timeout=0.5)
    assert error is not None and error.kind == "session_timeout" and error.message == "no Welcome within 0.5 s"
    assert peer.events == [] and timeline.start_sent is None
