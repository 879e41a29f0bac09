"""The table of emulated wire protocols: the built-ins, plus any an installed package adds.

    for name, factory in protocols.factories().items():
        server.protocols.append(factory(context))

Each protocol is a package here (``<name>/``: the protocol, its client checks,
its fault forms) whose ``build(context)`` builds it from a
:class:`~bootbench.server.context.ProtocolContext`. A package outside
bootbench adds one with an entry point in the group ``bootbench.server_protocols``
(name = the protocol's name, value = ``module:factory``), as
``examples/provider-plugin`` does beside its driver.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "bootbench.server_protocols"
BUILTINS: dict[str, str] = {
    "aivoco": "bootbench.server.protocols.aivoco:build",
    "openai": "bootbench.server.protocols.openai:build",
    "gemini": "bootbench.server.protocols.gemini:build",
    "elevenlabs": "bootbench.server.protocols.elevenlabs:build",
    "ultravox": "bootbench.server.protocols.ultravox:build",
    "deepgram": "bootbench.server.protocols.deepgram:build",
}
"""Name -> ``module:factory`` of each protocol bootbench ships."""

Factory = Callable[[Any], Any]


class ProtocolClash(Exception):
    """Two sources name the same protocol."""


def _load(target: str) -> Factory:
    module, _, attribute = target.partition(":")
    return getattr(import_module(module), attribute)


@cache
def factories() -> dict[str, Factory]:
    """Every protocol's factory by name: the built-ins, then the installed packages' (loaded once).

    A name given twice is a :class:`ProtocolClash` naming both sources.
    """
    found: dict[str, tuple[str, Factory]] = {name: (f"bootbench ({target})", _load(target))
                                               for name, target in BUILTINS.items()}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        source = f"package {point.dist.name if point.dist else '?'} ({point.value})"
        if point.name in found:
            raise ProtocolClash(f"two sources define the reference server protocol {point.name!r}: "
                                f"{found[point.name][0]} and {source}")
        found[point.name] = (source, point.load())
    return {name: factory for name, (_, factory) in found.items()}
