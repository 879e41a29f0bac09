"""ElevenLabs Agents (the conversation WebSocket and its signed-URL request), emulated (docs/protocols/elevenlabs.md)."""

from bootbench.server.context import ProtocolContext

from .protocol import ElevenLabsProtocol


def build(context: ProtocolContext) -> ElevenLabsProtocol:
    return ElevenLabsProtocol(context)
