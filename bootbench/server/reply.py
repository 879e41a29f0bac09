"""The reply every wire protocol streams: a quiet tone in 40 ms chunks of 24 kHz PCM16, sent at real-time pace.

    reply = ReplyAudio(reply_ms=600)
    await reply.stream(record, start_ns, send)   # send(index, base64_chunk) puts one chunk on the wire
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable

from .pcm import reply_chunks_b64
from .scheduler import sleep_until
from .truth import SessionTruth

REPLY_CHUNK_MS = 40


class ReplyAudio:
    """The reply of every session, pre-encoded once per server process."""

    def __init__(self, reply_ms: int, rate: int = 24000, chunk_ms: int = REPLY_CHUNK_MS) -> None:
        self.rate = rate
        self.chunk_ms = chunk_ms
        self.chunks = [(chunk, len(base64.b64decode(chunk)) // 2)
                       for chunk in reply_chunks_b64(reply_ms, rate, chunk_ms)]

    async def stream(self, record: SessionTruth, start_ns: int,
                     send: Callable[[int, str], Awaitable[None]]) -> None:
        """Send chunk ``i`` at ``start_ns + i * chunk_ms``; records ``first_audio_sent`` (of the turn, and once per session) and ``audio_out``."""
        out = record.audio_out
        for index, (chunk, samples) in enumerate(self.chunks):
            due = start_ns + index * self.chunk_ms * 1_000_000
            await sleep_until(due)
            sent = time.perf_counter_ns()
            if index == 0:
                record.note_first_audio(sent)
            late_ms = round((sent - due) / 1e6, 3)
            out.max_late_ms = late_ms if out.max_late_ms is None else max(out.max_late_ms, late_ms)
            out.chunks += 1
            out.samples += samples
            await send(index, chunk)
