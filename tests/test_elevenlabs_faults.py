"""Every fault the reference server can inject on the ElevenLabs wire, and what bootbench records for it.

One reference server with each fault on its own session (after one clean session, which disarms the early stop),
one in-process run through all of them with a 1 s timeout; the ``stray`` fault needs a second turn, so it has a
run of its own. The words are the emulation's for the situations ElevenLabs names
(bootbench/server/protocols/elevenlabs/faults.py).
"""

from __future__ import annotations

import pytest

from support.ground_truth import ground_truth_run
from bootbench.server.faults import parse_fault
from bootbench.server.protocols.elevenlabs.faults import END_MESSAGES, ERRORS

LEAK_KEY = "xi-LEAKCHECK-5eed1e55c0de"
TIMEOUT_S = 1
AUTH_WORDS = "value_error: Authentication failed: the conversation signature is invalid or has expired"
CASES: list[tuple[str, str | None, str]] = [
    ("auth", "auth_failed", AUTH_WORDS),
    ("auth:echo=yes", "auth_failed", AUTH_WORDS + " (key: ***)"),
    *((f"error:type={kind}", "auth_failed" if kind == "invalid_api_key" else "server_error",
       f"{error_type}: {message}") for kind, (_, error_type, message) in ERRORS.items()),
    ("error:type=invalid_api_key:echo=yes", "auth_failed", "value_error: invalid_api_key: Invalid API key (key: ***)"),
    ("never_ready", "session_timeout", f"no session ready within {TIMEOUT_S} s"),
    ("silence", "audio_timeout", "no user_transcript came, so the agent did not end the turn"),
    ("drop:when=before_ready", "disconnected", "connection closed by the server"),
    ("drop:when=after_input", "disconnected", "connection closed by the server"),
    ("drop:when=mid_reply", None, ""),
    *((f"end:reason={reason}", "server_error", f"the agent ended the conversation (code 1000: {message})")
      for reason, message in END_MESSAGES.items()),
    ("malformed:what=not_json", "protocol_error", "a frame that is not JSON"),
    ("malformed:what=not_object", "protocol_error", "a JSON frame that is not an object"),
    ("malformed:what=wrong_type", "protocol_error", "an audio event without an integer audio_event.event_id"),
    ("malformed:what=missing_field", "protocol_error", "an audio event without an integer audio_event.event_id"),
    ("malformed:what=bad_base64", "protocol_error", "an audio event whose audio_base_64 is not base64"),
    ("malformed:what=huge", None, ""),
    (f"slow:phase=setup:ms={TIMEOUT_S * 1000 + 100}", "session_timeout", f"no session ready within {TIMEOUT_S} s"),
    (f"slow:phase=audio:ms={TIMEOUT_S * 1000 + 100}", "audio_timeout", f"no audio within {TIMEOUT_S} s"),
]
"""(fault, the error kind bootbench records or None for a session that still gets its answer, words of its message)."""
ARGS = ("--provider", "elevenlabs", "--trailing-silence-ms", "600", "--timeout", str(TIMEOUT_S), "--wait-ms", "20")


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    """Session 1 clean, then case k on session k + 2."""
    from bootbench.server.launcher import ReferenceServer

    folder = tmp_path_factory.mktemp("elevenlabs-faults")
    faults = []
    for index, (fault, _, _) in enumerate(CASES):
        parse_fault(fault)
        faults += ["--fault", f"{fault}:at={index + 2}"]
    truth = folder / "truth.jsonl"
    server = ReferenceServer.start(ground_truth=str(truth), setup_delay="20", first_audio_delay="40", cold_penalty=0,
                                   reply_ms=200, extra_args=faults)
    server.ground_truth = truth
    try:
        run = ground_truth_run(server, folder / "r", "-i", str(len(CASES) + 1), *ARGS,
                               environ={"ELEVENLABS_API_KEY": LEAK_KEY})
    finally:
        server.stop()
    return run, server.stderr_text(), folder


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CASES)), ids=[case[0] for case in CASES])
def test_each_fault_gives_its_error_kind_and_the_services_words(fault_run, index):
    run, _, _ = fault_run
    fault, kind, words = CASES[index]
    sample = run.samples[index + 1]
    (session,) = [s for s in run.sessions if s["session"] == index + 2]
    assert session["fault"]["kind"] == parse_fault(fault).kind
    assert sample["error_kind"] == kind, sample["error"]
    assert words in (sample["error"] or "")
    if kind is None:   # the answer came (and then the connection went, or nothing audible followed)
        assert sample["first_response_ms"] is not None
    if fault == "malformed:what=huge":
        assert sample["first_audible_ms"] is None


@pytest.mark.slow
def test_the_fault_run_counts_no_violation_and_never_shows_the_key(fault_run):
    run, server_log, folder = fault_run
    assert run.samples[0]["error_kind"] is None
    assert run.violations == 0
    outputs = [run.stdout, run.stderr, server_log] + [p.read_text(errors="replace")
                                                      for p in folder.rglob("*") if p.is_file()]
    assert not [text for text in outputs if LEAK_KEY in text]


def test_stray_chunks_of_a_reply_land_in_the_next_turn_as_audio_between_turns(reference_server, tmp_path):
    server = reference_server(setup_delay="20", first_audio_delay="40", cold_penalty=0, reply_ms=200,
                              extra_args=["--fault", "stray:chunks=3"])
    run = ground_truth_run(server, tmp_path / "r", "-i", "1", "--turns", "2", "--reply-gap-ms", "200", *ARGS[:-4],
                           environ={"ELEVENLABS_API_KEY": "k-123456"})
    (sample,) = run.samples
    assert sample["error_kind"] is None, sample["error"]
    assert sample["anomalies"] == {"audio_between_turns": 3}
    assert [t["input_to_audio_ms"] is not None for t in sample["turns"]] == [True, True]
