"""The harness's own work per cycle, timed in process: microseconds per call of each piece a cycle runs.

    python bench/cycle_costs.py              # each piece, best of 5 rounds of 2000 calls
    python bench/cycle_costs.py --json       # the same, as one JSON object

No network beyond one loopback connection and no Locust run: each piece is called on realistic inputs
(a 300 ms reply's chunks, a successful single-turn sample) so that a change
to one of them shows as a number, without the noise of a shared machine's
scheduling that bench/capacity.py's CPU per cycle carries. The pieces:

- ``record sample``: the master's (local process's) recording of a finished
  sample: its samples.jsonl line and the run log's line (``RunRecorder.add``);
- ``build sample``: the timeline's phases and the :class:`Sample` (the end of ``BootUser._run_cycle``);
- ``session state``: a new :class:`SessionState` (one per session);
- ``audible reply``: the detector fed a reply until it is audible (40 ms chunks, 60 or 300 ms of leading noise);
- ``decode an answer's 15 audio_response packets``: python-socketio's decoding of a 600 ms reply's chunks as
  the reference server writes them, every one (``all``) or only the first, the rest left unread once the
  answer is audible (``first only``, ``socketio_tuning.skipping_packet_class``, issue 23);
- ``read a frame from the kernel clock's queued reads``: websocket-client's read of one frame (2.6 KB audio
  chunks and short events) from a kernel-clock WebSocket whose reader thread has already queued the bytes (a
  loopback connection: the only piece that opens a socket; Linux);
- ``snapshot of N``: the live statistics the progress line, the web tab and ``/metrics`` recompute, over a
  run's N samples (every 5 s for the progress line, in the process that runs the users when it is local).
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bootbench.audible import REPLY_RATE  # noqa: E402
from bootbench.exporters import RunRecorder  # noqa: E402
from bootbench.providers.base import SessionState  # noqa: E402
from bootbench.samples import Sample, Timeline  # noqa: E402
from bootbench.providers.socketio_tuning import TolerantPacket  # noqa: E402
from bootbench.stats import snapshot  # noqa: E402
from bootbench.providers import kernel_clock  # noqa: E402
from websocket import ABNF  # noqa: E402

try:
    from bootbench.providers.socketio_tuning import skipping_packet_class
except ImportError:  # a checkout from before it (to time the code before a change)
    skipping_packet_class = None
try:
    from bootbench.stats import LiveSamples  # the run's own list of samples, with its live columns
except ImportError:  # a checkout from before it (to time the code before a change)
    LiveSamples = list

CALLS, ROUNDS = 2000, 5


def best_us(call, calls: int = CALLS, rounds: int = ROUNDS) -> float:
    """The fastest of ``rounds`` rounds of ``calls`` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(rounds):
        began = time.perf_counter_ns()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter_ns() - began) / calls / 1000)
    return round(best, 2)


def timeline(rng: random.Random) -> Timeline:
    t = 1_000_000_000
    tl = Timeline(cycle_start=t, connect_start=t - 50_000_000, connected=t - 40_000_000, start_sent=t + 100_000)
    tl.session_ready = tl.start_sent + int(rng.uniform(100, 300) * 1e6)
    tl.input_sent = tl.session_ready + 300_000
    tl.first_audio = tl.input_sent + int(rng.uniform(300, 900) * 1e6)
    tl.first_audible = tl.first_audio + 60_000_000
    tl.stop_sent, tl.stop_acked = tl.first_audible + 1_000_000, tl.first_audible + 2_000_000
    return tl


def sample_of(iteration: int, tl: Timeline) -> Sample:
    return Sample(iteration=iteration, worker="local", user=iteration % 500, started_at="2026-12-03T21:00:00.000+00:00",
                  ok=True, error_kind=None, error=None, connected_this_cycle=False, anomalies={},
                  greeting_ms=tl.greeting_ms(), answered_before_input_end_ms=tl.answered_before_input_end_ms(),
                  preamble=None, service_latency_ms=None, clip="sine", **tl.phases(), turns=None, cold_penalty_ms=None)


def reply_chunks(rng: np.random.Generator, leading_ms: float = 60) -> list[bytes]:
    """A reply as the reference server sends it: ``leading_ms`` of -70 dBFS noise, then a tone; 40 ms chunks."""
    noise = rng.normal(0, 10, int(leading_ms / 1000 * REPLY_RATE))
    tone = 8000 * np.sin(np.arange(int(0.24 * REPLY_RATE)) * 2 * np.pi * 440 / REPLY_RATE)
    pcm = np.concatenate([noise, tone]).astype("<i2").tobytes()
    size = int(0.04 * REPLY_RATE) * 2
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


