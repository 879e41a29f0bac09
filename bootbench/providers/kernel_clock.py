"""Kernel arrival stamps for websocket-client connections: when the bytes that completed a message reached the machine.

    ws = websocket.create_connection(url, class_=kernel_clock.socket_class("kernel"), ...)
    opcode, data = ws.recv_data(); received = ws.arrival_ns()   # on perf_counter_ns's clock

Every driver's frames go through websocket-client (the WebSocket drivers
directly, Aivoco through python-engineio's websocket transport, which takes
the same ``class_``). A receive stamp taken by the handler includes every
wait of the process before the handler ran (a busy gevent hub, other
sessions' messages first). :class:`KernelWebSocket` sets ``SO_TIMESTAMPNS``
and has its bytes taken off the kernel by a native thread (:class:`ArrivalReader`)
instead, so the stamp of a message is the kernel's arrival time of the bytes that
completed it, however late the process handles them. This module is the one place
bootbench does it, and the one place it leans on websocket-client for it;
tests/test_kernel_clock.py fails when the library stops reading through it.

How a stamp belongs to its message:

- ``recvmsg`` stamps a read with the arrival of the last kernel buffer it
  took bytes from, and the kernel merges a segment into the unread buffer
  before it (TCP receive-queue coalescing), giving the merged buffer the newer
  segment's stamp. Bytes still unread when the next segment arrives would
  carry its stamp; the cure is to read before it arrives.
- :class:`ArrivalReader`'s thread waits inside a blocking ``recvmsg``: the
  kernel hands it the bytes in the system call (no GIL needed) as soon as it
  wakes the thread, whatever the gevent hub is doing. It is out of the kernel
  only while it takes the GIL back to queue what it read (microseconds when the
  hub is idle, up to the interpreter's switch interval, 5 ms, when it is busy):
  only a segment that arrives within that gap shares the next read (and its
  stamp) with the one before it. The 5 ms holds while the thread that has the
  GIL is on a CPU: the GIL is handed over, never taken, so on a machine with
  more runnable threads than cores, where the OS can take the CPU from the
  GIL's holder (a Locust process not under SCHED_FIFO), the gap lasts until
  the holder runs again. Such a gap is counted on the connection: a read whose
  bytes had all arrived before the thread came back for them, spread over more
  than the switch interval since the previous read's (``late_reads``; the
  widest spread, ``late_window_ns``, is the most a message in such a read may
  be stamped late by), logged when the connection closes, and summed per
  driver (:class:`ReaderThreads`: the sample's ``late_stamp_reads``). A read that
  holds one message is counted too (its stamp is right): the count says where
  to look, not that a figure is wrong. The reference server's reply chunks
  are 40 ms apart, real services' 20 to 100 ms, and session ready is followed
  by nothing until bootbench sends its input.
- A frame is taken from the queued reads with no byte beyond it
  (:func:`exact_recv_strict`: the 2-byte header, the extended length, the
  payload, each asking for exactly what is missing; websocket_tuning's
  read-ahead is not used on these sockets), so a frame carries the stamp of
  the read that brought its last byte, never a later read's.
- TLS (``wss://``): the raw bytes (read the same way) are taken one TLS record
  at a time (its 5-byte header, then exactly its body) and decrypted through an
  ``ssl.SSLObject`` on memory BIOs (:class:`StampedTLSSocket`); plaintext is
  stamped with the arrival of the record that carried it (it could not be
  decrypted earlier). Certificates are verified exactly as websocket-client
  verifies them today: the context is the one its own ``_ssl_socket`` builds
  from the same ``sslopt`` (``--ca-bundle``, the system's CAs otherwise).

The clocks: ``SO_TIMESTAMPNS`` is CLOCK_REALTIME; every other stamp of a
cycle is ``time.perf_counter_ns()`` (CLOCK_MONOTONIC on Linux). The two run
at the same rate (NTP slews both alike) and differ by an offset that only a
step of the wall clock changes: :class:`bootbench.clocks.ClockBridge` measures
it and converts (the reference server converts its kernel send stamps with it too).

Where ``SO_TIMESTAMPNS`` is not available (not Linux, the option refused:
:func:`available`), :func:`socket_class` gives :class:`ProcessWebSocket`:
websocket-client's own socket, stamped with ``perf_counter_ns`` when the
frame is read, as before.
"""

