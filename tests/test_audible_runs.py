"""What a caller hears, end to end: headless Locust runs against a real reference server.

First audible audio and leading silence against the server's ground truth
(all three protocols, burst and real-time pace), greetings kept apart from
the answer, clips of every kind sent in turn, a pure tone refused by a
speech-only turn detector, inaudible replies, ``--headline`` and bad values.
"""

from __future__ import annotations

import json
import numpy as np
import pytest
import soundfile

from support.processes import read_jsonl, run_locust
from bootbench.audio import SPEECH_CLIP
from bootbench.providers.openai_realtime import OpenAIRealtimeDriver
from bootbench.providers.base import DriverConfig
from bootbench.audio import Stimulus

SETUP_MS, FIRST_AUDIO_MS, LEADING_MS = 20.0, 60.0, 230.0
UNDERRUN_ALLOWANCE_MS = 25.0
"""How much later than the server's schedule playback may run on a shared, loaded machine."""
KEYS = {"aivoco": "AIVOCO_API_KEY", "openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


def server_with(reference_server, *extra: str):
    return reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                            extra_args=list(extra))


def run_against(server, tmp_path, provider: str, *args: str, name: str = "r"):
    return run_locust("-u", "1", "-H", server.url, "--provider", provider, *args,
                      "--results-dir", str(tmp_path / name), cwd=tmp_path, env={KEYS[provider]: "k-123456"})


@pytest.mark.parametrize("provider", ["aivoco", "openai", "gemini"])
def test_first_audible_and_leading_silence_recover_the_injected_silence_at_both_paces(reference_server, tmp_path,
                                                                                      provider):
    # at real-time pace Aivoco is answered at the end of the turn, as the embedded server does (an answer from the
    # first chunk comes before the input ended and has no input phases: tests/test_answer_overlap.py)
    rule = {"burst": (), "realtime": ("--reply-after", "end-of-turn")}
    servers = {pace: server_with(reference_server, "--leading-silence-ms", str(LEADING_MS), *rule[pace])
               for pace in ("burst", "realtime")}
    runs = {pace: run_against(server, tmp_path, provider, "-i", "2", "--pace", pace, name=pace)
            for pace, server in servers.items()}
    for pace, run in runs.items():
        assert run.returncode == 0, f"{pace}: {run.stderr[-3000:]}"
        samples = run.metrics["samples"]
        truth = read_jsonl(servers[pace].ground_truth)
        assert len(samples) == len(truth) == 2
        for sample, session in zip(samples, truth):
            measured = session["measured"]
            assert session["injected"]["leading_silence_ms"] == LEADING_MS
            arrival_error = sample["first_response_ms"] - measured["first_response_ms"]
            assert abs(arrival_error) <= 15, (pace, sample, measured)
            # The tone starts right after the noise and is found within a sample or two: first_audible is off by
            # what the first arrival was, plus playback running late when a chunk arrived late (an underrun).
            error = sample["first_audible_ms"] - measured["first_audible_ms"]
            assert -1 <= error - arrival_error <= UNDERRUN_ALLOWANCE_MS, (pace, sample, measured)
            assert sample["input_to_audible_ms"] == pytest.approx(
                sample["input_to_audio_ms"] + sample["leading_silence_ms"], abs=0.01)
            assert LEADING_MS - 1 <= sample["leading_silence_ms"] <= LEADING_MS + UNDERRUN_ALLOWANCE_MS, (pace, sample)
            assert sample["greeting_ms"] is None
        summary = run.metrics["summary"]
        assert summary["inaudible_replies"] == 0 and summary["phases"]["leading_silence_ms"]["count"] == 2
        assert servers[pace].stats()["violations"] == 0 and servers[pace].stats()["notes"] == 0