def frame_read_us() -> float:
    """websocket-client's read of one frame from a :class:`KernelWebSocket`'s queued reads, the bytes already taken
    off the kernel by the reader thread (what a driver's receive loop pays per message, without the wait)."""
    frames = [ABNF(1, 0, 0, 0, ABNF.OPCODE_TEXT, 0, payload).format()
              for payload in [b"4" + b"x" * 2600] * 3 + [b'42["session_ready",{}]'] * 2]
    count = CALLS * ROUNDS
    stream = b"".join(frames) * (count // len(frames))
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    try:
        client.setsockopt(socket.SOL_SOCKET, kernel_clock.SO_TIMESTAMPNS, 1)
        client.settimeout(10)
        ws = kernel_clock.KernelWebSocket(skip_utf8_validation=True)
        ws.sock, ws.connected = kernel_clock.StampedSocket(client, ws.bridge), True
        if hasattr(ws, "_recv_queued"):   # what KernelWebSocket.connect sets (absent before it: the library's path)
            ws.frame_buffer.recv = ws._recv_queued
        writer = threading.Thread(target=peer.sendall, args=(stream,))
        writer.start()
        writer.join()
        deadline = time.monotonic() + 30
        while sum(len(data) for data, _stamp in ws.sock._reader._chunks) < len(stream) and time.monotonic() < deadline:
            time.sleep(0.05)   # every byte queued by the reader thread: the timing below waits for none
        return best_us(ws.recv_data)
    finally:
        for sock in (client, peer, listener):
            sock.close()


def measure() -> dict[str, float]:
    rng = random.Random(7)
    results: dict[str, float] = {}
    folder = Path(tempfile.mkdtemp(prefix="bootbench-cycle-costs-"))
    recorder = RunRecorder(folder, "aivoco")
    try:
        samples = [sample_of(i, timeline(rng)) for i in range(CALLS * ROUNDS)]
        pending = iter(samples)
        results["record sample"] = best_us(lambda: recorder.add(next(pending)))
    finally:
        recorder.finish({}, ()) if False else None
        logging.getLogger().removeHandler(recorder._log_handler)
        logging.getLogger("bootbench.sessions").removeHandler(recorder._log_handler)
        recorder._log_handler.close()
        recorder._jsonl.close()
        shutil.rmtree(folder, ignore_errors=True)
    tl = timeline(rng)
    results["build sample"] = best_us(lambda: sample_of(1, tl))
    results["session state"] = best_us(lambda: SessionState(1))
    for leading_ms in (60, 300):
        chunks = reply_chunks(np.random.default_rng(7), leading_ms)

        def audible() -> None:
            state = SessionState(1)
            now = 0
            for chunk in chunks:
                state.answer_audio(chunk, now)
                now += 40_000_000
                if not state.decoding:
                    break

        results[f"audible reply, {leading_ms} ms leading noise (with its session state)"] = best_us(audible, calls=500)
    packets = [json.dumps(["audio_response", {"audio_data": base64.b64encode(chunk).decode()}],
                          separators=(",", ":")) for chunk in reply_chunks(np.random.default_rng(7), 360)]
    packets = ["2" + text for text in packets[:15]]
    results[f"decode an answer's {len(packets)} audio_response packets, all"] = best_us(
        lambda: [TolerantPacket(encoded_packet=text) for text in packets], calls=500)
    if skipping_packet_class is not None:
        decoded = []
        packet_class = skipping_packet_class(("audio_response",), lambda event: bool(decoded))

        def first_only() -> None:
            decoded.clear()
            for text in packets:
                decoded.append(packet_class(encoded_packet=text))

        results[f"decode an answer's {len(packets)} audio_response packets, first only"] = best_us(first_only,
                                                                                                    calls=500)
    results["read a frame from the kernel clock's queued reads (3 audio chunks, 2 events)"] = frame_read_us()
    for n in (4000, 100_000):
        population = LiveSamples()  # the run's own list, as the recorder keeps it
        for i in range(n):
            population.append(sample_of(i, timeline(rng)))
        results[f"snapshot of {n} (ms)"] = round(best_us(lambda: snapshot(population, 0), calls=1, rounds=3) / 1000, 2)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    results = measure()
    if args.json:
        print(json.dumps(results))
    else:
        for name, value in results.items():
            print(f"{value:10.2f}  {name}{'' if '(ms)' in name else ' (us)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
