"""OpenAI Realtime, Gemini Live and ElevenLabs Agents end to end against the reference server's emulations.

Real Locust processes for the embedded-server runs and a rejected key; the rest in-process
(tests/support/ground_truth.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from support.ground_truth import SHARED_REALTIME_SERVER, SHARED_RUN_SERVER, ground_truth_run
from support.processes import run_locust
from bootbench.samples import PHASES, STEP_PHASES

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0
KEY_VARIABLE = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY", "azure": "AZURE_VOICELIVE_API_KEY",
                "xai": "XAI_API_KEY", "elevenlabs": "ELEVENLABS_API_KEY", "ultravox": "ULTRAVOX_API_KEY",
                "deepgram": "DEEPGRAM_API_KEY"}
PROVIDER_ARGS = {"elevenlabs": ("--trailing-silence-ms", "600"), "ultravox": ("--trailing-silence-ms", "400")}
"""What a provider needs beyond ``--provider`` (agents that end turns by trailing silence only)."""


def fixed_server(reference_server, **kwargs):
    return reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                            **kwargs)


def result_files(folder) -> set[str]:
    return {"boot_*.log" if p.name.startswith("boot_") else p.name for p in folder.iterdir()}


@pytest.mark.slow
def test_every_raw_websocket_provider_against_the_embedded_server_writes_the_files_an_aivoco_run_writes(tmp_path):
    providers = ("aivoco", "openai", "gemini", "elevenlabs", "deepgram")
    with ThreadPoolExecutor(len(providers)) as pool:
        futures = {provider: pool.submit(run_locust, "-u", "1", "-i", "4", "--provider", provider,
                                         *PROVIDER_ARGS.get(provider, ()),
                                         "--results-dir", str(tmp_path / provider), cwd=tmp_path)
                   for provider in providers}
    runs = {provider: future.result() for provider, future in futures.items()}
    for provider, run in runs.items():
        assert run.returncode == 0, f"{provider}: {run.stderr[-3000:]}"
        assert result_files(run.folder) == result_files(runs["aivoco"].folder)
        metrics = run.metrics
        assert metrics["run"]["embedded_server"] is True and metrics["run"]["provider"] == provider
        assert metrics["run"]["target"].startswith("http://127.0.0.1:")
        assert metrics["summary"]["successes"] == 4
        phases = metrics["summary"]["phases"]
        # every phase but the steps of a session started in two requests (Ultravox's create and join)
        assert {phase for phase in PHASES if phases[phase]["count"]} == set(PHASES) - set(STEP_PHASES)
        assert 20 < phases["first_response_ms"]["median"] < 1000
        assert all(s["stop_ms"] is not None for s in metrics["samples"])
    assert (runs["openai"].metrics["run"]["turn"], runs["openai"].metrics["run"]["model"]) == ("manual",
                                                                                              "gpt-realtime")
    assert runs["gemini"].metrics["run"]["model"] == "models/gemini-2.5-flash-native-audio-preview-12-2025"
    assert (runs["deepgram"].metrics["run"]["turn"], runs["deepgram"].metrics["run"]["model"]) == ("manual",
                                                                                                  "gpt-4o-mini")
    # an embedded run records the reference server's latency model and seed
    block = runs["openai"].metrics["run"]
    assert block["voice"] == "alloy" and block["reference_server"] == {
        "setup_delay": "lognormal:50:0.2", "first_audio_delay": "lognormal:150:0.25", "cold_penalty_ms": 200.0,
        "capacity": 0, "reply_ms": 600, "reply_after": "first-input", "seed": 0, "faults": [],
        "leading_silence": None, "greeting": None, "vad_needs_speech": False, "socketio_path": "/socket.io/",
        "api_key_required": False}


@pytest.mark.parametrize("provider", ["openai", "gemini", "azure", "xai", "deepgram"])
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
    ("gemini", ["--turn", "vad", "--trailing-silence-ms", "600"]),
    ("deepgram", ["--turn", "vad", "--trailing-silence-ms", "600"]),
])
def test_first_response_matches_the_ground_truth_in_both_turn_modes(shared_reference_server, tmp_path, provider,
                                                                    options):
    run = ground_truth_run(fixed_server(shared_reference_server), tmp_path / "r", "-i", "5", "--provider", provider,
                           *options)
    check_first_response(run, provider, options[1], iterations=5)


def test_first_response_matches_the_ground_truth_with_manual_turns_at_realtime_pace(shared_ground_truth_run):
    """Gemini, manual turns, real-time pace: the session's shared real-time run (tests/conftest.py)."""
    assert [float(SHARED_REALTIME_SERVER[k]) for k in ("setup_delay", "first_audio_delay")] == [SETUP_MS,
                                                                                                  FIRST_AUDIO_MS]
    run = shared_ground_truth_run("gemini", "realtime")
    check_first_response(run, "gemini", "manual", iterations=2)
    assert all(t["audio_in"]["chunks"] == 16 for t in run.sessions)
    assert all(s["first_response_ms"] > 900 for s in run.samples)


