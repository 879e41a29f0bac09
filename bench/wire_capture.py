"""The kernel's arrival stamps of a server's WebSocket messages, taken by a packet capture outside the client.

    capture = WireCapture.start(server_port, work / "wire.pcap")   # tcpdump on lo, nanosecond stamps
    ... run the client ...
    capture.stop()                                                 # raises if the kernel dropped a packet
    streams = read_streams(capture.path, server_port)              # {client port: [Frame, ...]} in stream order

Why a capture. A client's own stamps cannot judge themselves: bootbench's
kernel clock (``--clock kernel``) records the very ``SO_TIMESTAMPNS`` stamp
a probe inside the process would read, so comparing the two measures
nothing. tcpdump gets its packets from the same receive path (loopback
delivers every segment through ``netif_rx``, where the kernel stamps it
once, for the packet tap and the TCP socket alike), but keeps one stamp
per segment, before TCP merges segments the client has not read yet into
one buffer (and one, later, stamp). So a frame's capture stamp is the
arrival of the segment that completed it, however late or however
differently the client read it, and whichever clock the client used.

What is captured: the server's segments only (``tcp src port P``), full
length, ``--time-stamp-precision=nano`` (CLOCK_REALTIME); libpcap drops the
outgoing copy of a loopback packet, so each segment appears once, at its
arrival. tcpdump runs with the least CPU priority (``SCHED_IDLE``): its
stamps are the kernel's, so how late it reads does not change them, as long
as its buffer (:data:`BUFFER_KIB`) holds what it has not read. :meth:`stop`
raises when the kernel dropped a packet.

How the stream is read back: per client port, the segments in sequence order
(a retransmitted byte is taken once), the HTTP upgrade response skipped, the
rest fed to wsproto's frame parser; a frame is stamped with the segment that
brought its last byte. A gap in the sequence (a packet the capture missed)
ends that connection's frames there.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dpkt
from wsproto.frame_protocol import FrameProtocol, Opcode

BUFFER_KIB = 256 * 1024
"""tcpdump's kernel buffer (``-B``): about 30 s of a 500-session run's server traffic."""
PREFIX_BYTES = 40
"""How much of each message's start :class:`Frame` keeps (enough for a Socket.IO event's name)."""
HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True)
class Frame:
    """One WebSocket message from the server: its capture stamp (CLOCK_REALTIME ns) and its first bytes."""

    arrival_ns: int
    prefix: bytes


def unavailable() -> str | None:
    """Why this machine cannot capture (one sentence), or None when it can: tcpdump installed, run as root."""
    if shutil.which("tcpdump") is None:
        return "the client-side figures need tcpdump (apt-get install tcpdump)"
    if os.geteuid() != 0:
        return "the client-side figures need a packet capture, which needs root"
    return None


class WireCapture:
    """A running tcpdump of the server's segments on the loopback interface."""

    def __init__(self, process: subprocess.Popen, path: Path) -> None:
        self.process, self.path = process, path

    @classmethod
    def start(cls, server_port: int, path: Path) -> "WireCapture":
        """tcpdump on ``lo`` for ``tcp src port server_port`` into ``path``; returns once it is capturing."""
        why = unavailable()
        if why is not None:
            raise RuntimeError(why)
        # --immediate-mode: each packet reaches tcpdump as it comes. Without it libpcap takes the kernel's ring a
        # block at a time (a block is handed over when full or after tcpdump's 1 s timeout), and the SIGINT of
        # stop() ends tcpdump before it has read the block in progress: the capture then lacked the run's last
        # packets (82 captured of 164 received by the filter, or 42: cycles with no stamps).
        argv = [shutil.which("tcpdump"), "-i", "lo", "-n", "-s", "0", "-B", str(BUFFER_KIB), "--time-stamp-precision=nano",
                "--immediate-mode", "-w", str(path), f"tcp src port {server_port}"]
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=lambda: os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0)))
        said = []
        for line in process.stderr:  # "tcpdump: listening on lo, ..." once the socket is open (a warning may come first)
            if "listening on" in line:
                return cls(process, path)
            said.append(line.strip())
        process.wait()  # stderr ended: tcpdump has exited
        raise RuntimeError(f"tcpdump did not start: {' '.join(said) or f'exit code {process.returncode}'}")

    def stop(self) -> dict:
        """Stop tcpdump; what it counted (``captured``, ``received by filter``, ``dropped by kernel``).

        A capture with ``dropped by kernel`` above 0 has gaps (tcpdump runs at SCHED_IDLE and, behind busy
        SCHED_FIFO processes on both cores, can fall behind for longer than its buffer lasts): its stamps must not
        be used (:func:`bench.accuracy_runs.stamp_from_capture`), but the run's other figures still hold.
        """
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise RuntimeError("tcpdump did not stop within 30 s") from None
        counts = {name: int(number) for number, name in
                  re.findall(r"(\d+) packets? (captured|received by filter|dropped by kernel)", err)}
        return counts