@pytest.mark.parametrize("provider, greeting_ms, args", [
    ("openai", "50", ["--pace", "realtime"]),      # the greeting ends before the turn does
    ("openai", "800", ["--pace", "realtime"]),     # still speaking at the turn's end: the client cancels it
    ("gemini", "50", ["--pace", "realtime"]),
])
def test_a_greeting_is_recorded_as_a_greeting_and_not_taken_as_the_answer(reference_server, tmp_path, provider,
                                                                            greeting_ms, args):
    server = server_with(reference_server, "--greeting-ms", greeting_ms)
    run = run_against(server, tmp_path, provider, "-i", "2", *args)
    assert run.returncode == 0, run.stderr[-3000:]
    samples = run.metrics["samples"]
    truth = read_jsonl(server.ground_truth)
    for sample, session in zip(samples, truth):
        measured = session["measured"]
        assert session["greeting"] is not None and measured["greeting_ms"] is not None
        assert sample["ok"] and sample["greeting_ms"] == pytest.approx(measured["greeting_ms"], abs=10)
        # The answer is the answer: its first audio is the server's first answer chunk, not the greeting's.
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
        assert sample["first_response_ms"] > sample["greeting_ms"] + 5
    assert run.metrics["summary"]["greetings"] == 2
    assert "greetings: 2 iteration(s)" in run.stdout
    assert server.stats()["violations"] == 0 and server.stats()["notes"] == 0


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


def test_speech_a_folder_a_44k_stereo_file_a_float_wav_and_a_flac_are_sent_in_turn(reference_server, tmp_path):
    clips, stereo = write_clips(tmp_path)
    server = server_with(reference_server)
    run = run_against(server, tmp_path, "aivoco", "-i", "4", "--audio", "speech", "--audio", str(clips),
                      "--audio", str(stereo))
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.metrics
    assert [s["clip"] for s in metrics["samples"]] == ["speech", "a.flac", "b.wav", "stereo44.wav"]
    described = metrics["run"]["clips"]
    assert [(c["name"], c["rate"], round(c["duration_ms"])) for c in described] == [
        ("speech", 16000, 4000), ("a.flac", 16000, 1500), ("b.wav", 16000, 1500), ("stereo44.wav", 16000, 1000)]
    assert [(c["source_rate"], c["source_channels"]) for c in described] == [
        (16000, 1), (16000, 1), (16000, 1), (44_100, 2)]  # the sources' own, recorded apart from the rate sent
    assert all(len(c["sha256"]) == 64 for c in described) and len({c["sha256"] for c in described}) == 4
    truth = read_jsonl(server.ground_truth)
    # What the server heard is each clip at 16 kHz: 4 s, 1.5 s, 1.5 s, 1 s of samples.
    assert [t["audio_in"]["samples"] for t in truth] == [64_000, 24_000, 24_000, 16_000]
    assert metrics["summary"]["successes"] == 4 and server.stats()["violations"] == 0
    assert server.stats()["notes"] == 0


def test_a_pure_tone_never_ends_a_speech_only_turn_and_says_so_while_speech_is_answered(reference_server, tmp_path):
    server = server_with(reference_server, "--vad-needs-speech")
    tone = run_against(server, tmp_path, "aivoco", "-i", "1", "--timeout", "3", "--trailing-silence-ms", "600",
                       name="tone")
    (sample,) = tone.metrics["samples"]
    assert sample["error_kind"] == "audio_timeout"
    assert sample["error"] == ("no audio_response within 3 s; aivoco ends turns by voice activity, which a pure "
                               "tone may never trigger: try --audio speech")
    speech = run_against(server, tmp_path, "aivoco", "-i", "1", "--timeout", "8", "--trailing-silence-ms", "600",
                         "--audio", "speech", name="speech")
    assert speech.returncode == 0, speech.stderr[-3000:]
    (sample,) = speech.metrics["samples"]
    assert sample["ok"] and sample["clip"] == "speech" and sample["first_audible_ms"] is not None
    assert [t["input_speech"] for t in read_jsonl(server.ground_truth)] == [False, True]


