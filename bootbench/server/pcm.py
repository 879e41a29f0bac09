"""PCM16 helpers of the reference server: the peak of client audio and the reply tone."""

from __future__ import annotations

import base64

import numpy as np

FULL_SCALE = 32768.0


def pcm16_peak(raw: bytes) -> float:
    """Peak absolute amplitude of little-endian PCM16 bytes, as a fraction of full scale (0..1)."""
    if len(raw) < 2:
        return 0.0
    samples = np.frombuffer(raw, dtype="<i2", count=len(raw) // 2).astype(np.int32)
    return float(np.abs(samples).max()) / FULL_SCALE


def reply_chunks_b64(reply_ms: int, rate: int = 24000, chunk_ms: int = 40,
                     tone_hz: float = 440.0, amplitude: float = 0.1) -> list[str]:
    """A quiet continuous sine of ``reply_ms`` split into ``chunk_ms`` chunks, each base64 PCM16 LE mono.

    The last chunk is shorter when ``reply_ms`` is not a multiple of ``chunk_ms``.
    """
    total = rate * reply_ms // 1000
    t = np.arange(total) / rate
    pcm = (np.sin(2 * np.pi * tone_hz * t) * amplitude * (FULL_SCALE - 1)).astype("<i2").tobytes()
    step = 2 * rate * chunk_ms // 1000
    return [base64.b64encode(pcm[i:i + step]).decode("ascii") for i in range(0, len(pcm), step)]
