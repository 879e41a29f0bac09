"""Diagnostic locustfile: bootbench as shipped, plus what a packet capture needs to judge its stamps.

    BOOTBENCH_PROBE_LOG=probe.jsonl locust -f bench/probe_locustfile.py --headless -u 50 -i 500 -H URL

One JSON line per iteration: ``iteration``, ``user``, ``sid``, ``cycle_start``
(``time.perf_counter_ns()`` as the cycle began, before bootbench's own),
``port`` (the connection's local port, which the capture's streams are keyed
by), ``realtime_offset_ns`` (CLOCK_REALTIME minus ``perf_counter_ns``, measured
right after the cycle, to find the cycle's messages in the capture) and, for
``ready`` (``session_ready``) and ``audio`` (the first ``audio_response``),
``handler``: the stamp bootbench recorded (whichever ``--clock`` it ran with).
bench/accuracy_runs.py adds each message's ``kernel`` stamp from the capture
(bench/wire_capture.py); ``(audio.handler - audio.kernel) - (ready.handler -
ready.kernel)`` is the part of a ``first_response_ms`` error the client added.
Nothing of bootbench's receive path is patched.
"""

import json
import os
import time

from bootbench import events  # noqa: F401  (bootbench's options and event hooks)
from bootbench import user  # the module: a BootUser name here would make Locust run it too
from bootbench.providers.kernel_clock import ClockBridge

_LOG = open(os.environ["BOOTBENCH_PROBE_LOG"], "a", buffering=1)


def _local_port(sio) -> int | None:
    try:
        return sio.eio.ws.sock.getsockname()[1]
    except (AttributeError, OSError):
        return None


class ProbeUser(user.BootUser):
    """BootUser that writes, after each cycle, its connection's port and the stamps of its two timed messages."""

    def _run_cycle(self, iteration, ctx):
        cycle_start = time.perf_counter_ns()
        sid, port = self._connection()  # the connection the cycle runs on (opened in it when there is none yet)
        sample, failed_phase = super()._run_cycle(iteration, ctx)
        if sid is None:
            sid, port = self._connection()
        row = {"iteration": iteration, "user": self.number, "sid": sid, "cycle_start": cycle_start, "ok": sample.ok,
               "first_response_ms": sample.first_response_ms, "session_start_ms": sample.session_start_ms,
               "port": port, "realtime_offset_ns": ClockBridge().offset_ns}
        session = self.driver.session
        if session is not None:
            row["ready"] = {"handler": session.ready_ns}
            row["audio"] = {"handler": session.first_audio_ns}
        _LOG.write(json.dumps(row) + "\n")
        return sample, failed_phase

    def _connection(self) -> tuple[str | None, int | None]:
        """The Socket.IO sid and local port of the driver's open connection; (None, None) when it has none."""
        sio = getattr(self.driver, "_sio", None)
        if sio is None or not sio.connected:
            return None, None
        return sio.get_sid("/"), _local_port(sio)
