"""Every built-in provider end to end against the reference server's emulation of its protocol.

Real Locust processes for the embedded-server runs and a rejected key; the rest in-process
(tests/support/ground_truth.py).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from support.ground_truth import SHARED_REALTIME_SERVER, SHARED_RUN_SERVER, ground_truth_run
from support.processes import run_locust
from support.provider_table import (BUILTINS, IN_SHARED_RUNS, OTHER_TURN_MODES, RUN_ARGS, driver, key_variable,
                                    wrong_key_message)
from bootbench.providers.registry import DEFAULT
from bootbench.samples import PHASES, STAGE_PHASES, STEP_PHASES

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0


def fixed_server(reference_server, **kwargs):
    return reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                            **kwargs)


def result_files(folder) -> set[str]:
    return {"boot_*.log" if p.name.startswith("boot_") else p.name for p in folder.iterdir()}


@pytest.mark.slow
def test_every_provider_against_the_embedded_server_writes_the_files_a_default_provider_run_writes(tmp_path):
    with ThreadPoolExecutor(3) as pool:  # real processes, three at a time on a small machine
        futures = {provider: pool.submit(run_locust, "-u", "1", "-i", "4", "--provider", provider,
                                         *RUN_ARGS.get(provider, ()),
                                         "--results-dir", str(tmp_path / provider), cwd=tmp_path)
                   for provider in BUILTINS}
    runs = {provider: future.result() for provider, future in futures.items()}
    for provider, run in runs.items():
        assert run.returncode == 0, f"{provider}: {run.stderr[-3000:]}"
        assert result_files(run.folder) == result_files(runs[DEFAULT].folder)
        metrics = run.metrics
        assert metrics["run"]["embedded_server"] is True and metrics["run"]["provider"] == provider
        assert metrics["run"]["target"].startswith("http://127.0.0.1:")
        assert metrics["summary"]["successes"] == 4
        phases = metrics["summary"]["phases"]
        # every phase; the steps only of a session started in two requests (Ultravox's create and join), all of them;
        # the service stages the protocol has events for (tests/test_stages_*.py hold each against the truth), some
        optional = set(STEP_PHASES) | set(STAGE_PHASES)
        counted = {phase for phase in PHASES if phases[phase]["count"]}
        assert counted - optional == set(PHASES) - optional
        assert counted & set(STEP_PHASES) in (set(), set(STEP_PHASES)), counted
        assert counted & set(STAGE_PHASES), f"{provider} reported none of the service's stages"
        assert 20 < phases["first_response_ms"]["median"] < 1000
        assert all(s["stop_ms"] is not None for s in metrics["samples"])
        # the default turn mode and model of the driver (metrics.json records null for a model left to the service)
        assert metrics["run"]["turn"] == driver(provider).turn_modes[0]
        assert metrics["run"]["model"] == (driver(provider).default_model or None)
    # an embedded run records the reference server's latency model and seed
    block = runs["openai"].metrics["run"]
    assert block["voice"] == "alloy" and block["reference_server"] == {
        "setup_delay": "lognormal:50:0.2", "first_audio_delay": "lognormal:150:0.25", "cold_penalty_ms": 200.0,
        "capacity": 0, "reply_ms": 600, "reply_after": "first-input", "seed": 0, "faults": [],
        "leading_silence": None, "greeting": None, "vad_needs_speech": False, "socketio_path": "/socket.io/",
        "api_key_required": False}


@pytest.mark.truth  # held to the reference server's ground truth within milliseconds
@pytest.mark.parametrize("provider", [name for name in IN_SHARED_RUNS if driver(name).turn_modes[0] == "manual"])
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


@pytest.mark.truth  # held to the reference server's ground truth within milliseconds
@pytest.mark.parametrize("provider, turn", OTHER_TURN_MODES)
def test_first_response_matches_the_ground_truth_in_every_turn_mode(shared_reference_server, tmp_path, provider, turn):
    """The shared run has each provider's default turn mode; here each of its others (vad: 600 ms of silence)."""
    options = ["--turn", turn] + (["--trailing-silence-ms", "600"] if turn == "vad" else [])
    run = ground_truth_run(fixed_server(shared_reference_server), tmp_path / "r", "-i", "5", "--provider", provider,
                           *options)
    check_first_response(run, provider, turn, iterations=5)


@pytest.mark.truth  # held to the reference server's ground truth within milliseconds
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


@pytest.mark.parametrize("provider", BUILTINS)
def test_a_wrong_key_gives_auth_failed_with_the_services_message_and_never_shows_the_key(
        shared_reference_server, tmp_path, provider):
    """A real process: the key must appear in none of its outputs (console, log, CSVs, result files, trace.json)."""
    message = wrong_key_message(provider)
    server = fixed_server(shared_reference_server, api_key="the-right-key")
    secret = "sk-wrong-SECRET-4242"
    run = ground_truth_run(server, tmp_path / "r", "-i", "5", "--provider", provider, "--trace",
                           *RUN_ARGS.get(provider, ()), environ={key_variable(provider): secret}, in_subprocess=True)
    assert run.exit_code == 1
    assert (run.folder / "trace.json").is_file()   # the wire trace too (--trace): every message, no key
    metrics = run.metrics
    assert metrics["errors"]["by_kind"] == {"auth_failed": 3}
    assert [s["error"] for s in metrics["samples"]] == [message] * 3
    assert f"bootbench: authentication failed: {message}" in run.stderr.splitlines()
    outputs = [run.stdout, run.stderr, server.stderr_text()]
    outputs += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert not [o for o in outputs if secret in o]
    assert set(run.outcomes) == {"auth_failed"}


@pytest.mark.parametrize("provider", [name for name in BUILTINS if "vad" in driver(name).turn_modes
                                      and driver(name).vad_silence_ms])
def test_vad_turns_without_enough_trailing_silence_are_refused_before_anything_starts(refusals, tmp_path, provider):
    # in-process (tests/support/refusals.py); the real command's exit code 2: tests/test_bad_input.py
    needed = driver(provider).vad_silence_ms
    line = refusals.line("--headless", "-u", "1", "--provider", provider, "--turn", "vad", "--trailing-silence-ms",
                         str(needed - 1))
    assert line.startswith(f"bootbench: --turn vad needs --trailing-silence-ms of at least {needed:g} for {provider}")
    assert not (tmp_path / "results").exists()


@pytest.mark.truth  # held to the reference server's ground truth within milliseconds
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
