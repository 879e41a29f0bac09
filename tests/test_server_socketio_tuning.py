"""The python-socketio / python-engineio hooks of the reference server's Aivoco emulation still hold.

``bootbench.server.protocols.aivoco.socketio_tuning`` has an emit to one client
written on its WebSocket by the emitting coroutine, so that a ground-truth stamp
and its message's write are one step of the event loop. These tests serve a real
``inline_server`` from aiohttp on a thread and read it with a kernel-stamped
WebSocket (Engine.IO spoken by hand), so they fail when an upgrade of either
library bypasses a hook: the bytes must be in the client's socket when ``emit``
returns, the write stamp must come before their arrival, and packets that had
to wait in engineio's queue must still go first.
"""

from __future__ import annotations

import _socket
import asyncio
import json
import socket
import threading
import time
from typing import Any

import pytest
import websocket
from aiohttp import web

from bootbench.providers import kernel_clock
from bootbench.server.protocols.aivoco import socketio_tuning

pytestmark = pytest.mark.skipif(kernel_clock.available() is not None, reason="needs the kernel's arrival stamps")

QUEUED = 10
"""Packets of the burst sent while the WebSocket counts as busy (they wait in engineio's queue)."""
BURST = 50


class Served:
    """An ``inline_server`` on 127.0.0.1 in an asyncio loop of its own thread; what its handlers saw."""

    def __init__(self) -> None:
        self.sio = socketio_tuning.inline_server(async_mode="aiohttp", async_handlers=False)
        self.seen: dict[str, Any] = {}
        self.sio.on("ask", self._on_ask)
        self.sio.on("burst", self._on_burst)
        self.loop = asyncio.new_event_loop()
        self.port: int | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        assert self._started.wait(10), "the server did not start"

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        self.sio.attach(app)
        runner = web.AppRunner(app)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    async def _on_ask(self, sid: str, data: Any = None) -> None:
        await self.sio.emit("answer", {"n": 1}, to=sid)
        self.seen["returned_ns"] = time.perf_counter_ns()   # nothing ran between the emit's return and this
        self.seen["written_ns"] = socketio_tuning.written_ns(self.sio, sid)
        eio_socket = self.sio.eio.sockets[self.sio.manager.eio_sid_from_sid(sid, "/")]
        self.seen["kernel_writes"], self.seen["inline_writes"] = eio_socket.kernel_writes, eio_socket.inline_writes

    async def _on_burst(self, sid: str, data: Any = None) -> None:
        eio_socket = self.sio.eio.sockets[self.sio.manager.eio_sid_from_sid(sid, "/")]
        ws = eio_socket.websocket
        inline_before = eio_socket.inline_writes
        ws.writing += 1   # as if the writer task were suspended in a drain, holding packets taken from the queue
        for n in range(QUEUED):
            await self.sio.emit("n", n, to=sid)
        self.seen["queued_written_ns"] = socketio_tuning.written_ns(self.sio, sid)
        ws.writing -= 1
        for n in range(QUEUED, BURST):
            await self.sio.emit("n", n, to=sid)
        self.seen["burst_inline_writes"] = eio_socket.inline_writes - inline_before

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture
def served():
    server = Served()
    yield server
    server.stop()


