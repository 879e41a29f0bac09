"""The reference server's Ultravox emulation, spoken to directly: what it refuses (violations, in the service's
status codes), what it accepts but a careful client does not do (notes), and a call nobody joins.

A raw HTTP client (urllib3) and a raw WebSocket client (websocket-client) against one server process.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest
import websocket
from urllib3.connection import HTTPConnection

from support.processes import read_jsonl

GOOD = {"systemPrompt": "Hi", "medium": {"serverWebSocket": {"inputSampleRate": 16000, "outputSampleRate": 24000}},
        "firstSpeakerSettings": {"user": {}}}


def post(server, body, key: str | None = "k", raw: bytes | None = None) -> tuple[int, dict]:
    parts = urlsplit(server.url)
    conn = HTTPConnection(parts.hostname, parts.port, timeout=5)
    headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
    conn.request("POST", "/api/calls", body=raw if raw is not None else json.dumps(body).encode(), headers=headers)
    response = conn.getresponse()
    data = json.loads(response.data)
    conn.close()
    return response.status, data


def records(server) -> list[dict]:
    deadline = time.monotonic() + 5
    while server.stats()["active"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return read_jsonl(server.ground_truth) if server.ground_truth.exists() else []


@pytest.mark.parametrize("body, words", [
    ({**GOOD, "medium": None}, "body.medium: not set"),
    ({**GOOD, "medium": {"webRtc": {}}}, "is not serverWebSocket"),
    ({**GOOD, "medium": {"serverWebSocket": {}}}, "missing required parameter 'inputSampleRate'"),
    ({**GOOD, "medium": {"serverWebSocket": {"inputSampleRate": 4000}}}, "4000 Hz is not a sample rate"),
    ({**GOOD, "voices": "Mark"}, "unknown parameter 'voices'"),
    ({**GOOD, "temperature": 2}, "body.temperature: 2 is not between 0 and 1"),
    ({**GOOD, "firstSpeakerSettings": {"user": {}, "agent": {}}}, "set exactly one of user and agent"),
    ({**GOOD, "firstSpeaker": "FIRST_SPEAKER_AGENT"}, "do not match"),
    ({**GOOD, "vadSettings": {"turnEndpointDelay": "384ms"}}, "is not a duration"),
    ({**GOOD, "voice": "Mark", "externalVoice": {}}, "set voice or externalVoice, not both"),
])
def test_a_create_request_the_service_refuses_is_a_400_and_a_violation(shared_reference_server, body, words):
    server = shared_reference_server(setup_delay="5")
    before = server.stats()
    status, data = post(server, body)
    assert status == 400 and words in data["detail"]
    assert server.stats()["violations"] == before["violations"] + 1
    assert server.stats()["sessions"] == before["sessions"]   # no call, no session


@pytest.mark.truth  # held to the reference server's ground truth within milliseconds
def test_refused_keys_joins_and_frames_and_the_notes_of_a_careless_client(reference_server):
    server = reference_server(setup_delay="20", first_audio_delay="30", cold_penalty=0, api_key="right-key")
    assert post(server, GOOD, key=None) == (401, {"detail": "Authentication credentials were not provided."})
    assert post(server, GOOD, key="wrong") == (401, {"detail": "Invalid API key."})
    assert post(server, None, raw=b"{not json", key="right-key")[0] == 400

    status, call = post(server, {**GOOD, "firstSpeaker": "FIRST_SPEAKER_USER"}, key="right-key")
    assert status == 201 and call["joinUrl"].startswith("ws://") and call["firstSpeaker"] == "FIRST_SPEAKER_USER"
    url = call["joinUrl"]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url.replace("token=", "token=x"), timeout=5)
    assert refused.value.status_code == 403
    ws = websocket.create_connection(url, timeout=5)
    ws.send_binary(b"\x00\x00" * 160)          # audio before the first state: a note, processed once ready
    assert json.loads(ws.recv()) == {"type": "state", "state": "listening"}
    ws.send(json.dumps({"type": "ping", "timestamp": 12.5}))
    assert json.loads(ws.recv()) == {"type": "pong", "timestamp": 12.5}
    ws.send(json.dumps({"type": "dance"}))      # not a client message: a violation
    ws.send_binary(b"\x01\x02\x03")             # not whole PCM16 samples: a violation
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as again:   # a call is joined once
        websocket.create_connection(url, timeout=5)
    assert again.value.status_code == 404

    status, unjoined = post(server, {**GOOD, "joinTimeout": "0.2s"}, key="right-key")
    assert status == 201
    time.sleep(0.5)
    with pytest.raises(websocket.WebSocketBadStatusException) as late:
        websocket.create_connection(unjoined["joinUrl"], timeout=5)
    assert late.value.status_code == 404

    truth = records(server)
    sessions = {r["outcome"]: r for r in truth if r["session"] is not None}
    assert set(sessions) == {"auth_failed", "stopped_before_audio", "unjoined"}
    joined = sessions["stopped_before_audio"]
    assert joined["notes"] == ["body.firstSpeaker is deprecated (use firstSpeakerSettings)",
                               "audio before the call was ready (its first state message)"]
    assert joined["violations"] == ["data message: unknown type 'dance'",
                                    "a binary frame of 3 bytes: not whole PCM16 samples"]
    assert joined["t_ns"]["created_sent"] and joined["t_ns"]["join_received"] and joined["t_ns"]["ready_sent"]
    assert joined["measured"]["join_ms"] == pytest.approx(20, abs=15)
    assert joined["audio_in"]["samples"] == 160
    outside = sorted(v for r in truth if r["session"] is None for v in r["violations"])
    assert [v.split(" (")[0] for v in outside] == [
        "create request: not valid JSON", "join of a call that does not exist, ended or was joined already",
        "join of a call that does not exist, ended or was joined already", "join without the call's token"]
    assert "right-key" not in server.stderr_text() and "token=" not in server.stderr_text()
