"""The reference server's settings and their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from .faults import FaultSpec
from .latency import Delay, parse_delay

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SETUP_DELAY = "lognormal:50:0.2"
DEFAULT_FIRST_AUDIO_DELAY = "lognormal:150:0.25"
DEFAULT_COLD_PENALTY_MS = 200.0
DEFAULT_REPLY_MS = 600
REPLY_AFTER = ("first-input", "end-of-turn")
"""When the Aivoco emulation starts its reply timer: at the first audio_data, or when the user's turn ends."""
DEFAULT_REPLY_AFTER = "first-input"


@dataclass(frozen=True)
class ServerConfig:
    """Everything one reference server process needs; ``api_key`` None accepts any non-empty key."""

    host: str = DEFAULT_HOST
    port: int = 0
    api_key: str | None = field(default=None, repr=False)
    ground_truth: str | None = None
    setup_delay: Delay = field(default_factory=lambda: parse_delay(DEFAULT_SETUP_DELAY))
    first_audio_delay: Delay = field(default_factory=lambda: parse_delay(DEFAULT_FIRST_AUDIO_DELAY))
    cold_penalty_ms: float = DEFAULT_COLD_PENALTY_MS
    capacity: int = 0
    reply_ms: int = DEFAULT_REPLY_MS
    reply_after: str = DEFAULT_REPLY_AFTER
    seed: int = 0
    parent_pid: int | None = None
    faults: tuple[FaultSpec, ...] = ()
    leading_silence: Delay | None = None
    """Noise (-70 dBFS) each reply starts with; None: none."""
    greeting: Delay | None = None
    """Delay from session ready to an unasked-for greeting; None: no greeting."""
    vad_needs_speech: bool = False
    """Answer a turn only when its audio is speech-like (see :mod:`.speechlike`)."""
