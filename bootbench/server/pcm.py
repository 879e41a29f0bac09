"""PCM16 helpers of the reference server: the peak of client audio, the reply tone and its leading noise."""

from __future__ import annotations

import base64

import numpy as np

FULL_SCALE = 32768.0
LEADING_NOISE_DBFS = -70.0
"""RMS level of the noise a reply's leading silence is made of (comfort-noise level, 20 dB under the audible threshold)."""


def pcm16_peak(raw: bytes) -> float:
    """Peak absolute amplitude of little-endian PCM16 bytes, as a fraction of full scale (0..1)."""
    if len(raw) < 2:
        return 0.0
    samples = np.frombuffer(raw, dtype="<i2", count=len(raw) // 2).astype(np.int32)
    return float(np.abs(samples).max()) / FULL_SCALE


def reply_chunks_b64(reply_ms: int, rate: int = 24000, chunk_ms: int = 40,
                     tone_hz: float = 440.0, amplitude: float = 0.1, leading_silence_ms: float = 0.0,
                     rng: np.random.Generator | None = None) -> list[str]:
    """A quiet continuous sine of ``reply_ms`` split into ``chunk_ms`` chunks, each base64 PCM16 LE mono.

    With ``leading_silence_ms`` the sine is preceded by that much Gaussian noise at
    :data:`LEADING_NOISE_DBFS` RMS (drawn from ``rng``), as a service's comfort noise would be, not digital zeros.
    The last chunk is shorter when the total is not a multiple of ``chunk_ms``.
    """
    total = rate * reply_ms // 1000
    t = np.arange(total) / rate
    tone = np.sin(2 * np.pi * tone_hz * t) * amplitude * (FULL_SCALE - 1)
    lead = int(round(leading_silence_ms * rate / 1000))
    if lead > 0:
        sigma = FULL_SCALE * 10 ** (LEADING_NOISE_DBFS / 20)
        noise = (rng or np.random.default_rng(0)).normal(0.0, sigma, lead).clip(-4 * sigma, 4 * sigma)
        tone = np.concatenate([np.round(noise), tone])
    pcm = tone.astype("<i2").tobytes()
    step = 2 * rate * chunk_ms // 1000
    return [base64.b64encode(pcm[i:i + step]).decode("ascii") for i in range(0, len(pcm), step)]
