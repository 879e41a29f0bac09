"""ElevenLabs Agents (the conversation WebSocket and its signed-URL request), emulated (docs/protocols/elevenlabs.md)."""

from bootbench.server.context import ProtocolContext

from .faults import fault_forms
from .protocol import ElevenLabsProtocol

__all__ = ["build", "fault_forms"]


def build(context: ProtocolContext) -> ElevenLabsProtocol:
    return ElevenLabsProtocol(context)
