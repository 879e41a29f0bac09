"""The private python-socketio / python-engineio hooks of bootbench.providers.socketio_tuning still hold.

Each test drives a real reference server with the tuned client, and with the
library's plain client as a control, so it fails when an upgrade removes a
hook, stops calling it, or changes what it does: the handler must run in
engineio's read loop with no task started per message, websocket-client
must not validate UTF-8, and an undecodable message must reach the
``UNDECODABLE`` handler.
"""

from __future__ import annotations

import array
import collections
import inspect
import os
import subprocess
import sys
import threading
import time
from typing import Any

import engineio
import pytest
import socketio
import websocket._abnf as ws_abnf
from socketio import packet as sio_packet

from bootbench.audio import Stimulus
from bootbench import providers
from bootbench.providers import websocket_tuning
from bootbench.providers.aivoco import AivocoDriver
from bootbench.providers.base import DriverConfig
from bootbench.providers.socketio_tuning import (UNDECODABLE, UNREAD, InlineEngineIO, PreparedEvent, TolerantPacket,
                                                 TunedClient, skipping_packet_class)
from bootbench.samples import Timeline
from bootbench.wire import AIVOCO_SOCKETIO_PATH

START_CALL = {"auth_key": "k", "system_message": "", "voice_choice": "female", "custom_functions": []}
REPLY_CHUNKS = 10
"""audio_response events per session with ``reply_ms=400`` (40 ms each)."""


class Session:
    """One Aivoco session over ``sio``: where each handler ran and how many tasks engineio started meanwhile."""

    def __init__(self, sio: socketio.Client) -> None:
        self.sio = sio
        self.handler_threads: list[threading.Thread] = []
        self.audio: list[Any] = []
        self.undecodable: list[str] = []
        self.ready, self.replied, self.ended = threading.Event(), threading.Event(), threading.Event()
        self.tasks_started = 0
        sio.on("session_ready", self._on_ready)
        sio.on("audio_response", self._on_audio)
        sio.on("session_ended", lambda data=None: self.ended.set())
        sio.on(UNDECODABLE, self._on_undecodable)

    def _on_ready(self, data=None) -> None:
        self.handler_threads.append(threading.current_thread())
        self.ready.set()

    def _on_audio(self, data=None) -> None:
        self.handler_threads.append(threading.current_thread())
        self.audio.append(data)
        if len(self.audio) == REPLY_CHUNKS:
            self.replied.set()

    def _on_undecodable(self, reason=None) -> None:
        self.undecodable.append(reason)
        self.replied.set()

    def run(self, url: str) -> None:
        """Connect, count the tasks engineio starts from then on, and run one call to its last reply chunk."""
        self.sio.connect(url, transports=["websocket"], socketio_path=AIVOCO_SOCKETIO_PATH, wait_timeout=5)
        eio = self.sio.eio
        start_task = eio.start_background_task

        def counting_start(target, *args, **kwargs):
            self.tasks_started += 1
            return start_task(target, *args, **kwargs)

        eio.start_background_task = counting_start
        try:
            self.sio.emit("start_call", START_CALL)
            assert self.ready.wait(5), "no session_ready"
            for chunk in Stimulus.sine(seconds=0.2).chunks():
                self.sio.emit("audio_data", {"audio_data": chunk.base64, "has_audio": chunk.has_audio,
                                             "max_amplitude": chunk.peak})
            assert self.replied.wait(5), f"{len(self.audio)} audio_response events, {self.undecodable}"
            self.sio.emit("stop_call")
            self.ended.wait(5)
        finally:
            eio.start_background_task = start_task
            self.sio.disconnect()


@pytest.fixture(autouse=True)
def tuned_websocket_client(monkeypatch) -> None:
    """websocket-client as a run's users have it (providers.install_tuning), given back as found after the test."""
    monkeypatch.setattr(ws_abnf, "_mask", ws_abnf._mask)
    monkeypatch.setattr(ws_abnf.frame_buffer, "recv_strict", ws_abnf.frame_buffer.recv_strict)
    providers.install_tuning()


@pytest.fixture
def utf8_checks(monkeypatch) -> list[int]:
    """Counts websocket-client's UTF-8 validations of received text frames."""
    calls: list[int] = []
    validate = ws_abnf.validate_utf8

    def counting(data):
        calls.append(len(data))
        return validate(data)

    monkeypatch.setattr(ws_abnf, "validate_utf8", counting)
    return calls