def connect(port: int) -> websocket.WebSocket:
    """A kernel-stamped WebSocket that has opened an Engine.IO session and joined Socket.IO's default namespace."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket",
                                     class_=kernel_clock.socket_class("kernel"), timeout=10)
    assert ws.recv().startswith("0{")   # Engine.IO open
    ws.send("40")
    assert ws.recv().startswith("40{")  # Socket.IO connect
    return ws


def next_event(ws: websocket.WebSocket) -> tuple[list[Any], int]:
    """The next Socket.IO event (its name and arguments) and its kernel arrival stamp; pings are answered."""
    while True:
        text = ws.recv()
        if text == "2":
            ws.send("3")
            continue
        assert text.startswith("42"), text
        return json.loads(text[2:]), ws.arrival_ns()


def test_an_emit_to_one_client_is_in_the_clients_socket_when_it_returns(served):
    ws = connect(served.port)
    try:
        for _ in range(5):
            ws.send('42["ask"]')
            event, arrival = next_event(ws)
            assert event == ["answer", {"n": 1}]
            written, returned = served.seen["written_ns"], served.seen["returned_ns"]
            assert written is not None, "the answer went through engineio's queue, not written by its emitter"
            # Its bytes reached the client's socket after the write stamp and before emit returned: the write
            # happened inside the emit, not later in engineio's writer task.
            assert written <= arrival <= returned
            # The write stamp is the kernel's send stamp (loopback: microseconds before the arrival stamp; 39 us
            # median, 92 us p99 for a perf_counter stamp before the write). Generous: the machine may be busy.
            # A change of aiohttp's writer that bypasses socketio_tuning.StampingTransport leaves none.
            assert served.seen["kernel_writes"] >= 1 and arrival - written < 1_000_000
        # every inline write (the five answers and the namespace's connect before them) had its kernel stamp
        assert served.seen["kernel_writes"] == served.seen["inline_writes"] == 6
    finally:
        ws.close()


def test_packets_waiting_in_the_queue_go_out_before_later_ones(served):
    ws = connect(served.port)
    try:
        ws.send('42["burst"]')
        received = [next_event(ws)[0] for _ in range(BURST)]
    finally:
        ws.close()
    assert received == [["n", n] for n in range(BURST)]
    assert served.seen["queued_written_ns"] is None   # the last of the queued ones has no write stamp
    # The packets after the queued ones waited too (the queue was not empty), so none was written inline.
    assert served.seen["burst_inline_writes"] == 0


class BufferedTransport:
    """A transport with bytes of its own still buffered: what it is given is appended after them."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return 100

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))


def test_a_write_behind_buffered_bytes_goes_through_the_transport_unstamped():
    """The order on the wire: bytes the transport still holds go first, so the armed write is handed to it, and
    the send stamp falls back to the perf_counter one (disarm gives None)."""
    transport = BufferedTransport()
    stamping = socketio_tuning.StampingTransport(transport, socket.AF_INET, -1)   # its socket is never used
    stamping.arm(time.perf_counter_ns())
    stamping.write(b"frame")
    assert stamping.disarm() is None and transport.written == [b"frame"] and stamping.stamped == 0
    stamping.write(b"not armed")
    assert transport.written == [b"frame", b"not armed"]


class HeldBackTransport(BufferedTransport):
    """A transport with nothing buffered (the kernel took every byte so far), over a socket it does not write."""

    def get_write_buffer_size(self) -> int:
        return 0


def test_a_send_stamp_that_comes_after_its_write_is_read_off_the_error_queue():
    """Bytes the kernel keeps back (the client reads nothing, its window is closed) leave, and are stamped, only
    once the client reads: a stamp then in the socket's error queue would keep the event loop's poll reporting the
    socket ready. The stamping transport reads it off later (``_drain_late``); none is left once the bytes left."""
    listener = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # not gevent's: nothing here waits on its hub
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # a small window, closed by a few writes
    client.connect(listener.getsockname())
    server = _socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, listener._accept()[0])
    server.setblocking(False)
    client.setblocking(False)
    server.setsockopt(socket.SOL_SOCKET, socketio_tuning.SO_TIMESTAMPING,
                      socketio_tuning.SOF_TIMESTAMPING_SOFTWARE | socketio_tuning.SOF_TIMESTAMPING_OPT_TSONLY)

    def error_queue_empty() -> bool:
        try:
            server.recvmsg(0, 256, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        return False

    async def scenario() -> int | None:
        for _ in range(1000):   # until the kernel holds bytes it cannot send yet (it has room for more)
            server.send(b"x" * 1024)
            if socketio_tuning._unsent(server):
                break
        assert socketio_tuning._unsent(server), "the client's window never closed"
        stamping = socketio_tuning.StampingTransport(HeldBackTransport(), socket.AF_INET, server.fileno())
        stamping.arm(time.perf_counter_ns())
        stamping.write(b"y" * 100)   # accepted, not sent: no stamp yet
        sent_ns = stamping.disarm()
        deadline = time.monotonic() + 10
        while socketio_tuning._unsent(server) and time.monotonic() < deadline:
            try:
                while client.recv(1 << 16):
                    pass
            except BlockingIOError:
                pass
            await asyncio.sleep(0.005)
        assert not socketio_tuning._unsent(server)
        await asyncio.sleep(0.1)   # the late read comes round every 10 ms
        return sent_ns

    try:
        sent_ns = asyncio.run(scenario())
        assert sent_ns is None   # no stamp when the write returned: the perf_counter one stands
        assert error_queue_empty()   # the stamp that came later was read off
    finally:
        for sock in (client, server, listener):
            sock.close()
