"""The end of a user's turn as the reference server detects it by itself: trailing silence after speech.

Used where the client does not end its turn explicitly: OpenAI's server VAD,
Gemini's automatic activity detection, and Aivoco with ``--reply-after
end-of-turn``. Detection works on the audio itself (sample by sample, so the
chunk size does not matter and a clip sent in one burst is judged by its
content, as the real services do), not on the wall clock::

    detector = SilenceDetector(rate=24000, silence_ms=500)
    edges = detector.feed(pcm)          # Edges(started_ms=0.0, stopped_ms=None) while speaking
    edges = detector.feed(silence)      # ... stopped_ms=1500.0 once 500 ms of silence followed
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bootbench.wire import SILENCE_THRESHOLD, VAD_SILENCE_MS

_FULL_SCALE = 32768


@dataclass(frozen=True)
class Edges:
    """Where speech started and stopped in the audio fed so far (ms since the first sample); None = not in this chunk."""

    started_ms: float | None = None
    stopped_ms: float | None = None


class SilenceDetector:
    """One user turn in a PCM16 stream: speech (a sample above the threshold), then ``silence_ms`` of quiet.

    After the turn has stopped the detector reports nothing more until :meth:`rearm`.
    """

    def __init__(self, rate: int, silence_ms: float = VAD_SILENCE_MS,
                 threshold: float = SILENCE_THRESHOLD) -> None:
        self.rate = rate
        self.silence_ms = silence_ms
        self._silence_samples = max(1, math.ceil(silence_ms * rate / 1000))
        self._level = threshold * _FULL_SCALE
        self.position = 0
        self.speaking = False
        self.stopped = False
        self._quiet = 0

    def rearm(self) -> None:
        """Listen for the next turn (the stream position keeps counting)."""
        self.speaking = self.stopped = False
        self._quiet = 0

    def feed(self, pcm: bytes) -> Edges:
        """Consume the next chunk of little-endian PCM16; the edges found in it."""
        samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2)
        start, self.position = self.position, self.position + samples.size
        if self.stopped or samples.size == 0:
            return Edges()
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > self._level)
        started = None
        if loud.size:
            if not self.speaking:
                self.speaking = True
                started = self._ms(start + int(loud[0]))
            self._quiet = samples.size - int(loud[-1]) - 1
        elif self.speaking:
            self._quiet += samples.size
        if self.speaking and self._quiet >= self._silence_samples:
            self.stopped = True
            return Edges(started, self._ms(self.position - (self._quiet - self._silence_samples)))
        return Edges(started, None)

    def _ms(self, sample: int) -> float:
        return round(1000 * sample / self.rate, 3)


class IdleTurnEnd:
    """Ends a turn when, after speech, no audio arrives for ``silence_ms`` (a client that just stops sending).

    ``on_end(end_ns)`` is called once, with the ``perf_counter_ns`` at which the silence reached its length.
    """

    def __init__(self, silence_ms: float, on_end: Callable[[int], None]) -> None:
        self.silence_ms = silence_ms
        self._on_end = on_end
        self._task: asyncio.Task[None] | None = None

    def audio_received(self, received_ns: int) -> None:
        """Restart the wait after a chunk that arrived at ``received_ns``."""
        self.cancel()
        self._task = asyncio.create_task(self._wait(received_ns + int(self.silence_ms * 1e6)))

    def cancel(self) -> None:
        """Stop waiting (the turn ended otherwise, or the session is over)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def _wait(self, end_ns: int) -> None:
        delay = (end_ns - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        self._task = None
        self._on_end(end_ns)
