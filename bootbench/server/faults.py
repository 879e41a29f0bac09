"""Faults the reference server injects into chosen sessions: which sessions, and what goes wrong.

    plan = FaultPlan([parse_fault("error:every=5"), parse_fault("drop:at=3,7")], seed=0, forms=forms)
    fault = plan.pick(session_number, "openai")    # the FaultSpec striking this session, or None

A spec is ``KIND[:OPTION=VALUE]...`` (the server's ``--fault``, repeatable).
Which sessions it strikes: ``at=3,7`` (those session numbers), ``every=N``
(sessions N, 2N, ...) or ``rate=R`` (each session with probability R, a draw
seeded by the server's ``--seed`` and the session number); with none of them,
every session. ``protocol=openai,gemini`` limits it to those protocols'
sessions. When several specs strike one session, the first one given wins.

The kinds are protocol-neutral; each protocol says how a kind looks on its
wire (its package's ``faults.py``) and declares, in its :class:`FaultForms`,
the words of the options that are its own (``error:type``, ``end:reason``)
and the kinds (or option values) it has no form of, with why. The server
serves every protocol at once, so applicability is explicit
(:meth:`FaultPlan.check`): a spec strikes only sessions of protocols that
have a form of it; one that names a protocol without a form of it, or that
no protocol of the server can play, is refused at start with one sentence.
The ground truth line of a struck session carries ``"fault": {"kind": ...,
<options>}`` with the protocol's words filled in.
"""

from __future__ import annotations

import inspect
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .latency import InjectedDelays

DROP_POINTS = ("before_ready", "after_input", "mid_reply")
ERROR_POINTS = ("before_ready", "after_input")
MALFORMED = ("not_json", "not_object", "wrong_type", "missing_field", "bad_base64", "huge")
SLOW_PHASES = ("setup", "audio")
YES_NO = ("no", "yes")
TRIGGERS = ("rate", "every", "at")
PROTOCOL_OPTION = "protocol"
_WORD = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True)
class _Option:
    default: str | int | None
    choices: tuple[str, ...] = ()
    """Allowed words; empty for a whole-number option (or one whose words are each protocol's own)."""
    own: bool = False
    """Its words are each protocol's own (:attr:`FaultForms.words`); the default is the protocol's first."""


KINDS: dict[str, tuple[str, dict[str, _Option]]] = {
    "auth": ("refuses the start request as unauthenticated", {"echo": _Option("no", YES_NO)}),
    "error": ("sends an error of type {type} instead of {when}",
              {"type": _Option(None, own=True), "when": _Option("before_ready", ERROR_POINTS),
               "echo": _Option("no", YES_NO)}),
    "never_ready": ("accepts the session, never makes it ready", {}),
    "silence": ("takes the audio, never answers", {}),
    "silent_audio": ("answers on time with digital silence (every sample zero): first audio, never audible", {}),
    "drop": ("closes the TCP connection (no goodbye) {when}", {"when": _Option("after_input", DROP_POINTS)}),
    "end": ("ends the session ({reason}) instead of answering", {"reason": _Option(None, own=True)}),
    "malformed": ("answers with one malformed message ({what}), then nothing",
                  {"what": _Option("bad_base64", MALFORMED)}),
    "stray": ("holds back {chunks} reply chunks, sends them as the next session on the connection starts",
              {"chunks": _Option(3)}),
    "slow": ("takes {ms} ms for the {phase}",
             {"phase": _Option("audio", SLOW_PHASES), "ms": _Option(None)}),
}
"""Every kind: what the server does (a template over the options), and its options with defaults (None = required,
or for an ``own`` option the protocol's first word)."""
_SHOWN = {
    ("drop", "when"): {"before_ready": "before the session is ready", "after_input": "once the client's audio arrived",
                       "mid_reply": "right after the first reply chunk"},
    ("error", "when"): {"before_ready": "making the session ready", "after_input": "answering the client's audio"},
    ("slow", "phase"): {"setup": "session setup", "audio": "first audio"},
}


def _kind_help(kind: str) -> str:
    text = kind
    for name, option in KINDS[kind][1].items():
        values = "|".join(option.choices) if option.choices else "WORD" if option.own else "N"
        text += f":{name}={values}" if option.default is None and not option.own else f"[:{name}={values}]"
    return text


SPEC_HELP = ("; ".join(_kind_help(k) for k in KINDS)
             + " (each protocol's own words for error's type and end's reason: see the README's fault tables); "
             "choose sessions with at=3,7, every=N or rate=R (default: every session) and protocols with "
             "protocol=NAME[,NAME] (default: every protocol with a form of the fault)")


def _no_message(spec: FaultSpec) -> str:
    return ""


