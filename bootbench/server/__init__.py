"""bootbench's embedded reference speech-to-speech server.

A standalone process (``python -m bootbench.server``) that speaks the real
services' wire protocols on one port, plays a latency model and records
ground truth, so bootbench can be benchmarked offline and tested against
what the server really did. Start it from Python with
:class:`~bootbench.server.launcher.ReferenceServer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .launcher import ReferenceServer

__all__ = ["ReferenceServer"]


def __getattr__(name: str) -> Any:
    # ReferenceServer is imported on first use (PEP 562): the server process itself (python -m bootbench.server)
    # imports this package but never launches a server, and the launcher's imports (urllib.request, tempfile,
    # shutil) cost it ~40 ms of its start.
    if name == "ReferenceServer":
        from .launcher import ReferenceServer
        return ReferenceServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
