"""OpenAI Realtime and Gemini Live end to end: headless Locust runs against the reference server's emulations."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from support.ground_truth import SHARED_RUN_SERVER
from support.processes import read_jsonl, run_locust
from bootbench.samples import PHASES

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0
KEY_VARIABLE = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}


def fixed_server(reference_server, **kwargs):
    return reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                            **kwargs)


def result_files(folder) -> set[str]:
    return {"boot_*.log" if p.name.startswith("boot_") else p.name for p in folder.iterdir()}


def test_openai_and_gemini_against_the_embedded_server_write_the_files_an_aivoco_run_writes(tmp_path):
    providers = ("aivoco", "openai", "gemini")
    with ThreadPoolExecutor(len(providers)) as pool:
        futures = {provider: pool.submit(run_locust, "-u", "1", "-i", "4", "--provider", provider,
                                         "--results-dir", str(tmp_path / provider), cwd=tmp_path)
                   for provider in providers}
    runs = {provider: future.result() for provider, future in futures.items()}
    for provider, run in runs.items():
        assert run.returncode == 0, f"{provider}: {run.stderr[-3000:]}"
        assert result_files(run.folder) == result_files(runs["aivoco"].folder)
        metrics = run.metrics
        assert metrics["run"]["embedded_server"] is True and metrics["run"]["provider"] == provider
        assert metrics["summary"]["successes"] == 4
        phases = metrics["summary"]["phases"]
        assert {phase for phase in PHASES if phases[phase]["count"]} == set(PHASES)
        assert 20 < phases["first_response_ms"]["median"] < 1000
        assert all(s["stop_ms"] is not None for s in metrics["samples"])
    assert (runs["openai"].metrics["run"]["turn"], runs["openai"].metrics["run"]["model"]) == ("manual",
                                                                                              "gpt-realtime")
    assert runs["gemini"].metrics["run"]["model"] == "models/gemini-2.5-flash-native-audio-preview-12-2025"


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_first_response_matches_the_ground_truth_in_the_shared_run(shared_ground_truth_run, provider):
    """Manual turns at burst pace: the session's shared ground-truth run (tests/conftest.py), cold delay 120 ms."""
    run = shared_ground_truth_run(provider)
    cold_ms = float(SHARED_RUN_SERVER["first_audio_delay"])
    assert [t["protocol"] for t in run.sessions] == [provider] * len(run.samples) == [provider] * 4
    assert all(t["outcome"] == "ok" for t in run.sessions)
    for sample, session in zip(run.samples, run.sessions):
        measured = session["measured"]
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
        assert sample["session_start_ms"] == pytest.approx(float(SHARED_RUN_SERVER["setup_delay"]), abs=15)
        assert measured["input_to_audio_ms"] == pytest.approx(cold_ms, abs=15)
        assert sample["input_to_audio_ms"] == pytest.approx(cold_ms, abs=15)
        assert sample["stop_ms"] is not None and sample["stop_ms"] < 50
        assert session["t_ns"]["stop_received"] is not None
    assert run.violations == 0
    assert run.notes == 0 and all(session["notes"] == [] for session in run.sessions)  # no early sends, JSON names
    assert (run.metrics["run"]["provider"], run.metrics["run"]["turn"]) == (provider, "manual")


