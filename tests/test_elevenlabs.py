"""ElevenLabs Agents end to end against the reference server's emulation, and the driver's rules on scripted messages.

In-process runs (tests/support/ground_truth.py) against reference servers shared with the other providers' tests
where the options are the same; the rules that tell the answer from a greeting or an interrupted reply are checked
on messages fed to the driver's receive side directly (docs/protocols/elevenlabs.md).
"""

from __future__ import annotations

import pytest

from support.ground_truth import (FIXED_RUN_SERVER, SHARED_GREETING_MS, SHARED_LEADING_MS, ground_truth_run,
                                  shared_server_options)
from bootbench.audio import Stimulus
from bootbench.providers.base import DriverConfig
from bootbench.providers.elevenlabs import ElevenLabsDriver
from bootbench.samples import ErrorKind

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SILENCE = ("--trailing-silence-ms", "600")
"""The agent ends a turn after 500 ms of trailing silence (there is no manual turn)."""
KEY = {"ELEVENLABS_API_KEY": "xi-test-123456"}
UNDERRUN_ALLOWANCE_MS = 25.0
"""How much later than the server's schedule playback may run on a shared, loaded machine (as test_audible_runs)."""


def run_elevenlabs(server, folder, *argv):
    return ground_truth_run(server, folder, "--provider", "elevenlabs", *SILENCE, *argv, environ=KEY)


def check_against_truth(run, iterations: int, setup_ms: float, first_audio_ms: float | None) -> None:
    """Every sample against its session: session start, first response, input to audio, stop; no violation, no note.

    ``first_audio_ms``: the injected delay, which the session's input to audio equals when the turn ends with the
    last chunk (at burst pace; at real-time pace the agent's 500 ms of silence end before the clip's 600 ms do).
    """
    assert run.exit_code == 0, run.stderr[-3000:]
    assert len(run.samples) == len(run.sessions) == iterations
    assert [t["protocol"] for t in run.sessions] == ["elevenlabs"] * iterations
    assert all(t["outcome"] == "ok" for t in run.sessions)
    for sample, session in zip(run.samples, run.sessions):
        measured = session["measured"]
        assert sample["session_start_ms"] == pytest.approx(setup_ms, abs=15)
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
        if first_audio_ms is not None:
            assert measured["input_to_audio_ms"] == pytest.approx(first_audio_ms, abs=15)
        assert sample["input_to_audio_ms"] == pytest.approx(measured["input_to_audio_ms"], abs=10)
        assert sample["stop_ms"] is not None and sample["stop_ms"] < 50
        assert session["t_ns"]["stop_received"] is not None
    assert run.violations == 0
    assert run.notes == 0 and all(t["notes"] == [] for t in run.sessions)  # every ping answered, nothing early
    assert (run.metrics["run"]["provider"], run.metrics["run"]["turn"]) == ("elevenlabs", "vad")


def test_twenty_iterations_match_the_ground_truth(shared_reference_server, tmp_path):
    run = run_elevenlabs(shared_reference_server(**FIXED_RUN_SERVER), tmp_path / "r", "-i", "20")
    check_against_truth(run, 20, float(FIXED_RUN_SERVER["setup_delay"]), float(FIXED_RUN_SERVER["first_audio_delay"]))
    assert all(s["greeting_ms"] is None and s["anomalies"] == {} for s in run.samples)
    assert run.metrics["run"]["provider_options"] == {"agent_id": "", "input_format": "pcm_16000",
                                                      "override_prompt": "no"}


