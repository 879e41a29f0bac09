"""The one place bootbench replaces code of websocket-client (the WebSocket library under every driver), and why.

Every driver's frames go through websocket-client: python-engineio's
websocket transport uses it for Aivoco, the WebSocket drivers directly.
Two of its per-frame costs add up at hundreds of sessions per process;
:func:`install` replaces both with code that gives the same bytes, and
tests/test_socketio_tuning.py fails when a hook is gone or gives other bytes.
Importing this module replaces nothing: :func:`bootbench.providers.install_tuning`
calls :func:`install` when a process is about to run drivers (a run's users,
in Locust's ``init``; tests and tools that drive a provider directly).

1. :func:`mask`: a client masks every frame it sends (RFC 6455 5.3: each byte
   XOR the 4-byte key, repeating). websocket-client does it with Python big
   integers (``websocket._abnf._mask``, private; ``ABNF.mask`` calls the module
   global), about 0.18 ms of CPU for the 43 KB ``audio_data`` message sent
   every cycle; numpy XORs 32-bit words in a third of that. Small frames keep
   the library's own.
2. :func:`recv_strict`: websocket-client reads a frame with one ``recv`` for its
   2-byte header, one for its extended length and one for its payload, each
   asking for exactly the bytes it needs: three system calls (and, under
   gevent, three trips through the hub) per message. This version
   (``frame_buffer.recv_strict``, private) asks for at least
   :data:`READ_SIZE` bytes and keeps what goes beyond the frame for the next
   call, which the library's own code already handles: one ``recv`` reads a
   whole small message, often several.
"""

from __future__ import annotations

import numpy as np
from websocket import _abnf

NUMPY_FROM = 512
"""Frames of at least this many bytes are masked with numpy; below it numpy's call costs more than it saves."""
READ_SIZE = 16384
"""Bytes each ``recv`` asks for at least (websocket-client's own upper bound per call)."""

_library_mask = _abnf._mask
_library_recv_strict = _abnf.frame_buffer.recv_strict


def mask(mask_value, data_value) -> bytes:
    """``data_value`` XOR the repeated 4-byte ``mask_value`` (both bytes-like), as websocket-client's ``_mask``."""
    length = len(data_value)
    if length < NUMPY_FROM:
        return _library_mask(mask_value, data_value)
    key = bytes(mask_value)
    words = length // 4
    head = np.frombuffer(data_value, dtype=np.uint32, count=words) ^ np.frombuffer(key, dtype=np.uint32)[0]
    tail = bytes(b ^ key[i] for i, b in enumerate(bytes(data_value[4 * words:])))
    return head.tobytes() + tail


def recv_strict(self, bufsize: int) -> bytes:
    """Exactly ``bufsize`` bytes of the stream, reading ahead: websocket-client's ``recv_strict`` with larger reads."""
    if not isinstance(bufsize, int):
        raise ValueError("bufsize must be an integer")
    buffered = self.recv_buffer
    if len(buffered) == 1 and len(buffered[0]) >= bufsize:  # the common case: served from what was read ahead
        data = buffered[0]
        self.recv_buffer = [data[bufsize:]] if len(data) > bufsize else []
        return data[:bufsize] if len(data) > bufsize else data
    shortage = bufsize - sum(len(buf) for buf in buffered)
    while shortage > 0:
        bytes_ = self.recv(max(shortage, READ_SIZE))
        if not isinstance(bytes_, bytes):
            break
        buffered.append(bytes_)
        shortage -= len(bytes_)
    unified = b"".join(buffered)
    if shortage == 0:
        self.recv_buffer = []
        return unified
    self.recv_buffer = [unified[bufsize:]] if len(unified) > bufsize else []
    return unified[:bufsize]


def install() -> None:
    """Make websocket-client mask with :func:`mask` and read with :func:`recv_strict` (idempotent).

    :data:`_library_mask` and :data:`_library_recv_strict` were taken when this module was first
    imported, before any install, so a second call replaces the same functions with the same ones.
    """
    _abnf._mask = mask
    _abnf.frame_buffer.recv_strict = recv_strict
