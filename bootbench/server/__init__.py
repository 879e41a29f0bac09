"""bootbench's embedded reference speech-to-speech server.

A standalone process (``python -m bootbench.server``) that speaks the real
services' wire protocols on one port, plays a latency model and records
ground truth, so bootbench can be benchmarked offline and tested against
what the server really did. Start it from Python with
:class:`~bootbench.server.launcher.ReferenceServer`.
"""

from .launcher import ReferenceServer

__all__ = ["ReferenceServer"]