def test_a_greeting_the_user_interrupts_three_turns_and_leading_silence_at_burst_pace(shared_reference_server,
                                                                                     tmp_path):
    """The agent greets at once; the clip arrives while it speaks: interruption, then the answer of the user's turn."""
    server = shared_reference_server(setup_delay="30", first_audio_delay="80", warm_first_audio_delay="40",
                                     cold_penalty=0, reply_ms=200, extra_args=["--greeting-ms", "0",
                                                                               "--leading-silence-ms",
                                                                               str(SHARED_LEADING_MS)])
    run = run_elevenlabs(server, tmp_path / "r", "-i", "3", "--turns", "3", "--reply-gap-ms", "200")
    check_against_truth(run, 3, 30.0, 80.0)
    for sample, session in zip(run.samples, run.sessions):
        assert session["greeting"]["interrupted"] is True   # the user's speech cut it short
        assert sample["greeting_ms"] == pytest.approx(session["measured"]["greeting_ms"], abs=10)
        assert SHARED_LEADING_MS - 1 <= sample["leading_silence_ms"] <= SHARED_LEADING_MS + UNDERRUN_ALLOWANCE_MS
        assert len(session["turns"]) == len(sample["turns"]) == 3
        for turn, truth in zip(sample["turns"][1:], session["turns"][1:]):
            assert turn["input_to_audio_ms"] == pytest.approx(truth["measured"]["input_to_audio_ms"], abs=10)
        assert sample["anomalies"].get("audio_between_turns", 0) == 0


def test_a_greeting_and_leading_silence_at_realtime_pace(shared_reference_server, tmp_path):
    """The greeting starts 50 ms after ready while the 1 s clip streams: the user's speech interrupts it."""
    server = shared_reference_server(**shared_server_options("gemini", "realtime"))  # the same server as Gemini's
    run = run_elevenlabs(server, tmp_path / "r", "-i", "2", "--pace", "realtime")
    check_against_truth(run, 2, 30.0, None)
    for sample, session in zip(run.samples, run.sessions):
        assert sample["greeting_ms"] == pytest.approx(SHARED_GREETING_MS, abs=10)
        assert sample["greeting_ms"] == pytest.approx(session["measured"]["greeting_ms"], abs=10)
        assert session["greeting"]["interrupted"] is True
        assert session["audio_in"]["chunks"] > 16   # 64 ms chunks: the clip and its 600 ms of silence
        assert SHARED_LEADING_MS - 1 <= sample["leading_silence_ms"] <= SHARED_LEADING_MS + UNDERRUN_ALLOWANCE_MS


