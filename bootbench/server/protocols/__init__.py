"""The table of emulated wire protocols: the built-ins, plus any an installed package adds.

    for name, factory in protocols.factories().items():
        server.protocols.append(factory(context))

Each protocol is a package here (``<name>/``: the protocol, its client checks,
its fault forms) whose ``build(context)`` builds it from a
:class:`~bootbench.server.context.ProtocolContext`, and whose ``fault_forms()``
beside it declares how it plays the fault kinds (:class:`~bootbench.server.faults.FaultForms`;
a protocol without one is never struck by a fault). A package outside
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


class ProtocolError(Exception):
    """A protocol table that cannot be used (one sentence): a name given twice, a plugin that does not load."""


class ProtocolClash(ProtocolError):
    """Two sources name the same protocol."""


def _load(target: str) -> Factory:
    module, _, attribute = target.partition(":")
    return getattr(import_module(module), attribute)


def _source(point: Any) -> str:
    return f"package {point.dist.name if point.dist else '?'} ({point.value})"


def _installed() -> dict[str, Any]:
    """The installed packages' entry points by name; :class:`ProtocolClash` for a name given twice."""
    found: dict[str, Any] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        known = f"bootbench ({BUILTINS[point.name]})" if point.name in BUILTINS else (
            _source(found[point.name]) if point.name in found else None)
        if known is not None:
            raise ProtocolClash(f"two sources define the reference server protocol {point.name!r}: {known} and "
                                f"{_source(point)}")
        found[point.name] = point
    return found


@cache
def factories() -> dict[str, Factory]:
    """Every protocol's factory by name: the built-ins, then the installed packages' (loaded once).

    A name given twice is a :class:`ProtocolClash` naming both sources, a plugin that does not load a
    :class:`ProtocolError` naming it.
    """
    found = {name: _load(target) for name, target in BUILTINS.items()}
    for name, point in _installed().items():
        try:
            found[name] = point.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is named in one sentence, never a traceback
            raise ProtocolError(f"the reference server protocol {name!r} of the {_source(point)} could not be "
                                f"loaded: {type(exc).__name__}: {exc}") from None
    return found


def names() -> tuple[str, ...]:
    """Every protocol's name, the built-ins first, without importing any (pre-flight, ``bootbench providers``).

    :class:`ProtocolClash` for a name two sources give.
    """
    return (*BUILTINS, *_installed())
