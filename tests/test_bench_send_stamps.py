"""bench/send_stamps.py, in a process of its own: the kernel's send stamp the reference server reads is there right
after the call, and it is never further from the client's arrival stamp than a clock read before the send."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bootbench.providers import kernel_clock
from support.processes import ROOT

pytestmark = pytest.mark.skipif(kernel_clock.available() is not None, reason="needs the kernel's arrival stamps")


def test_the_kernel_send_stamp_comes_with_the_call_and_sits_between_the_send_and_the_arrival():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "send_stamps.py"), "--sends", "60", "--gap", "0.005",
                           "--json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sends"] == 60 and result["unstamped_by_kernel"] == 0
    # Structural, not a timing goal: the kernel stamps the segment after the call began and before the client's
    # arrival stamp, so it is never further from the arrival than the clock read before the call.
    assert result["kernel"]["median"] <= result["before"]["median"]
    assert result["kernel"]["max"] < 50_000   # us: generous, a busy machine may delay the loopback delivery
