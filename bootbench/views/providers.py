"""The provider table for people: ``bootbench providers`` (every driver this machine has, and how to use it).

    print(providers_text())          # every provider
    print(providers_text(["openai"]))

Each provider with where it came from (bootbench, an installed package, a
module), its key variables, turn modes, default model and voice, whether the
reference server emulates it, and its ``--provider-option`` keys with their help.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from bootbench.errors import UserError
from bootbench.providers import registry
from bootbench.providers.base import Driver, ProviderOption
from bootbench.server import protocols as server_protocols

WIDTH = 100
INDENT = "    "


def providers_text(names: Sequence[str] = ()) -> str:
    """Every provider (or those of ``names``) described; ProviderError for a name the table does not have."""
    drivers = {name: registry.get(name) for name in names} if names else registry.drivers()
    try:
        emulated = set(server_protocols.names())
    except server_protocols.ProtocolError as exc:
        raise UserError(str(exc)) from None
    blocks = [_describe(name, driver, registry.source(name), driver.emulated_by() in emulated)
              for name, driver in drivers.items()]
    return "\n\n".join(blocks) + "\n"


def _describe(name: str, driver: type[Driver], source: str, emulated: bool) -> str:
    summary = (driver.__doc__ or "").strip().splitlines()[0] if driver.__doc__ else ""
    lines = [f"{name}: {summary}" if summary else name, f"  from:             {source}"]
    keys = " or ".join(driver.key_variables) if driver.key_variables else "none"
    lines.append(f"  key variable:     {keys} (the environment or ./.env)")
    modes = ", ".join(f"{mode} (default)" if index == 0 else mode for index, mode in enumerate(driver.turn_modes))
    lines.append(f"  turn modes:       {modes} (--turn)")
    if "vad" in driver.turn_modes:
        lines.append(f"  vad trailing:     {driver.vad_trailing_silence_ms:g} ms sent by default with --turn vad "
                     f"(--trailing-silence-ms; at least {driver.vad_silence_ms:g})")
    lines.append(f"  default model:    {driver.default_model or '(none: the service chooses)'}")
    lines.append(f"  default voice:    {driver.default_voice or '(none: the service chooses)'}")
    if driver.public_url:
        lines.append(f"  public endpoint:  {driver.public_url}")
    lines.append(f"  reference server: {'emulates it' if emulated else 'does not emulate it (give -H)'}")
    if not driver.options:
        lines.append("  options:          none")
    else:
        lines.append("  options (--provider-option KEY=VALUE):")
        for option in driver.options:
            lines.extend(_option_lines(option))
    return "\n".join(lines)


def _option_lines(option: ProviderOption) -> list[str]:
    facts = []
    if option.choices:
        facts.append(f"one of {', '.join(option.choices)}")
    facts.append(f"default {option.default!r}" if option.default else
                 "required off this machine" if option.required else "no default")
    if option.secret:
        facts.append("secret: redacted in every file and log")
    said = "; ".join(facts)
    text = f"{option.help.rstrip('.')}. {said[0].upper()}{said[1:]}."
    body = textwrap.fill(text, WIDTH, initial_indent=INDENT + "  ", subsequent_indent=INDENT + "  ")
    return [f"{INDENT}{option.key}", body]