from __future__ import annotations

import _socket
import _thread
import collections
import functools
import logging
import os
import socket
import ssl
import sys
import threading
import time
import types
from typing import Any, Callable

import websocket
from websocket import WebSocketConnectionClosedException, WebSocketTimeoutException
from websocket import _http as ws_http

from bootbench.clocks import ClockBridge, timespec_ns

log = logging.getLogger(__name__)

CLOCKS = ("kernel", "process")
"""``--clock``: kernel arrival stamps (where available), or the process's own stamps."""
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else None)
"""Linux's socket option (35 on every architecture Python runs on; older Pythons lack the constant)."""
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
ANCILLARY_BYTES = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
"""Room for one ``struct timespec`` control message."""
TLS_HEADER = 5
"""A TLS record's header: type, version (2 bytes), length (2 bytes)."""
READER_PRIORITY = 1
"""SCHED_FIFO priority of the reader threads where allowed, unless they start from a realtime thread (then one
above it): the lowest realtime one (:func:`prompt_this_thread`)."""
SWITCH_WAIT_S = 2.0
"""How long :func:`hold_arrival_stamps` waits for the kernel to start stamping (it takes well under 1 ms when idle)."""


def available() -> str | None:
    """None when this machine gives kernel arrival stamps on TCP sockets, else why not (a short phrase)."""
    if SO_TIMESTAMPNS is None or not hasattr(socket.socket, "recvmsg"):
        return f"{sys.platform} has no SO_TIMESTAMPNS/recvmsg"
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if not probe.getsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS):
            return "the kernel ignored SO_TIMESTAMPNS"
    except OSError as exc:
        return f"SO_TIMESTAMPNS refused ({exc.strerror or exc})"
    finally:
        probe.close()
    return None


class ArrivalStampHold:
    """A socket with ``SO_TIMESTAMPNS`` that this process keeps open, so the kernel keeps stamping every arrival.

    Linux stamps arriving packets only while some socket on the machine asks for it, and the first socket to
    ask (after none did) switches the stamping on from a deferred kernel work item (``net_enable_timestamp``),
    not in its ``setsockopt``: a segment that arrives before that work has run carries no stamp. With one
    session at a time every connection was that first socket (the previous one closed meanwhile), and a reply
    sent at once after the connect (OpenAI's ``session.created``) was read unstamped in 39 of 200 tries on an
    idle machine. While this hold is open the count never falls to zero, and a connection's own ``setsockopt``
    takes effect at once.
    """

    def __init__(self) -> None:
        self._sock = _socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(SWITCH_WAIT_S)
        self.confirmed = self._wait_for_a_stamp()
        """Whether a datagram to itself came back stamped within :data:`SWITCH_WAIT_S` (the switch is on)."""

    def close(self) -> None:
        """Let go of the switch (for a test that needs to see the kernel without this process's hold)."""
        self._sock.close()

    def _wait_for_a_stamp(self) -> bool:
        """Send datagrams to the hold itself until one arrives stamped: the deferred switch has then run."""
        deadline = time.monotonic() + SWITCH_WAIT_S
        while True:
            self._sock.sendto(b".", self._sock.getsockname())
            try:
                _data, ancdata, _flags, _address = self._sock.recvmsg(1, ANCILLARY_BYTES)
            except OSError:
                return False
            if any(level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS for level, kind, _ in ancdata):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.0005)


@functools.cache
def hold_arrival_stamps() -> ArrivalStampHold:
    """The process's :class:`ArrivalStampHold`, made (and the kernel's stamping confirmed on) at the first call
    (:func:`socket_class`, when a driver is made; :class:`KernelWebSocket` again, for direct users).

    Process-wide by nature: the switch it holds is the machine's, and one open socket holds it for every
    connection of the process, for the process's lifetime.
    """
    return ArrivalStampHold()