def check_first_response(run, provider: str, turn: str, iterations: int) -> None:
    """Every sample against its session: first response, setup, input to audio, stop; no violations."""
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
        assert session["t_ns"]["stop_received"] is not None
    assert run.violations == 0
    assert run.notes == 0 and all(t["notes"] == [] for t in truth)   # no early sends, JSON names
    assert (run.metrics["run"]["provider"], run.metrics["run"]["turn"]) == (provider, turn)


@pytest.mark.parametrize("provider, message", [
    ("openai", "HTTP 401: Incorrect API key provided"),
    ("gemini", "connection closed (code 1007): API key not valid. Please pass a valid API key."),
    ("azure", "HTTP 401: Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
              "valid key for an active subscription and use a correct regional API endpoint for your resource."),
    ("xai", "HTTP 400: Incorrect API key provided. You can obtain an API key from https://console.x.ai."),
    ("elevenlabs", "HTTP 401 from the signed-URL request: invalid_api_key: Invalid API key"),
    ("ultravox", "the call could not be created: HTTP 401: Invalid API key."),
    ("deepgram", "HTTP 401: INVALID_AUTH: Invalid credentials."),
])
def test_a_wrong_key_gives_auth_failed_with_the_services_message_and_never_shows_the_key(
        shared_reference_server, tmp_path, provider, message):
    """A real process: the key must appear in none of its outputs (console, log, CSVs, result files)."""
    server = fixed_server(shared_reference_server, api_key="the-right-key")
    secret = "sk-wrong-SECRET-4242"
    run = ground_truth_run(server, tmp_path / "r", "-i", "5", "--provider", provider,
                           *PROVIDER_ARGS.get(provider, ()), environ={KEY_VARIABLE[provider]: secret},
                           in_subprocess=True)
    assert run.exit_code == 1
    metrics = run.metrics
    assert metrics["errors"]["by_kind"] == {"auth_failed": 3}
    assert [s["error"] for s in metrics["samples"]] == [message] * 3
    assert f"bootbench: authentication failed: {message}" in run.stderr.splitlines()
    outputs = [run.stdout, run.stderr, server.stderr_text()]
    outputs += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert not [o for o in outputs if secret in o]
    assert set(run.outcomes) == {"auth_failed"}


def test_vad_turns_without_enough_trailing_silence_are_refused_before_anything_starts(refusals, tmp_path):
    # in-process (tests/support/refusals.py); the real command's exit code 2: tests/test_bad_input.py
    line = refusals.line("--headless", "-u", "1", "--provider", "openai", "--turn", "vad", "--trailing-silence-ms", "200")
    assert line.startswith("bootbench: --turn vad needs --trailing-silence-ms of at least 500 for openai")
    assert not (tmp_path / "results").exists()


def test_aivoco_reply_after_end_of_turn_answers_after_the_trailing_silence(shared_reference_server, tmp_path):
    server = fixed_server(shared_reference_server, extra_args=["--reply-after", "end-of-turn"])
    run = ground_truth_run(server, tmp_path / "r", "-i", "1", "--pace", "realtime", "--trailing-silence-ms", "600",
                           environ={"AIVOCO_API_KEY": "k-123456"})
    assert run.exit_code == 0, run.stderr[-3000:]
    assert len(run.samples) == len(run.sessions) == 1
    for sample, session in zip(run.samples, run.sessions):
        t = session["t_ns"]
        turn_end_ms = (t["first_audio_sent"] - t["first_input_received"]) / 1e6 - FIRST_AUDIO_MS
        assert turn_end_ms == pytest.approx(23 * 64, abs=30)  # the chunk in which 500 ms of silence is complete
        assert session["measured"]["input_to_audio_ms"] > 0
        assert sample["first_response_ms"] == pytest.approx(session["measured"]["first_response_ms"], abs=10)
    assert run.violations == 0
