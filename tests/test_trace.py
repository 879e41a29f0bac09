"""--trace: trace.json holds every message of every iteration, in Chrome's Trace Event Format, within its cap.

The format's rules are checked here from its definition (the Trace Event Format document, "JSON Object Format",
"Complete Events", "Instant Events", "Metadata Events"), not by a library: a JSON object with a ``traceEvents``
array; every event an object with a ``ph``; a timed event has ``name``, numeric ``ts`` in microseconds, integer
``pid`` and ``tid``; a complete event (``X``) a numeric ``dur`` >= 0; an instant (``i``) a scope ``s`` of g, p or t;
a metadata event (``M``) one of the five names with its argument; ``args`` an object; complete events on one thread
properly nested (Perfetto drops, and chrome://tracing misdraws, slices that overlap without nesting).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import gevent
import pytest

from bootbench import secrets, trace_events
from bootbench.trace_events import BEFORE
from bootbench.samples import PHASE_BY_NAME, PHASE_TABLE, Sample
from bootbench.trace import OPCODE_BINARY, OPCODE_CLOSE, OPCODE_TEXT, SentSummaries, message_type, summary
from support.ground_truth import records_between
from support.inprocess import environment, finish, headless_run, init, run_to_end
from support.processes import free_port
from support.provider_table import RUN_ARGS, key_variable
from support.recording_proxy import RecordingProxy

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0
PLANTED = "sk-planted-TRACE-SECRET-0123456789abcdef0123456789abcdef"
"""An API key the server requires: it must not appear in trace.json (nor in any other file of the run)."""
METADATA = {"process_name": "name", "process_labels": "labels", "process_sort_index": "sort_index",
            "thread_name": "name", "thread_sort_index": "sort_index"}
AUDIO_TYPES = {
    "openai": ("input_audio_buffer.append", "response.output_audio.delta"),
    "gemini": ("realtimeInput.audio", "serverContent.modelTurn"),
    "aivoco": ("audio_data", "audio_response"),
    "deepgram": ("audio", "audio"),
    "elevenlabs": ("user_audio_chunk", "audio"),
    "ultravox": ("audio", "audio"),
}
"""Each protocol's input and reply audio messages as the trace names them (docs/protocols/<provider>.md)."""