def socket_class(clock: str, threads: ReaderThreads | None = None) -> Callable[..., websocket.WebSocket]:
    """What a driver opens its connections with (websocket-client's ``class_``), for ``--clock`` ``clock``.

    ``kernel`` gives :class:`KernelWebSocket` where :func:`available` (its reader threads taken from ``threads``,
    the driver's own, when given), else (and for ``process``) :class:`ProcessWebSocket`. Both have
    :meth:`arrival_ns`.
    """
    if clock == "kernel" and available() is None:
        # Drivers ask for their class when they are made, outside any timed phase: the first hold of a process may
        # wait for the kernel's switch (well under 1 ms idle, longer when its deferred work waits for a CPU).
        hold_arrival_stamps()
        return KernelWebSocket if threads is None else functools.partial(KernelWebSocket, reader_threads=threads)
    return ProcessWebSocket


def kernel_stamp(ancdata: list, bridge: ClockBridge, read_ns: int) -> int | None:
    """The SO_TIMESTAMPNS stamp in ``recvmsg``'s ancillary data, on perf_counter_ns's clock; None if it has none."""
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
            wall_ns = timespec_ns(payload)
            if wall_ns is not None:
                return bridge.to_perf(wall_ns, read_ns)
    return None


class ArrivalReader:
    """A native thread that takes a connection's bytes off the kernel the moment they arrive, with their stamps.

    The thread sits in a blocking ``recvmsg`` on its own descriptor of the socket (``os.dup``; the socket is
    made blocking, which gevent's sends on it bear: they are small and the send buffer is large). The kernel
    wakes it when a segment arrives and hands it the queued bytes inside the system call, which needs no GIL,
    so a busy gevent hub (a slow handler, other sessions' messages, other processes on the cores) no longer
    lets the next segment reach the receive queue first and merge with the unread one (the newer stamp wins
    a merge: the module's doc). Between two reads the thread is out of the kernel only while it takes the GIL
    back and queues what it read: bytes that arrive in that gap share the next read's stamp, so a message is
    stamped late only when the next segment came within that gap (the interpreter's switch interval, 5 ms, at
    most when the hub is busy and the GIL's holder is on a CPU; microseconds when it is idle; the module's doc).
    Greenlets (or threads, unpatched) read the queued chunks with :meth:`read`, woken through a gevent async
    watcher (or a real Event). The descriptor itself never shows readable to a select or poll (the thread has
    taken the bytes): every read goes through :meth:`read`, as websocket-client's ``recv`` does.
    """

    CHUNK = 65_536
    """Bytes one ``recvmsg`` may take (a longer queue takes several reads, each stamped; the heap serves this size)."""

    def __init__(self, sock: socket.socket, bridge: ClockBridge, threads: ReaderThreads | None = None) -> None:
        self._sock = sock   # the caller's socket: its timeout is the read timeout
        self._bridge = bridge
        self._chunks: collections.deque[tuple[bytes, int]] = collections.deque()
        self._head, self._head_at, self._head_stamp = b"", 0, 0
        self.reads = 0
        self.unstamped_reads = 0
        self.late_reads = 0
        """Reads whose bytes had waited for the thread longer than the switch interval (:meth:`run`)."""
        self.late_window_ns = 0
        """The longest such wait: the most a message of this connection may be stamped late by."""
        self._late_ns = int(sys.getswitchinterval() * 1e9)
        self._threads = threads
        self.ended = False
        self.native_id: int | None = None
        self.priority: str | None = None
        """``fifo`` when the thread got SCHED_FIFO (:func:`prompt_this_thread`), else ``normal`` (set as it starts)."""
        self._wakeup = _Wakeup()
        raw = _socket.socket(fileno=os.dup(sock.fileno()))
        raw.setblocking(True)   # the descriptor's flag, shared with ``sock``: recvmsg waits in the kernel
        (threads or ReaderThreads(keep=False)).run(self, raw, wanted_priority())

    def run(self, raw: _socket.socket, priority: str) -> None:
        """The reader thread's loop over this connection, until its end (``priority``: what the thread runs at)."""
        self.native_id = threading.get_native_id()
        self.priority = priority
        previous = None
        try:
            while True:
                entered = time.perf_counter_ns()
                try:
                    data, ancdata, _flags, _address = raw.recvmsg(self.CHUNK, ANCILLARY_BYTES)
                except OSError:
                    data, ancdata = b"", []
                read = time.perf_counter_ns()
                if not data:
                    break
                stamp = kernel_stamp(ancdata, self._bridge, read)
                self.reads += 1
                if stamp is None:
                    self.unstamped_reads += 1
                    stamp = read
                elif previous is not None and stamp < entered and stamp - previous > self._late_ns:
                    # Bytes that were in the kernel before the thread came back for them, arrived over more than
                    # the switch interval since the last read's: the thread was kept from the kernel that long
                    # (it waits for the GIL, and the GIL's holder can be off the CPU), and an earlier message
                    # among them carries this read's (later) stamp.
                    self._note_late(stamp - previous)
                previous = stamp
                self._chunks.append((data, stamp))
                self._wakeup.notify()
        finally:
            raw.close()
            self.ended = True
            self._wakeup.notify(last=True)

    def _note_late(self, window_ns: int) -> None:
        self.late_reads += 1
        self.late_window_ns = max(self.late_window_ns, window_ns)
        if self._threads is not None:
            self._threads.count_late()

    def read(self, size: int) -> tuple[bytes, int | None]:
        """Up to ``size`` queued bytes of one read and that read's stamp, waiting for one; (b"", None) at the end.

        Raises TimeoutError after the socket's timeout, like a socket's ``recv``.
        """
        if self._head_at >= len(self._head):
            while not self._chunks:
                if self.ended and not self._chunks:   # again: the thread queues its last read, then ends
                    return b"", None
                self._wakeup.clear()
                if self._chunks or self.ended:
                    continue
                if not self._wakeup.wait(self._sock.gettimeout()):
                    raise TimeoutError("timed out")
            self._head, self._head_stamp = self._chunks.popleft()
            self._head_at = 0
        end = self._head_at + size
        data = self._head[self._head_at:end]
        self._head_at = min(end, len(self._head))
        return data, self._head_stamp

    def stop(self) -> None:
        """Wake the thread out of ``recvmsg`` for good (it ends at the end of the stream; this makes it end now)."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass   # not connected any more: the thread has seen the end already


def wanted_priority() -> int:
    """The SCHED_FIFO priority a reader thread started from the calling thread asks for (:func:`prompt_this_thread`).

    :data:`READER_PRIORITY`, or one above the calling thread where that one is realtime itself (a Locust process run
    under SCHED_FIFO, as bench/capacity.py does: a reader below it would wait for it to sleep; at 400 sessions that
    gave a client-side p99 of 7.5 ms and a load average of 20).
    """
    try:
        policy = os.sched_getscheduler(0)
        above = os.sched_getparam(0).sched_priority + 1 if policy in (os.SCHED_FIFO, os.SCHED_RR) else 0
        return min(max(READER_PRIORITY, above), os.sched_get_priority_max(os.SCHED_FIFO))
    except (AttributeError, OSError):
        return READER_PRIORITY


def prompt_this_thread(priority: int = READER_PRIORITY) -> str:
    """Put the calling thread under SCHED_FIFO ``priority`` where the process may; what it got (``fifo``/``normal``).

    A reader thread that waits for a CPU after the kernel woke it leaves the bytes in the receive queue meanwhile,
    where the next segment merges with them. On a machine busier than its cores (several worker processes per
    core, CI) that wait passes 20 ms under the normal policy (issue 23's notes: 12 connections in one parallel
    test run); a realtime thread runs at once. It does not hog the core: it runs for microseconds per read and
    sleeps on the GIL, not spinning, when another thread holds it. Without the privilege (CAP_SYS_NICE or an
    RLIMIT_RTPRIO, as in most containers) it stays as it was started.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (AttributeError, OSError):
        return "normal"
    return "fifo"


