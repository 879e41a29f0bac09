"""The kernel's CLOCK_REALTIME stamps on ``perf_counter_ns``'s clock, for the harness and the reference server alike.

Every stamp bootbench and its reference server record is ``time.perf_counter_ns()`` (CLOCK_MONOTONIC on
Linux). The kernel stamps it reads are CLOCK_REALTIME: the harness's receive stamps (``SO_TIMESTAMPNS``,
bootbench.providers.kernel_clock) and the reference server's send stamps (``SO_TIMESTAMPING``, the server's
Aivoco emulation). The two clocks run at the same rate (NTP slews both alike) and differ by an offset that
only a step of the wall clock changes. :class:`ClockBridge` measures that offset by reading CLOCK_REALTIME
between two perf_counter reads, keeping the tightest of :data:`CALIBRATION_READS` brackets (the error is at
most half its width, :attr:`ClockBridge.error_ns`, typically well under a microsecond), measures it again
every :data:`REFRESH_NS`, and at once when a converted stamp falls after its own read or more than
:data:`REFRESH_NS` before it (a step).

Standard library only: the reference server, which imports nothing else of the harness but ``wire``, uses it.
"""

from __future__ import annotations

import struct
import time

TIMESPEC = "qq"
"""``struct timespec``: seconds and nanoseconds, two native 64-bit integers."""
TIMESPEC_BYTES = struct.calcsize(TIMESPEC)
CALIBRATION_READS = 5
REFRESH_NS = 1_000_000_000
"""How often the offset between the two clocks is measured again (it changes only when the wall clock is stepped)."""


class ClockBridge:
    """CLOCK_REALTIME nanoseconds to ``perf_counter_ns``'s clock, with the error bound of the conversion."""

    def __init__(self) -> None:
        self.offset_ns = 0
        """CLOCK_REALTIME minus perf_counter_ns."""
        self.error_ns = 0
        """Half the width of the bracket the offset was measured in: the conversion's error is at most this."""
        self.measured_ns = 0
        self.measure()

    def measure(self) -> None:
        """Measure the offset again: the tightest of :data:`CALIBRATION_READS` perf / realtime / perf brackets."""
        best_width = best_offset = None
        for _ in range(CALIBRATION_READS):
            before = time.perf_counter_ns()
            wall = time.clock_gettime_ns(time.CLOCK_REALTIME)
            after = time.perf_counter_ns()
            if best_width is None or after - before < best_width:
                best_width, best_offset = after - before, wall - (before + after) // 2
        self.offset_ns, self.error_ns, self.measured_ns = best_offset, (best_width + 1) // 2, after

    def to_perf(self, wall_ns: int, read_ns: int) -> int:
        """The kernel stamp ``wall_ns`` on perf_counter_ns's clock; ``read_ns``: perf_counter_ns after the read."""
        if read_ns - self.measured_ns > REFRESH_NS:
            self.measure()
        stamp = wall_ns - self.offset_ns
        if stamp > read_ns + self.error_ns or read_ns - stamp > REFRESH_NS:
            self.measure()  # the wall clock was stepped, or the bytes waited long: make sure of the offset
            stamp = wall_ns - self.offset_ns
        return min(stamp, read_ns)  # arrival is never after the read


def timespec_ns(payload: bytes) -> int | None:
    """The first ``struct timespec`` of a control message's payload (a kernel stamp) in nanoseconds; None when the
    payload is too short to hold one."""
    if len(payload) < TIMESPEC_BYTES:
        return None
    seconds, nanoseconds = struct.unpack_from(TIMESPEC, payload)
    return seconds * 1_000_000_000 + nanoseconds