def read_streams(path: Path, server_port: int) -> dict[int, list[Frame]]:
    """Every WebSocket message the server sent, per client port, in stream order (see the module's doc)."""
    streams: dict[int, _Stream] = {}
    with open(path, "rb") as file:
        for stamp, packet in dpkt.pcap.Reader(file):
            ip = dpkt.ethernet.Ethernet(packet).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            if tcp.sport != server_port:
                continue
            arrival_ns = int(stamp * 1_000_000_000)
            if tcp.flags & dpkt.tcp.TH_SYN:  # a new connection (a port may be used again): start afresh
                streams[tcp.dport] = _Stream(tcp.seq + 1, streams.get(tcp.dport))
                continue
            stream = streams.get(tcp.dport)
            if stream is not None and tcp.data:
                stream.segment(tcp.seq, bytes(tcp.data), arrival_ns)
    return {port: stream.all_frames() for port, stream in streams.items()}


class _Stream:
    """One connection's server-to-client bytes, reassembled and parsed into stamped frames."""

    def __init__(self, next_seq: int, earlier: "_Stream | None") -> None:
        self.next_seq = next_seq
        self.earlier = earlier.all_frames() if earlier is not None else []
        self.frames: list[Frame] = []
        self.broken = False
        self._header = b""
        self._parser: FrameProtocol | None = None
        self._partial = b""

    def segment(self, seq: int, data: bytes, arrival_ns: int) -> None:
        if self.broken:
            return
        offset = (self.next_seq - seq) % 2**32
        if offset >= 2**31:  # seq is ahead of what we have: the capture missed a segment
            self.broken = True
            return
        data = data[offset:]  # bytes already taken (a retransmission) are skipped
        if not data:
            return
        self.next_seq = (self.next_seq + len(data)) % 2**32
        if self._parser is None:
            self._header += data
            end = self._header.find(HEADER_END)
            if end < 0:
                return
            data = self._header[end + len(HEADER_END):]
            self._parser = FrameProtocol(client=True, extensions=[])
        self._parser.receive_bytes(data)
        for frame in self._parser.received_frames():
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONTINUATION):
                payload = frame.payload.encode() if isinstance(frame.payload, str) else bytes(frame.payload)
                if len(self._partial) < PREFIX_BYTES:
                    self._partial += payload[:PREFIX_BYTES - len(self._partial)]
                if frame.message_finished:
                    self.frames.append(Frame(arrival_ns, self._partial))
                    self._partial = b""

    def all_frames(self) -> list[Frame]:
        return self.earlier + self.frames


READY, AUDIO = b'42["session_ready"', b'42["audio_response"'
"""How the two timed Aivoco messages start on the wire (Engine.IO message 4, Socket.IO event 2)."""
SLACK_NS = 1_000_000
"""A recorded stamp may precede its capture stamp by this much (the two clocks' conversion) and still match."""


def stamp_rows(rows: list[dict], streams: dict[int, list[Frame]]) -> int:
    """Give each probe row's ``ready`` and ``audio`` their capture stamp as ``kernel``; how many rows got both.

    A row (bench/probe_locustfile.py) names its connection's ``port`` and has
    bootbench's recorded stamps (``handler``) and ``realtime_offset_ns``. Its
    ``session_ready`` is the last one the capture has on that connection at or
    before the recorded one (a recorded stamp is never earlier than the
    arrival; the one before is a whole cycle earlier); its first audio is the
    first ``audio_response`` after that ``session_ready`` and before the next.
    ``kernel`` is on the row's ``perf_counter_ns`` clock, like ``handler``.
    """
    matched = 0
    for row in rows:
        frames = streams.get(row.get("port"))
        ready, audio = row.get("ready") or {}, row.get("audio") or {}
        if not frames or ready.get("handler") is None or row.get("realtime_offset_ns") is None:
            continue
        offset = row["realtime_offset_ns"]
        latest = ready["handler"] + offset + SLACK_NS
        at = max((i for i, f in enumerate(frames) if f.prefix.startswith(READY) and f.arrival_ns <= latest),
                 default=None)
        if at is None:
            continue
        ready["kernel"] = frames[at].arrival_ns - offset
        for frame in frames[at + 1:]:
            if frame.prefix.startswith(READY):
                break
            if frame.prefix.startswith(AUDIO):
                if audio.get("handler") is not None:
                    audio["kernel"] = frame.arrival_ns - offset
                    matched += 1
                break
    return matched
