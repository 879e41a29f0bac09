"""OpenAI Realtime (GA events over a raw WebSocket), emulated (docs/protocols/openai-realtime.md)."""

from bootbench.server.context import ProtocolContext

from .faults import fault_forms
from .protocol import OpenAIRealtimeProtocol

__all__ = ["build", "fault_forms"]


def build(context: ProtocolContext) -> OpenAIRealtimeProtocol:
    return OpenAIRealtimeProtocol(context)
