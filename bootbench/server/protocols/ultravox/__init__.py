"""Ultravox (a call created over HTTPS, joined over a raw WebSocket), emulated (docs/protocols/ultravox.md)."""

from bootbench.server.context import ProtocolContext

from .protocol import UltravoxProtocol


def build(context: ProtocolContext) -> UltravoxProtocol:
    return UltravoxProtocol(context)
