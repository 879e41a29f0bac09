"""The reference server's settings and their defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from bootbench.wire import AIVOCO_SOCKETIO_PATH

from .faults import FaultSpec
from .latency import Delay, parse_delay

DEFAULT_HOST = "127.0.0.1"
DEFAULT_SETUP_DELAY = "lognormal:50:0.2"
DEFAULT_FIRST_AUDIO_DELAY = "lognormal:150:0.25"
DEFAULT_WARM_FIRST_AUDIO_DELAY = "lognormal:100:0.25"
"""Warm turns (turn 2 or later of a session) answer faster than the first, as real services' do once a session
is warm: by default the reference server shows a cold penalty of about 50 ms."""
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
    warm_first_audio_delay: Delay = field(default_factory=lambda: parse_delay(DEFAULT_WARM_FIRST_AUDIO_DELAY))
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
    socketio_path: str = AIVOCO_SOCKETIO_PATH
    """Where the Aivoco emulation's Socket.IO endpoint is mounted (a deployment behind a path prefix)."""
    tls_cert: str | None = None
    """PEM certificate chain: serve TLS (https://, wss://) with it and :attr:`tls_key`; None: plain."""
    tls_key: str | None = None