def test_tuned_client_runs_handlers_in_the_read_loop_without_utf8_checks(shared_reference_server, utf8_checks):
    server = shared_reference_server(setup_delay="5", first_audio_delay="20", cold_penalty=0, reply_ms=400)
    tuned = TunedClient(reconnection=False)
    session = Session(tuned)
    session.run(server.url)

    assert type(tuned.eio) is InlineEngineIO  # socketio.Client._engineio_client_class was asked
    assert tuned.packet_class is TolerantPacket
    assert len(session.audio) == REPLY_CHUNKS
    read_loop = tuned.eio.read_loop_task
    assert isinstance(read_loop, threading.Thread)
    assert set(session.handler_threads) == {read_loop}, "a handler ran outside engineio's read loop"
    assert session.tasks_started == 0, "engineio started a task for a message"
    assert utf8_checks == [], "websocket-client validated the UTF-8 of received frames"


def test_the_plain_client_is_the_control_a_task_per_message_and_utf8_checks(shared_reference_server, utf8_checks):
    """The measurements above can tell the difference: the library's own client fails every one of them."""
    server = shared_reference_server(setup_delay="5", first_audio_delay="20", cold_penalty=0, reply_ms=400)
    plain = socketio.Client(reconnection=False)
    session = Session(plain)
    session.run(server.url)

    assert len(session.audio) == REPLY_CHUNKS
    assert plain.eio.read_loop_task not in session.handler_threads
    assert session.tasks_started >= 1 + REPLY_CHUNKS  # session_ready and every audio_response
    assert len(utf8_checks) >= 1 + REPLY_CHUNKS


class SendWatch:
    """Which thread (greenlet) wrote each text frame on ``sio``'s WebSocket, and what."""

    def __init__(self, sio: socketio.Client) -> None:
        self.writes: list[tuple[threading.Thread, str]] = []
        ws = sio.eio.ws
        send = ws.send

        def watched(payload, *args, **kwargs):
            self.writes.append((threading.current_thread(), payload))
            return send(payload, *args, **kwargs)

        ws.send = watched

    def of(self, prefix: str) -> list[threading.Thread]:
        return [thread for thread, payload in self.writes if isinstance(payload, str) and payload.startswith(prefix)]


@pytest.mark.parametrize("tuned", [True, False], ids=["tuned", "plain (the control)"])
def test_the_tuned_client_writes_a_packet_from_the_sender_not_the_write_loop(shared_reference_server, tuned):
    server = shared_reference_server(setup_delay="5", first_audio_delay="20", cold_penalty=0, reply_ms=400)
    sio = TunedClient(reconnection=False) if tuned else socketio.Client(reconnection=False)
    session = Session(sio)
    sio.connect(server.url, transports=["websocket"], socketio_path=AIVOCO_SOCKETIO_PATH, wait_timeout=5)
    watch = SendWatch(sio)
    write_loop = sio.eio.write_loop_task
    try:
        sio.emit("start_call", START_CALL)
        assert session.ready.wait(5), "no session_ready"
        chunk = Stimulus.sine(seconds=0.2).chunks()[0]
        sio.emit("audio_data", {"audio_data": chunk.base64, "has_audio": chunk.has_audio, "max_amplitude": chunk.peak})
        assert session.replied.wait(5), f"{len(session.audio)} audio_response events"
        sio.emit("stop_call")
        assert session.ended.wait(5), "no session_ended"
    finally:
        sio.disconnect()
    writers = [*watch.of('42["start_call"'), *watch.of('42["audio_data"'), *watch.of('42["stop_call"')]
    assert len(writers) == 3
    me = threading.current_thread()
    if tuned:
        assert writers == [me, me, me], "a packet waited for engineio's write loop"
    else:
        assert set(writers) == {write_loop}


def test_a_failed_write_ends_the_write_loop_as_the_librarys_own_failure_does(shared_reference_server):
    server = shared_reference_server(setup_delay="5", first_audio_delay="20", cold_penalty=0)
    sio = TunedClient(reconnection=False)
    sio.connect(server.url, transports=["websocket"], socketio_path=AIVOCO_SOCKETIO_PATH, wait_timeout=5)
    write_loop = sio.eio.write_loop_task
    try:
        def broken(*_args, **_kwargs):
            raise BrokenPipeError("the connection is gone")

        sio.eio.ws.send = broken
        sio.emit("start_call", START_CALL)  # the sender is not told, as with the library's queue
        write_loop.join(5)
        assert not write_loop.is_alive() and sio.eio.write_loop_task is None
    finally:
        sio.disconnect()