@dataclass(frozen=True)
class FaultForms:
    """How one protocol plays the kinds of :data:`KINDS`; its package's ``fault_forms()`` returns it.

        FaultForms(words={"type": ("rate_limit_exceeded", "insufficient_quota")},
                   missing={"auth:echo=yes": "the service's close reasons never quote the key"})
    """

    words: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """An ``own`` option (``type``, ``reason``) -> the protocol's words for it; the first is the default."""
    missing: Mapping[str, str] = field(default_factory=dict)
    """``KIND`` or ``KIND:OPTION=VALUE`` -> why the protocol has no form of it (a clause)."""
    says: Mapping[str, str] = field(default_factory=dict)
    """``KIND`` -> what the server does on this wire, a template over the options (default: :data:`KINDS`')."""
    message: Callable[[FaultSpec], str] = _no_message
    """The service's words a session struck by a (resolved) spec receives, for the kinds that have any."""

    def why_not(self, spec: FaultSpec) -> str | None:
        """Why this protocol cannot play ``spec`` (one clause), or None when it can."""
        if spec.kind in self.missing:
            return self.missing[spec.kind]
        for name, value in spec.options:
            if f"{spec.kind}:{name}={value}" in self.missing:
                return self.missing[f"{spec.kind}:{name}={value}"]
            option = KINDS[spec.kind][1][name]
            if option.own and value is not None and value not in self.words.get(name, ()):
                words = self.words.get(name, ())
                return (f"its {name} is one of {', '.join(words)}" if words
                        else f"it has no words for {spec.kind}'s {name}")
        return None

    def resolve(self, spec: FaultSpec) -> FaultSpec:
        """``spec`` with this protocol's default word in every ``own`` option left out."""
        options = tuple((name, self.words[name][0] if value is None and KINDS[spec.kind][1][name].own
                         and self.words.get(name) else value) for name, value in spec.options)
        return replace(spec, options=options, says=self.says.get(spec.kind))


def forms_of(name: str, factory: Callable[..., Any]) -> dict[str, FaultForms]:
    """The fault forms of the protocol ``name`` of the table, by the protocol names its sessions carry.

    They are the ``fault_forms()`` of its factory's module (a package's ``__init__``): one FaultForms, or one per
    service it serves under other names (the ``openai`` package's ``azure`` and ``xai``). A protocol that declares
    none has no form of any kind (its sessions are never struck).
    """
    provide = getattr(inspect.getmodule(factory), "fault_forms", None)
    forms = provide() if provide is not None else None
    if isinstance(forms, FaultForms):
        return {name: forms}
    if forms is None:
        return {name: FaultForms(missing={kind: "the protocol declares no fault forms" for kind in KINDS})}
    return dict(forms)


def served_forms(table: Mapping[str, Callable[..., Any]]) -> dict[str, FaultForms]:
    """Every protocol name the server's table serves, with its fault forms (:func:`forms_of`)."""
    return {served: forms for name, factory in table.items() for served, forms in forms_of(name, factory).items()}


@dataclass(frozen=True)
class FaultSpec:
    """One parsed ``--fault``: its kind, its options, which sessions and protocols it strikes."""

    kind: str
    options: tuple[tuple[str, str | int | None], ...]
    text: str
    at: frozenset[int] = frozenset()
    every: int | None = None
    rate: float | None = None
    protocols: frozenset[str] = frozenset()
    """The protocols named by ``protocol=``; empty: every protocol with a form of it."""
    says: str | None = None
    """The protocol's own description template (:attr:`FaultForms.says`), once resolved for one."""

    def option(self, name: str) -> Any:
        """The value of one of the kind's options."""
        return dict(self.options)[name]

    def describe(self) -> str:
        """What the server does, in words."""
        options = dict(self.options)
        template = self.says or KINDS[self.kind][0]
        text = template.format(**{k: _SHOWN.get((self.kind, k), {}).get(v, v) for k, v in options.items()})
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
        if name not in allowed and name not in TRIGGERS and name != PROTOCOL_OPTION:
            takes = ", ".join((*allowed, PROTOCOL_OPTION, *TRIGGERS))
            raise bad(f"{kind} has no option {name!r} (it takes {takes})")
        if name in given:
            raise bad(f"{name} is given twice")
        given[name] = value
    triggers = [t for t in TRIGGERS if t in given]
    if len(triggers) > 1:
        raise bad("give only one of rate, every and at")
    options: list[tuple[str, str | int | None]] = []
    for name, option in allowed.items():
        if name not in given:
            if option.default is None and not option.own:
                raise bad(f"{kind} needs {name}=...")
            options.append((name, option.default))
        elif option.choices:
            if given[name] not in option.choices:
                raise bad(f"{name} must be one of {', '.join(option.choices)}")
            options.append((name, given[name]))
        elif option.own:
            if not _WORD.fullmatch(given[name]):
                raise bad(f"{name} must be a word of lowercase letters, digits and underscores, not {given[name]!r}")
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
    protocols = frozenset(p.strip() for p in given.get(PROTOCOL_OPTION, "").split(",") if p.strip())
    return FaultSpec(kind, tuple(options), spec, at=at, every=every, rate=rate, protocols=protocols)


