"""The reply every wire protocol streams: a quiet tone in 40 ms chunks of 24 kHz PCM16, sent at real-time pace.

A reply may start with leading noise (``--leading-silence-ms``); a greeting
(``--greeting-ms``) is a shorter, higher tone sent unasked.

    reply = ReplyAudio(reply_ms=600)
    await reply.stream(record, start_ns, send)   # send(index, base64_chunk) puts one chunk on the wire
    greeting = ReplyAudio(GREETING_MS, tone_hz=GREETING_HZ)
    await greeting.stream(record, start_ns, send, greeting=True)
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache

import numpy as np

from .pcm import reply_chunks_b64
from .scheduler import sleep_until
from .truth import Greeting, SessionTruth

REPLY_CHUNK_MS = 40
GREETING_MS = 400
GREETING_HZ = 660.0

Chunks = list[tuple[str, int]]
"""Base64 PCM16 chunks with their sample counts."""


@lru_cache(maxsize=8)
def _silent_chunk(size: int) -> str:
    return base64.b64encode(bytes(size)).decode("ascii")


def silenced(chunk: str) -> str:
    """A base64 PCM16 chunk as long as ``chunk``, every sample zero: the ``silent_audio`` fault's reply."""
    return _silent_chunk(len(base64.b64decode(chunk)))


class ReplyAudio:
    """The reply of every session; the one without leading silence is pre-encoded once per server process."""

    def __init__(self, reply_ms: int, rate: int = 24000, chunk_ms: int = REPLY_CHUNK_MS,
                 tone_hz: float = 440.0, seed: int = 0) -> None:
        self.reply_ms = reply_ms
        self.rate = rate
        self.chunk_ms = chunk_ms
        self.tone_hz = tone_hz
        self._rng = np.random.default_rng(seed)
        self.chunks = self._encode(0.0)

    def chunks_for(self, leading_silence_ms: float) -> Chunks:
        """The reply preceded by ``leading_silence_ms`` of low-level noise, as chunks with their sample counts."""
        return self.chunks if leading_silence_ms <= 0 else self._encode(leading_silence_ms)

    def _encode(self, leading_silence_ms: float) -> Chunks:
        return [(chunk, len(base64.b64decode(chunk)) // 2)
                for chunk in reply_chunks_b64(self.reply_ms, self.rate, self.chunk_ms, tone_hz=self.tone_hz,
                                              leading_silence_ms=leading_silence_ms, rng=self._rng)]

    async def stream(self, record: SessionTruth, start_ns: int, send: Callable[[int, str], Awaitable[None]],
                     *, leading_silence_ms: float = 0.0, greeting: bool = False) -> None:
        """Send chunk ``i`` at ``start_ns + i * chunk_ms``.

        An answer records ``first_audio_sent`` (once per session) and ``audio_out``; a greeting records
        ``record.greeting`` instead.
        """
        out = record.audio_out
        if greeting and record.greeting is None:
            record.greeting = Greeting()
        for index, (chunk, samples) in enumerate(self.chunks_for(leading_silence_ms)):
            due = start_ns + index * self.chunk_ms * 1_000_000
            await sleep_until(due)
            sent = time.perf_counter_ns()
            if greeting:
                assert record.greeting is not None
                if record.greeting.sent_ns is None:
                    record.greeting.sent_ns = sent
                record.greeting.chunks += 1
                record.greeting.samples += samples
            else:
                if index == 0:
                    record.note_first_audio(sent)
                late_ms = round((sent - due) / 1e6, 3)
                out.max_late_ms = late_ms if out.max_late_ms is None else max(out.max_late_ms, late_ms)
                out.chunks += 1
                out.samples += samples
            await send(index, chunk)
