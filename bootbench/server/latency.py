"""The reference server's latency model: delay distributions and the draws per session.

A delay is given as a spec string and parsed by :func:`parse_delay`::

    >>> parse_delay("lognormal:150:0.25").describe()
    'lognormal(median=150 ms, sigma=0.25)'

All draws of one server process come from one seeded ``random.Random`` in
the order sessions are accepted, so a sequential run is reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

SPEC_HELP = "a number of ms, uniform:LOW:HIGH, normal:MEAN:SD or lognormal:MEDIAN:SIGMA"


@dataclass(frozen=True)
class Delay:
    """A delay distribution in milliseconds, built by :func:`parse_delay`."""

    kind: str
    params: tuple[float, ...]
    spec: str

    def draw(self, rng: random.Random) -> float:
        """Return one delay in ms (never negative), using ``rng`` for random kinds."""
        if self.kind == "fixed":
            return self.params[0]
        if self.kind == "uniform":
            return rng.uniform(*self.params)
        if self.kind == "normal":
            mean, sd = self.params
            return max(0.0, rng.gauss(mean, sd))
        median, sigma = self.params
        return median * math.exp(rng.gauss(0.0, sigma))

    def describe(self) -> str:
        """Human-readable form for logs."""
        p = self.params
        if self.kind == "fixed":
            return f"{p[0]:g} ms"
        if self.kind == "uniform":
            return f"uniform({p[0]:g}..{p[1]:g} ms)"
        if self.kind == "normal":
            return f"normal(mean={p[0]:g} ms, sd={p[1]:g} ms)"
        return f"lognormal(median={p[0]:g} ms, sigma={p[1]:g})"


def _number(text: str, spec: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"invalid delay {spec!r}: {what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"invalid delay {spec!r}: {what} must be finite")
    if value < 0:
        raise ValueError(f"invalid delay {spec!r}: {what} must not be negative")
    return value


_ARITY = {"fixed": ("ms",), "uniform": ("LOW", "HIGH"), "normal": ("MEAN", "SD"),
          "lognormal": ("MEDIAN", "SIGMA")}


def parse_delay(spec: str) -> Delay:
    """Parse a delay spec: ``"150"``, ``"uniform:100:200"``, ``"normal:150:20"``, ``"lognormal:150:0.25"``.

    Raises ``ValueError`` with a one-sentence message on a bad spec.
    """
    text = str(spec).strip()
    parts = text.split(":")
    if len(parts) == 1:
        parts = ["fixed", parts[0]]
    kind = parts[0].strip().lower()
    if kind not in _ARITY:
        raise ValueError(f"invalid delay {text!r}: unknown distribution {parts[0]!r} (use {SPEC_HELP})")
    names = _ARITY[kind]
    if len(parts) - 1 != len(names):
        form = ":".join((kind, *names))
        raise ValueError(f"invalid delay {text!r}: {kind} needs the form {form}")
    params = tuple(_number(p.strip(), text, n) for p, n in zip(parts[1:], names))
    if kind == "uniform" and params[0] > params[1]:
        raise ValueError(f"invalid delay {text!r}: LOW must not exceed HIGH")
    if kind == "lognormal" and params[0] == 0:
        raise ValueError(f"invalid delay {text!r}: MEDIAN must be positive")
    return Delay(kind, params, text)


@dataclass(frozen=True)
class InjectedDelays:
    """The delays the server chose for one session (ground truth ``injected``)."""

    setup_delay_ms: float
    first_audio_delay_ms: float
    cold_penalty_ms: float
    leading_silence_ms: float = 0.0
    """Low-level noise the reply starts with before its audible part."""
    greeting_ms: float | None = None
    """Delay from ``session_ready`` to an unasked-for greeting; None: no greeting."""

    @property
    def total_setup_ms(self) -> float:
        """Sleep between getting a capacity slot and ``session_ready``."""
        return self.setup_delay_ms + self.cold_penalty_ms


class LatencyModel:
    """Draws each accepted session's delays, adding the cold penalty to the first one only.

    The leading silence and the greeting are drawn after the two delays, and a
    fixed value draws nothing, so adding them leaves a seed's delays unchanged.
    """

    def __init__(self, setup_delay: Delay, first_audio_delay: Delay, cold_penalty_ms: float, seed: int,
                 leading_silence: Delay | None = None, greeting: Delay | None = None) -> None:
        self.setup_delay = setup_delay
        self.first_audio_delay = first_audio_delay
        self.leading_silence = leading_silence
        self.greeting = greeting
        self.cold_penalty_ms = cold_penalty_ms
        self.seed = seed
        self._rng = random.Random(seed)
        self._sessions_drawn = 0

    def draw(self) -> InjectedDelays:
        """Delays for the next accepted session, in session order."""
        cold = self.cold_penalty_ms if self._sessions_drawn == 0 else 0.0
        self._sessions_drawn += 1
        setup = self.setup_delay.draw(self._rng)
        first_audio = self.first_audio_delay.draw(self._rng)
        leading = self.leading_silence.draw(self._rng) if self.leading_silence is not None else 0.0
        greeting = self.greeting.draw(self._rng) if self.greeting is not None else None
        return InjectedDelays(setup, first_audio, cold, leading, greeting)

    def describe(self) -> str:
        """One-line summary for the startup log."""
        extra = "".join([
            f", leading silence {self.leading_silence.describe()}" if self.leading_silence is not None else "",
            f", greeting after {self.greeting.describe()}" if self.greeting is not None else ""])
        return (f"setup delay {self.setup_delay.describe()}, first-audio delay "
                f"{self.first_audio_delay.describe()}, cold penalty {self.cold_penalty_ms:g} ms{extra}, seed {self.seed}")