def check_trace_event_format(document: Any) -> list[dict[str, Any]]:
    """Every rule of the format trace.json relies on (module docstring); the events, or an AssertionError naming one."""
    assert isinstance(document, dict) and isinstance(document.get("traceEvents"), list)
    assert document.get("displayTimeUnit", "ms") in ("ms", "ns")
    events = document["traceEvents"]
    slices: dict[tuple[int, int], list[tuple[float, float, str]]] = {}
    for event in events:
        assert isinstance(event, dict) and isinstance(event.get("ph"), str), event
        assert isinstance(event.get("name"), str) and event["name"], event
        assert isinstance(event.get("pid"), int) and isinstance(event.get("tid"), int), event
        assert isinstance(event.get("args", {}), dict), event
        if event["ph"] == "M":
            assert event["name"] in METADATA and METADATA[event["name"]] in event["args"], event
            continue
        assert isinstance(event.get("ts"), (int, float)) and not isinstance(event["ts"], bool), event
        if "cat" in event:
            assert isinstance(event["cat"], str), event
        if event["ph"] == "X":
            assert isinstance(event.get("dur"), (int, float)) and event["dur"] >= 0, event
            slices.setdefault((event["pid"], event["tid"]), []).append(
                (event["ts"], event["ts"] + event["dur"], event["name"]))
        elif event["ph"] in ("i", "I"):
            assert event.get("s", "t") in ("g", "p", "t"), event
        else:
            raise AssertionError(f"an event trace.json does not write: {event}")
    epsilon = 0.002   # microseconds: ts and dur are rounded to the nanosecond
    for track, spans in slices.items():
        open_spans: list[tuple[float, float, str]] = []
        for start, end, name in sorted(spans, key=lambda s: (s[0], -s[1])):
            while open_spans and open_spans[-1][1] <= start + epsilon:
                open_spans.pop()
            if open_spans:
                assert end <= open_spans[-1][1] + epsilon, f"{name} overlaps {open_spans[-1][2]} on {track}"
            open_spans.append((start, end, name))
    named = {(e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert {(e["pid"], e["tid"]) for e in events if e["ph"] != "M"} <= named, "every track has a name"
    return events


def iterations_of(events: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per iteration: its slice, the slices within it on its user's tracks, and its messages in order."""
    found: dict[int, dict[str, Any]] = {}
    timed = [e for e in events if e["ph"] != "M"]
    for top in (e for e in timed if e["cat"] == "iteration"):
        start, end = top["ts"], top["ts"] + top["dur"]
        user = thread_names(events)[(top["pid"], top["tid"])]
        within = [e for e in timed if e is not top and e["pid"] == top["pid"]
                  and thread_names(events)[(e["pid"], e["tid"])].startswith(user)
                  and start - 0.002 <= e["ts"] <= end + 0.002]
        found[top["args"]["iteration"]] = {
            "slice": top,
            "slices": {e["name"]: e for e in within if e["ph"] == "X"},
            "messages": sorted((e for e in within if e["ph"] == "i"), key=lambda e: e["ts"]),
        }
    return found


def thread_names(events: list[dict[str, Any]]) -> dict[tuple[int, int], str]:
    return {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}


def check_phases(traced: dict[str, Any], sample: dict[str, Any]) -> None:
    """Each phase and service stage the sample has is a slice of its iteration with the same value; no other."""
    reached = {p.name for p in PHASE_TABLE if sample[p.name] is not None}
    slices = {name.removesuffix(BEFORE): e for name, e in traced["slices"].items()
              if name.removesuffix(BEFORE) in PHASE_BY_NAME}
    assert set(slices) == reached
    for name in reached:
        assert slices[name]["args"]["ms"] == pytest.approx(sample[name], abs=0.001), name
        assert slices[name]["dur"] == pytest.approx(abs(sample[name]) * 1000, abs=0.01), name
        assert slices[name]["cat"] == ("stage" if PHASE_BY_NAME[name].stage else "phase")


def traced_run(server, tmp_path: Path, provider: str, *argv: str, users: int = 1, host: str = "") -> dict[str, Any]:
    """An in-process run with --trace against ``server`` (or through ``host``), the key planted; its result folder,
    metrics, trace.json and the server's records of its sessions."""
    start_ns = time.perf_counter_ns()
    done = headless_run("--provider", provider, *RUN_ARGS.get(provider, ()), "--trace", *argv,
                        host=host or server.url, results_dir=tmp_path / "r", users=users,
                        environ={key_variable(provider): PLANTED}, report=False)
    end_ns = time.perf_counter_ns()
    assert done.exit_code == 0, done.stderr[-3000:]
    sessions = [r for r in records_between(server, start_ns, end_ns) if r["session"] is not None]
    text = (done.folder / "trace.json").read_text()
    return {"folder": done.folder, "metrics": done.metrics, "text": text, "document": json.loads(text),
            "sessions": sessions, "log": done.log}


@pytest.fixture(scope="module")
def keyed_server(shared_reference_server):
    return shared_reference_server(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0,
                                   api_key=PLANTED)


def test_a_traced_run_of_20_iterations_writes_a_valid_trace_with_every_message_and_no_secret(keyed_server, tmp_path):
    """OpenAI through a recording proxy: each iteration's traced messages are the frames that crossed, in order."""
    with RecordingProxy(keyed_server.url) as proxy:
        run = traced_run(keyed_server, tmp_path, "openai", "-i", "20", users=2, host=proxy.url)
        frames = list(proxy.frames)
    text, document = run["text"], run["document"]
    assert PLANTED not in text and "api-key" not in text.lower() and "?" not in text
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and PLANTED in p.read_text(errors="replace")]
    events = check_trace_event_format(document)
    assert document["otherData"]["iterations_traced"] == 20 and document["otherData"]["capped"] is False
    assert {name for name in thread_names(events).values() if "overlapping" not in name} == {"user 1", "user 2"}
    found = iterations_of(events)
    assert sorted(found) == list(range(1, 21))
    # every message of every iteration: the proxy saw each session's frames on their own connection, in order
    # (less the session.created of the connection each user opened ahead after its last cycle, which no iteration
    # used; plus each session's close frame, which the proxy does not list)
    assert Counter(m["args"]["type"] for it in found.values() for m in it["messages"]) == Counter(
        [json.loads(f.data)["type"] for f in frames] + ["close"] * 20) - Counter({"session.created": 2})
    sessions = run["sessions"]
    assert len(sessions) == 20 and all(s["outcome"] == "ok" for s in sessions)
    samples = {s["iteration"]: s for s in run["metrics"]["samples"]}
    for iteration, traced in found.items():
        messages = traced["messages"]
        kinds = Counter(m["args"]["type"] for m in messages)
        assert messages[-1]["args"]["type"] == "close" and kinds["close"] == 1
        sent = [m for m in messages if m["args"]["direction"] == "sent"]
        assert sent[0]["args"]["type"] == "session.update" and kinds["input_audio_buffer.append"] == 1
        assert all(m["args"]["size"] > 0 for m in messages if m["args"]["type"] != "close")
        audio = [m for m in messages if m["args"]["type"] in AUDIO_TYPES["openai"]]
        assert audio and all(m["args"]["audio_bytes"] > 0 and len(m["args"]["hash"]) == 16 for m in audio)
        # the phases as the sample has them, on the cycle's clock
        check_phases(traced, samples[iteration])
        first_delta = next(m for m in messages if m["args"]["type"] == "response.output_audio.delta")
        assert first_delta["ts"] == pytest.approx(traced["slices"]["first_response_ms"]["ts"]
                                                  + traced["slices"]["first_response_ms"]["dur"], abs=0.01)
    # per session, what the server took and sent (its ground truth) is what the trace holds, message for message
    by_start = sorted(found.values(), key=lambda t: t["slice"]["ts"])
    inputs = sorted(Counter(m["args"]["type"] for m in t["messages"])["input_audio_buffer.append"] for t in by_start)
    assert inputs == sorted(s["audio_in"]["chunks"] for s in sessions)
    replies = sorted(Counter(m["args"]["type"] for m in t["messages"])["response.output_audio.delta"] for t in by_start)
    assert replies == sorted(s["audio_out"]["chunks"] for s in sessions)
    # the frames the proxy saw, by sender: same counts of each type and the same sizes
    proxied = Counter((f.sender == "client", json.loads(f.data)["type"], len(f.data.encode() if isinstance(f.data, str)
                                                                            else f.data)) for f in frames
                      if json.loads(f.data)["type"] != "session.created")
    traced = Counter((m["args"]["direction"] == "sent", m["args"]["type"], m["args"]["size"])
                     for t in found.values() for m in t["messages"]
                     if m["args"]["type"] not in ("close", "session.created"))
    assert traced == proxied


@pytest.mark.parametrize("provider", sorted(AUDIO_TYPES))
def test_every_protocols_trace_holds_the_audio_messages_its_sessions_exchanged(keyed_server, tmp_path, provider):
    """Per session, the audio messages the server's ground truth counts in and out are the trace's, one for one."""
    run = traced_run(keyed_server, tmp_path, provider, "-i", "3")
    assert PLANTED not in run["text"]
    found = iterations_of(check_trace_event_format(run["document"]))
    assert sorted(found) == [1, 2, 3]
    sessions = run["sessions"]
    assert len(sessions) == 3 and all(s["outcome"] == "ok" for s in sessions)
    sent_type, received_type = AUDIO_TYPES[provider]
    samples = {s["iteration"]: s for s in run["metrics"]["samples"]}
    by_start = [found[n] for n in sorted(found, key=lambda n: found[n]["slice"]["ts"])]
    for traced, session in zip(by_start, sorted(sessions, key=lambda s: s["t_ns"]["start_received"])):
        messages = [m["args"] for m in traced["messages"]]
        sent = [m for m in messages if m["direction"] == "sent" and m["type"] == sent_type]
        received = [m for m in messages if m["direction"] == "received" and m["type"] == received_type]
        assert len(sent) == session["audio_in"]["chunks"] > 0
        assert len(received) == session["audio_out"]["chunks"] > 0
        assert all(m["audio_bytes"] > 0 and len(m["hash"]) == 16 for m in sent + received)
        # the clip is the same every iteration: so is its hash
        assert len({m["hash"] for m in sent}) == len(sent)
        assert messages[0]["type"] != "undecodable" and not [m for m in messages if m["type"] == "undecodable"]
        assert "session_start_ms" in traced["slices"] and "first_response_ms" in traced["slices"]
        check_phases(traced, samples[traced["slice"]["args"]["iteration"]])
    first_hashes = [[m["args"]["hash"] for m in t["messages"] if m["args"]["type"] == sent_type] for t in by_start]
    assert first_hashes[0] == first_hashes[1] == first_hashes[2], "the same clip each iteration: the same hashes"
    if provider == "ultravox":   # the create request and its answer, by method and path or status, nothing else
        kinds = [m["args"]["type"] for m in by_start[0]["messages"]]
        assert kinds[:2] == ["POST /api/calls", "HTTP 201"]


def test_the_trace_stops_at_its_cap_and_the_run_says_so(keyed_server, tmp_path, monkeypatch):
    """A cap of 40 events holds one OpenAI iteration (about 25 events); the one in flight when it is passed is left
    out, and the user, told by its next ticket, traces none after it."""
    monkeypatch.setattr(trace_events, "MAX_EVENTS", 40)
    run = traced_run(keyed_server, tmp_path, "openai", "-i", "6")
    document = run["document"]
    check_trace_event_format(document)
    facts = document["otherData"]
    assert facts["capped"] is True and facts["cap_events"] == 40 and facts["events"] <= 40
    assert facts["iterations_traced"] == 1 and facts["iterations_left_out"] == 1
    assert sorted(iterations_of(document["traceEvents"])) == [1]
    sentence = ("the wire trace reached its cap of 40 events after 1 iterations: trace.json holds those, and the "
                "iterations after them were not traced")
    assert sentence in run["metrics"]["run"]["warnings"]
    assert f"bootbench: {sentence}" in run["log"]
    assert run["metrics"]["summary"]["successes"] == 6, "the measurement is whole"


def test_a_distributed_run_writes_one_trace_with_a_process_per_worker(keyed_server, tmp_path, monkeypatch):
    """Two workers in this process: each iteration's trace travels with its sample (msgpack) to the master."""
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    port = free_port()
    master = environment("-i", "8", "--provider", "openai", "--trace", "--expect-workers", "2",
                         host=keyed_server.url, results_dir=tmp_path)
    master.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
    init(master)
    workers = []
    for _ in range(2):
        worker = environment(host=keyed_server.url)   # the master sends its options (--trace) with the spawn
        worker.create_worker_runner("127.0.0.1", port)
        init(worker)
        workers.append(worker)
    try:
        with gevent.Timeout(10):
            while len(master.runner.clients.ready) < 2:
                gevent.sleep(0.05)
        run = run_to_end(master, users=2)
    finally:
        for worker in workers:
            worker.runner.quit()
            finish(worker)
    assert sorted(s.iteration for s in run.samples) == list(range(1, 9))
    assert [p.name for p in tmp_path.rglob("trace.json")] == ["trace.json"]
    text = (run.recorder.folder / "trace.json").read_text()
    assert PLANTED not in text
    events = check_trace_event_format(json.loads(text))
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {f"worker {worker.runner.client_id}" for worker in workers}
    found = iterations_of(events)
    assert sorted(found) == list(range(1, 9))
    by_worker = Counter(e["pid"] for e in events if e.get("cat") == "iteration")
    assert sorted(by_worker.values()) == sorted(Counter(s.worker for s in run.samples).values())
    assert all(Counter(m["args"]["type"] for m in it["messages"])["response.output_audio.delta"] > 0
               for it in found.values())


def test_each_protocol_names_its_messages_in_its_own_words_and_no_content_is_kept():
    audio = base64.b64encode(bytes(range(256)) * 4).decode()
    assert summary("ws", OPCODE_TEXT, json.dumps({"type": "response.output_audio.delta", "delta": audio})) == [
        "response.output_audio.delta", len(json.dumps({"type": "response.output_audio.delta", "delta": audio})),
        1024, hashlib.blake2b(bytes(range(256)) * 4, digest_size=8).hexdigest()]
    gemini = {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm", "data": audio}}]}},
              "usageMetadata": {"totalTokenCount": 3}}
    assert summary("ws", OPCODE_BINARY, json.dumps(gemini).encode())[0] == "serverContent.modelTurn"
    assert message_type({"serverContent": {"generationComplete": True, "turnComplete": True}}) == \
        "serverContent.generationComplete+turnComplete"
    assert message_type({"realtimeInput": {"activityEnd": {}}}) == "realtimeInput.activityEnd"
    assert message_type({"user_audio_chunk": audio}) == "user_audio_chunk"   # ElevenLabs' client audio has no type
    pcm = b"\x01\x00" * 480
    assert summary("ws", OPCODE_BINARY, pcm) == ["audio", 960, 960, hashlib.blake2b(pcm, digest_size=8).hexdigest()]
    assert summary("ws", OPCODE_CLOSE, b"\x03\xe8bye") == ["close", 5, None, None]
    assert summary("ws", OPCODE_TEXT, b"not json")[0] == "undecodable"
    # Socket.IO: the frame's size (Engine.IO "4", Socket.IO "2", the arguments), the event name as the type
    assert summary("sio", "audio_response", ({"audio_data": audio}, None)) == [
        "audio_response", 2 + len(json.dumps(["audio_response", {"audio_data": audio}], separators=(",", ":"))),
        1024, hashlib.blake2b(bytes(range(256)) * 4, digest_size=8).hexdigest()]
    assert summary("http", "POST /api/calls", 180) == ["POST /api/calls", 180, None, None]
    # a user's sent messages are summarised once per content (the clip goes out the same every cycle)
    known, frame = SentSummaries(), json.dumps({"type": "input_audio_buffer.append", "audio": audio})
    first = known.summary("ws", OPCODE_TEXT, frame)
    assert first == summary("ws", OPCODE_TEXT, frame) == known.summary("ws", OPCODE_TEXT, frame[:-1] + "}")
    assert known.summary("ws", OPCODE_TEXT, frame) is not first, "a copy: a record never shares a list"


def test_a_key_is_never_a_type_nor_hashed(monkeypatch):
    key = "K" * 40 + "abcdefghijklmnopqrstuvwxyz0123456789"   # long and base64-looking, like many keys
    monkeypatch.setattr(secrets, "_known", {key})
    start = ["start_call", {"auth_key": key, "voice_choice": "female"}]
    assert summary("sio", "start_call", (start[1], None))[2:] == [None, None]
    assert message_type({"type": f"error {key}"}) == "error ***"
    assert message_type({"type": "x\n<script>"}) == "x??script?"


def test_the_trace_of_an_iteration_keeps_its_phases_and_stages_each_on_a_track_where_slices_nest():
    ms = 1_000_000
    stamps = {"connect_start": -40 * ms, "connected": -30 * ms, "cycle_start": 0, "start_sent": 1 * ms,
              "session_ready": 31 * ms, "input_sent": 32 * ms, "turn_end": 40 * ms, "input_transcript": 20 * ms,
              "first_audio": 112 * ms, "first_audible": 150 * ms, "stop_sent": 151 * ms, "stop_acked": 152 * ms}
    warm = {"input_sent": 300 * ms, "first_audio": 340 * ms, "reply_end": 500 * ms}
    record = {"cycle_start_ns": 10**12, "wall_ns": 1_700_000_000 * 10**9, "dropped": 0, "turns": [stamps, warm],
              "messages": [[-29 * ms, "received", "session.created", 700, None, None],
                           [113 * ms, "received", "response.output_audio.delta", 3900, 2880, "ab" * 8]]}
    sample = Sample(iteration=7, worker="local", user=2, started_at="t", ok=True)
    book = trace_events.TraceBook()
    assert book.add(sample, record)
    events = check_trace_event_format(book.document())
    slices = {e["name"]: e for e in events if e["ph"] == "X"}
    assert slices["iteration 7"]["ts"] == -40_000 and slices["iteration 7"]["dur"] == 540_000
    assert slices["connect_ms"]["dur"] == 10_000 and slices["turn_end_ms"]["args"]["ms"] == 8.0
    assert slices["transcript_ms (reached before the last input)"]["args"]["ms"] == -12.0   # kept, drawn forwards
    assert slices["transcript_ms (reached before the last input)"]["dur"] == 12_000
    assert slices["turn 2: input_to_audio_ms"]["dur"] == 40_000 and slices["turn 2"]["dur"] == 200_000
    assert slices["first_response_ms"]["cat"] == "phase" and slices["turn_end_ms"]["cat"] == "stage"
    names = thread_names(events)
    assert names[(slices["first_response_ms"]["pid"], slices["first_response_ms"]["tid"])] == "user 2"
    assert names[(slices["input_to_audible_ms"]["pid"], slices["input_to_audible_ms"]["tid"])] == \
        "user 2 (overlapping phases)"
    instants = [e for e in events if e["ph"] == "i"]
    assert [(e["name"], e["ts"], e["args"]) for e in instants] == [
        ("recv session.created", -29_000, {"direction": "received", "type": "session.created", "size": 700}),
        ("recv response.output_audio.delta", 113_000, {"direction": "received", "type": "response.output_audio.delta",
                                                       "size": 3900, "audio_bytes": 2880, "hash": "ab" * 8})]


def test_the_format_checker_refuses_what_the_format_does_not_allow():
    good = {"name": "a", "ph": "X", "ts": 0, "dur": 10, "pid": 1, "tid": 1}
    named = {"name": "thread_name", "ph": "M", "pid": 1, "tid": 1, "args": {"name": "user 1"}}
    check_trace_event_format({"traceEvents": [named, good, {**good, "ts": 2, "dur": 3}]})
    for bad in ({**good, "dur": -1}, {**good, "ts": "0"}, {**good, "pid": "1"}, {**good, "ts": 5, "dur": 10},
                {"name": "i", "ph": "i", "ts": 1, "pid": 1, "tid": 1, "s": "x"}, {**good, "tid": 2}):
        with pytest.raises(AssertionError):
            check_trace_event_format({"traceEvents": [named, good, bad]})
    with pytest.raises(AssertionError):
        check_trace_event_format([good])


def test_an_answer_before_the_input_ended_has_no_input_phase_slice_as_its_sample_has_none():
    ms = 1_000_000
    stamps = {"cycle_start": 0, "start_sent": 1 * ms, "session_ready": 30 * ms, "first_audio": 500 * ms,
              "input_sent": 900 * ms, "stop_sent": 950 * ms, "stop_acked": 951 * ms}
    record = {"cycle_start_ns": 0, "wall_ns": 0, "dropped": 0, "turns": [stamps], "messages": []}
    names = {s[0] for s in trace_events.slices_of(record, Sample(iteration=1, worker="local", user=1, started_at="t",
                                                                 ok=True))}
    assert names == {"iteration 1", "session_start_ms", "first_response_ms", "cold_start_ms", "stop_ms"}


LATE_SENDER = """
import asyncio, sys
from aiohttp import WSMsgType, web

async def late_sender(request):
    ws = web.WebSocketResponse(autoclose=False)
    await ws.prepare(request)
    while (await ws.receive()).type is not WSMsgType.CLOSE:
        pass
    await ws.send_str("sent after the client's close")
    await ws.close()
    return ws

app = web.Application()
app.router.add_route("GET", "/", late_sender)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=lambda *_: print("ready", flush=True))
"""
"""A WebSocket server that answers a client's close with one more message, then its own close."""


def test_the_recording_proxy_passes_on_what_the_server_sends_after_the_clients_close():
    """The server's frames already under way when the client's close reaches the proxy (under load, the second reply
    chunk) come before the server's own close; the proxy relays them. (It dropped them: aiohttp's close() waits for
    the peer's close and discards what comes first, and the traced run above then found a session with fewer
    reply chunks than the server sent.)"""
    import subprocess
    import sys

    import websocket

    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", LATE_SENDER, str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout.readline().strip() == "ready"
        with RecordingProxy(f"http://127.0.0.1:{port}") as proxy:
            ws = websocket.create_connection(proxy.url.replace("http", "ws") + "/", timeout=5)
            ws.send_close(websocket.STATUS_NORMAL, b"")
            opcode, data = ws.recv_data(control_frame=True)
            assert (opcode, data) == (websocket.ABNF.OPCODE_TEXT, b"sent after the client's close")
            assert ws.recv_data(control_frame=True)[0] == websocket.ABNF.OPCODE_CLOSE
            ws.shutdown()
        assert [(f.sender, f.data) for f in proxy.frames] == [("server", "sent after the client's close")]
    finally:
        server.kill()
        server.wait()