def test_a_reply_never_above_the_threshold_is_an_inaudible_reply_not_a_failure(reference_server, tmp_path):
    server = server_with(reference_server)
    run = run_against(server, tmp_path, "openai", "-i", "2", "--audible-dbfs", "-10", "--headline", "first_audible_ms")
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.metrics
    assert metrics["summary"]["successes"] == 2 and metrics["summary"]["inaudible_replies"] == 2
    assert all(s["first_response_ms"] is not None and s["first_audible_ms"] is None for s in metrics["samples"])
    assert metrics["run"]["audible_dbfs"] == -10 and metrics["run"]["headline"] == "first_audible_ms"
    assert "inaudible replies: 2" in run.stdout


def test_the_console_summary_leads_with_the_headline(reference_server, tmp_path):
    server = server_with(reference_server, "--leading-silence-ms", "100")
    run = run_against(server, tmp_path, "gemini", "-i", "2", "--headline", "leading_silence_ms")
    assert run.returncode == 0, run.stderr[-3000:]
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


def test_a_silent_clip_warns_once_in_one_sentence(reference_server, tmp_path):
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(8000), 16_000, subtype="PCM_16")
    server = server_with(reference_server)
    run = run_against(server, tmp_path, "openai", "-i", "1", "--audio", str(silent), "--timeout", "2")
    warnings = [line for line in run.stderr.splitlines() if line.startswith("bootbench: warning: ")]
    assert len(warnings) == 1 and f"audio file {silent} is silent" in warnings[0]


def openai_driver() -> OpenAIRealtimeDriver:
    driver = OpenAIRealtimeDriver(DriverConfig(url="ws://127.0.0.1:9", api_key="k"), Stimulus.sine())
    driver._asked, driver._answer, driver._unasked, driver._retry_create, driver._phases = True, None, set(), False, {}
    driver._session = driver.new_session(1)
    driver._session.ready_ns = 1
    return driver


def delta(response: str, item: str, pcm: bytes, beta: bool = False) -> dict:
    import base64

    return {"type": "response.audio.delta" if beta else "response.output_audio.delta", "response_id": response,
            "item_id": item, "delta": base64.b64encode(pcm).decode()}


def test_openai_records_a_preamble_and_reads_beta_and_ga_audio_names():
    loud = (np.full(240, 8000, dtype="<i2")).tobytes()
    driver = openai_driver()
    driver._on_message({"type": "response.created", "response": {"id": "resp_1"}}, 10)
    driver._on_message({"type": "response.output_item.added", "item": {"id": "item_1", "phase": "commentary"}}, 11)
    driver._on_message(delta("resp_1", "item_1", loud, beta=True), 12_000_000)
    session = driver._session
    assert session.preamble is True and session.first_audio_ns == 12_000_000 and session.audible.is_set()
    assert driver.preamble() is True

    driver = openai_driver()
    driver._on_message({"type": "response.created", "response": {"id": "resp_2"}}, 10)
    driver._on_message(delta("resp_2", "item_9", b"\x00\x00" * 240), 20)
    driver._on_message({"type": "response.output_audio.done", "response_id": "resp_2"}, 30)
    assert driver._session.preamble is None and driver._session.first_audio_ns == 20
    assert driver._session.audible.is_set() and driver._session.detector.found is None   # over, never audible


def test_openai_keeps_a_response_it_did_not_ask_for_apart():
    driver = openai_driver()
    driver._asked = False
    driver._on_message({"type": "response.created", "response": {"id": "resp_hello"}}, 10)
    driver._on_message(delta("resp_hello", "item_1", b"\x10\x00" * 240), 15)
    session = driver._session
    assert session.greeting_ns == 15 and session.first_audio_ns is None and not session.audio.is_set()
    assert json.dumps(sorted(driver._unasked)) == '["resp_hello"]'
