"""The README's reference tables, written from the code: the options table, the ``--check`` grammar, the metrics.

The options table comes from :data:`bootbench.options.OPTIONS` (flags, the
help text, the default its help states) plus the two Locust options every
run sets; the grammar from :mod:`bootbench.checks` and the phase table; the
Prometheus metrics from :data:`bootbench.views.prometheus.METRICS`. The
README holds them between markers, and a test fails when they drift from
the code (regenerate: ``python tests/support/readme_tables.py --readme``).

    print(options_table())
    print(check_grammar())
    print(metrics_table())
"""

from __future__ import annotations

import re

from bootbench import checks, providers
from bootbench.options import OPTIONS, Option
from bootbench.samples import PHASES, TURN_PHASES
from bootbench.views.prometheus import METRICS

LOCUST_ROWS = (
    ("`-H`, `--host HOST`", "the embedded reference server", "The service to benchmark (Locust's option)."),
    ("`-u`, `--users NUM_USERS`", "1", "Concurrent callers (Locust's option); a sweep sets them per level."),
)
"""Locust's own options that every bootbench run sets, listed with bootbench's."""

_DEFAULT_SENTENCE = re.compile(r"\s*Default:?\s+(?P<default>.*?)\.?\s*$", re.S)
_DEFAULT_ASIDE = re.compile(r"\(default:?\s+(?P<default>[^)]*)\)", re.I)


def options_table() -> str:
    """The README's table of bootbench's options (and Locust's ``-H``, ``-u``), one row per :data:`OPTIONS` row."""
    lines = ["| option | default | meaning |", "| --- | --- | --- |"]
    for option in OPTIONS:
        meaning, default = split_default(option)
        lines.append(f"| {_cell(flags_text(option))} | {_cell(default)} | {_cell(meaning)} |")
    lines += [f"| {flags} | {_cell(default)} | {_cell(meaning)} |" for flags, default, meaning in LOCUST_ROWS]
    return "\n".join(lines)


def flags_text(option: Option) -> str:
    """``-i``, ``--iterations ITERATIONS``: the flags as ``bootbench options`` shows them (argparse's metavar)."""
    if option.kind is bool:
        value = ""
    elif option.metavar:
        value = f" {option.metavar}"
    elif option.choices:
        value = " " + "|".join(option.choices)
    else:
        value = f" {option.name.upper()}"
    return ", ".join(f"`{flag}{value if flag == option.flag else ''}`" for flag in option.flags)


PROVIDER_DEFAULTS = {
    "turn": lambda driver: driver.turn_modes[0],
    "voice": lambda driver: driver.default_voice or "the service's",
    "model": lambda driver: driver.default_model or "the service's",
    "trailing_silence_ms": lambda driver: (f"{driver.vad_trailing_silence_ms:g} with --turn vad, else 0"
                                           if "vad" in driver.turn_modes and driver.vad_silence_ms else "0"),
}
"""The options ``options.resolve`` defaults from the provider's driver: the README lists every built-in's value,
generated from the drivers so that a new provider cannot be left out."""


def split_default(option: Option) -> tuple[str, str]:
    """The help of ``option`` without its closing "Default ..." sentence, and that default (else the value)."""
    text = option.help.replace("%%", "%")
    start = text.rfind("Default")
    if option.name in PROVIDER_DEFAULTS:  # defaulted with the provider in options.resolve()
        meaning = text[:start].strip() if start >= 0 else text.strip()
        return meaning, "the provider's (" + "; ".join(
            f"{name}: {PROVIDER_DEFAULTS[option.name](driver)}" for name, driver in providers.drivers().items()) + ")"
    if start >= 0 and (match := _DEFAULT_SENTENCE.fullmatch(text[start:])):
        return text[:start].strip(), match["default"].strip()
    if aside := _DEFAULT_ASIDE.search(text):
        return text.strip(), aside["default"].strip()
    if option.default in (None, "", ()):
        return text.strip(), "none"
    if option.kind is bool:
        return text.strip(), "on" if option.default else "off"
    return text.strip(), f"{option.default:g}" if isinstance(option.default, float) else str(option.default)


def check_grammar() -> str:
    """The grammar of a ``--check`` expression, every name as :mod:`bootbench.checks` accepts it."""
    ops = " | ".join(checks.OPERATORS)
    width = max(len(p) for p in (*PHASES, *TURN_PHASES))
    phases = [f"  {'|' if n else ' '} {phase}" for n, phase in enumerate(PHASES)]
    phases += [f"  | {phase:<{width}}   (with --turns > 1)" for phase in TURN_PHASES]
    return "\n".join([
        "CHECK := PHASE:STAT OP NUMBER [ms]",
        f"       | {checks.SUCCESS_RATE} OP NUMBER [%]",
        f"       | {checks.CAPACITY} OP USERS                      (with --sweep)",
        "PHASE :=",
        *phases,
        f"STAT  := {' | '.join(checks.STATS)}",
        f"OP    := {ops}",
    ])


def _cell(text: str) -> str:
    """Text as one Markdown table cell: a pipe escaped, on one line."""
    return " ".join(text.split()).replace("|", "\\|")


def metrics_table() -> str:
    """The README's table of the Prometheus metrics bootbench exports, one row per :data:`METRICS` row."""
    lines = ["| metric | type | labels | meaning |", "| --- | --- | --- | --- |"]
    for metric in METRICS:
        labels = ", ".join(f"`{label}`" for label in metric.labels)
        lines.append(f"| `{metric.name}` | {metric.type} | {labels} | {_cell(metric.help)} |")
    return "\n".join(lines)
