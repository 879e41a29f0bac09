"""Deepgram Voice Agent (Agent API v1 over a raw WebSocket, binary audio), emulated (docs/protocols/deepgram.md)."""

from bootbench.server.context import ProtocolContext

from .faults import fault_forms
from .protocol import DeepgramAgentProtocol

__all__ = ["build", "fault_forms"]


def build(context: ProtocolContext) -> DeepgramAgentProtocol:
    return DeepgramAgentProtocol(context)
