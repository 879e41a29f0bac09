"""Kernel arrival stamps for python-socketio clients: how long a message waited inside the client process.

    import kernel_stamps; kernel_stamps.install()      # before any connection is opened
    ... run a python-socketio client (websocket transport) ...
    kernel_stamps.take(sio)  # [(event, kernel_ns, read_ns), ...] since the last take, oldest first

``install()`` patches websocket-client to read with ``recvmsg`` and
``SO_TIMESTAMPNS`` (the kernel's arrival stamp of the bytes, however late the
process reads them) and python-engineio's ``Client._receive_packet`` to note,
for ``session_ready`` and ``audio_response``, the kernel stamp and the instant
the read loop has the decoded packet. Both on ``time.perf_counter_ns()``'s
clock. Set against the handler's own timestamp, this splits a client's
receive delay into kernel -> read loop and read loop -> handler, with no
server jitter in it. The patches add a few microseconds per read; they are
for diagnosis, and published bootbench figures come from unpatched runs.
Linux only.
"""

from __future__ import annotations

import socket
import struct
import time

import engineio.client
import websocket
import websocket._core

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
WATCHED = {'2["session_ready"': "ready", '2["audio_response"': "audio"}
_kernel_stamp: dict[int, int] = {}
_installed = False


def _stamped_recv(sock, bufsize):
    fd = sock.fileno()
    if fd not in _kernel_stamp:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        _kernel_stamp[fd] = 0
    try:
        data, ancdata, _flags, _addr = sock.recvmsg(bufsize, 64)
    except socket.timeout as exc:
        raise websocket.WebSocketTimeoutException(str(exc)) from None
    if not data:
        raise websocket.WebSocketConnectionClosedException("Connection to remote host was lost.")
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", payload[:16])
            offset = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.perf_counter_ns()
            _kernel_stamp[fd] = sec * 1_000_000_000 + nsec - offset
    return data


def install() -> None:
    """Patch websocket-client and python-engineio (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    plain_receive_packet = engineio.client.Client._receive_packet

    def _stamped_receive_packet(self, pkt):
        read = time.perf_counter_ns()
        data = pkt.data
        if isinstance(data, str):
            name = next((n for prefix, n in WATCHED.items() if data.startswith(prefix)), None)
            if name is not None:
                try:
                    kernel = _kernel_stamp.get(self.ws.sock.fileno())
                except (AttributeError, OSError):
                    kernel = None
                self.__dict__.setdefault("_kernel_stamps", []).append((name, kernel, read))
        return plain_receive_packet(self, pkt)

    websocket._core.recv = _stamped_recv
    engineio.client.Client._receive_packet = _stamped_receive_packet


def take(sio) -> list[tuple[str, int | None, int]]:
    """The stamps noted on ``sio``'s connection since the last call, oldest first."""
    stamps = sio.eio.__dict__.get("_kernel_stamps", [])
    sio.eio.__dict__["_kernel_stamps"] = []
    return stamps


def first_of_each(stamps) -> dict[str, dict[str, int | None]]:
    """``{"ready": {"kernel", "read"}, "audio": {...}}`` for the first message of each kind."""
    found: dict[str, dict[str, int | None]] = {}
    for name, kernel, read in stamps:
        found.setdefault(name, {"kernel": kernel, "read": read})
    return found