class ReaderThreads:
    """The native threads of one owner's connections (a driver's: one connection at a time, one after another).

    Starting a thread and giving it its priority cost about 0.1 ms of CPU per connection (bench/RESULTS.md), a
    tenth of what a whole cycle costs at 500 sessions: a thread whose connection has ended waits here
    :data:`IDLE_S` for the owner's next connection instead, and ends if none comes (so an owner that goes away
    leaves no thread behind for long). ``keep=False``: every connection starts its own thread, which ends with it.
    """

    IDLE_S = 5.0

    def __init__(self, keep: bool = True) -> None:
        self._keep = keep
        self._idle: list[_ReaderThread] = []
        self._lock = _real_lock()
        self.started = 0
        """Threads started so far (the rest of the connections reused one)."""
        self.late_reads = 0
        """Late reads (:meth:`ArrivalReader.run`) of every connection read so far: an owner's cycle has the difference
        across it (``Driver.late_stamp_reads``, the sample's ``late_stamp_reads``)."""

    def count_late(self) -> None:
        """From a reader thread: one more late read."""
        with self._lock:
            self.late_reads += 1

    def late_reads_counted(self) -> int | None:
        """:attr:`late_reads`, or None while no connection was read through these threads (the process clock reads
        none): what ``Driver.late_stamp_reads`` says."""
        return self.late_reads if self.started else None

    @property
    def idle(self) -> int:
        """Threads waiting for the next connection."""
        return len(self._idle)

    def run(self, reader: ArrivalReader, raw: _socket.socket, priority: int) -> None:
        """Have a thread read ``raw`` for ``reader`` at SCHED_FIFO ``priority``: an idle one, or a new one."""
        with self._lock:
            idle = self._idle.pop() if self._idle else None
        if idle is not None:
            idle.hand(reader, raw, priority)
            return
        self.started += 1
        _native_thread(_ReaderThread(self).serve, (reader, raw, priority))

    def park(self, thread: _ReaderThread) -> bool:
        """A thread whose connection ended offers itself for the next one; False: it is not kept, it ends."""
        if not self._keep:
            return False
        with self._lock:
            self._idle.append(thread)
        return True

    def retire(self, thread: _ReaderThread) -> bool:
        """A thread idle for :data:`IDLE_S` leaves; False when a connection was handed to it meanwhile."""
        with self._lock:
            if thread in self._idle:
                self._idle.remove(thread)
                return True
        return False


