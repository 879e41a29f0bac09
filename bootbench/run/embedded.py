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


@dataclass(eq=False)
class EmbeddedServer:
    """The reference server one environment started for its runs without a host (none until needed)."""

    _server: ReferenceServer | None = None
    _config: dict[str, Any] | None = None

    def ensure_started(self) -> ReferenceServer:
        """The running embedded server, started on first call."""
        if self._server is None:
            from bootbench.server.launcher import ReferenceServer  # a separate process: started only when needed

            self._server = ReferenceServer.start()
            atexit.register(self.stop)
            log.info("embedded reference server at %s (pid %s)", self._server.url, self._server.pid)
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
