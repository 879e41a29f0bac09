"""bootbench's locustfile, plus one side record per iteration: the Socket.IO session id (sid) it ran on.

    BOOTBENCH_SID_LOG=sids.jsonl locust -f bench/sid_locustfile.py --headless -u 50 -i 500 -H URL

The reference server's ground truth names each session by the Socket.IO sid
of its connection. A bootbench user runs its sessions one after another on
one connection, so (sid, k-th session on that sid) matches (user, k-th
iteration of that user) exactly, at any concurrency. The sid is read after
the timed part of the cycle, so the measured intervals are bootbench's own,
untouched: nothing is added to the samples themselves.
"""

import os

from bootbench import events  # noqa: F401  (bootbench's options and event hooks)
from bootbench import user  # the module, not the class: a BootUser name here would make Locust run it too

_LOG = open(os.environ["BOOTBENCH_SID_LOG"], "a", buffering=1)


class SidRecordingUser(user.BootUser):
    """BootUser that notes, after each cycle, the sid its session ran on."""

    def _run_cycle(self, iteration, ctx):
        sid = self._sid()
        sample, failed_phase = super()._run_cycle(iteration, ctx)
        _LOG.write(f'{{"iteration": {iteration}, "user": {self.number}, "sid": "{sid or self._sid()}"}}\n')
        return sample, failed_phase

    def _sid(self):
        sio = getattr(self.driver, "_sio", None)
        return sio.get_sid("/") if sio is not None and sio.connected else None
