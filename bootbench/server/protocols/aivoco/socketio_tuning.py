"""The one place the reference server reaches into python-socketio / python-engineio / aiohttp internals, and why.

(The server's counterpart of ``bootbench/providers/socketio_tuning.py``, which is the client's; of the harness
the server imports only ``wire`` and ``clocks``.)

Aivoco's emulation takes a message's ground-truth stamp (``ready_sent``,
``first_audio_sent``) just before it emits the message. Out of the box the
message is written much later: python-socketio's ``AsyncManager.emit`` sends
each recipient's packet from a task of its own, and python-engineio's socket
queues it for the connection's writer task; both wait for the event loop to
come round. The gap was part of every ground-truth interval, so of every
error measured against the truth: the server's stamp to the kernel's arrival
of the first answer chunk took 0.29 ms median, 1.0 ms p99 at 50 sessions
(bench/accuracy.py --quick, 4 Dec 2026; 0.043 / 0.092 ms with this module and
the stamps taken at the write). :func:`inline_server` builds an ``AsyncServer`` whose
emits to one client are written on its WebSocket by the emitting coroutine
itself, when no packet is queued or being written before it (otherwise the
packet is queued, as before: the order on the wire never changes). The stamp
and the write are then one step of the event loop.

What it leans on (tests/test_server_socketio_tuning.py fails when one is gone):

1. ``socketio.AsyncManager`` (public: a server's ``client_manager``): :class:`InlineManager`
   overrides ``emit``, and for a single recipient without a callback builds the packet as the library does and
   hands it to ``AsyncServer._send_packet`` (private) instead of a task.
2. ``engineio.AsyncServer._async['websocket']`` (private): the async driver's WebSocket class, which
   ``AsyncSocket`` builds with its bound ``_websocket_handler`` (private) for each WebSocket connection. It is
   replaced on this server only (a copy of the driver's table) by :class:`InlineWebSocket`, which switches its
   socket's class to :class:`InlineSocket`.
3. ``engineio.async_socket.AsyncSocket`` (internal): ``send``, ``queue`` (packets the writer task has yet to
   take), ``upgraded``/``upgrading`` (whether packets may go on the WebSocket), ``check_ping_timeout``.
   :class:`InlineSocket` overrides only ``send``.
4. aiohttp writes an uncompressed frame into the transport without suspending (``WebSocketWriter.send_frame``),
   so the write happens inside the ``await``, before anything else runs. bootbench's clients and the vendors' do
   not negotiate compression with this server.
5. ``aiohttp.web.WebSocketResponse._writer`` (private): its ``WebSocketWriter``'s ``transport`` attribute, which
   :class:`InlineWebSocket` points at a :class:`StampingTransport` in front of the connection's own.

The kernel's send stamp (Linux, plain TCP): a perf_counter stamp taken before the write still leads the
kernel's arrival stamp at the client by the send system call's own path, 40 to 60 us median and 90 to 120 us
p99 on this 2-core VM (``bench/send_stamps.py``: 2.6 KB writes on loopback; bench/RESULTS.md), varying with the
machine's load. The kernel stamps the frame as it leaves (``SO_TIMESTAMPING``, ``SOF_TIMESTAMPING_TX_SOFTWARE``):
on loopback 8 us median, 10 to 11 us p99 before the client's arrival stamp. :class:`StampingTransport` asks for
that stamp for an inline write only (a per-call control message on ``sendmsg``, so no other write of the
connection leaves a stamp in the socket's error queue, which would keep the event loop's poll reporting the
socket ready), writes it itself when the transport has nothing buffered before it, reads the stamp from the
error queue right after, and converts it onto perf_counter_ns (bootbench.clocks). :attr:`InlineSocket.written_ns`
is then that stamp. Where there is none (TLS, not Linux, bytes left unsent by the call, a full send buffer),
it stays the perf_counter stamp before the write; a stamp the kernel takes later (bytes it held back) is still
read off the error queue, by :meth:`StampingTransport._drain_late`.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections.abc import Iterator
from typing import Any

import socketio
from engineio import async_socket
from engineio.async_drivers import aiohttp as engineio_aiohttp
from socketio import packet as sio_packet

from bootbench.clocks import ClockBridge, timespec_ns

SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37 if sys.platform.startswith("linux") else None)
"""Linux's socket option and control message (37; Python 3.11 lacks the constant)."""
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1
"""Stamp the bytes of this send when they leave for the device (loopback: as the receiver gets them)."""
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
"""Report software stamps (set on the socket: which stamps a read of the error queue gives)."""
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11
"""An error-queue entry holds the stamp only, not a copy of the bytes sent."""
SIOCOUTQNSD = 0x894B
"""ioctl: the bytes of the socket's send queue not yet sent."""
TX_STAMP_REQUEST = [(socket.SOL_SOCKET, SO_TIMESTAMPING or 0, struct.pack("I", SOF_TIMESTAMPING_TX_SOFTWARE))]
ERROR_QUEUE_ROOM = 256


