"""bench/wire_capture.py: the packet capture that judges a client's stamps from outside its process.

In process: captures written with dpkt (segments split, merged, retransmitted,
missed; a port used again), read back into stamped WebSocket messages, and
probe rows given their capture stamps. Real processes (slow): tcpdump on the
loopback while bootbench runs against the reference server with each clock.
The kernel clock must record exactly the stamps the capture took (the
independent check of ``--clock kernel``); the process clock's stamps must come
after them.
"""

from __future__ import annotations

import shutil
from decimal import Decimal

import dpkt
import pytest
from wsproto.frame_protocol import FrameProtocol

from support.bench import bench_module

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

wire_capture = bench_module("wire_capture")

SERVER, CLIENT = 8000, 40000
UPGRADE = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
EPOCH = 1_764_000_000_000_000_000
"""An arbitrary CLOCK_REALTIME instant (ns) the fake captures start at."""


def frame(text: str) -> bytes:
    """One unmasked text frame, as a server sends it."""
    return FrameProtocol(client=False, extensions=[]).send_data(text, fin=True)


def packet(seq: int, data: bytes = b"", flags: int = dpkt.tcp.TH_ACK, sport: int = SERVER,
           dport: int = CLIENT) -> bytes:
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, flags=flags, data=data)
    ip = dpkt.ip.IP(src=b"\x7f\x00\x00\x01", dst=b"\x7f\x00\x00\x01", p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    return bytes(dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def write_capture(path, packets: list[tuple[int, bytes]]) -> None:
    """``packets``: (ns after :data:`EPOCH`, the packet), written with nanosecond stamps like tcpdump's."""
    with open(path, "wb") as file:
        writer = dpkt.pcap.Writer(file, nano=True)
        for offset_ns, data in packets:
            writer.writepkt(data, ts=Decimal(EPOCH + offset_ns) / Decimal(10**9))


def test_each_message_is_stamped_with_the_segment_that_brought_its_last_byte(tmp_path):
    ready, audio, late = frame('42["session_ready",{}]'), frame('42["audio_response",{"audio_data":"AAAA"}]'), \
        frame('42["audio_response",{"audio_data":"BBBB"}]')
    isn = 1000
    stream = UPGRADE + ready + audio + late
    ready_end = len(UPGRADE) + len(ready)
    split = ready_end + 10  # the first audio frame is split across two segments
    write_capture(tmp_path / "c.pcap", [
        (0, packet(isn, flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)),
        (1_000, packet(isn + 1, stream[:len(UPGRADE)])),
        (2_000, packet(isn + 1 + len(UPGRADE), stream[len(UPGRADE):split])),  # ready, then audio's first bytes
        (2_500, packet(isn + 1, stream[:len(UPGRADE)])),  # a retransmission: nothing new
        (3_000, packet(isn + 1 + split, stream[split:])),  # the rest of audio, and the next one whole
        (4_000, packet(isn, sport=CLIENT, dport=SERVER, data=b"ignored: the client's own bytes")),
    ])
    frames = wire_capture.read_streams(tmp_path / "c.pcap", SERVER)[CLIENT]
    assert [(f.arrival_ns - EPOCH, f.prefix[:19]) for f in frames] == [
        (2_000, b'42["session_ready",'), (3_000, b'42["audio_response"'), (3_000, b'42["audio_response"')]
    assert len(frames[1].prefix) == wire_capture.PREFIX_BYTES


def test_a_segment_the_capture_missed_ends_that_connections_messages_and_a_new_connection_starts_afresh(tmp_path):
    first, second = frame('42["session_ready",{}]'), frame('42["audio_response",{}]')
    write_capture(tmp_path / "c.pcap", [
        (0, packet(1, flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)),
        (10, packet(2, UPGRADE + first)),
        (20, packet(2 + len(UPGRADE) + len(first) + 5, second)),  # 5 bytes went missing before it
        (30, packet(9000, flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK)),  # the port used again by a new connection
        (40, packet(9001, UPGRADE + second)),
    ])
    frames = wire_capture.read_streams(tmp_path / "c.pcap", SERVER)[CLIENT]
    assert [f.arrival_ns - EPOCH for f in frames] == [10, 40]


def test_a_probe_row_gets_the_capture_stamps_of_its_own_ready_and_first_audio():
    Frame = wire_capture.Frame
    ready, audio, text = b'42["session_ready",{}]', b'42["audio_response",{}]', b'42["text_response",{}]'
    frames = [Frame(1_000, ready), Frame(1_500, text), Frame(2_000, audio), Frame(2_040, audio),
              Frame(9_000_000, ready), Frame(9_100_000, audio)]
    offset = 500  # CLOCK_REALTIME - perf_counter_ns in the probe
    rows = [  # recorded stamps on the perf clock: the first cycle read late, the second exactly
        {"port": CLIENT, "realtime_offset_ns": offset, "ready": {"handler": 1_300 - offset},
         "audio": {"handler": 2_900 - offset}},
        {"port": CLIENT, "realtime_offset_ns": offset, "ready": {"handler": 9_000_000 - offset},
         "audio": {"handler": 9_100_000 - offset}},
        {"port": CLIENT + 1, "realtime_offset_ns": offset, "ready": {"handler": 1}, "audio": {"handler": 2}},
    ]
    assert wire_capture.stamp_rows(rows, {CLIENT: frames}) == 2
    assert rows[0]["ready"]["kernel"] == 1_000 - offset and rows[0]["audio"]["kernel"] == 2_000 - offset
    assert rows[1]["ready"]["kernel"] == 9_000_000 - offset and rows[1]["audio"]["kernel"] == 9_100_000 - offset
    assert "kernel" not in rows[2]["ready"]


def test_stopping_a_capture_reports_what_the_kernel_dropped_instead_of_raising(tmp_path):
    """tcpdump's counts at its end, the dropped ones too: the caller decides (a capacity level keeps its other
    figures; a capture that raised lost the whole benchmark run, twice in one evening at 500 sessions)."""
    class Stopped:
        def send_signal(self, signum):
            self.signal = signum

        def communicate(self, timeout=None):
            return "", ("tcpdump: listening on lo\n900 packets captured\n2019 packets received by filter\n"
                        "1119 packets dropped by kernel\n")

    capture = wire_capture.WireCapture(Stopped(), tmp_path / "wire.pcap")
    assert capture.stop() == {"captured": 900, "received by filter": 2019, "dropped by kernel": 1119}


def test_without_tcpdump_the_bench_says_so_in_one_sentence(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder with no tcpdump in it
    assert wire_capture.unavailable() == "the client-side figures need tcpdump (apt-get install tcpdump)"
    monkeypatch.setattr(wire_capture.shutil, "which", lambda name: f"/usr/bin/{name}")  # installed, but not root
    monkeypatch.setattr(wire_capture.os, "geteuid", lambda: 1000)
    assert wire_capture.unavailable() == "the client-side figures need a packet capture, which needs root"


@pytest.mark.slow  # tcpdump, as the test below (make test-quick runs without it)
def test_a_capture_tcpdump_cannot_start_is_refused_in_its_own_words(tmp_path):
    with pytest.raises(RuntimeError, match=r"^tcpdump did not start: .*No such file or directory"):
        wire_capture.WireCapture.start(SERVER, tmp_path / "missing" / "wire.pcap")


@pytest.mark.slow
@pytest.mark.quiet  # tcpdump runs at SCHED_IDLE: under other workers' load it missed 6 of 9 cycles once
def test_the_kernel_clock_records_the_captures_own_stamps_and_the_process_clock_records_later_ones(tmp_path):
    assert shutil.which("tcpdump"), "tcpdump is not installed (.ci/run installs it)"
    runs = bench_module("accuracy_runs")
    server = runs.start_server("short", tmp_path / "truth.jsonl")
    try:
        waits = {}
        for clock in ("kernel", "process"):
            run = runs.run_client("probe", server.url, 3, 9, tmp_path, server, locust_args=("--clock", clock))
            rows = [r for r in run["rows"] if r.get("ok")]
            assert run["capture"]["stamped_rows"] == len(rows) == 9
            waits[clock] = [row[name]["handler"] - row[name]["kernel"] for row in rows for name in ("ready", "audio")]
    finally:
        server.stop()
    # ns. The same stamp, through two conversions to perf_counter_ns (bootbench's, the probe's): measured 0.4-3 µs
    assert max(abs(w) for w in waits["kernel"]) <= 10_000, sorted(waits["kernel"])
    # A handler's stamp comes after the read and the decoding: measured 0.2-2.2 ms
    assert min(waits["process"]) > 10_000, sorted(waits["process"])
    assert sorted(waits["process"])[len(waits["process"]) // 2] > 50_000, sorted(waits["process"])
