"""Gemini Live (BidiGenerateContent over a raw WebSocket), emulated (docs/protocols/gemini-live.md)."""

from bootbench.server.context import ProtocolContext

from .faults import fault_forms
from .protocol import GeminiLiveProtocol

__all__ = ["build", "fault_forms"]


def build(context: ProtocolContext) -> GeminiLiveProtocol:
    return GeminiLiveProtocol(context)