def inline_server(**options: Any) -> socketio.AsyncServer:
    """A python-socketio ``AsyncServer`` (async mode aiohttp, ``options`` its own) that writes emits inline."""
    server = socketio.AsyncServer(client_manager=InlineManager(), **options)
    server.eio._async = {**server.eio._async, "websocket": InlineWebSocket}
    return server


class InlineManager(socketio.AsyncManager):
    """Emits to one client from the emitting coroutine, not from a task per recipient."""

    async def emit(self, event: str, data: Any, namespace: str, room: Any = None, skip_sid: Any = None,
                   callback: Any = None, to: Any = None, **kwargs: Any) -> None:
        room = to or room
        recipients = [] if callback or skip_sid or room is None else list(self.get_participants(namespace, room))
        if len(recipients) != 1:
            await super().emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)
            return
        # The arguments as AsyncManager.emit makes them: a tuple is several, None none, anything else one.
        args = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        _sid, eio_sid = recipients[0]
        await self.server._send_packet(eio_sid, self.server.packet_class(sio_packet.EVENT, namespace=namespace,
                                                                         data=[event, *args]))


class StampingTransport:
    """A connection's asyncio transport, whose writes while :attr:`armed` carry the kernel's send stamp.

    Everything else is the transport's own. An armed write goes out by ``sendmsg`` on the transport's socket
    when the transport has nothing buffered (so the order on the wire is kept), with a control message that
    asks for this call's send stamp; the stamp is read from the error queue right after. A write that could
    not be stamped (bytes buffered before it, a full send buffer, bytes left unsent) goes or finishes through
    the transport, and :meth:`disarm` then gives None.
    """

    def __init__(self, transport: asyncio.Transport, family: int, fileno: int) -> None:
        self._transport = transport
        self._family, self._fileno = family, fileno
        self._bridge = ClockBridge()
        self.armed = False
        self._stamp_ns: int | None = None
        self._missed = False
        self._since_ns = 0
        self.stamped = 0
        """Armed writes the kernel stamped."""

    @classmethod
    def of(cls, transport: Any) -> StampingTransport | None:
        """A stamping front for ``transport``; None where there is no kernel send stamp (TLS, not Linux, refused)."""
        raw = transport.get_extra_info("socket") if transport is not None else None
        if SO_TIMESTAMPING is None or raw is None or transport.get_extra_info("sslcontext") is not None \
                or raw.family not in (socket.AF_INET, socket.AF_INET6) or raw.type != socket.SOCK_STREAM:
            return None
        try:
            raw.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY)
        except OSError:
            return None
        return cls(transport, raw.family, raw.fileno())

    def arm(self, since_ns: int) -> None:
        """Stamp the writes from here to :meth:`disarm`; ``since_ns``: perf_counter_ns before the first of them (a
        stamp earlier than that is an older write's)."""
        self.armed, self._stamp_ns, self._missed, self._since_ns = True, None, False, since_ns

    def disarm(self) -> int | None:
        """End the armed writes: the send stamp of the last one (perf_counter_ns), or None if one went unstamped."""
        self.armed = False
        return None if self._missed else self._stamp_ns

    def write(self, data: Any) -> None:
        if not self.armed:
            self._transport.write(data)
            return
        if self._transport.get_write_buffer_size() or self._transport.is_closing():
            self._missed = True
            self._transport.write(data)
            return
        with self._socket() as sock:
            try:
                sent = sock.sendmsg([data], TX_STAMP_REQUEST)
            except OSError:   # a full send buffer; or the connection is gone, which the transport's write meets
                sent = 0
            stamp = self._read_stamp(sock) if sent else None
        if sent < len(data):
            self._missed = True
            self._transport.write(memoryview(data)[sent:])
        elif stamp is None:
            self._missed = True
        else:
            self._stamp_ns = stamp
            self.stamped += 1

    def _read_stamp(self, sock: _socket.socket) -> int | None:
        """The send stamp the kernel queued for the write just made (it stamps it inside the call when every byte
        left at once: the send queue then holds none unsent); None when it has not."""
        read = time.perf_counter_ns()
        stamp = None
        while (ancdata := _error_queue_entry(sock)) is not None:
            for level, kind, payload in ancdata:
                wall_ns = timespec_ns(payload) if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING else None
                if wall_ns is not None:   # the first of the message's timespecs: the software stamp
                    converted = self._bridge.to_perf(wall_ns, read)
                    if converted >= self._since_ns - self._bridge.error_ns:   # not an older write's, read late
                        stamp = converted
        if stamp is None and _unsent(sock):
            # Bytes the kernel keeps back (a full window): their stamp comes when they leave, after this read, and
            # would sit in the error queue; the event loop's poll would report the socket ready until it is read.
            asyncio.get_running_loop().call_later(0.01, self._drain_late, 0)
        return stamp

    def _drain_late(self, rounds: int) -> None:
        """Read off a stamp that came after its write (see :meth:`_read_stamp`): every 10 ms for a second, then
        every 100 ms (a client that reads nothing holds the bytes back) until it comes or the connection ends."""
        if self._transport.is_closing():
            return
        with self._socket() as sock:
            if _error_queue_entry(sock) is not None:
                return
        asyncio.get_running_loop().call_later(0.01 if rounds < 100 else 0.1, self._drain_late, rounds + 1)

    @contextlib.contextmanager
    def _socket(self) -> Iterator[_socket.socket]:
        """The transport's socket as a socket object, detached (never closed) when done. ``_socket``'s class, not
        ``socket``'s: where gevent has patched ``socket`` (an embedded server in a Locust process), its class would
        wait on the hub."""
        sock = _socket.socket(self._family, socket.SOCK_STREAM, 0, self._fileno)
        try:
            yield sock
        finally:
            sock.detach()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _error_queue_entry(sock: _socket.socket) -> list | None:
    """The control messages of the next entry of ``sock``'s error queue, taken off it; None when it is empty."""
    try:
        return sock.recvmsg(0, ERROR_QUEUE_ROOM, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)[1]
    except OSError:
        return None


