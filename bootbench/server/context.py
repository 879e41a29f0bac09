"""ProtocolContext: the one object every emulated protocol is built from.

    protocol = factory(ProtocolContext(scheduler, config))

A protocol reads its settings here instead of taking them as arguments, so a
server option is declared once (:class:`~.config.ServerConfig`, the server's
command line) and reaches every protocol that uses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import ServerConfig
from .scheduler import SessionScheduler


@dataclass(frozen=True)
class ProtocolContext:
    """What the server gives each protocol: the shared scheduler and the server's settings."""

    scheduler: SessionScheduler
    config: ServerConfig

    @property
    def api_key(self) -> str | None:
        """The key clients must present; None accepts any non-empty key."""
        return self.config.api_key

    @property
    def reply_ms(self) -> int:
        return self.config.reply_ms

    @property
    def reply_after(self) -> str:
        return self.config.reply_after

    @property
    def vad_needs_speech(self) -> bool:
        return self.config.vad_needs_speech