def _whole(text: str, name: str, minimum: int, bad) -> int:
    try:
        value = int(text)
    except ValueError:
        raise bad(f"{name} must be a whole number, not {text!r}") from None
    if value < minimum:
        raise bad(f"{name} must be at least {minimum}, not {value}")
    return value


class FaultNotPlayable(ValueError):
    """A spec no protocol of the server can play, or one that names a protocol without a form of it."""


class FaultPlan:
    """The faults of one server process; :meth:`pick` decides each session's fault, reproducibly per seed.

    With ``forms`` (each protocol's :class:`FaultForms`, by protocol name) the plan is checked
    (:class:`FaultNotPlayable`) and each spec strikes only sessions of protocols with a form of it, resolved
    to that protocol's words; without, every spec strikes every protocol as given (tests of the selection).
    """

    def __init__(self, specs: tuple[FaultSpec, ...] | list[FaultSpec] = (), seed: int = 0,
                 forms: Mapping[str, FaultForms] | None = None) -> None:
        self.specs = tuple(specs)
        self.seed = seed
        self.forms = dict(forms) if forms is not None else None
        self.skipped: dict[str, list[str]] = {}
        """Spec text -> the protocols it does not strike, each with why (for the startup log)."""
        self._playable: dict[str, tuple[FaultSpec | None, ...]] = {}
        if self.forms is not None:
            for name, protocol_forms in self.forms.items():
                self._playable[name] = tuple(self._resolve(spec, name, protocol_forms) for spec in self.specs)
            self._check()

    def _resolve(self, spec: FaultSpec, protocol: str, forms: FaultForms) -> FaultSpec | None:
        if spec.protocols and protocol not in spec.protocols:
            return None
        why = forms.why_not(spec)
        if why is not None:
            self.skipped.setdefault(spec.text, []).append(f"{protocol} ({why})")
            return None
        return forms.resolve(spec)

    def _check(self) -> None:
        assert self.forms is not None
        for index, spec in enumerate(self.specs):
            unknown = sorted(spec.protocols - set(self.forms))
            if unknown:
                raise FaultNotPlayable(f"invalid fault {spec.text!r}: this server has no protocol "
                                       f"{', '.join(map(repr, unknown))} (it serves {', '.join(self.forms)})")
            unplayable = [name for name in sorted(spec.protocols) if self._playable[name][index] is None]
            if unplayable:
                raise FaultNotPlayable(f"invalid fault {spec.text!r}: no form of it on {self._why(spec, unplayable)}")
            if not any(playable[index] is not None for playable in self._playable.values()):
                raise FaultNotPlayable(f"invalid fault {spec.text!r}: no protocol of this server has a form of it "
                                       f"({self._why(spec, list(self.forms))})")

    def _why(self, spec: FaultSpec, names: list[str]) -> str:
        assert self.forms is not None
        return "; ".join(f"{name}: {self.forms[name].why_not(spec)}" for name in names)

    def __bool__(self) -> bool:
        return bool(self.specs)

    def pick(self, session: int, protocol: str | None = None) -> FaultSpec | None:
        """The fault striking ``session`` (numbered from 1 in start order) of ``protocol``, or None.

        A ``rate`` draw is a function of the seed, the spec and the session number only, so the choice of one
        session never shifts another's, and a protocol may ask before a session exists which fault its number
        will draw (OpenAI refuses a struck upgrade before any event numbers the session).
        """
        specs = self.specs
        if self.forms is not None:
            specs = self._playable.get(protocol or "", ())
        for index, spec in enumerate(specs):
            if spec is None:
                continue
            draw = random.Random(f"bootbench-fault:{self.seed}:{index}:{session}").random() if spec.rate else None
            if spec.strikes(session, draw):
                return spec
        return None

    def describe(self) -> str:
        """One line for the startup log: the specs, and the protocols each does not strike."""
        text = "; ".join(s.text for s in self.specs) or "none"
        gaps = [f"{spec} not on {', '.join(where)}" for spec, where in self.skipped.items()]
        return text + (f" ({'; '.join(gaps)})" if gaps else "")
