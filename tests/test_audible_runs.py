"""What a caller hears, end to end: in-process Locust runs against real reference servers.

First audible audio and leading silence against the server's ground truth
(every built-in protocol, burst and real-time pace), greetings kept apart from
the answer, clips of every kind sent in turn, a pure tone refused by a
speech-only turn detector, inaudible replies, ``--headline`` and bad values.
"""

from __future__ import annotations

import json
import numpy as np
import pytest
import soundfile

from support.ground_truth import GREETING_PROVIDERS, SHARED_LEADING_MS, ground_truth_run
from support.provider_table import IN_SHARED_RUNS, key_variable
from bootbench.audio import SPEECH_CLIP
from bootbench.providers.openai_realtime import OpenAIRealtimeDriver
from bootbench.providers.base import DriverConfig
from bootbench.audio import Stimulus

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, FIRST_AUDIO_MS = 20.0, 60.0
ITERATIONS = {"burst": 4, "realtime": 2}
"""Iterations of the session's shared runs (tests/support/ground_truth.py)."""
UNDERRUN_ALLOWANCE_MS = 25.0
"""How much later than the server's schedule playback may run on a shared, loaded machine."""


def server_with(reference_server, *extra: str):
    return reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                            extra_args=list(extra))


def run_inprocess(server, tmp_path, provider: str, *args: str, name: str = "r"):
    """An in-process run with the server's records of its own sessions (tests/support/ground_truth.py)."""
    return ground_truth_run(server, tmp_path / name, "--provider", provider, *args,
                            environ={key_variable(provider): "k-123456"})


@pytest.mark.parametrize("pace", ["burst", "realtime"])
@pytest.mark.parametrize("provider", IN_SHARED_RUNS)
def test_first_audible_and_leading_silence_recover_the_injected_silence_at_both_paces(shared_ground_truth_run,
                                                                                      provider, pace):
    """The session's shared runs (tests/conftest.py): burst with three turns, real time with a greeting."""
    run = shared_ground_truth_run(provider, pace)
    samples, truth = run.samples, run.sessions
    assert len(samples) == len(truth) == ITERATIONS[pace]
    for sample, session in zip(samples, truth):
        measured = session["measured"]
        assert session["injected"]["leading_silence_ms"] == SHARED_LEADING_MS
        arrival_error = sample["first_response_ms"] - measured["first_response_ms"]
        assert abs(arrival_error) <= 15, (pace, sample, measured)
        # The tone starts right after the noise and is found within a sample or two: first_audible is off by
        # what the first arrival was, plus playback running late when a chunk arrived late (an underrun).
        error = sample["first_audible_ms"] - measured["first_audible_ms"]
        assert -1 <= error - arrival_error <= UNDERRUN_ALLOWANCE_MS, (pace, sample, measured)
        assert sample["input_to_audible_ms"] == pytest.approx(
            sample["input_to_audio_ms"] + sample["leading_silence_ms"], abs=0.01)
        assert SHARED_LEADING_MS - 1 <= sample["leading_silence_ms"] <= SHARED_LEADING_MS + UNDERRUN_ALLOWANCE_MS, (
            pace, sample)
        if session["greeting"] is None:  # the burst runs, and Aivoco's real-time run: no greeting was sent
            assert sample["greeting_ms"] is None
    summary = run.metrics["summary"]
    assert summary["inaudible_replies"] == 0 and summary["phases"]["leading_silence_ms"]["count"] == ITERATIONS[pace]
    assert run.violations == 0 and run.notes == 0


@pytest.mark.parametrize("provider", GREETING_PROVIDERS)
def test_a_greeting_is_recorded_as_a_greeting_and_not_taken_as_the_answer(shared_ground_truth_run, provider):
    """The greeting ends before the turn does: the session's shared real-time run (tests/conftest.py)."""
    check_greeting(shared_ground_truth_run(provider, "realtime"))


def test_a_greeting_still_speaking_at_the_turns_end_is_cancelled_and_not_taken_as_the_answer(
        shared_reference_server, tmp_path):
    """An 800 ms greeting: still speaking at the turn's end, so the OpenAI client cancels it."""
    server = server_with(shared_reference_server, "--greeting-ms", "800")
    check_greeting(ground_truth_run(server, tmp_path / "r", "-i", "2", "--pace", "realtime", "--provider", "openai"))


