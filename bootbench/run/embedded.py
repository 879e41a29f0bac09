"""The embedded reference server's lifetime: started once per process when a run has no ``-H``, stopped at exit.

The master (or local process) starts it on the first run that needs it and
reuses it for later web UI runs; it is stopped when Locust quits, or at
interpreter exit if Locust never got that far.
"""

from __future__ import annotations

import atexit
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootbench.server.launcher import ReferenceServer

log = logging.getLogger("bootbench")

_server: ReferenceServer | None = None
_config: dict[str, Any] | None = None


def ensure_started() -> ReferenceServer:
    """The running embedded server, started on first call."""
    global _server
    if _server is None:
        from bootbench.server.launcher import ReferenceServer  # a separate process: started only when needed

        _server = ReferenceServer.start()
        atexit.register(stop)
        log.info("embedded reference server at %s (pid %s)", _server.url, _server.pid)
    return _server


def config() -> dict[str, Any] | None:
    """The running embedded server's latency model, seed and behaviour (``GET /stats`` ``config``); None if unknown."""
    global _config
    if _server is None:
        return None
    if _config is None:
        try:
            _config = _server.stats().get("config")
        except (OSError, ValueError) as exc:
            log.warning("could not read the embedded reference server's configuration: %s", exc)
    return _config


def url() -> str | None:
    """The embedded server's URL, or None when none was started."""
    return _server.url if _server is not None else None


def stop() -> None:
    """Stop the embedded server if one runs (idempotent)."""
    global _server, _config
    server, _server, _config = _server, None, None
    if server is not None:
        server.stop()
