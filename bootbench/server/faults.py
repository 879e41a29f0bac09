"""Faults the reference server injects into chosen sessions: which sessions, and what goes wrong.

    plan = FaultPlan([parse_fault("error:type=rate_limit_exceeded:every=5"), parse_fault("drop:at=3,7")], seed=0)
    fault = plan.pick(session_number)      # the FaultSpec striking this session, or None

A spec is ``KIND[:OPTION=VALUE]...`` (the server's ``--fault``, repeatable).
Which sessions it strikes: ``at=3,7`` (those session numbers), ``every=N``
(sessions N, 2N, ...) or ``rate=R`` (each session with probability R, drawn
from a generator seeded by the server's ``--seed``); with none of them, every
session. When several specs strike one session, the first one given wins.

The kinds are protocol-neutral; each protocol module decides how a kind looks
on its wire (the Aivoco forms are in :mod:`.protocols.aivoco.faults`). The ground truth
line of a struck session carries ``"fault": {"kind": ..., <options>}``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any

from .latency import InjectedDelays

ERROR_TYPES = ("insufficient_credits", "invalid_api_key", "rate_limit_exceeded")
END_REASONS = ("insufficient_user_credits", "insufficient_admin_units")
DROP_POINTS = ("before_ready", "after_input", "mid_reply")
MALFORMED = ("not_json", "not_object", "wrong_type", "missing_field", "bad_base64", "huge")
SLOW_PHASES = ("setup", "audio")
YES_NO = ("no", "yes")
TRIGGERS = ("rate", "every", "at")


@dataclass(frozen=True)
class _Option:
    default: str | int | None
    choices: tuple[str, ...] = ()
    """Allowed words; empty for a whole-number option."""


KINDS: dict[str, tuple[str, dict[str, _Option]]] = {
    "auth": ("refuses the start request as unauthenticated", {"echo": _Option("no", YES_NO)}),
    "error": ("sends an error of type {type} instead of making the session ready",
              {"type": _Option("rate_limit_exceeded", ERROR_TYPES), "echo": _Option("no", YES_NO)}),
    "never_ready": ("accepts the session, never makes it ready", {}),
    "silence": ("takes the audio, never answers", {}),
    "drop": ("closes the TCP connection (no goodbye) {when}", {"when": _Option("after_input", DROP_POINTS)}),
    "end": ("ends the session ({reason}) instead of answering",
            {"reason": _Option("insufficient_user_credits", END_REASONS)}),
    "malformed": ("answers with one malformed message ({what}), then nothing",
                  {"what": _Option("bad_base64", MALFORMED)}),
    "stray": ("holds back {chunks} reply chunks, sends them as the next session on the connection starts",
              {"chunks": _Option(3)}),
    "slow": ("takes {ms} ms for the {phase}",
             {"phase": _Option("audio", SLOW_PHASES), "ms": _Option(None)}),
}
"""Every kind: what the server does (a template over the options), and its options with defaults (None = required)."""
_SHOWN = {
    "when": {"before_ready": "before the session is ready", "after_input": "once the client's audio arrived",
             "mid_reply": "right after the first reply chunk"},
    "phase": {"setup": "session setup", "audio": "first audio"},
}



def _kind_help(kind: str) -> str:
    text = kind
    for name, option in KINDS[kind][1].items():
        values = "|".join(option.choices) if option.choices else "N"
        text += f":{name}={values}" if option.default is None else f"[:{name}={values}]"
    return text


SPEC_HELP = ("; ".join(_kind_help(k) for k in KINDS)
             + "; choose sessions with at=3,7, every=N or rate=R (default: every session)")


@dataclass(frozen=True)
class FaultSpec:
    """One parsed ``--fault``: its kind, its options, and which sessions it strikes."""

    kind: str
    options: tuple[tuple[str, str | int], ...]
    text: str
    at: frozenset[int] = frozenset()
    every: int | None = None
    rate: float | None = None

    def option(self, name: str) -> Any:
        """The value of one of the kind's options."""
        return dict(self.options)[name]

    def describe(self) -> str:
        """What the server does, in words."""
        options = dict(self.options)
        text = KINDS[self.kind][0].format(**{k: _SHOWN.get(k, {}).get(v, v) for k, v in options.items()})
        return text + (", quoting the client's key in its message" if options.get("echo") == "yes" else "")

    def record(self) -> dict[str, Any]:
        """The ground truth form: ``{"kind": ..., <options>}``."""
        return {"kind": self.kind, **dict(self.options)}

    def strikes(self, session: int, draw: float | None) -> bool:
        """True when this spec chooses ``session`` (``draw`` is this session's uniform draw for ``rate``)."""
        if self.at:
            return session in self.at
        if self.every is not None:
            return session % self.every == 0
        if self.rate is not None:
            return draw is not None and draw < self.rate
        return True

    def slowed(self, injected: InjectedDelays) -> InjectedDelays:
        """For ``slow``: the session's delays with the slow phase set to ``ms`` (and no cold penalty)."""
        ms = float(self.option("ms"))
        if self.option("phase") == "setup":
            return replace(injected, setup_delay_ms=ms, cold_penalty_ms=0.0)
        return replace(injected, first_audio_delay_ms=ms)