def check_greeting(run) -> None:
    assert run.exit_code == 0
    samples, truth = run.samples, run.sessions
    assert len(samples) == len(truth) == 2
    for sample, session in zip(samples, truth):
        measured = session["measured"]
        assert session["greeting"] is not None and measured["greeting_ms"] is not None
        assert sample["ok"] and sample["greeting_ms"] == pytest.approx(measured["greeting_ms"], abs=10)
        # The answer is the answer: its first audio is the server's first answer chunk, not the greeting's.
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
        assert sample["first_response_ms"] > sample["greeting_ms"] + 5
    assert run.metrics["summary"]["greetings"] == 2
    assert "greetings: 2 iteration(s)" in run.stdout
    assert run.violations == 0 and run.notes == 0


def write_clips(folder):
    """A folder of two clips (FLAC, float WAV) and a 44.1 kHz stereo WAV beside it, all cut from the speech clip."""
    speech, rate = soundfile.read(SPEECH_CLIP, dtype="float32")
    part = speech[: rate * 3 // 2]
    clips = folder / "clips"
    clips.mkdir()
    soundfile.write(clips / "a.flac", part, rate, subtype="PCM_16")
    soundfile.write(clips / "b.wav", part * 0.8, rate, subtype="FLOAT")
    t = np.arange(44_100) / 44_100
    left = 0.3 * np.sin(2 * np.pi * 300 * t)
    stereo = folder / "stereo44.wav"
    soundfile.write(stereo, np.stack([left, left * 0.5], axis=1), 44_100, subtype="PCM_24")
    return clips, stereo


def test_speech_a_folder_a_44k_stereo_file_a_float_wav_and_a_flac_are_sent_in_turn(shared_reference_server,
                                                                                    tmp_path):
    clips, stereo = write_clips(tmp_path)
    server = server_with(shared_reference_server)
    run = run_inprocess(server, tmp_path, "aivoco", "-i", "4", "--audio", "speech", "--audio", str(clips),
                        "--audio", str(stereo))
    assert run.exit_code == 0
    metrics = run.metrics
    assert [s["clip"] for s in metrics["samples"]] == ["speech", "a.flac", "b.wav", "stereo44.wav"]
    described = metrics["run"]["clips"]
    assert [(c["name"], c["rate"], round(c["duration_ms"])) for c in described] == [
        ("speech", 16000, 4000), ("a.flac", 16000, 1500), ("b.wav", 16000, 1500), ("stereo44.wav", 16000, 1000)]
    assert [(c["source_rate"], c["source_channels"]) for c in described] == [
        (16000, 1), (16000, 1), (16000, 1), (44_100, 2)]  # the sources' own, recorded apart from the rate sent
    assert all(len(c["sha256"]) == 64 for c in described) and len({c["sha256"] for c in described}) == 4
    # What the server heard is each clip at 16 kHz: 4 s, 1.5 s, 1.5 s, 1 s of samples.
    assert [t["audio_in"]["samples"] for t in run.sessions] == [64_000, 24_000, 24_000, 16_000]
    assert metrics["summary"]["successes"] == 4 and run.violations == 0
    assert run.notes == 0


def test_a_pure_tone_never_ends_a_speech_only_turn_and_says_so_while_speech_is_answered(shared_reference_server,
                                                                                      tmp_path):
    server = server_with(shared_reference_server, "--vad-needs-speech")
    tone = run_inprocess(server, tmp_path, "aivoco", "-i", "1", "--timeout", "3", "--trailing-silence-ms", "600",
                         name="tone")
    (sample,) = tone.metrics["samples"]
    assert sample["error_kind"] == "audio_timeout"
    assert sample["error"] == ("no audio_response within 3 s; aivoco ends turns by voice activity, which a pure "
                               "tone may never trigger: try --audio speech")
    speech = run_inprocess(server, tmp_path, "aivoco", "-i", "1", "--timeout", "8", "--trailing-silence-ms", "600",
                           "--audio", "speech", name="speech")
    assert speech.exit_code == 0
    (sample,) = speech.metrics["samples"]
    assert sample["ok"] and sample["clip"] == "speech" and sample["first_audible_ms"] is not None
    assert [t["input_speech"] for t in [*tone.sessions, *speech.sessions]] == [False, True]


def test_a_reply_never_above_the_threshold_is_an_inaudible_reply_not_a_failure(shared_reference_server, tmp_path):
    server = server_with(shared_reference_server)
    run = run_inprocess(server, tmp_path, "openai", "-i", "2", "--audible-dbfs", "-10",
                        "--headline", "first_audible_ms")
    assert run.exit_code == 0
    metrics = run.metrics
    assert metrics["summary"]["successes"] == 2 and metrics["summary"]["inaudible_replies"] == 2
    assert all(s["first_response_ms"] is not None and s["first_audible_ms"] is None for s in metrics["samples"])
    assert metrics["run"]["audible_dbfs"] == -10 and metrics["run"]["headline"] == "first_audible_ms"
    assert "inaudible replies: 2" in run.stdout


def test_the_console_summary_leads_with_the_headline(shared_reference_server, tmp_path):
    server = server_with(shared_reference_server, "--leading-silence-ms", "100")
    run = run_inprocess(server, tmp_path, "gemini", "-i", "2", "--headline", "leading_silence_ms")
    assert run.exit_code == 0
    head = run.metrics["summary"]["phases"]["leading_silence_ms"]
    summary = run.stdout[run.stdout.index("bootbench: gemini"):].splitlines()
    assert summary[2].startswith(f"  leading silence: median {head['median']:.1f} ms, p95 {head['p95']:.1f} ms")
    assert any(line.startswith("  first response: median") for line in summary[3:])


@pytest.mark.parametrize("args, sentence", [
    (["--headline", "fastest_ms"], "bootbench: --headline must name a phase (connect_ms, "),
    (["--audible-dbfs", "3"], "bootbench: --audible-dbfs must be a level from -120 up to (not including) 0 dBFS, "
                              "not 3"),
    (["--audible-dbfs", "nan"], "bootbench: --audible-dbfs must be a level from -120 up to"),
    (["--audio", "speech", "--audio", "missing.flac"], "bootbench: audio file missing.flac does not exist"),
])
def test_bad_values_are_one_sentence_and_exit_code_2(refusals, tmp_path, args, sentence):
    # in-process (tests/support/refusals.py); the real command's exit code 2: tests/test_bad_input.py
    assert refusals.line("--headless", "-u", "1", "-i", "1", *args).startswith(sentence)
    assert not (tmp_path / "results").exists()


def test_a_silent_clip_warns_once_in_one_sentence(shared_reference_server, tmp_path):
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(8000), 16_000, subtype="PCM_16")
    server = server_with(shared_reference_server)
    run = run_inprocess(server, tmp_path, "openai", "-i", "1", "--audio", str(silent), "--timeout", "2")
    warnings = [line for line in run.stderr.splitlines() if line.startswith("bootbench: warning: ")]
    assert len(warnings) == 1 and f"audio file {silent} is silent" in warnings[0]


