"""Gemini Live (BidiGenerateContent over a raw WebSocket), emulated (docs/protocols/gemini-live.md)."""

from bootbench.server.context import ProtocolContext

from .protocol import GeminiLiveProtocol


def build(context: ProtocolContext) -> GeminiLiveProtocol:
    return GeminiLiveProtocol(context)
