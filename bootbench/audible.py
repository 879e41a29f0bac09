"""First audible audio: when the caller would start to hear the reply.

A reply's first audio event often carries near-silent samples (comfort
noise, a fade-in, a breath), so what a caller hears starts later than the
first event. :class:`AudibleDetector` is fed the reply's PCM16 as it
arrives, each chunk with the time it arrived (taken by the caller on
arrival, before decoding, on the same clock as the rest of the timeline),
and finds the play time of the first audible sample. It is pure: no I/O, no
clock of its own.

Level. The level at sample ``n`` is the RMS of the 10 ms window ending at
``n`` (samples ``n - W + 1 .. n``, ``W`` = 10 ms of samples, the time before
the reply counted as silence), in dBFS relative to full scale (32768). The
first audible sample is the first ``n`` whose level exceeds
``audible_dbfs``. The window is causal and slides sample by sample, so the
result does not depend on how the reply was cut into chunks; a loud onset is
found within a sample or two of where it starts, a faint one up to 10 ms
after.

Threshold. The default, -50 dBFS, sits about 24 dB below the nominal active
speech level of telephone and VoIP speech (-26 dBov, ITU-T P.56), low enough
to catch the soft start of a first syllable, and 20 dB or more above what
services put before speech: comfort noise and codec noise floors (around -70
dBov and below, RFC 3389), dither, and the reference server's leading noise
(-70 dBFS RMS).

Playback. The reply plays from the arrival of its first chunk, at real time.
A chunk that arrives after the moment it was due to play (the previous chunk
has finished playing) starts when it arrives and delays everything after it
(an underrun). The play time of the first audible sample is therefore

    play(chunk i) = max(arrival(i), play(chunk i-1) + duration(chunk i-1)),  play(chunk 0) = arrival(0)
    first_audible = play(its chunk) + (its index within the chunk) / rate

and ``leading_silence_ms`` is ``first_audible - arrival(0)``.

    detector = AudibleDetector(rate=24000)
    for pcm, arrived_ns in reply:                     # arrived_ns taken on arrival
        found = detector.feed(pcm, arrived_ns)
        if found: break                               # decoding stops once found
    found.play_ns, found.leading_silence_ms
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_AUDIBLE_DBFS = -50.0
WINDOW_MS = 10.0
REPLY_RATE = 24_000
"""Output rate of all three providers' replies (PCM16 LE mono)."""

_FULL_SCALE = 32768.0


@dataclass(frozen=True)
class Audible:
    """Where the reply became audible."""

    play_ns: int
    """Play time of the first audible sample, on the clock of the arrival times fed."""
    first_arrival_ns: int
    """Arrival of the reply's first chunk (when playback starts)."""
    sample: int
    """Index of the first audible sample in the reply."""
    level_dbfs: float
    """The 10 ms level that crossed the threshold."""
    underrun_ms: float
    """How long playback stalled before that sample because chunks arrived late."""

    @property
    def leading_silence_ms(self) -> float:
        """From the first chunk's arrival to the first audible sample's play time."""
        return (self.play_ns - self.first_arrival_ns) / 1e6


class AudibleDetector:
    """Streaming first-audible-sample detector for one reply (make a new one per reply)."""

    def __init__(self, rate: int = REPLY_RATE, audible_dbfs: float = DEFAULT_AUDIBLE_DBFS,
                 window_ms: float = WINDOW_MS) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        if not audible_dbfs < 0:
            raise ValueError(f"audible_dbfs must be below 0 dBFS, not {audible_dbfs:g}")
        self.rate = rate
        self.audible_dbfs = audible_dbfs
        self.window = max(1, round(window_ms * rate / 1000))
        # level > threshold  <=>  sum of squares over the window > W * (threshold * full scale)^2
        self._energy_threshold = self.window * (10 ** (audible_dbfs / 20) * _FULL_SCALE) ** 2
        self._sample_threshold = self._energy_threshold / self.window
        """A window's energy exceeds the threshold only if one of its samples' squares exceeds this (its mean)."""
        self._tail = np.zeros(self.window - 1, dtype=np.float64)
        self._tail_loud = False
        """Whether a sample of :attr:`_tail` alone is above :attr:`_sample_threshold` (then no shortcut)."""
        self._odd = b""
        self.samples = 0
        """Whole samples fed so far."""
        self.first_arrival_ns: int | None = None
        self._next_play_ns: int | None = None
        self.underrun_ns = 0
        self.found: Audible | None = None

    @property
    def audio_ms(self) -> float:
        """Duration of the reply fed so far."""
        return 1000.0 * self.samples / self.rate

    @property
    def play_end_ns(self) -> int | None:
        """When the audio fed so far finishes playing (None before the first chunk)."""
        return self._next_play_ns

    def feed(self, pcm: bytes, arrival_ns: int) -> Audible | None:
        """Take the next chunk of PCM16 LE (any length, odd too) that arrived at ``arrival_ns``; the result once found.

        After the first audible sample is found, further chunks are not decoded.
        """
        if self.found is not None or not pcm:
            return self.found
        if self.first_arrival_ns is None:
            self.first_arrival_ns = self._next_play_ns = arrival_ns
        data = self._odd + pcm
        whole = len(data) // 2 * 2
        self._odd = data[whole:]
        if whole == 0:
            return None
        assert self._next_play_ns is not None
        if arrival_ns > self._next_play_ns:
            self.underrun_ns += arrival_ns - self._next_play_ns
            self._next_play_ns = arrival_ns
        chunk_play_ns = self._next_play_ns
        pcm16 = np.frombuffer(data, dtype="<i2", count=whole // 2)
        first_index = self.samples
        self.samples += pcm16.size
        self._next_play_ns = chunk_play_ns + _ns(pcm16.size, self.rate)
        if not self._tail_loud and max(int(pcm16.max()), -int(pcm16.min())) ** 2 <= self._sample_threshold:
            # No sample of any window ending in this chunk is above the mean a loud window needs, so none is
            # loud: skip the window sums (most of a quiet chunk's cost), keep the tail for the next chunk.
            if self.window > 1:
                self._tail = np.concatenate([self._tail, pcm16.astype(np.float64)])[-(self.window - 1):]
            return None
        samples = pcm16.astype(np.float64)
        joined = np.concatenate([self._tail, samples])
        energy = np.concatenate([[0.0], np.cumsum(joined * joined)])
        window_energy = energy[self.window:] - energy[:-self.window]   # window ending at each new sample
        loud = np.flatnonzero(window_energy > self._energy_threshold)
        if loud.size == 0:
            self._tail = joined[joined.size - (self.window - 1):] if self.window > 1 else self._tail
            self._tail_loud = bool(np.any(self._tail * self._tail > self._sample_threshold))
            return None
        index = int(loud[0])
        level = 10 * math.log10(window_energy[index] / self.window) - 20 * math.log10(_FULL_SCALE)
        self.found = Audible(play_ns=chunk_play_ns + _ns(index, self.rate), first_arrival_ns=self.first_arrival_ns,
                             sample=first_index + index, level_dbfs=round(level, 2),
                             underrun_ms=self.underrun_ns / 1e6)
        return self.found


def _ns(samples: int, rate: int) -> int:
    return round(samples * 1_000_000_000 / rate)