def test_an_undecodable_message_reaches_the_undecodable_handler(reference_server):
    server = reference_server(setup_delay="5", first_audio_delay="20", cold_penalty=0, reply_ms=400,
                              extra_args=["--fault", "malformed:what=not_json"])
    session = Session(TunedClient(reconnection=False))
    session.run(server.url)

    assert session.audio == []
    assert len(session.undecodable) == 1 and session.undecodable[0].endswith("-byte message")


def test_the_private_hooks_have_the_shapes_the_tuning_overrides():
    """A renamed or re-shaped hook fails here with its name, before any timing drifts."""
    params = inspect.signature(engineio.Client._trigger_event).parameters
    assert list(params) == ["self", "event", "args", "kwargs"]
    assert list(inspect.signature(engineio.Client._send_packet).parameters) == ["self", "pkt"]
    assert "_send_packet" in inspect.getsource(engineio.Client.send)  # every packet we send goes through it
    assert callable(getattr(socketio.Client, "_engineio_client_class", None))
    assert list(inspect.signature(sio_packet.Packet.decode).parameters) == ["self", "encoded_packet"]

    packet = TolerantPacket(encoded_packet='2["audio_response",{"audio_data":"AAAA')
    assert (packet.packet_type, packet.namespace, packet.id) == (sio_packet.EVENT, None, None)
    assert packet.data[0] == UNDECODABLE and "JSONDecodeError" in packet.data[1]
    good = TolerantPacket(encoded_packet='2["audio_response",{"audio_data":"AAAA"}]')
    assert good.data == ["audio_response", {"audio_data": "AAAA"}]


class CountingJson:
    """The json module as python-socketio's packets use it, counting the payloads it decodes by event."""

    def __init__(self):
        import json

        self.json, self.decoded = json, collections.Counter()

    def loads(self, text, *args, **kwargs):
        data = self.json.loads(text, *args, **kwargs)
        if isinstance(data, list) and data and isinstance(data[0], str):
            self.decoded[data[0]] += 1
        return data

    def dumps(self, *args, **kwargs):
        return self.json.dumps(*args, **kwargs)


def test_an_event_the_caller_will_not_read_is_handed_over_undecoded(monkeypatch):
    counting = CountingJson()
    monkeypatch.setattr(sio_packet.Packet, "json", counting)
    wanted = {"audio_response": True}
    packet_class = skipping_packet_class(("audio_response",), lambda event: wanted[event])

    unread = packet_class(encoded_packet='2["audio_response",{"audio_data":"AAAA"}]')
    assert (unread.packet_type, unread.namespace, unread.id, unread.data) == (
        sio_packet.EVENT, None, None, ["audio_response", UNREAD])
    assert not counting.decoded
    wanted["audio_response"] = False  # asked for every message: a session that decodes again gets the payload
    read = packet_class(encoded_packet='2["audio_response",{"audio_data":"AAAA"}]')
    assert read.data == ["audio_response", {"audio_data": "AAAA"}]
    wanted["audio_response"] = True
    for text in ('2["session_ready",{"audio_response":1}]', '2/other,["audio_response",{}]',
                 '21["audio_response",{}]'):  # another event; another namespace; an ack id: decoded as ever
        assert packet_class(encoded_packet=text).data[1] != UNREAD
    assert counting.decoded == {"audio_response": 3, "session_ready": 1}
    assert packet_class(encoded_packet='2["audio_response",{"oops').data == ["audio_response", UNREAD]


@pytest.mark.truth  # held to the reference server's ground truth within milliseconds
def test_an_aivoco_run_decodes_an_answer_until_it_is_audible_and_still_times_its_end(shared_reference_server,
                                                                                       tmp_path, monkeypatch):
    """Issue 23's cut: an answer's audio_response chunks after its first audible one reach the driver undecoded
    (no JSON), and the reply's end (its last chunk's arrival) still matches the server's ground truth."""
    from support.ground_truth import ground_truth_run

    counting = CountingJson()
    monkeypatch.setattr(sio_packet.Packet, "json", counting)
    server = shared_reference_server(setup_delay="10", first_audio_delay="fixed:50", cold_penalty=0, reply_ms=600)
    run = ground_truth_run(server, tmp_path / "r", "--provider", "aivoco", "-i", "2", "--turns", "2",
                           "--reply-gap-ms", "300", "--wait-ms", "0")
    assert run.exit_code == 0, run.stderr[-2000:]
    sessions = run.ok_sessions()
    turns = [(mine, truth) for sample, session in zip(run.samples, sessions)
             for mine, truth in zip(sample["turns"], session["turns"])]
    assert len(turns) == 4
    # 600 ms of reply in 40 ms chunks: its last chunk 560 ms after its first, fifteen chunks per answer
    assert all(truth["measured"]["reply_ms"] >= 520 for _, truth in turns), turns
    # the reference server's reply is a tone audible from its first sample: one chunk decoded per answer
    assert counting.decoded["audio_response"] == len(turns), counting.decoded
    for mine, truth in turns:
        assert mine["input_to_audible_ms"] is not None
        assert mine["reply_ms"] == pytest.approx(truth["measured"]["reply_ms"], abs=10), (mine, truth)


