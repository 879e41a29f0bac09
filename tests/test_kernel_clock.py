"""Kernel arrival stamps (bootbench.providers.kernel_clock): a busy harness does not move the receive stamps.

The stall tests drive real reference servers with the drivers themselves, in this (gevent-patched)
process, and block the gevent hub on purpose for 50 ms while the server's messages arrive: with kernel
stamps the phases still match the server's own record within 1 ms; with the process clock forced the
same stall shows in them (so the tests can fail). The other tests hold the library hooks the module
relies on: they fail when websocket-client or python-engineio stop reading through it.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import logging
import os
import re
import socket
import ssl
import subprocess
import time
from pathlib import Path

import gevent
import gevent.monkey
import pytest
import websocket

from bootbench.audio import Stimulus
from bootbench.providers import kernel_clock
from bootbench.providers.aivoco import AivocoDriver
from bootbench.providers.base import CycleError, DriverConfig
from bootbench.providers.openai_realtime import OpenAIRealtimeDriver
from bootbench.samples import Timeline
from support.processes import read_jsonl

pytestmark = pytest.mark.skipif(kernel_clock.available() is not None, reason="no kernel arrival stamps here")


def held_within_a_millisecond(test):
    """A test held to the truth (or to a segment's own arrival) within a millisecond, often with the harness stalled
    on purpose: other processes' load would move it, so ``make test`` runs it alone (``quiet``). The rest of this
    module checks counts, policies and library hooks, and runs in the parallel phase."""
    return pytest.mark.truth(pytest.mark.quiet(test))

unpatched_sleep = gevent.monkey.get_original("time", "sleep")
SETUP_MS, FIRST_AUDIO_MS = 30.0, 80.0
STALL_MS = 50.0
LONG_STALL_MS = 150.0
CHUNK_GAP_MS = 40.0
"""The reference server's reply chunks are 40 ms apart (bootbench.server.reply.REPLY_CHUNK_MS)."""
BOUND_MS = 1.0
"""How far a kernel-stamped phase may be from the server's own interval (loopback delivery, both stamps)."""
SHOWN_MS = 20.0
"""How much of the stall the process clock must show (the stall covers 30 ms after the arrival at least)."""
CYCLES = 3
SUCCESSIVE_CONNECTIONS = 60
SERVER = dict(setup_delay=str(SETUP_MS), first_audio_delay=str(FIRST_AUDIO_MS), cold_penalty=0)


def block_hub(ms: float) -> None:
    """Hold this process's gevent hub for ``ms``: the original (unpatched) ``time.sleep``, so no greenlet runs meanwhile,
    as behind a slow handler, while the cores stay free for the reference server (a busy loop on this 2-core machine
    delays the server's own sends, which its ground truth stamps before they go out)."""
    unpatched_sleep(ms / 1000)


def stalled_cycle(driver, early_ms: float = 20.0, stall_ms: float = STALL_MS, stall_with=block_hub) -> Timeline:
    """One cycle whose harness stalls for ``stall_ms`` around the arrival of the first audio.

    The stall starts ``early_ms`` before the first audio is due. STALL_MS ends it 30 ms after, before the reply's
    second chunk (40 ms after the first); LONG_STALL_MS ends it after the next three chunks: unread in the
    kernel, they would merge into the first and give it the newest one's stamp (kernel_clock's docstring;
    test_a_segment_read_after_the_next_arrived_keeps_its_own_arrival).
    """
    timeline = Timeline()
    deadline = time.perf_counter_ns() + 10 * 1_000_000_000
    driver.connect(timeline)
    driver.start(timeline, deadline)
    driver.send_audio(timeline)
    due_ms = FIRST_AUDIO_MS - early_ms - (time.perf_counter_ns() - timeline.input_sent) / 1e6
    stall = gevent.spawn_later(max(0.0, due_ms) / 1000, stall_with, stall_ms)
    driver.first_audio(timeline, deadline)
    stall.join()
    sock = transport(driver).sock
    timeline.unstamped_reads = getattr(sock, "unstamped_reads", None)
    timeline.stamped_socket = sock
    timeline.transport_class = type(sock).__name__
    driver.stop(timeline)
    driver.close()
    return timeline


def transport(driver) -> websocket.WebSocket:
    """The driver's websocket-client connection (Aivoco's through python-engineio)."""
    return driver._sio.eio.ws if isinstance(driver, AivocoDriver) else driver._ws


def measured(server) -> list[dict]:
    sessions = [r for r in read_jsonl(server.ground_truth) if r["session"] is not None and r["outcome"] == "ok"]
    return [r["measured"] for r in sorted(sessions, key=lambda r: r["t_ns"]["start_received"])]


def run_stalled(reference_server, driver_class, clock: str, stall_ms: float = STALL_MS) -> list[tuple]:
    """CYCLES stalled cycles of ``driver_class``: (measured phases, the server's) per cycle."""
    server = reference_server(**SERVER)
    config = DriverConfig(url=server.url, api_key="k-123456", timeout=10, clock=clock)
    timelines = [stalled_cycle(driver_class(config, Stimulus.sine(seconds=0.3, rate=driver_class.input_rate)),
                               stall_ms=stall_ms)
                 for _ in range(CYCLES)]
    time.sleep(0.3)  # the server writes a session's record when it ends
    truth = measured(server)
    assert len(truth) == CYCLES
    return [({**t.phases(), "unstamped_reads": t.unstamped_reads, "transport_class": t.transport_class}, m) for t, m in zip(timelines, truth)]


@held_within_a_millisecond
@pytest.mark.parametrize("stall_ms", [STALL_MS, LONG_STALL_MS], ids=["stall", "stall-over-next-chunks"])
@pytest.mark.parametrize("driver_class", [AivocoDriver, OpenAIRealtimeDriver], ids=["aivoco", "openai"])
def test_a_stalled_harness_times_the_first_response_within_1_ms_with_kernel_stamps(reference_server, driver_class,
                                                                                    stall_ms):
    for phases, truth in run_stalled(reference_server, driver_class, "kernel", stall_ms):
        assert phases["unstamped_reads"] == 0 and phases["transport_class"] == "StampedSocket"
        assert phases["first_response_ms"] == pytest.approx(truth["first_response_ms"], abs=BOUND_MS)


@pytest.mark.parametrize("driver_class", [AivocoDriver, OpenAIRealtimeDriver], ids=["aivoco", "openai"])
def test_the_same_stall_shows_in_the_first_response_with_the_process_clock(reference_server, driver_class):
    for phases, truth in run_stalled(reference_server, driver_class, "process"):
        assert phases["first_response_ms"] - truth["first_response_ms"] > SHOWN_MS


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for IP 127.0.0.1 signed by itself, and its key."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@held_within_a_millisecond
def test_wss_with_a_self_signed_certificate_and_ca_bundle_keeps_kernel_stamps_and_accuracy(reference_server, tmp_path):
    """The reference server on TLS (--tls-cert, a certificate signed by itself): with --ca-bundle naming it, every
    cycle reads through StampedTLSSocket, with kernel stamps and the same accuracy under the same stall; without it,
    the certificate is refused as before."""
    cert, key = self_signed_certificate(tmp_path)
    server = reference_server(**SERVER, extra_args=["--tls-cert", str(cert), "--tls-key", str(key)])
    assert server.url.startswith("https://")
    config = DriverConfig(url=server.url, api_key="k-123456", timeout=10, clock="kernel", ca_bundle=str(cert))
    timelines = [stalled_cycle(AivocoDriver(config, Stimulus.sine(seconds=0.3, rate=AivocoDriver.input_rate)))
                 for _ in range(CYCLES)]
    untrusted = AivocoDriver(DriverConfig(url=server.url, api_key="k", timeout=5, clock="kernel"), Stimulus.sine())
    with pytest.raises(CycleError, match="TLS certificate verification failed"):
        untrusted.connect(Timeline())
    time.sleep(0.3)
    truth = measured(server)
    assert len(truth) == CYCLES
    assert [t.transport_class for t in timelines] == ["StampedTLSSocket"] * CYCLES
    for timeline, session in zip(timelines, truth):
        assert timeline.unstamped_reads == 0
        assert timeline.phases()["first_response_ms"] == pytest.approx(session["first_response_ms"], abs=BOUND_MS)


# ---- the bound of a stamp, on a bare TCP connection


def stamped_pair(threads: kernel_clock.ReaderThreads | None = None):
    kernel_clock.hold_arrival_stamps()   # as KernelWebSocket does: the kernel stamps from the first segment on
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    client.setsockopt(socket.SOL_SOCKET, kernel_clock.SO_TIMESTAMPNS, 1)
    server, _ = listener.accept()
    listener.close()
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = kernel_clock.StampedSocket(client, kernel_clock.ClockBridge(), threads)
    server.sendall(b"w")
    assert client.recv(1) == b"w" and client.unstamped_reads == 0   # the reader thread runs, and stamps
    return client, server


def busy_hub(ms: float) -> None:
    """Hold the hub and the GIL for ``ms``: a handler that computes (the reader thread must still take its bytes)."""
    end = time.perf_counter_ns() + ms * 1e6
    while time.perf_counter_ns() < end:
        pass


@held_within_a_millisecond
def test_a_message_read_late_keeps_its_own_arrival_stamp():
    """Each message is read 10 ms after it arrived, before the next one comes: its stamp is its own arrival."""
    client, server = stamped_pair()
    try:
        for size in (60, 3000, 12000):
            sent = time.perf_counter_ns()
            server.sendall(b"x" * size)
            block_hub(10)
            got, stamp = 0, None
            while got < size:
                got += len(client.recv(size - got))
                stamp = client.arrival_ns
            read = time.perf_counter_ns()
            assert (stamp - sent) / 1e6 == pytest.approx(0, abs=BOUND_MS)
            assert read - stamp > 9_000_000
    finally:
        client.close()
        server.close()


@held_within_a_millisecond
@pytest.mark.parametrize("stall", [block_hub, busy_hub], ids=["blocked", "busy"])
def test_a_segment_read_after_the_next_arrived_keeps_its_own_arrival(stall):
    """The harness handles nothing for 15 ms after each of two segments (blocked, or busy holding the GIL), so
    both are queued before the first is handled. Unread in the kernel, the two would merge and the first take
    the second's stamp (receive-queue coalescing: kernel_clock's docstring); the reader thread takes each off
    the kernel as it arrives, so each keeps its own."""
    client, server = stamped_pair()
    try:
        first = time.perf_counter_ns()
        server.sendall(b"a" * 100)
        stall(15)
        second = time.perf_counter_ns()
        server.sendall(b"b" * 100)
        stall(15)
        assert client.recv(100) == b"a" * 100
        stamp_first = client.arrival_ns
        assert client.recv(100) == b"b" * 100
        stamp_second = client.arrival_ns
    finally:
        client.close()
        server.close()
    assert stamp_first == pytest.approx(first, abs=BOUND_MS * 1e6)
    assert stamp_second == pytest.approx(second, abs=BOUND_MS * 1e6)


def test_the_reader_thread_runs_under_sched_fifo_where_the_process_may_and_nothing_else_does():
    """A reader thread woken by the kernel must run at once, or the next segment merges with the bytes it has not
    taken yet: it asks for SCHED_FIFO (the lowest realtime priority) and gets it exactly where another thread of this
    process could; the process's own threads keep their policy."""
    probe, done = {}, gevent.monkey.get_original("_thread", "allocate_lock")()
    done.acquire()

    def try_realtime():
        probe["got"] = kernel_clock.prompt_this_thread()
        done.release()

    kernel_clock._native_thread(try_realtime, ())   # a real thread, as the reader's
    done.acquire()
    client, server = stamped_pair()
    try:
        reader = client._reader
        assert reader.priority == probe["got"]
        policy = os.sched_getscheduler(reader.native_id)
        assert policy == (os.SCHED_FIFO if probe["got"] == "fifo" else os.SCHED_OTHER)
        if policy == os.SCHED_FIFO:
            assert os.sched_getparam(reader.native_id).sched_priority == kernel_clock.READER_PRIORITY
        assert os.sched_getscheduler(0) == os.SCHED_OTHER
    finally:
        client.close()
        server.close()


def test_a_reader_started_by_a_realtime_thread_runs_one_priority_above_it():
    """A Locust process run under SCHED_FIFO (bench/capacity.py's): its readers must not wait for it to sleep."""
    if os.geteuid() != 0:
        pytest.skip("needs the privilege to set SCHED_FIFO")
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    try:
        client, server = stamped_pair()   # its reader thread starts from this one, at FIFO 10
    finally:
        os.sched_setscheduler(0, *before)
    try:
        assert client._reader.priority == "fifo"
        assert os.sched_getscheduler(client._reader.native_id) == os.SCHED_FIFO
        assert os.sched_getparam(client._reader.native_id).sched_priority == 11
    finally:
        client.close()
        server.close()


def wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not within the time"
        gevent.sleep(0.005)


def one_connection(threads: kernel_clock.ReaderThreads) -> int:
    """A connection whose reader comes from ``threads``: bytes read with a kernel stamp, closed, its thread parked
    again; the reader thread's native id."""
    client, server = stamped_pair(threads)
    try:
        server.sendall(b"abc")
        assert client.recv(10) == b"abc" and client.unstamped_reads == 0
        native_id = client._reader.native_id
    finally:
        client.close()
        server.close()
    wait_for(lambda: threads.idle == 1)
    return native_id


def test_one_owners_connections_one_after_another_share_one_reader_thread():
    """Starting a thread per connection cost about 0.1 ms of CPU a cycle: a driver's connections reuse its thread."""
    threads = kernel_clock.ReaderThreads()
    native_ids = {one_connection(threads) for _ in range(5)}
    assert len(native_ids) == 1 and threads.started == 1


def test_a_kept_reader_thread_ends_after_its_idle_time_and_the_next_connection_starts_another():
    threads = kernel_clock.ReaderThreads()
    threads.IDLE_S = 0.2
    first = one_connection(threads)
    assert os.path.exists(f"/proc/self/task/{first}")
    wait_for(lambda: threads.idle == 0 and not os.path.exists(f"/proc/self/task/{first}"))
    one_connection(threads)
    assert threads.started == 2


def test_a_kept_reader_thread_takes_the_priority_of_the_thread_that_connects():
    """A thread kept from a connection made by a normal thread, handed one made by a realtime thread (FIFO 10), runs
    at 11 for it, as a new one would."""
    if os.geteuid() != 0:
        pytest.skip("needs the privilege to set SCHED_FIFO")
    threads = kernel_clock.ReaderThreads()
    first = one_connection(threads)
    assert os.sched_getparam(first).sched_priority == kernel_clock.READER_PRIORITY
    before = os.sched_getscheduler(0), os.sched_getparam(0)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    try:
        client, server = stamped_pair(threads)
    finally:
        os.sched_setscheduler(0, *before)
    try:
        assert client._reader.native_id == first and threads.started == 1
        assert os.sched_getparam(first).sched_priority == 11
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("driver_class", [AivocoDriver, OpenAIRealtimeDriver], ids=["aivoco", "openai"])
def test_a_driver_reads_its_successive_connections_with_one_reader_thread(reference_server, driver_class):
    server = reference_server()
    driver = driver_class(DriverConfig(url=server.url, api_key="k", clock="kernel", timeout=5), Stimulus.sine())
    threads = driver._socket_class.keywords["reader_threads"]
    for _ in range(3):
        timeline = Timeline()
        driver.connect(timeline)
        driver.start(timeline, time.perf_counter_ns() + 5 * 1_000_000_000)
        driver.stop(timeline)
        driver.close()
        wait_for(lambda: threads.idle == 1)
    assert threads.started == 1


def test_a_connection_that_ends_ends_its_reader_thread_and_closes_its_wakeup():
    """The peer closes: the reader sees the end, a read returns b"" (websocket-client's "connection lost"), and the
    hub's async watcher is closed (one left open per connection would stay in the loop's list for good)."""
    client, server = stamped_pair()
    server.sendall(b"last")
    server.close()
    assert client.recv(100) == b"last"
    assert client.recv(100) == b""
    deadline = time.monotonic() + 5
    while not client._reader._wakeup._closed and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert client._reader.ended and client._reader._wakeup._closed
    client.close()


@held_within_a_millisecond
def test_the_clock_bridge_converts_the_wall_clock_within_its_bound():
    bridge = kernel_clock.ClockBridge()
    assert 0 < bridge.error_ns < 20_000
    for _ in range(100):
        before = time.perf_counter_ns()
        wall = time.clock_gettime_ns(time.CLOCK_REALTIME)
        after = time.perf_counter_ns()
        converted = bridge.to_perf(wall, after)
        assert before - bridge.error_ns <= converted <= after + bridge.error_ns


def upgrade_and_greet(listener: socket.socket, connections: int) -> None:
    """A WebSocket server on a native thread: for each of ``connections`` it answers the upgrade and sends a text
    frame in the same write, as soon as it has the request (the 101 is read by websocket-client; the frame, which
    arrived with it, by the reader thread)."""
    for _ in range(connections):
        peer, _address = listener.accept()
        with peer:
            request = b""
            while b"\r\n\r\n" not in request:
                request += peer.recv(4096)
            key = re.search(rb"Sec-WebSocket-Key: *(\S+)", request, re.IGNORECASE).group(1)
            accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            peer.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n" + b"\x81\x05hello")
            peer.recv(4096)   # the client's close


@pytest.mark.quiet   # alone: another process's stamped socket would hold the kernel's switch on for it
def test_a_message_that_comes_with_the_upgrade_is_stamped_by_the_kernel():
    """Linux switches its arrival stamps on from deferred work when the first socket on the machine asks for them
    (after none did): with one connection at a time and none open between, a message sent at once after the
    upgrade (OpenAI's session.created) came unstamped in some connections (CI: ``unstamped_reads == 1``), until the
    process held the switch for its lifetime (kernel_clock.hold_arrival_stamps). The hold that earlier tests of this
    process took is let go first, so that KernelWebSocket has to take it itself."""
    kernel_clock.hold_arrival_stamps().close()
    kernel_clock.hold_arrival_stamps.cache_clear()
    gc.collect()   # no stamped socket of an earlier test left open, holding the switch
    listener = socket.create_server(("127.0.0.1", 0))
    server = gevent.monkey.get_original("threading", "Thread")(
        target=upgrade_and_greet, args=(listener, SUCCESSIVE_CONNECTIONS), daemon=True)
    server.start()
    unstamped = []
    try:
        for _ in range(SUCCESSIVE_CONNECTIONS):
            ws = websocket.create_connection(f"ws://127.0.0.1:{listener.getsockname()[1]}/", timeout=5,
                                             class_=kernel_clock.socket_class("kernel"))
            try:
                assert ws.recv() == "hello"
                unstamped.append(ws.sock.unstamped_reads)
            finally:
                ws.close()
            unpatched_sleep(0.02)   # the kernel's deferred work switches the stamps off meanwhile, were none held
    finally:
        listener.close()
    assert unstamped == [0] * SUCCESSIVE_CONNECTIONS
    assert kernel_clock.hold_arrival_stamps().confirmed


# ---- the library hooks: a change of websocket-client or python-engineio that bypasses the module fails here


def openai_kernel_websocket(server) -> websocket.WebSocket:
    """A kernel-clock WebSocket opened on the reference server's OpenAI Realtime endpoint, as the driver opens it."""
    driver = OpenAIRealtimeDriver(DriverConfig(url=server.url, api_key="k", clock="kernel"), Stimulus.sine())
    return websocket.create_connection(driver.endpoint(), header=driver.headers(), timeout=5,
                                       class_=kernel_clock.socket_class("kernel"), skip_utf8_validation=True)


def test_websocket_client_reads_every_frame_through_the_stamped_socket_and_the_exact_reader(reference_server):
    """A frame is read by KernelWebSocket's exact reader, through StampedSocket.recv (one queued read per exact
    read, none ahead), from the bytes the ArrivalReader thread took off the kernel."""
    ws = openai_kernel_websocket(reference_server())
    asked = []
    exact = ws.frame_buffer.recv_strict

    def counting(bufsize):
        asked.append(bufsize)
        return exact(bufsize)

    ws.frame_buffer.recv_strict = counting
    try:
        assert isinstance(ws.sock, kernel_clock.StampedSocket)
        recvs_before = ws.sock.recvs
        opcode, data = ws.recv_data()   # the server's session.created
        recvs = ws.sock.recvs - recvs_before
        kernel_reads = ws.sock.reads
        stamp = ws.arrival_ns()
        frame_reads = list(asked)   # the close below reads the close frame
    finally:
        ws.close()
    asked = frame_reads
    assert opcode == websocket.ABNF.OPCODE_TEXT and b"session.created" in data
    assert asked[0] == 2 and sum(asked) == len(data) + 2 + (2 if len(data) >= 126 else 0)
    assert recvs == len(asked)   # one queued read per exact read: nothing read ahead
    assert kernel_reads >= 1     # the reader thread's recvmsg brought them
    assert stamp is not None and stamp <= time.perf_counter_ns()


def test_frames_are_read_from_the_queue_without_websocket_clients_socket_recv(reference_server, monkeypatch):
    """KernelWebSocket gives the frame reader its own ``recv`` (``_recv_queued``) in place of the library's path
    (``websocket._socket.recv``, which asks the socket its timeout on every read): a websocket-client that stops
    reading frames through ``frame_buffer.recv`` takes the library's path again, and this fails."""
    ws = openai_kernel_websocket(reference_server())
    library_reads = []
    library_recv = websocket._core.recv
    monkeypatch.setattr(websocket._core, "recv", lambda sock, bufsize: library_reads.append(bufsize)
                        or library_recv(sock, bufsize))
    try:
        recvs_before = ws.sock.recvs
        opcode, data = ws.recv_data()   # the server's session.created
        recvs = ws.sock.recvs - recvs_before
    finally:
        monkeypatch.undo()
        ws.close()
    assert opcode == websocket.ABNF.OPCODE_TEXT and b"session.created" in data
    assert library_reads == [] and recvs >= 2   # the header and the payload, from the queued reads


def test_the_queued_read_path_times_out_and_ends_as_websocket_clients_own():
    """``_recv_queued`` gives the two outcomes the library's path gives: a read that waits past the socket's timeout
    is ``WebSocketTimeoutException`` (the connection stays usable: a frame that comes later is read whole), and the
    end of the stream closes the socket and is ``WebSocketConnectionClosedException``, the WebSocket disconnected."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = gevent.monkey.get_original("threading", "Thread")(
        target=upgrade_and_greet, args=(listener, 1), daemon=True)
    server.start()
    try:
        ws = websocket.create_connection(f"ws://127.0.0.1:{listener.getsockname()[1]}/", timeout=0.3,
                                         class_=kernel_clock.socket_class("kernel"))
        assert ws.recv() == "hello"
        started = time.monotonic()
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv()   # nothing more comes until the client closes
        assert 0.25 <= time.monotonic() - started < 3
        assert ws.connected and ws.sock is not None
        ws.sock.shutdown(socket.SHUT_RDWR)   # the reader thread sees the end of the stream
        with pytest.raises(websocket.WebSocketConnectionClosedException):
            ws.recv()
        assert ws.sock is None and not ws.connected
    finally:
        listener.close()


def test_engineio_opens_its_transport_with_the_socket_class_and_handlers_read_its_stamp(reference_server):
    server = reference_server()
    driver = AivocoDriver(DriverConfig(url=server.url, api_key="k", clock="kernel"), Stimulus.sine())
    driver.connect(Timeline())
    try:
        ws = driver._sio.eio.ws
        assert isinstance(ws, kernel_clock.KernelWebSocket)
        assert isinstance(ws.sock, kernel_clock.StampedSocket) and ws.sock.reads > 0
        assert driver._arrival_ns() == ws.sock.arrival_ns
    finally:
        driver.close()


def test_websocket_client_builds_the_verifying_context_as_before(tmp_path):
    """verifying_context is websocket-client's own _ssl_socket's context: CERT_REQUIRED, the hostname checked, the
    --ca-bundle's CAs loaded (and nothing else)."""
    front_cert, _key = self_signed_certificate(tmp_path)
    context = kernel_clock.verifying_context({"ca_certs": str(front_cert), "cert_reqs": ssl.CERT_REQUIRED},
                                             "127.0.0.1")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 1
    default = kernel_clock.verifying_context({}, "example.com")
    assert default.verify_mode == ssl.CERT_REQUIRED and default.check_hostname


# ---- bytes that waited for the reader thread: counted on the connection

LATE_SERVER = """
import socket, sys, time
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
conn, _ = listener.accept()
conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
assert conn.recv(1) == b"g"
for part in (b"A", b"B", b"C"):
    time.sleep(0.04)   # the first one too: the client holds its GIL by then (its "g" send takes ~0.1 ms here)
    conn.sendall(part)
conn.recv(1)
"""


def gil_holder(ms: float) -> range:
    """What keeps the GIL for about ``ms`` without giving it up at the switch interval: ``sum`` over this range is one
    C call, as when the thread that holds the GIL is off the CPU. No other thread of the process runs Python
    meanwhile."""
    per_item = []
    for _ in range(3):   # the first call runs colder than the one that counts
        start = time.perf_counter()
        sum(range(1_000_000))
        per_item.append((time.perf_counter() - start) / 1_000_000)
    return range(int(ms / 1000 / min(per_item)))


def read_three_with_the_gil_held(hold_ms: float):
    """A, B and C sent 40 ms apart by another process (this one's GIL does not hold it up), read by a reader thread
    while this thread keeps the GIL for ``hold_ms`` from just after asking for them; the counts and the reads."""
    assert not hold_ms or hold_ms > 150, "the hold must cover A to C: 40 to 120 ms after the request"
    server = subprocess.Popen([os.sys.executable, "-c", LATE_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(server.stdout.readline())
        kernel_clock.hold_arrival_stamps()
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.SOL_SOCKET, kernel_clock.SO_TIMESTAMPNS, 1)
        client = kernel_clock.StampedSocket(raw, kernel_clock.ClockBridge(), kernel_clock.ReaderThreads())
        holder = gil_holder(hold_ms)
        try:
            client.sendall(b"g")
            sum(holder)   # from before A arrives (40 ms after "g") to after C
            received = []
            while sum(len(data) for data, _ in received) < 3:
                data = client.recv(3)
                received.append((data, client.arrival_ns))
            client.sendall(b"e")
            return client, received
        finally:
            client.close()
    finally:
        server.wait(10)


@pytest.mark.quiet   # alone: the windows are tens of milliseconds, and only this process's GIL may hold the reader
def test_bytes_that_waited_for_the_reader_thread_are_counted_and_logged(caplog):
    caplog.set_level(logging.INFO, logger="bootbench.providers.kernel_clock")
    client, received = read_three_with_the_gil_held(250)
    # A was taken off the kernel before the hold kept the thread from handing it over; B and C queued behind it
    # and came in one read, both with C's stamp: B is stamped 40 ms late, and that read is counted.
    assert b"".join(data for data, _ in received) == b"ABC"
    assert client.late_reads == 1
    assert client.late_window_ns >= 60e6   # C's arrival 80 ms after A's, against a 5 ms switch interval
    assert received[-1][0].endswith(b"BC")   # B came with C, and has its stamp
    [line] = [r.getMessage() for r in caplog.records if "kernel clock:" in r.getMessage()]   # at the close
    assert line.startswith("kernel clock: 1 read(s) of this connection")
    assert float(re.search(r"waited up to ([0-9.]+) ms", line).group(1)) == pytest.approx(client.late_window_ns / 1e6,
                                                                                          abs=0.05)


def test_bytes_read_as_they_arrive_are_not_counted():
    client, received = read_three_with_the_gil_held(0)
    assert b"".join(data for data, _ in received) == b"ABC"
    assert client.late_reads == 0
    stamps = [stamp for _, stamp in received]
    assert len(received) == 3 and stamps[1] - stamps[0] >= 30e6 and stamps[2] - stamps[1] >= 30e6


@held_within_a_millisecond
@pytest.mark.parametrize("driver_class", [AivocoDriver, OpenAIRealtimeDriver], ids=["aivoco", "openai"])
def test_a_harness_that_keeps_the_gil_over_the_next_chunks_counts_the_late_reads(reference_server, driver_class):
    """The stall of LONG_STALL_MS keeps the GIL this time (as a harness whose thread is off the CPU would): the reader
    thread takes the first chunk off the kernel but cannot hand it over, and the next chunks merge behind it."""
    server = reference_server(**SERVER)
    config = DriverConfig(url=server.url, api_key="k-123456", timeout=10, clock="kernel")
    driver = driver_class(config, Stimulus.sine(seconds=0.3, rate=driver_class.input_rate))
    holder = gil_holder(LONG_STALL_MS)
    timeline = stalled_cycle(driver, stall_ms=LONG_STALL_MS, stall_with=lambda ms: sum(holder))
    time.sleep(0.3)  # the server writes a session's record when it ends; the reader thread has counted by then
    [truth] = measured(server)
    sock = timeline.stamped_socket
    assert sock.late_reads >= 1   # the chunks after the first came in a late read
    assert driver.late_stamp_reads == sock.late_reads   # what the user records across the cycle
    # Never early, and late by no more than the counted wait. Aivoco's first chunk is off the kernel before the next
    # arrives (its own stamp); OpenAI's comes right behind the response's opening events, merges with them and the
    # next chunks, and is stamped up to that wait late: what the count is there to say.
    error = timeline.phases()["first_response_ms"] - truth["first_response_ms"]
    assert -BOUND_MS <= error <= sock.late_window_ns / 1e6 + BOUND_MS


@pytest.mark.parametrize("driver_class", [AivocoDriver, OpenAIRealtimeDriver], ids=["aivoco", "openai"])
def test_a_driver_has_no_late_stamp_count_until_a_kernel_clock_connection_nor_under_the_process_clock(driver_class):
    for clock in ("kernel", "process"):
        config = DriverConfig(url="ws://127.0.0.1:9", api_key="k-123456", timeout=10, clock=clock)
        assert driver_class(config, Stimulus.sine(seconds=0.3, rate=driver_class.input_rate)).late_stamp_reads is None