class _ReaderThread:
    """One native reader thread: reads a connection to its end, then waits for the next (:class:`ReaderThreads`)."""

    def __init__(self, threads: ReaderThreads) -> None:
        self._threads = threads
        self._job: tuple[ArrivalReader, _socket.socket, int] | None = None
        self._handed = _real_lock()
        self._handed.acquire()
        self._priority: int | None = None
        self._got = "normal"

    def hand(self, reader: ArrivalReader, raw: _socket.socket, priority: int) -> None:
        """From the connecting thread: the next connection for this (parked) thread."""
        self._job = (reader, raw, priority)
        self._handed.release()

    def serve(self, reader: ArrivalReader, raw: _socket.socket, priority: int) -> None:
        while True:
            if priority != self._priority:   # the first connection, or one from a thread of another priority
                self._priority, self._got = priority, prompt_this_thread(priority)
            reader.run(raw, self._got)
            del reader, raw   # nothing of the ended connection stays referenced while the thread waits
            if not self._threads.park(self):
                return
            if not self._handed.acquire(timeout=self._threads.IDLE_S):
                if self._threads.retire(self):
                    return
                self._handed.acquire()   # handed just as it timed out: the hand-over's release is certain
            (reader, raw, priority), self._job = self._job, None


class _Wakeup:
    """Wakes a reader (a greenlet under gevent, else a thread) from the :class:`ArrivalReader`'s native thread.

    Under gevent, the native thread may not touch the hub's objects: it sends an async watcher (the one
    thread-safe gevent call), whose callback sets a gevent event in the hub. Unpatched, a real Event. The
    watcher is closed in the hub once the thread has said it is done; a real lock keeps the thread from sending
    on a closed watcher (a leaked one would stay in the loop's list, which every wake-up scans).
    """

    def __init__(self) -> None:
        if gevent_patched():
            import gevent
            import gevent.event

            self._event = gevent.event.Event()
            self._async = gevent.get_hub().loop.async_(ref=False)
            self._async.start(self._on_async)
            self._lock = _real_lock()
            self._closing = self._closed = False
        else:
            self._event, self._async = threading.Event(), None

    def notify(self, last: bool = False) -> None:
        """From the native thread: wake the reader (``last``: no notify follows)."""
        if self._async is None:
            self._event.set()
            return
        with self._lock:
            self._closing = self._closing or last
            if not self._closed:
                self._async.send()

    def _on_async(self) -> None:   # in the hub
        self._event.set()
        if self._closing:   # the thread has sent its last: nothing uses the watcher any more
            with self._lock:
                self._async.stop()
                self._async.close()
                self._closed = True

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float | None) -> bool:
        if self._async is None:
            return self._event.wait(timeout)
        # The watcher holds the hub's loop only while a greenlet waits on it (an idle connection must not keep a
        # process's hub from seeing it has nothing left to do; without the hold, a wait with no other watcher
        # would be gevent's LoopExit).
        self._async.ref = True
        try:
            return self._event.wait(timeout)
        finally:
            if not self._closed:
                self._async.ref = False


