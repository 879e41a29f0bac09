"""The one place the reference server reaches into python-socketio / python-engineio internals, and why.

(The server's counterpart of ``bootbench/providers/socketio_tuning.py``, which is the client's; the server
imports nothing of the harness.)

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
"""

from __future__ import annotations

import time
from typing import Any

import socketio
from engineio import async_socket
from engineio.async_drivers import aiohttp as engineio_aiohttp
from socketio import packet as sio_packet


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


class InlineWebSocket(engineio_aiohttp.WebSocket):
    """python-engineio's aiohttp WebSocket, which makes its socket an :class:`InlineSocket` and counts its sends."""

    writing = 0
    """Sends on this WebSocket in progress (the writer task's or an inline one) that have not returned: one
    suspended in aiohttp's drain may hold packets taken from the queue, which must go first."""

    async def __call__(self, environ: dict[str, Any]) -> Any:
        socket = getattr(self.handler, "__self__", None)
        if isinstance(socket, async_socket.AsyncSocket):
            socket.__class__ = InlineSocket
            socket.websocket = self
        return await super().__call__(environ)

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
    written_ns: int | None = None
    """``perf_counter_ns`` right before the last packet sent was written (encoded, framed next); None when it went
    through the queue."""

    async def send(self, pkt: Any) -> None:
        self.written_ns = None
        ws = self.websocket
        if ws is None or ws.writing or not self.upgraded or self.upgrading or not self.queue.empty():
            await super().send(pkt)
            return
        if not await self.check_ping_timeout():
            return
        encoded = pkt.encode()
        self.written_ns = time.perf_counter_ns()
        try:
            await ws.send(encoded)
        except Exception:  # noqa: BLE001 - the writer task meets the same error and ends the connection, as before
            self.written_ns = None
            await self.queue.put(pkt)
            return
        self.inline_writes += 1


def written_ns(server: socketio.AsyncServer, sid: str, namespace: str = "/") -> int | None:
    """When the last packet sent to Socket.IO client ``sid`` was written: ``perf_counter_ns`` taken right before its
    frame went to the kernel; None if it was queued for the writer task (or the client is gone)."""
    eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
    socket = server.eio.sockets.get(eio_sid) if eio_sid is not None else None
    return getattr(socket, "written_ns", None)