def test_the_signed_urls_signature_appears_in_no_output(shared_reference_server, tmp_path):
    run = run_elevenlabs(shared_reference_server(**FIXED_RUN_SERVER), tmp_path / "r", "-i", "2", "--loglevel", "DEBUG")
    assert run.exit_code == 0
    outputs = [run.stdout, run.stderr] + [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert all("conversation_signature" not in text and "xi-test-123456" not in text for text in outputs)


def test_an_agent_id_is_required_off_this_machine_only(refusals, tmp_path):
    line = refusals.line("--headless", "-u", "1", "-H", "https://api.elevenlabs.io", "--provider", "elevenlabs",
                         *SILENCE, env=KEY)
    assert line == ("bootbench: the elevenlabs provider needs --provider-option agent_id=... "
                    "(the ElevenLabs agent to talk to (its id, agent_...))")
    assert refusals.check("--headless", "-H", "http://127.0.0.1:9", "--provider", "elevenlabs", *SILENCE)
    bad = refusals.sentence("--headless", "-H", "https://api.elevenlabs.io", "--provider", "elevenlabs", *SILENCE,
                            "--provider-option", "agent_id=a b", env=KEY)
    assert bad == ("provider option agent_id='a b': an agent id is one word, such as "
                   "agent_7101k5zvyjhmfg983brhmhkd98n6")
    assert not (tmp_path / "results").exists()


# ---- the driver's receive side, on scripted messages

def scripted_driver(*options: tuple[str, str]) -> tuple[ElevenLabsDriver, list]:
    """A driver whose session is open and whose sends are recorded instead of going out."""
    config = DriverConfig(url="http://127.0.0.1:9", api_key="k", turn="vad", trailing_silence_ms=600,
                          provider_options=options)
    driver = ElevenLabsDriver(config, Stimulus.sine())
    driver.session = driver.new_session(1)
    sent: list = []
    driver.send = sent.append
    return driver, sent


def metadata(input_format: str = "pcm_16000", output_format: str = "pcm_24000") -> dict:
    return {"type": "conversation_initiation_metadata", "conversation_initiation_metadata_event": {
        "conversation_id": "conv_1", "agent_output_audio_format": output_format,
        "user_input_audio_format": input_format}}


def audio(event_id: int) -> dict:
    return {"type": "audio", "audio_event": {"audio_base_64": "AAAAAA==", "event_id": event_id}}


def transcript(event_id: int) -> dict:
    return {"type": "user_transcript", "user_transcription_event": {"user_transcript": "hi", "event_id": event_id}}


def interruption(event_id: int) -> dict:
    return {"type": "interruption", "interruption_event": {"event_id": event_id}}


def test_audio_before_the_turns_transcript_is_a_greeting_and_an_interruption_voids_only_lower_ids():
    driver, _ = scripted_driver()
    session = driver.session
    driver.on_message(metadata(), 100)
    assert session.ready_ns == 100
    driver.on_message(audio(1), 200)       # the agent's first message, before our input
    driver.input_starting()
    driver.on_message(audio(1), 300)       # still the greeting: no transcript of our turn yet
    driver.on_message(interruption(2), 400)
    driver.on_message(audio(1), 500)       # the interrupted greeting's last chunk: void
    driver.on_message(transcript(2), 600)
    assert session.first_audio_ns is None and session.greeting_ns == 200
    driver.on_message(audio(2), 700)       # the same id as the interruption: the new reply, kept (the JS rule)
    assert session.first_audio_ns == 700
    assert driver.anomalies == {"interrupted_audio": 1}


def test_a_late_chunk_of_the_previous_reply_is_not_the_next_turns_answer():
    driver, _ = scripted_driver()
    session = driver.session
    driver.on_message(metadata(), 100)
    driver.input_starting()
    driver.on_message(transcript(1), 200)
    driver.on_message(audio(1), 300)
    assert session.first_audio_ns == 300 and session.greeting_ns is None
    assert session.end_reply(300)
    driver.next_turn()
    driver.input_starting()
    driver.on_message(audio(1), 400)       # turn 1's reply, late
    driver.on_message(transcript(3), 500)
    driver.on_message(audio(2), 550)       # an id below the turn's: not its answer
    driver.on_message(audio(3), 600)
    assert session.first_audio_ns == 600
    assert driver.anomalies == {"audio_between_turns": 2}


def test_every_ping_is_answered_with_its_event_id():
    driver, sent = scripted_driver()
    driver.on_message({"type": "ping", "ping_event": {"event_id": 7, "ping_ms": None}}, 100)
    driver.on_message(metadata(), 200)
    driver.on_message({"type": "ping", "ping_event": {"event_id": 8, "ping_ms": 31}}, 300)
    assert sent == [{"type": "pong", "event_id": 7}, {"type": "pong", "event_id": 8}]


@pytest.mark.parametrize("options, announced, words", [
    ((), "pcm_22050", "the agent takes pcm_22050 input, not pcm_16000: give --provider-option input_format=pcm_22050"),
    ((("input_format", "pcm_24000"),), "pcm_16000",
     "the agent takes pcm_16000 input, not pcm_24000: give --provider-option input_format=pcm_16000"),
    ((), "ulaw_8000", "the agent takes ulaw_8000 input, not pcm_16000: bootbench sends PCM16: set the agent's user "
                      "input format to pcm_16000"),
])
def test_an_agent_taking_another_input_format_fails_the_session_in_one_sentence(options, announced, words):
    driver, _ = scripted_driver(*options)
    driver.on_message(metadata(input_format=announced), 100)
    failure = driver.session.failure
    assert failure is not None and (failure.kind, failure.message) == (ErrorKind.PROTOCOL_ERROR, words)
    assert driver.session.ready_ns is None


def test_the_input_is_prepared_at_the_agents_rate_and_any_pcm_output_rate_is_decoded():
    driver, _ = scripted_driver(("input_format", "pcm_24000"))
    assert driver.input_rate == 24_000 and driver.chunks[0].rate == 24_000
    driver.on_message(metadata(input_format="pcm_24000", output_format="pcm_44100"), 100)
    assert driver.session.detector.rate == 44_100 and driver.session.ready_ns == 100
    other, _ = scripted_driver()
    other.on_message(metadata(output_format="ulaw_8000"), 100)
    other.input_starting()
    other.on_message(transcript(1), 200)
    other.on_message(audio(1), 300)
    assert other.session.first_audio_ns == 300 and other.anomalies == {"output_not_pcm": 1}


@pytest.mark.parametrize("event, kind", [
    ({"code": 1008, "error_type": "override_error", "message": "Override for field 'tts.voice_id' is not allowed"},
     ErrorKind.SERVER_ERROR),
    ({"code": 1008, "error_type": "value_error", "message": "Authentication failed: invalid signature"},
     ErrorKind.AUTH_FAILED),
    ({"code": 1002, "error_type": "llm_timeout", "message": "LLM response took over 20 seconds"},
     ErrorKind.SERVER_ERROR),
])
def test_an_error_event_fails_the_session_in_the_services_words(event, kind):
    driver, _ = scripted_driver()
    driver.on_message({"type": "error", "error_event": event}, 100)
    failure = driver.session.failure
    assert (failure.kind, failure.message) == (kind, f"{event['error_type']}: {event['message']}")


def test_the_initiation_carries_overrides_only_when_asked():
    plain, _ = scripted_driver()
    assert plain.start_message() == {"type": "conversation_initiation_client_data"}
    config = DriverConfig(url="http://127.0.0.1:9", api_key="k", turn="vad", system_message="Be brief.", voice="v1",
                          model="gemini-2.5-flash", provider_options=(("override_prompt", "yes"),))
    asked = ElevenLabsDriver(config, Stimulus.sine())
    assert asked.start_message() == {"type": "conversation_initiation_client_data", "conversation_config_override": {
        "agent": {"prompt": {"prompt": "Be brief.", "llm": "gemini-2.5-flash"}}, "tts": {"voice_id": "v1"}}}


def test_the_provider_is_inferred_from_any_elevenlabs_host():
    from bootbench.providers import registry

    assert registry.infer("https://api.elevenlabs.io") == "elevenlabs"
    assert registry.infer("wss://api.eu.residency.elevenlabs.io/v1/convai/conversation") == "elevenlabs"


@pytest.mark.parametrize("code, reason, kind, message", [
    (1000, "Max call duration exceeded", ErrorKind.SERVER_ERROR,
     "the agent ended the conversation (code 1000: Max call duration exceeded)"),
    (1008, "Authentication failed", ErrorKind.AUTH_FAILED, "connection closed (code 1008): Authentication failed"),
    (1008, "Override for field 'tts.voice_id' is not allowed by config.", ErrorKind.SERVER_ERROR,
     "connection closed (code 1008): Override for field 'tts.voice_id' is not allowed by config."),
    (1002, "", ErrorKind.SERVER_ERROR, "connection closed (code 1002): no reason given"),
    (1011, "Unexpected server error", ErrorKind.SERVER_ERROR, "connection closed (code 1011): Unexpected server error"),
    (None, "", ErrorKind.DISCONNECTED, "connection closed by the server (code None)"),
])
def test_a_close_before_the_answer_is_named_by_its_code(code, reason, kind, message):
    driver, _ = scripted_driver()
    error = driver.close_error(code, reason)
    assert (error.kind, error.message) == (kind, message)