def parse_fault(text: str) -> FaultSpec:
    """Parse ``KIND[:OPTION=VALUE]...``; raises ``ValueError`` with one sentence on a bad spec."""
    spec = str(text).strip()

    def bad(reason: str) -> ValueError:
        return ValueError(f"invalid fault {spec!r}: {reason}")

    kind, *fields = spec.split(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise bad(f"unknown kind {kind!r} (use {', '.join(KINDS)})")
    allowed = KINDS[kind][1]
    given: dict[str, str] = {}
    for field_text in fields:
        name, sep, value = field_text.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not sep or not name or not value:
            raise bad(f"{field_text!r} is not OPTION=VALUE")
        if name not in allowed and name not in TRIGGERS:
            takes = ", ".join((*allowed, *TRIGGERS))
            raise bad(f"{kind} has no option {name!r} (it takes {takes})")
        if name in given:
            raise bad(f"{name} is given twice")
        given[name] = value
    triggers = [t for t in TRIGGERS if t in given]
    if len(triggers) > 1:
        raise bad("give only one of rate, every and at")
    options: list[tuple[str, str | int]] = []
    for name, option in allowed.items():
        if name not in given:
            if option.default is None:
                raise bad(f"{kind} needs {name}=...")
            options.append((name, option.default))
        elif option.choices:
            if given[name] not in option.choices:
                raise bad(f"{name} must be one of {', '.join(option.choices)}")
            options.append((name, given[name]))
        else:
            options.append((name, _whole(given[name], name, 1 if name != "ms" else 0, bad)))
    at: frozenset[int] = frozenset()
    every = rate = None
    if "at" in given:
        parts = [p.strip() for p in given["at"].split(",")]
        at = frozenset(_whole(p, "at", 1, bad) for p in parts)
    if "every" in given:
        every = _whole(given["every"], "every", 1, bad)
    if "rate" in given:
        try:
            rate = float(given["rate"])
        except ValueError:
            rate = math.nan
        if not 0 < rate <= 1:
            raise bad(f"rate must be a number above 0 and at most 1, not {given['rate']!r}")
    return FaultSpec(kind, tuple(options), spec, at=at, every=every, rate=rate)


def _whole(text: str, name: str, minimum: int, bad) -> int:
    try:
        value = int(text)
    except ValueError:
        raise bad(f"{name} must be a whole number, not {text!r}") from None
    if value < minimum:
        raise bad(f"{name} must be at least {minimum}, not {value}")
    return value


class FaultPlan:
    """The faults of one server process; :meth:`pick` decides each session's fault, reproducibly per seed."""

    def __init__(self, specs: tuple[FaultSpec, ...] | list[FaultSpec] = (), seed: int = 0) -> None:
        self.specs = tuple(specs)
        self._rngs = [random.Random(f"bootbench-fault:{seed}:{i}") if s.rate is not None else None
                      for i, s in enumerate(self.specs)]

    def __bool__(self) -> bool:
        return bool(self.specs)

    def pick(self, session: int) -> FaultSpec | None:
        """The fault striking ``session`` (numbered from 1 in start order), or None.

        Every ``rate`` spec draws once per session whether or not an earlier spec
        struck, so the choice of one session never shifts the draws of later ones.
        """
        draws = [rng.random() if rng is not None else None for rng in self._rngs]
        for spec, draw in zip(self.specs, draws):
            if spec.strikes(session, draw):
                return spec
        return None

    def describe(self) -> str:
        """One line for the startup log."""
        return "; ".join(s.text for s in self.specs) or "none"