def _unsent(sock: _socket.socket) -> int:
    """Bytes of ``sock``'s send queue the kernel has not sent yet (0 where it cannot say)."""
    try:
        import fcntl   # POSIX only; SO_TIMESTAMPING (Linux) is what brings a stamped write here

        return struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0"))[0]
    except (ImportError, OSError):
        return 0


class InlineWebSocket(engineio_aiohttp.WebSocket):
    """python-engineio's aiohttp WebSocket, which makes its socket an :class:`InlineSocket` and counts its sends."""

    writing = 0
    """Sends on this WebSocket in progress (the writer task's or an inline one) that have not returned: one
    suspended in aiohttp's drain may hold packets taken from the queue, which must go first."""
    stamping: StampingTransport | None = None
    """In front of the connection's transport once the WebSocket is open (None: no kernel send stamps here)."""

    async def __call__(self, environ: dict[str, Any]) -> Any:
        socket = getattr(self.handler, "__self__", None)
        if isinstance(socket, async_socket.AsyncSocket):
            socket.__class__ = InlineSocket
            socket.websocket = self
        return await super().__call__(environ)

    def stamping_transport(self) -> StampingTransport | None:
        """The stamping front of this WebSocket's transport, put in place at the first call (the response has its
        writer once prepared)."""
        if self.stamping is None and self._sock is not None:
            writer = getattr(self._sock, "_writer", None)
            if writer is not None:
                if isinstance(writer.transport, StampingTransport):
                    self.stamping = writer.transport
                else:
                    self.stamping = StampingTransport.of(writer.transport)
                    if self.stamping is not None:
                        writer.transport = self.stamping
        return self.stamping

    async def send(self, message: Any) -> None:
        self.writing += 1
        try:
            await super().send(message)
        finally:
            self.writing -= 1


class InlineSocket(async_socket.AsyncSocket):
    """An Engine.IO server socket that writes a packet on its WebSocket at once when nothing waits before it."""

    websocket: InlineWebSocket | None = None
    inline_writes = 0
    """Packets written by their sender (the rest went through the queue and the writer task)."""
    kernel_writes = 0
    """Inline writes whose :attr:`written_ns` is the kernel's send stamp."""
    written_ns: int | None = None
    """When the last packet sent was written: the kernel's send stamp where it gave one, else ``perf_counter_ns``
    right before the write (encoded, framed next); None when it went through the queue."""

    async def send(self, pkt: Any) -> None:
        self.written_ns = None
        ws = self.websocket
        if ws is None or ws.writing or not self.upgraded or self.upgrading or not self.queue.empty():
            await super().send(pkt)
            return
        if not await self.check_ping_timeout():
            return
        encoded = pkt.encode()
        stamping = ws.stamping_transport()
        self.written_ns = time.perf_counter_ns()
        if stamping is not None:
            stamping.arm(self.written_ns)
        try:
            await ws.send(encoded)
        except Exception:  # noqa: BLE001 - the writer task meets the same error and ends the connection, as before
            self.written_ns = None
            await self.queue.put(pkt)
            return
        finally:
            sent_ns = stamping.disarm() if stamping is not None else None
        self.inline_writes += 1
        if sent_ns is not None:
            self.written_ns = sent_ns
            self.kernel_writes += 1


def written_ns(server: socketio.AsyncServer, sid: str, namespace: str = "/") -> int | None:
    """When the last packet sent to Socket.IO client ``sid`` was written (:attr:`InlineSocket.written_ns`: the
    kernel's send stamp, or ``perf_counter_ns`` right before the write); None if it was queued for the writer
    task (or the client is gone)."""
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    socket = server.eio.sockets.get(eio_sid) if eio_sid is not None else None
    return getattr(socket, "written_ns", None)
