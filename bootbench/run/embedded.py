"""The embedded reference server's lifetime: started when a run has no ``-H``, stopped when Locust quits.

The master (or local process) starts it on the first run that needs it and
reuses it for later web UI runs; it is stopped when Locust quits, or at
interpreter exit if Locust never got that far. One :class:`EmbeddedServer`
belongs to one environment's :class:`~bootbench.run.harness.Harness`.
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootbench.server.launcher import ReferenceServer

log = logging.getLogger("bootbench")

REPLY_AFTER_BY_PACE = {"burst": "first-input", "realtime": "end-of-turn"}
"""When the embedded server's Aivoco emulation starts its reply (its ``--reply-after``), by ``--pace``.

A clip sent in one message is answered from that message (the server's own
default). A clip streamed at real-time pace is answered once the turn has
ended (500 ms of quiet after speech), as a service that detects the end of
a turn does: answered from its first chunk, a 4 s clip would get its answer
about 3.8 s before its last chunk went out, and every input phase would be
negative. OpenAI and Gemini answer at the end of the turn their protocol
defines whatever the rule.
"""


@dataclass(eq=False)
class EmbeddedServer:
    """The reference server one environment started for its runs without a host (none until needed)."""

    _server: ReferenceServer | None = None
    _config: dict[str, Any] | None = None
    _reply_after: str = ""

    def ensure_started(self, pace: str = "burst") -> ReferenceServer:
        """The running embedded server for a run at ``pace``, started on first call.

        Its reply rule follows the pace (:data:`REPLY_AFTER_BY_PACE`); a later
        run at the other pace (from the web UI) gets a server restarted with its rule.
        """
        reply_after = REPLY_AFTER_BY_PACE.get(pace, REPLY_AFTER_BY_PACE["burst"])
        if self._server is not None and reply_after != self._reply_after:
            log.info("restarting the embedded reference server to answer %s (--pace %s)", reply_after, pace)
            self.stop()
        if self._server is None:
            from bootbench.server.launcher import ReferenceServer  # a separate process: started only when needed

            self._server = ReferenceServer.start(extra_args=("--reply-after", reply_after))
            self._reply_after = reply_after
            atexit.register(self.stop)
            log.info("embedded reference server at %s (pid %s), replies after the %s", self._server.url,
                     self._server.pid, reply_after.replace("-", " "))
        return self._server

    def config(self) -> dict[str, Any] | None:
        """The running server's latency model, seed and behaviour (``GET /stats`` ``config``); None if unknown."""
        if self._server is None:
            return None
        if self._config is None:
            try:
                self._config = self._server.stats().get("config")
            except (OSError, ValueError) as exc:
                log.warning("could not read the embedded reference server's configuration: %s", exc)
        return self._config

    def url(self) -> str | None:
        """The server's URL, or None when none was started."""
        return self._server.url if self._server is not None else None

    def stop(self) -> None:
        """Stop the server if one runs (idempotent)."""
        server, self._server, self._config = self._server, None, None
        if server is not None:
            server.stop()
            atexit.unregister(self.stop)
