"""What the kernel clock's reader threads cost per connection: one started per connection, or kept per owner.

    python bench/reader_threads.py                 # 200 owners x 5 successive connections, twice each way

Each owner (a driver, in bootbench) opens loopback connections one after
another: the server side sends 5 bytes, the client reads them through a
:class:`bootbench.providers.kernel_clock.StampedSocket` (its reader thread
takes them off the kernel with their stamp) and closes, then waits 20 ms.
It prints the CPU time of the whole process (every thread) per connection,
with ``ReaderThreads(keep=False)`` (a thread started and ended per
connection, as before) and with the threads kept, and how many threads
each way started. Gevent-patched, like a Locust process.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bootbench.providers import kernel_clock  # noqa: E402


def serve(listener: socket.socket) -> None:
    while True:
        peer, _address = listener.accept()
        peer.sendall(b"hello")
        gevent.spawn(lambda peer=peer: (peer.recv(10), peer.close()))


def owner(address: tuple, threads: kernel_clock.ReaderThreads, connections: int) -> None:
    for _ in range(connections):
        client = socket.create_connection(address)
        client.setsockopt(socket.SOL_SOCKET, kernel_clock.SO_TIMESTAMPNS, 1)
        stamped = kernel_clock.StampedSocket(client, kernel_clock.ClockBridge(), threads)
        assert stamped.recv(10) == b"hello" and stamped.unstamped_reads == 0
        stamped.close()
        gevent.sleep(0.02)


def measure(address: tuple, keep: bool, owners: int, connections: int) -> tuple[float, int]:
    """CPU microseconds per connection, and the threads started."""
    pools = [kernel_clock.ReaderThreads(keep=keep) for _ in range(owners)]
    before = time.process_time()
    gevent.joinall([gevent.spawn(owner, address, pool, connections) for pool in pools])
    spent = time.process_time() - before
    return 1e6 * spent / (owners * connections), sum(pool.started for pool in pools)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owners", type=int, default=200)
    parser.add_argument("--connections", type=int, default=5, help="successive connections per owner")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if kernel_clock.available() is not None:
        print(f"reader_threads.py: no kernel clock here ({kernel_clock.available()})", file=sys.stderr)
        return 2
    kernel_clock.hold_arrival_stamps()
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    gevent.spawn(serve, listener)
    for _ in range(args.rounds):
        for keep in (False, True):
            per_connection, started = measure(listener.getsockname(), keep, args.owners, args.connections)
            what = "threads kept per owner" if keep else "a thread per connection"
            print(f"{what:>24}: {per_connection:6.1f} us CPU per connection, {started} threads started "
                  f"for {args.owners * args.connections} connections")
            gevent.sleep(0.3)
    return 0


if __name__ == "__main__":
    sys.exit(main())
