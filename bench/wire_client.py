"""The floor: the bootbench cycle on raw sockets, timed by the kernel's receive timestamps.

    python bench/wire_client.py URL --users 10 --iterations 200 --out wire.jsonl

No Socket.IO library and no scheduler in the way: each user is a plain
thread speaking Engine.IO/Socket.IO text frames over its own WebSocket, and
every received frame is stamped with the kernel's arrival time
(``SO_TIMESTAMPNS``, taken when the packet reaches the socket, however late
the thread reads it). What this client measures differs from the server's
own intervals only by the server's jitter between taking its timestamp and
writing the frame: the accuracy no client of this server can beat. Linux only.

One JSON line per iteration: ``sid``, ``first_response_ms`` (both ends kernel
stamps), ``session_start_ms`` (send call -> kernel stamp), and ``ready_rx_ns`` /
``audio_rx_ns``: the kernel stamps on ``time.perf_counter_ns()``'s clock
(CLOCK_MONOTONIC, shared by every process of the machine), so they can be set
against the server's ``t_ns``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import time
from urllib.parse import urlparse

import numpy as np

from bootbench.audio import Stimulus
from user_threads import run_users

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
START = {"auth_key": "bootbench-reference", "system_message": "", "voice_choice": "female", "custom_functions": []}


def _realtime_to_monotonic(realtime_ns: int) -> int:
    """A CLOCK_REALTIME stamp on CLOCK_MONOTONIC, with the offset read now (the two never jump apart)."""
    return realtime_ns - (time.clock_gettime_ns(time.CLOCK_REALTIME) - time.perf_counter_ns())


class WireSocket:
    """One WebSocket carrying Engine.IO v4 text frames; ``frames()`` yields (kernel stamp, text)."""

    def __init__(self, url: str, timeout: float = 15.0) -> None:
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port or 80), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {parsed.netloc}\r\n"
                           f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = bytearray()
        self.stamps: list[tuple[int, int]] = []  # (offset in buf where a read started, kernel stamp)
        while b"\r\n\r\n" not in self.buf:
            self._read()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head.decode(errors="replace"))
        self.buf = bytearray(rest)
        self.stamps = [(0, self.stamps[-1][1])] if rest else []

    def _read(self) -> None:
        data, ancdata, _flags, _addr = self.sock.recvmsg(1 << 20, 64)
        if not data:
            raise ConnectionError("closed by the server")
        stamp = time.clock_gettime_ns(time.CLOCK_REALTIME)
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = struct.unpack("qq", payload[:16])
                stamp = sec * 1_000_000_000 + nsec
        self.stamps.append((len(self.buf), stamp))
        self.buf += data

    def _stamp_at(self, offset: int) -> int:
        """Kernel stamp of the read that brought the byte at ``offset``."""
        return [s for o, s in self.stamps if o <= offset][-1]

    def _consume(self, end: int) -> None:
        covering, rest = None, []
        for o, s in self.stamps:
            if o < end:
                covering = s
            else:
                rest.append((o - end, s))
        del self.buf[:end]
        if self.buf and (not rest or rest[0][0] > 0):
            rest.insert(0, (0, covering))
        self.stamps = rest

    def frame(self) -> tuple[int, str]:
        """The next text frame and the kernel stamp of the read that completed it."""
        while True:
            b = self.buf
            need = 1 << 62
            if len(b) >= 2:
                length, start = b[1] & 0x7F, 2
                if length == 126:
                    start = 4
                    length = struct.unpack(">H", b[2:4])[0] if len(b) >= 4 else 1 << 62
                elif length == 127:
                    start = 10
                    length = struct.unpack(">Q", b[2:10])[0] if len(b) >= 10 else 1 << 62
                need = start + length
            if len(b) < need:
                self._read()
                continue
            stamp = self._stamp_at(need - 1)
            opcode = b[0] & 0x0F
            text = bytes(b[start:need]).decode()
            self._consume(need)
            if opcode == 1:
                return stamp, text
            if opcode == 8:
                raise ConnectionError("close frame")

    def send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                                bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                                bytes([0x80 | 127]) + struct.pack(">Q", n))
        mask = os.urandom(4)
        padded = np.frombuffer(payload + b"\0" * (-n % 4), dtype=np.uint32)
        masked = (padded ^ np.frombuffer(mask, dtype=np.uint32)).tobytes()[:n]
        self.sock.sendall(head + mask + masked)

    def emit(self, event: str, data=None) -> int:
        """Send a Socket.IO event; the ``perf_counter_ns()`` just before the send call."""
        message = "42" + json.dumps([event] if data is None else [event, data], separators=(",", ":"))
        sent = time.perf_counter_ns()
        self.send(message)
        return sent

    def event(self, *names: str) -> tuple[int, str]:
        """Wait for one of the named events (answering pings); its kernel stamp (realtime ns) and name."""
        while True:
            stamp, text = self.frame()
            if text == "2":
                self.send("3")
            elif text.startswith("42["):
                name = text[4:text.index('"', 4)]
                if name in names:
                    return stamp, name


def user(url: str, tickets, out: list, wait_s: float) -> None:
    ws = WireSocket(url)
    _stamp, opened = ws.frame()
    if not opened.startswith("0"):
        raise ConnectionError(opened)
    ws.send("40")
    _stamp, connected = ws.frame()
    sid = json.loads(connected[2:])["sid"]
    chunk = Stimulus.sine().chunks()[0]
    audio_msg = {"audio_data": chunk.base64, "has_audio": chunk.has_audio, "max_amplitude": chunk.peak}
    for iteration in tickets:
        row = {"iteration": iteration, "sid": sid, "ok": False, "session_start_ms": None, "first_response_ms": None}
        sent = ws.emit("start_call", START)
        ready, name = ws.event("session_ready", "error", "auth_failed")
        if name == "session_ready":
            ready_mono = _realtime_to_monotonic(ready)
            ws.emit("audio_data", audio_msg)
            audio, _ = ws.event("audio_response")
            row.update(ok=True, session_start_ms=(ready_mono - sent) / 1e6, first_response_ms=(audio - ready) / 1e6,
                       ready_rx_ns=ready_mono, audio_rx_ns=_realtime_to_monotonic(audio))
        ws.emit("stop_call")
        ws.event("session_ended")
        out.append(row)
        time.sleep(wait_s)
    ws.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--users", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--wait-ms", type=float, default=100.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    run_users(user, (args.url, args.wait_ms / 1000), args.users, args.iterations, args.out)

if __name__ == "__main__":
    main()
