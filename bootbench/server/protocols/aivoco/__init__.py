"""Aivoco's Socket.IO protocol, emulated (docs/protocols/aivoco.md)."""

from bootbench.server.context import ProtocolContext

from .protocol import AivocoProtocol


def build(context: ProtocolContext) -> AivocoProtocol:
    return AivocoProtocol(context)
