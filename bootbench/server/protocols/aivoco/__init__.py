"""Aivoco's Socket.IO protocol, emulated (docs/protocols/aivoco.md)."""

from bootbench.server.context import ProtocolContext

from .faults import fault_forms
from .protocol import AivocoProtocol

__all__ = ["build", "fault_forms"]


def build(context: ProtocolContext) -> AivocoProtocol:
    return AivocoProtocol(context)
