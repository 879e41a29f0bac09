"""Ultravox (a call created over HTTPS, joined over a raw WebSocket), emulated (docs/protocols/ultravox.md)."""

from bootbench.server.context import ProtocolContext

from .faults import fault_forms
from .protocol import UltravoxProtocol

__all__ = ["build", "fault_forms"]


def build(context: ProtocolContext) -> UltravoxProtocol:
    return UltravoxProtocol(context)