def openai_driver() -> OpenAIRealtimeDriver:
    driver = OpenAIRealtimeDriver(DriverConfig(url="ws://127.0.0.1:9", api_key="k"), Stimulus.sine())
    driver._asked, driver._answer, driver._unasked, driver._retry_create, driver._phases = True, None, set(), False, {}
    driver.session = driver.new_session(1)
    driver.session.ready_ns = 1
    return driver


def delta(response: str, item: str, pcm: bytes, beta: bool = False) -> dict:
    import base64

    return {"type": "response.audio.delta" if beta else "response.output_audio.delta", "response_id": response,
            "item_id": item, "delta": base64.b64encode(pcm).decode()}


def test_openai_records_a_preamble_and_reads_beta_and_ga_audio_names():
    loud = (np.full(240, 8000, dtype="<i2")).tobytes()
    driver = openai_driver()
    driver.on_message({"type": "response.created", "response": {"id": "resp_1"}}, 10)
    driver.on_message({"type": "response.output_item.added", "item": {"id": "item_1", "phase": "commentary"}}, 11)
    driver.on_message(delta("resp_1", "item_1", loud, beta=True), 12_000_000)
    session = driver.session
    assert session.preamble is True and session.first_audio_ns == 12_000_000 and session.audible.is_set()
    assert driver.preamble() is True

    driver = openai_driver()
    driver.on_message({"type": "response.created", "response": {"id": "resp_2"}}, 10)
    driver.on_message(delta("resp_2", "item_9", b"\x00\x00" * 240), 20)
    driver.on_message({"type": "response.output_audio.done", "response_id": "resp_2"}, 30)
    assert driver.session.preamble is None and driver.session.first_audio_ns == 20
    assert driver.session.audible.is_set() and driver.session.detector.found is None   # over, never audible


def test_openai_keeps_a_response_it_did_not_ask_for_apart():
    driver = openai_driver()
    driver._asked = False
    driver.on_message({"type": "response.created", "response": {"id": "resp_hello"}}, 10)
    driver.on_message(delta("resp_hello", "item_1", b"\x10\x00" * 240), 15)
    session = driver.session
    assert session.greeting_ns == 15 and session.first_audio_ns is None and not session.audio.is_set()
    assert json.dumps(sorted(driver._unasked)) == '["resp_hello"]'
