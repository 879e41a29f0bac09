"""How close a server's send stamp comes to the client's kernel arrival stamp of the same bytes, on loopback.

    python bench/send_stamps.py                 # 400 writes of 2.6 KB, 10 ms apart
    python bench/send_stamps.py --sends 1000 --gap 0.005 --json

The reference server's ground truth stamps each timed message when it is
written (bootbench.server.protocols.aivoco.socketio_tuning). Three ways to
take that stamp, each compared with the client's ``SO_TIMESTAMPNS`` arrival
stamp of the same write (a reader thread in ``recvmsg``, as bootbench's
kernel clock reads), all on CLOCK_REALTIME:

- ``before``: the clock read right before ``send`` (what the server did
  until 5 Dec 2026): it leads the arrival by the send system call's own path;
- ``after``: the clock read right after ``send`` returns;
- ``kernel``: the kernel's software send stamp of that call
  (``SO_TIMESTAMPING``, ``SOF_TIMESTAMPING_TX_SOFTWARE`` asked per call with
  a control message on ``sendmsg``, read from the error queue right after),
  what the server does now.

It prints, for each, |arrival - stamp| median / p99 / max in microseconds.
Linux only (exit 2 elsewhere).
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's bootbench

from bootbench.clocks import timespec_ns  # noqa: E402

SO_TIMESTAMPING, SO_TIMESTAMPNS = 37, 35
TX_SOFTWARE, SOFTWARE, OPT_TSONLY = 1 << 1, 1 << 4, 1 << 11


def spread_us(values: list[int]) -> dict[str, float]:
    ordered = sorted(abs(v) for v in values)
    return {"median": round(ordered[len(ordered) // 2] / 1000, 1),
            "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000, 1),
            "max": round(ordered[-1] / 1000, 1)}


def measure(sends: int, gap_s: float, size: int) -> dict:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOFTWARE | OPT_TSONLY)
    client.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    arrivals: list[int] = []

    def read() -> None:
        while True:
            data, ancdata, _flags, _address = client.recvmsg(1 << 16, socket.CMSG_SPACE(16))
            if not data:
                return
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    arrivals.append(timespec_ns(payload))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    request = [(socket.SOL_SOCKET, SO_TIMESTAMPING, struct.pack("I", TX_SOFTWARE))]
    payload = b"x" * size
    stamps: list[tuple[int, int, int | None]] = []
    for _ in range(sends):
        before = time.clock_gettime_ns(time.CLOCK_REALTIME)
        server.sendmsg([payload], request)
        after = time.clock_gettime_ns(time.CLOCK_REALTIME)
        kernel = None
        try:
            _data, ancdata, _flags, _address = server.recvmsg(0, 256, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            for level, kind, data in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                    kernel = timespec_ns(data)   # the first timespec: the software stamp
        except BlockingIOError:
            pass
        stamps.append((before, after, kernel))
        time.sleep(gap_s)
    server.close()
    reader.join(10)
    client.close()
    listener.close()
    if len(arrivals) != sends:
        raise RuntimeError(f"{len(arrivals)} reads for {sends} writes: writes merged (try a longer --gap)")
    rows = list(zip(arrivals, stamps))
    return {"sends": sends, "gap_s": gap_s, "bytes": size,
            "unstamped_by_kernel": sum(1 for _, (_, _, kernel) in rows if kernel is None),
            "before": spread_us([arrival - before for arrival, (before, _, _) in rows]),
            "after": spread_us([after - arrival for arrival, (_, after, _) in rows]),
            "kernel": spread_us([arrival - kernel for arrival, (_, _, kernel) in rows if kernel is not None])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=400)
    parser.add_argument("--gap", type=float, default=0.01, help="seconds between writes (default 0.01)")
    parser.add_argument("--bytes", type=int, default=2600, help="bytes per write (default 2600: an audio chunk)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        print("send_stamps.py: the kernel's send and arrival stamps used here are Linux's", file=sys.stderr)
        return 2
    result = measure(args.sends, args.gap, args.bytes)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['sends']} writes of {result['bytes']} bytes, {result['gap_s']} s apart on loopback; "
          f"{result['unstamped_by_kernel']} without a kernel send stamp right after the call")
    for name in ("before", "after", "kernel"):
        s = result[name]
        print(f"  {name:7s} |arrival - stamp| median {s['median']} us, p99 {s['p99']} us, max {s['max']} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