def gevent_patched() -> bool:
    """Whether this process runs under gevent's monkey-patching (every Locust process does)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


def _real_lock() -> Any:
    """A lock of the OS's, not gevent's, where gevent has patched ``threading`` (native threads wait on it)."""
    if gevent_patched():
        import gevent.monkey

        return gevent.monkey.get_original("_thread", "allocate_lock")()
    return _thread.allocate_lock()


def _native_thread(target: Any, args: tuple) -> None:
    """Start a real OS thread even where gevent has patched ``threading`` (whose threads are greenlets)."""
    if gevent_patched():
        import gevent.monkey

        gevent.monkey.get_original("_thread", "start_new_thread")(target, args)
    else:
        _thread.start_new_thread(target, args)


class _ReadByThread:
    """What both stamped sockets share: the counters of their :class:`ArrivalReader`, and a close that stops it."""

    _sock: socket.socket
    _reader: ArrivalReader

    @property
    def reads(self) -> int:
        """recvmsg calls so far (the reader thread's)."""
        return self._reader.reads

    @property
    def unstamped_reads(self) -> int:
        return self._reader.unstamped_reads

    @property
    def late_reads(self) -> int:
        """Reads whose bytes waited for the reader thread longer than the switch interval (``ArrivalReader.run``)."""
        return self._reader.late_reads

    @property
    def late_window_ns(self) -> int:
        return self._reader.late_window_ns

    def close(self) -> None:
        self._reader.stop()
        self._sock.close()
        if self._reader.late_reads:   # here, not in the reader thread: logging's locks are gevent's under Locust
            log.info("kernel clock: %d read(s) of this connection took bytes that had waited up to %.1f ms for the "
                     "reader thread (the thread holding Python's GIL was kept off the CPU: more runnable threads than "
                     "cores?); a message in them may be stamped up to that late", self._reader.late_reads,
                     self._reader.late_window_ns / 1e6)


class StampedSocket(_ReadByThread):
    """A connected TCP socket (gevent's under Locust) whose bytes an :class:`ArrivalReader` takes with their stamps.

    :attr:`arrival_ns` is the stamp of the read the last ``recv`` returned bytes of (its read time when the
    kernel gave none: bytes queued before the option was set). Everything else is the socket's own.
    """

    def __init__(self, sock: socket.socket, bridge: ClockBridge, threads: ReaderThreads | None = None) -> None:
        self._sock = sock
        self._reader = ArrivalReader(sock, bridge, threads)
        self.arrival_ns: int | None = None
        self.recvs = 0

    def recv(self, bufsize: int) -> bytes:
        data, stamp = self._reader.read(bufsize)
        self.recvs += 1
        if data:
            self.arrival_ns = stamp
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class StampedTLSSocket(_ReadByThread):
    """TLS over a connected TCP socket, decrypted in memory, so every raw read is a ``recvmsg`` with its stamp.

    Made by :class:`KernelTLSContext` during websocket-client's connect. ``recv`` returns plaintext of one
    TLS record at a time and sets :attr:`arrival_ns` to the stamp of the raw read that completed that record.
    The SSLObject is used under a lock (a receive thread and senders share it); ciphertext goes out under the
    send lock, in the order it was made.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None,
                 bridge: ClockBridge, threads: ReaderThreads | None = None) -> None:
        self._sock = sock
        self._reader = ArrivalReader(sock, bridge, threads)
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=False,
                                     server_hostname=server_hostname)
        self._tls_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._plain = b""
        self._plain_at = 0
        self._plain_stamp: int | None = None
        self.arrival_ns: int | None = None
        self.records = 0
        self.context = context

    # ---- the TLS session

    def do_handshake(self) -> None:
        """Handshake over the socket; raises ssl.SSLCertVerificationError on a certificate that does not verify."""
        while True:
            try:
                with self._tls_lock:
                    self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                if self._read_record() is None:
                    raise ssl.SSLEOFError(8, "EOF occurred during the TLS handshake") from None
        self._flush()

    def getpeercert(self, binary_form: bool = False) -> Any:
        return self._tls.getpeercert(binary_form)

    def version(self) -> str | None:
        return self._tls.version()

    # ---- what websocket-client calls

    def recv(self, bufsize: int) -> bytes:
        if self._plain_at >= len(self._plain):
            self._decrypt_next()
            if not self._plain:
                return b""  # the peer closed: websocket-client raises its "connection lost"
        end = self._plain_at + bufsize
        data = self._plain[self._plain_at:end]
        self._plain_at = min(end, len(self._plain))
        self.arrival_ns = self._plain_stamp
        return data

    def pending(self) -> int:
        return len(self._plain) - self._plain_at

    def send(self, data: bytes) -> int:
        with self._send_lock:
            with self._tls_lock:
                written = self._tls.write(data)
                ciphertext = self._outgoing.read()
            self._sock.sendall(ciphertext)
        return written

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def __getattr__(self, name: str) -> Any:  # fileno, gettimeout, settimeout, shutdown, setsockopt...
        return getattr(self._sock, name)

    # ---- plumbing

    def _decrypt_next(self) -> None:
        """Read records until one yields plaintext (a session ticket yields none); b"" at the end of the stream."""
        self._plain, self._plain_at = b"", 0
        while True:
            stamp = self._read_record()
            if stamp is None:
                return
            parts, closed = [], False
            try:
                with self._tls_lock:
                    while True:
                        part = self._tls.read(65536)
                        if not part:  # close_notify received: the end of the stream
                            closed = True
                            break
                        parts.append(part)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                closed = True
            self._flush()
            if parts:
                self._plain, self._plain_stamp = b"".join(parts), stamp
                return
            if closed:
                return

    def _read_record(self) -> int | None:
        """Read exactly one TLS record into the incoming BIO; the stamp of the read that ended it, None at EOF."""
        header = self._read_exactly(TLS_HEADER)
        if header is None:
            return None
        body = self._read_exactly(int.from_bytes(header[0][3:5], "big"))
        if body is None:
            return None
        with self._tls_lock:
            self._incoming.write(header[0])
            self._incoming.write(body[0])
        self.records += 1
        return body[1] if body[0] else header[1]

    def _read_exactly(self, size: int) -> tuple[bytes, int] | None:
        """``size`` raw bytes and the stamp of the read that brought the last of them; None at the end."""
        parts, have, stamp = [], 0, time.perf_counter_ns()
        while have < size:
            data, read_stamp = self._reader.read(size - have)
            if not data:
                return None
            parts.append(data)
            have += len(data)
            stamp = read_stamp
        return b"".join(parts), stamp

    def _flush(self) -> None:
        with self._send_lock:
            with self._tls_lock:
                ciphertext = self._outgoing.read()
            if ciphertext:
                self._sock.sendall(ciphertext)


class KernelTLSContext:
    """What websocket-client takes as ``sslopt["context"]``: wraps the TCP socket in a :class:`StampedTLSSocket`.

    The real context is the one websocket-client's ``_ssl_socket`` builds from the caller's ``sslopt`` (a private
    function: tests/test_kernel_clock.py fails if it goes), so verification is exactly the library's.
    """

    def __init__(self, sslopt: dict[str, Any], bridge: ClockBridge, threads: ReaderThreads | None = None) -> None:
        self.sslopt = dict(sslopt)
        self.bridge = bridge
        self.threads = threads

    def wrap_socket(self, sock: socket.socket, do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                    server_hostname: str | None = None) -> StampedTLSSocket:
        tls = StampedTLSSocket(sock, verifying_context(self.sslopt, server_hostname), server_hostname, self.bridge,
                               self.threads)
        try:
            tls.do_handshake()
        except BaseException:
            # websocket-client closes only the socket it gave us: the reader thread's descriptor would keep the
            # connection open, and the server waiting in its handshake, until the server gives up.
            tls.close()
            raise
        return tls


def verifying_context(sslopt: dict[str, Any], hostname: str | None) -> ssl.SSLContext:
    """The SSLContext websocket-client would verify ``hostname`` with, given ``sslopt`` (never connected)."""
    unconnected = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        wrapped = ws_http._ssl_socket(unconnected, {**sslopt, "do_handshake_on_connect": False}, hostname)
        return wrapped.context
    finally:
        unconnected.close()


def exact_recv_strict(self, bufsize: int) -> bytes:
    """``frame_buffer.recv_strict`` that reads no byte beyond ``bufsize``, so the last read ends what was asked."""
    buffered = self.recv_buffer
    if not buffered:   # the common case: one queued read holds all that was asked
        data = self.recv(bufsize)
        if len(data) == bufsize:
            return data
        buffered.append(data)   # kept there should the next read time out, as the library's recv_strict keeps it
    have = sum(len(part) for part in buffered)
    while have < bufsize:
        data = self.recv(bufsize - have)
        buffered.append(data)
        have += len(data)
    self.recv_buffer = []
    return buffered[0] if len(buffered) == 1 else b"".join(buffered)


class KernelWebSocket(websocket.WebSocket):
    """websocket-client's WebSocket, its frames read exactly and stamped by the kernel (see the module's doc)."""

    clock = "kernel"

    def __init__(self, *args: Any, sockopt: Any = None, sslopt: dict | None = None,
                 reader_threads: ReaderThreads | None = None, **kwargs: Any) -> None:
        hold_arrival_stamps()   # the kernel stamps from the first segment on (taken by socket_class already)
        self.bridge = ClockBridge()
        self.reader_threads = reader_threads
        """Where the connection's reader thread comes from (:func:`socket_class`); None: a thread of its own."""
        sockopt = tuple(sockopt or ()) + ((socket.SOL_SOCKET, SO_TIMESTAMPNS, 1),)
        sslopt = {"context": KernelTLSContext(sslopt or {}, self.bridge, reader_threads)}
        super().__init__(*args, sockopt=sockopt, sslopt=sslopt, **kwargs)
        self.frame_buffer.recv_strict = types.MethodType(exact_recv_strict, self.frame_buffer)

    def connect(self, url: str, **options: Any) -> None:
        super().connect(url, **options)
        if not isinstance(self.sock, StampedTLSSocket):  # ws://: the handshake read byte by byte, nothing is ahead
            self.sock = StampedSocket(self.sock, self.bridge, self.reader_threads)
        self.frame_buffer.recv = self._recv_queued

    def _recv_queued(self, bufsize: int) -> bytes:
        """``WebSocket._recv`` for a stamped socket, whose ``recv`` takes queued reads and never returns early.

        The library's path (``_socket.recv``) asks the socket its timeout and builds a retry closure for sockets
        that raise EAGAIN or want a read, on each of the two or three reads of every frame; a stamped socket does
        neither. With :func:`exact_recv_strict`'s one-read case, a frame takes 4.1 us instead of 7.7
        (bench/cycle_costs.py). The outcomes the library handles come out the same: a timeout is
        ``WebSocketTimeoutException``; the end of the stream closes the socket and is
        ``WebSocketConnectionClosedException``.
        """
        sock = self.sock
        if sock is None:
            raise WebSocketConnectionClosedException("Connection is closed")
        try:
            data = sock.recv(bufsize)
        except TimeoutError:
            raise WebSocketTimeoutException("Connection timed out") from None
        if not data:
            sock.close()
            self.sock = None
            self.connected = False
            raise WebSocketConnectionClosedException("Connection to remote host was lost.")
        return data

    def arrival_ns(self) -> int:
        """The kernel's arrival stamp of the message :meth:`recv_data` (or ``recv``) returned last."""
        stamp = getattr(self.sock, "arrival_ns", None)
        return time.perf_counter_ns() if stamp is None else stamp


class ProcessWebSocket(websocket.WebSocket):
    """websocket-client's WebSocket, its messages stamped by the process when the frame has been read."""

    clock = "process"

    def arrival_ns(self) -> int:
        return time.perf_counter_ns()