def test_tuned_client_keeps_every_other_option():
    sio = TunedClient(reconnection=False, websocket_extra_options={"timeout": 7})
    assert sio.eio.websocket_extra_options == {"skip_utf8_validation": True, "timeout": 7}
    assert sio.reconnection is False


def test_a_prepared_event_puts_the_same_text_on_the_wire_as_emit_and_the_server_answers_it(
        shared_reference_server):
    server = shared_reference_server(setup_delay="5", first_audio_delay="20", cold_penalty=0, reply_ms=400)
    chunk = Stimulus.sine(seconds=0.2).chunks()[0]
    data = {"audio_data": chunk.base64, "has_audio": chunk.has_audio, "max_amplitude": chunk.peak}
    tuned = TunedClient(reconnection=False)
    session = Session(tuned)
    tuned.connect(server.url, transports=["websocket"], socketio_path=AIVOCO_SOCKETIO_PATH, wait_timeout=5)
    sent: list[str] = []
    send = tuned.eio.send
    tuned.eio.send = lambda text: (sent.append(text), send(text))
    try:
        tuned.emit("start_call", START_CALL)
        assert session.ready.wait(5), "no session_ready"
        tuned.emit("audio_data", data)
        tuned.emit_prepared(PreparedEvent("audio_data", data))
        assert session.replied.wait(5), f"{len(session.audio)} audio_response events"
        tuned.emit("stop_call")
        assert session.ended.wait(5)
    finally:
        tuned.disconnect()
    assert sent[1] == sent[2] and sent[2].startswith('2["audio_data",{"audio_data":"')
    with pytest.raises(socketio.exceptions.BadNamespaceError):
        tuned.emit_prepared(PreparedEvent("audio_data", data))
    with pytest.raises(TypeError):
        PreparedEvent("audio_data", b"binary travels as an attachment")


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, websocket_tuning.NUMPY_FROM - 1, websocket_tuning.NUMPY_FROM, 513, 514, 515,
                                    42_739, 100_003])
def test_numpy_masking_gives_websocket_clients_bytes(length):
    key, data = os.urandom(4), os.urandom(length)
    assert websocket_tuning.mask(array.array("B", key), array.array("B", data)) == \
        websocket_tuning._library_mask(array.array("B", key), array.array("B", data))
    assert websocket_tuning.mask(array.array("B", key), array.array("B", websocket_tuning.mask(array.array("B", key),
                                                                               array.array("B", data)))) == data


def test_websocket_client_masks_its_frames_with_the_numpy_mask(monkeypatch):
    """install_tuning (the autouse fixture) installs the hooks; websocket-client's frame encoder uses the mask."""
    providers.install_tuning()  # a second time: idempotent

    assert ws_abnf._mask is websocket_tuning.mask
    assert ws_abnf.frame_buffer.recv_strict is websocket_tuning.recv_strict
    calls: list[int] = []
    monkeypatch.setattr(ws_abnf, "_mask", lambda key, data: (calls.append(len(data)), websocket_tuning.mask(key, data))[1])
    frame = ws_abnf.ABNF.create_frame("x" * 2000, ws_abnf.ABNF.OPCODE_TEXT)
    frame.get_mask_key = lambda n: b"\x01\x02\x03\x04"
    wire = frame.format()
    assert calls == [2000]
    assert bytes(b ^ (i % 4 + 1) for i, b in enumerate(wire[-2000:])) == b"x" * 2000