@pytest.mark.parametrize("provider, options", [
    ("openai", ["--turn", "vad", "--trailing-silence-ms", "600"]),
    ("gemini", ["--turn", "manual", "--pace", "realtime"]),
    ("gemini", ["--turn", "vad", "--trailing-silence-ms", "600"]),
])
def test_first_response_matches_the_ground_truth_in_both_turn_modes(reference_server, tmp_path, provider, options):
    server = fixed_server(reference_server)
    iterations = 2 if "realtime" in options else 5
    run = run_locust("-u", "1", "-i", str(iterations), "-H", server.url, "--provider", provider, *options,
                     "--results-dir", str(tmp_path / "r"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = run.metrics
    samples = metrics["samples"]
    truth = read_jsonl(server.ground_truth)
    assert [t["protocol"] for t in truth] == [provider] * iterations and all(t["outcome"] == "ok" for t in truth)
    for sample, session in zip(samples, truth):
        measured = session["measured"]
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=10)
        assert sample["session_start_ms"] == pytest.approx(SETUP_MS, abs=15)
        assert measured["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
        assert sample["input_to_audio_ms"] == pytest.approx(FIRST_AUDIO_MS, abs=15)
        assert sample["stop_ms"] is not None and sample["stop_ms"] < 50
        assert session["t_ns"]["stop_received"] is not None
    if "realtime" in options:
        assert all(t["audio_in"]["chunks"] == 16 for t in truth)
        assert all(s["first_response_ms"] > 900 for s in samples)
    assert server.stats()["violations"] == 0
    assert server.stats()["notes"] == 0 and all(t["notes"] == [] for t in truth)   # no early sends, JSON names
    turn = options[1]
    assert (metrics["run"]["provider"], metrics["run"]["turn"]) == (provider, turn)


@pytest.mark.parametrize("provider, message", [
    ("openai", "HTTP 401: Incorrect API key provided"),
    ("gemini", "connection closed (code 1007): API key not valid. Please pass a valid API key."),
])
def test_a_wrong_key_gives_auth_failed_with_the_services_message_and_never_shows_the_key(
        reference_server, tmp_path, provider, message):
    server = fixed_server(reference_server, api_key="the-right-key")
    secret = "sk-wrong-SECRET-4242"
    run = run_locust("-u", "1", "-i", "5", "-H", server.url, "--provider", provider,
                     "--results-dir", str(tmp_path / "r"), "--csv", str(tmp_path / "locust"),
                     cwd=tmp_path, env={KEY_VARIABLE[provider]: secret})
    assert run.returncode == 1
    metrics = run.metrics
    assert metrics["errors"]["by_kind"] == {"auth_failed": 3}
    assert [s["error"] for s in metrics["samples"]] == [message] * 3
    assert f"bootbench: authentication failed: {message}" in run.stderr.splitlines()
    outputs = [run.stdout, run.stderr, server.stderr_text()]
    outputs += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert not [o for o in outputs if secret in o]
    assert set(server.stats()["outcomes"]) == {"auth_failed"}


def test_vad_turns_without_enough_trailing_silence_are_refused_before_anything_starts(refusals, tmp_path):
    # in-process (tests/support/refusals.py); the real command's exit code 2: tests/test_bad_input.py
    line = refusals.line("--headless", "-u", "1", "--provider", "openai", "--turn", "vad", "--trailing-silence-ms", "200")
    assert line.startswith("bootbench: --turn vad needs --trailing-silence-ms of at least 500 for openai")
    assert not (tmp_path / "results").exists()


def test_aivoco_reply_after_end_of_turn_answers_after_the_trailing_silence(reference_server, tmp_path):
    server = fixed_server(reference_server, extra_args=["--reply-after", "end-of-turn"])
    run = run_locust("-u", "1", "-i", "1", "-H", server.url, "--pace", "realtime", "--trailing-silence-ms", "600",
                     "--results-dir", str(tmp_path / "r"), cwd=tmp_path, env={"AIVOCO_API_KEY": "k-123456"})
    assert run.returncode == 0, run.stderr[-3000:]
    truth = read_jsonl(server.ground_truth)
    for sample, session in zip(run.metrics["samples"], truth):
        t = session["t_ns"]
        turn_end_ms = (t["first_audio_sent"] - t["first_input_received"]) / 1e6 - FIRST_AUDIO_MS
        assert turn_end_ms == pytest.approx(23 * 64, abs=30)  # the chunk in which 500 ms of silence is complete
        assert session["measured"]["input_to_audio_ms"] > 0
        assert sample["first_response_ms"] == pytest.approx(session["measured"]["first_response_ms"], abs=10)
    assert server.stats()["violations"] == 0
