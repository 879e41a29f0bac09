"""Diagnostic locustfile: bootbench plus kernel arrival stamps of every timed message (``kernel_stamps.py``).

    BOOTBENCH_PROBE_LOG=probe.jsonl locust -f bench/probe_locustfile.py --headless -u 50 -i 500 -H URL

One JSON line per iteration: ``iteration``, ``user``, ``sid``, ``cycle_start``
(``time.perf_counter_ns()`` as the cycle began, before bootbench's own), and for
``ready`` (``session_ready``) and ``audio`` (the first ``audio_response``)
three instants on ``time.perf_counter_ns()``'s clock: ``kernel`` (arrival),
``read`` (python-engineio's read loop has the packet) and ``handler``
(bootbench's own timestamp). ``(audio.handler - audio.kernel) -
(ready.handler - ready.kernel)`` is the part of a ``first_response_ms``
error that the client process added.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kernel_stamps  # noqa: E402

kernel_stamps.install()

from bootbench import events  # noqa: E402,F401  (bootbench's options and event hooks)
from bootbench import user  # noqa: E402  (the module: a BootUser name here would make Locust run it too)

_LOG = open(os.environ["BOOTBENCH_PROBE_LOG"], "a", buffering=1)


class ProbeUser(user.BootUser):
    """BootUser that writes, after each cycle, the stage stamps of its two timed messages."""

    def _run_cycle(self, iteration, ctx):
        cycle_start = time.perf_counter_ns()
        sio = getattr(self.driver, "_sio", None)
        sid = sio.get_sid("/") if sio is not None and sio.connected else None
        if sio is not None:
            kernel_stamps.take(sio)
        sample, failed_phase = super()._run_cycle(iteration, ctx)
        sio = sio or getattr(self.driver, "_sio", None)
        if sid is None and sio is not None and sio.connected:
            sid = sio.get_sid("/")
        row = {"iteration": iteration, "user": self.number, "sid": sid, "cycle_start": cycle_start, "ok": sample.ok,
               "first_response_ms": sample.first_response_ms, "session_start_ms": sample.session_start_ms}
        session = self.driver.session
        if sio is not None and session is not None:
            seen = kernel_stamps.first_of_each(kernel_stamps.take(sio))
            for name, handler in (("ready", session.ready_ns), ("audio", session.first_audio_ns)):
                row[name] = {**seen.get(name, {"kernel": None, "read": None}), "handler": handler}
        _LOG.write(json.dumps(row) + "\n")
        return sample, failed_phase