@pytest.mark.parametrize("split", [1, 7, 100, 5000, 1 << 20])
def test_reading_ahead_gives_the_frames_websocket_client_reads(split):
    """The same unmasked server frames, delivered in pieces of ``split`` bytes, decode to the same messages."""
    sizes = [0, 5, 125, 126, 2000, 65_535, 65_536, 70_000, 3]
    stream = b""
    for n in sizes:  # server frames: FIN + binary opcode, no mask, 7/16/64-bit lengths
        length = bytes([n]) if n < 126 else (b"\x7e" + n.to_bytes(2, "big") if n < 65_536
                                            else b"\x7f" + n.to_bytes(8, "big"))
        stream += b"\x82" + length + bytes(i % 251 for i in range(n))

    def read_all(recv_strict) -> tuple[list[bytes], int]:
        pieces = collections.deque(stream[i:i + split] for i in range(0, len(stream), split))  # popleft: O(1)
        calls = []

        def recv(bufsize):
            calls.append(bufsize)
            if len(pieces[0]) <= bufsize:
                return pieces.popleft()
            pieces[0], head = pieces[0][bufsize:], pieces[0][:bufsize]
            return head

        monkeypatch = pytest.MonkeyPatch()
        monkeypatch.setattr(ws_abnf.frame_buffer, "recv_strict", recv_strict)
        try:
            buffer = ws_abnf.frame_buffer(recv, skip_utf8_validation=True)
            return [buffer.recv_frame().data for _ in sizes], len(calls)
        finally:
            monkeypatch.undo()

    ours, our_calls = read_all(websocket_tuning.recv_strict)
    theirs, their_calls = read_all(websocket_tuning._library_recv_strict)
    assert ours == theirs and [len(d) for d in ours] == sizes
    assert our_calls <= their_calls
    if split >= len(stream):
        assert our_calls < their_calls / 3  # read ahead: far fewer reads than one per header, length and payload


UNTUNED_AFTER_IMPORT = """
{imports}
from websocket import _abnf
from bootbench.providers import install_tuning, websocket_tuning
hooks = (_abnf._mask, _abnf.frame_buffer.recv_strict)
assert hooks == (websocket_tuning._library_mask, websocket_tuning._library_recv_strict), "patched on import"
install_tuning()
assert (_abnf._mask, _abnf.frame_buffer.recv_strict) == (websocket_tuning.mask, websocket_tuning.recv_strict)
print("untouched until install_tuning")
"""


@pytest.mark.parametrize("imports", [
    "import bootbench.providers, bootbench.views.cli",
    "import bootbench.events, bootbench.options",  # Locust first, as a locustfile does (gevent patches ssl)
])
def test_importing_bootbench_leaves_websocket_client_alone_until_install_tuning(imports):
    """``bootbench compare`` or a refused run imports the providers; only a process that runs drivers is patched.

    A fresh interpreter, so the modules this test session imported before do not matter.
    """
    script = UNTUNED_AFTER_IMPORT.format(imports=imports)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "untouched until install_tuning"


def test_the_aivoco_driver_sends_the_start_call_socketio_would_encode_encoded_once(shared_reference_server):
    """start_call carries the same payload every session: encoded once per driver, the same text on the wire."""
    server = shared_reference_server(setup_delay="5", first_audio_delay="20", cold_penalty=0, reply_ms=400)
    driver = AivocoDriver(DriverConfig(url=server.url, api_key="k", system_message="be brief", voice="male"),
                          Stimulus.sine(seconds=0.2))
    driver.connect(Timeline())
    sent: list[str] = []
    send = driver._sio.eio.send
    driver._sio.eio.send = lambda text: (sent.append(text), send(text))
    try:
        for _ in range(2):
            timeline = Timeline()
            deadline = time.perf_counter_ns() + 5_000_000_000
            driver.start(timeline, deadline)
            driver.send_audio(timeline)
            driver.first_audio(timeline, deadline)
            driver.stop(timeline)
            assert timeline.first_audio is not None and timeline.stop_acked is not None
    finally:
        driver.close()
    starts = [text for text in sent if text.startswith('2["start_call"')]
    payload = {"auth_key": "k", "system_message": "be brief", "voice_choice": "male", "custom_functions": []}
    assert starts == [TolerantPacket(sio_packet.EVENT, namespace="/", data=["start_call", payload]).encode()] * 2
    assert driver._prepared_start is not None


def test_a_connection_idle_past_the_write_loops_timeout_stays_open():
    """engineio's write loop takes a queue that stays empty for max(ping interval, ping timeout) + 5 s as a dead
    connection and drops it; the server's pings keep it fed, because the pongs go through that queue. Writing
    the pongs from their sender too (the tuning writes messages so) starved it: every Aivoco connection of
    `make run` dropped after 30 s against the reference server's default 25 s pings ("packet queue is empty,
    aborting", a failed iteration). A server pinging every second starves it in 6 s."""
    import asyncio

    from aiohttp import web

    server = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1)
    app = web.Application()
    server.attach(app)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    sio = TunedClient(reconnection=False)
    try:
        sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"], wait_timeout=5)
        write_loop = sio.eio.write_loop_task
        time.sleep(max(sio.eio.ping_interval, sio.eio.ping_timeout) + 5 + 2)
        assert sio.connected and write_loop.is_alive(), "the write loop dropped an idle connection the server pinged"
    finally:
        sio.disconnect()
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
