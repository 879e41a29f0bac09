"""OpenAI Realtime (GA events over a raw WebSocket), emulated (docs/protocols/openai-realtime.md)."""

from bootbench.server.context import ProtocolContext

from .protocol import OpenAIRealtimeProtocol


def build(context: ProtocolContext) -> OpenAIRealtimeProtocol:
    return OpenAIRealtimeProtocol(context)
