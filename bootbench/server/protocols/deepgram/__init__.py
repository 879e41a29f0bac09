"""Deepgram Voice Agent (Agent API v1 over a raw WebSocket, binary audio), emulated (docs/protocols/deepgram.md)."""

from bootbench.server.context import ProtocolContext

from .protocol import DeepgramAgentProtocol


def build(context: ProtocolContext) -> DeepgramAgentProtocol:
    return DeepgramAgentProtocol(context)
