"""Is the client's audio speech? A deliberately simple test for ``--vad-needs-speech``.

Real services that end turns by voice activity (and run recognition) may
ignore a pure tone; the reference server can do the same, so the difference
between the seed's sine and a recording of a voice shows up in tests.

Audio is speech-like when, over its active 20 ms frames (RMS above -50 dBFS,
at least 200 ms of them), both vary the way speech does:

- the zero-crossing rate (voiced sounds cross zero a few hundred times a
  second, fricatives thousands of times): standard deviation >= 300 /s;
- the level (syllables): standard deviation of the frame level >= 3 dB.

A steady tone fails both, white noise and a tone with tremolo fail one, a
sweep fails the level test; CMU ARCTIC's arctic_a0007 passes both by far
(about 1800 /s and 11 dB).

    judge = SpeechJudge(rate=16000)
    judge.add(pcm)          # every chunk of the turn
    judge.is_speech()       # True / False
"""

from __future__ import annotations

import numpy as np

FRAME_MS = 20
ACTIVE_DBFS = -50.0
MIN_ACTIVE_MS = 200
MIN_ZCR_STD = 300.0
MIN_LEVEL_STD_DB = 3.0
MAX_SECONDS = 60
"""Audio kept per turn (older audio is dropped)."""


def speech_features(samples: np.ndarray, rate: int) -> tuple[float, float, float]:
    """(active ms, std of the zero-crossing rate per second, std of the level in dB) over the active frames."""
    frame = max(1, rate * FRAME_MS // 1000)
    count = samples.size // frame
    if count == 0:
        return 0.0, 0.0, 0.0
    frames = samples[:count * frame].astype(np.float64).reshape(count, frame)
    rms = np.sqrt((frames * frames).mean(axis=1))
    active = rms > 32768 * 10 ** (ACTIVE_DBFS / 20)
    if active.sum() < 2:
        return float(active.sum() * FRAME_MS), 0.0, 0.0
    crossings = (np.diff(np.signbit(frames[active]), axis=1)).sum(axis=1) * rate / frame
    level = 20 * np.log10(rms[active])
    return float(active.sum() * FRAME_MS), float(crossings.std()), float(level.std())


def is_speech_like(samples: np.ndarray, rate: int) -> bool:
    """The test of the module docstring on PCM16 samples at ``rate``."""
    active_ms, zcr_std, level_std = speech_features(samples, rate)
    return active_ms >= MIN_ACTIVE_MS and zcr_std >= MIN_ZCR_STD and level_std >= MIN_LEVEL_STD_DB


class SpeechJudge:
    """Collects one turn's PCM16 (little-endian) and judges it."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._parts: list[bytes] = []
        self._bytes = 0

    def add(self, pcm: bytes) -> None:
        """Append a chunk (keeps the last :data:`MAX_SECONDS`)."""
        self._parts.append(pcm)
        self._bytes += len(pcm)
        while self._bytes > 2 * self.rate * MAX_SECONDS and len(self._parts) > 1:
            self._bytes -= len(self._parts.pop(0))

    def is_speech(self) -> bool:
        """Whether the audio collected so far is speech-like."""
        data = b"".join(self._parts)
        return is_speech_like(np.frombuffer(data, dtype="<i2", count=len(data) // 2), self.rate)

    def reset(self) -> None:
        """Forget the turn (the next one starts)."""
        self._parts, self._bytes = [], 0
