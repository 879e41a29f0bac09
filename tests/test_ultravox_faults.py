"""Every fault kind on Ultravox's wire, through bootbench at once: its error kind and the service's words.

One reference server with each fault on its own session (2, 4, 6, ...: every faulted call is followed by a clean
one), one in-process run of ``2 * len(CASES) + 1`` iterations with a 1 s timeout and a recognisable key, which
no output may contain (the ``echo=yes`` faults quote it back), nor any join URL's secret query.
"""

from __future__ import annotations

import pytest

from support.ground_truth import ground_truth_run
from bootbench.server.protocols.ultravox.faults import END_REASONS

LEAK_KEY = "uv-LEAKCHECK-5e1f00d5"
TIMEOUT_S = 1
CASES: list[tuple[str, str | None, str]] = [
    ("auth", "auth_failed", "the call could not be created: HTTP 401: Invalid API key."),
    ("auth:echo=yes", "auth_failed", "HTTP 401: Invalid API key. (key: ***)"),
    ("error:type=insufficient_credits", "server_error", "HTTP 402: Your account has no call time left."),
    ("error:type=invalid_api_key", "auth_failed", "HTTP 401: Invalid API key."),
    ("error:type=invalid_api_key:echo=yes", "auth_failed", "HTTP 401: Invalid API key. (key: ***)"),
    ("error:type=rate_limit_exceeded", "server_error", "HTTP 429: Request was throttled. Expected available in 1 "
                                                       "second."),
    ("never_ready", "session_timeout", f"no state message within {TIMEOUT_S} s"),
    ("silence", "audio_timeout", f"no audio within {TIMEOUT_S} s"),
    ("drop:when=before_ready", "disconnected", "connection closed by the server"),
    ("drop:when=after_input", "disconnected", "connection closed by the server"),
    ("drop:when=mid_reply", None, ""),
    *((f"end:reason={reason}", "server_error", f"the call ended (code 1000: {words})")
      for reason, words in END_REASONS.items()),
    ("malformed:what=not_json", "protocol_error", "a frame that is not JSON"),
    ("malformed:what=not_object", "protocol_error", "a JSON frame that is not an object"),
    ("malformed:what=wrong_type", "protocol_error", "a state message whose 'state' is int, not a string"),
    ("malformed:what=missing_field", "protocol_error", "a data message without a 'type'"),
    ("malformed:what=bad_base64", "protocol_error", "a binary audio frame of 3 bytes, not whole PCM16 samples"),
    ("malformed:what=huge", "protocol_error", "a binary audio frame of 8.0 MiB, more than 30 s of audio"),
    ("stray:chunks=3", None, ""),   # no next session on a call's own socket: not played
    (f"slow:phase=setup:ms={TIMEOUT_S * 1000 + 100}", "session_timeout", f"no state message within {TIMEOUT_S} s"),
    (f"slow:phase=audio:ms={TIMEOUT_S * 1000 + 100}", "audio_timeout", f"no audio within {TIMEOUT_S} s"),
]


def session_of(index: int) -> int:
    return 2 + 2 * index


def test_every_fault_gives_its_error_kind_and_the_services_words_and_never_the_key(reference_server, tmp_path):
    faults = [arg for index, (fault, _, _) in enumerate(CASES) for arg in ("--fault", f"{fault}:at={session_of(index)}")]
    server = reference_server(setup_delay="20", first_audio_delay="40", cold_penalty=0, reply_ms=200,
                              extra_args=faults)
    iterations = session_of(len(CASES) - 1) + 1
    run = ground_truth_run(server, tmp_path / "r", "-i", str(iterations), "--timeout", str(TIMEOUT_S),
                           "--wait-ms", "50", "--provider", "ultravox", "--trailing-silence-ms", "400",
                           environ={"ULTRAVOX_API_KEY": LEAK_KEY}, timeout=180)
    samples = {s["iteration"]: s for s in run.samples}
    assert len(samples) == iterations
    for index, (fault, kind, words) in enumerate(CASES):
        sample, following = samples[session_of(index)], samples[session_of(index) + 1]
        assert sample["error_kind"] == kind, (fault, sample)
        assert words in (sample["error"] or ""), (fault, sample["error"])
        assert following["ok"], (fault, following)   # the next call is a clean one
    assert samples[1]["ok"]
    # the ground truth names each fault it played (at its session), and only those: stray is not played
    played = {s["session"]: s["fault"]["kind"] for s in run.sessions if s["fault"] is not None}
    assert played == {session_of(i): f.split(":")[0] for i, (f, _, _) in enumerate(CASES) if f != "stray:chunks=3"}
    outputs = [run.stdout, run.stderr, server.stderr_text(), server.ground_truth.read_text()]
    outputs += [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert not [o for o in outputs if LEAK_KEY in o]
    assert not [o for o in outputs if "token=" in o or "apiVersion=" in o]   # a join URL's query is its secret
