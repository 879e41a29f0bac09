"""ToyVoice emulated by bootbench's reference server: ``build(context)`` is the entry point's factory.

The server's core does the rest (bootbench.server: latency model, capacity, ground truth, the reply audio,
greetings, faults). A protocol translates its messages into the scheduler's calls:

- ``hello`` opens the session (``scheduler.open``: a record, its delays drawn), waits for a capacity slot and the
  setup delay, then sends ``ready``;
- ``audio`` is input (``record.note_input``), ``end_of_turn`` ends the caller's turn (``note_last_input``) and the
  reply starts after the turn's first-audio delay, streamed at real-time pace by ``self.reply``;
- a wrong key refuses the upgrade with HTTP 401, as the service does.

Two of the server's fault kinds are played: ``error`` (an error instead of ``ready``) and ``drop`` (the TCP
connection closed once the caller's turn is over, or before ready). :func:`fault_forms` tells the server so
(a protocol that declares no forms is never struck by a fault); the other kinds are declared missing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from dataclasses import dataclass

from aiohttp import web

from bootbench.server.context import ProtocolContext
from bootbench.server.faults import KINDS, FaultForms, FaultSpec
from bootbench.server.scheduler import sleep_until
from bootbench.server.ws_protocol import WebSocketConnection, WebSocketProtocol, spawn

from . import wire

PROTOCOL = "toyvoice"
ERROR_TYPES = ("overloaded",)
"""ToyVoice's words for ``error:type`` (the first is the default)."""
PLAYED = ("error", "drop")


def fault_forms() -> FaultForms:
    """The faults ToyVoice plays, in its words; every other kind (and an error after the input) has no form."""
    not_played = "the example plays only error (before ready) and drop"
    return FaultForms(words={"type": ERROR_TYPES},
                      missing={**{kind: not_played for kind in KINDS if kind not in PLAYED},
                               "error:when=after_input": not_played, "error:echo=yes": "its errors never quote the key"},
                      message=_said)


def _said(spec: FaultSpec) -> str:
    """The words a session struck by ``spec`` receives."""
    return f"the service is busy ({spec.option('type')})" if spec.kind == "error" else ""


@dataclass(eq=False)
class ToyConnection(WebSocketConnection):
    """A ToyVoice socket, with the TCP transport under it (the ``drop`` fault closes it without a goodbye)."""

    transport: asyncio.BaseTransport | None = None
    fault: FaultSpec | None = None


class ToyVoiceProtocol(WebSocketProtocol):
    """ToyVoice on ``/toy/v1/talk``: one session per socket."""

    protocol = PROTOCOL
    path = wire.PATH

    def new_connection(self, ws: web.WebSocketResponse, request: web.Request, sid: str) -> ToyConnection:
        return ToyConnection(ws, sid, self.scheduler.connection_record(PROTOCOL, sid), transport=request.transport)

    def refuse(self, request: web.Request, sid: str, received_ns: int) -> web.StreamResponse | None:
        key = request.headers.get(wire.KEY_HEADER, "").strip()
        if key and (self.api_key is None or key == self.api_key):
            return None
        record = self.scheduler.open(PROTOCOL, sid, received_ns)
        record.t_ns["ended_sent"] = time.perf_counter_ns()
        self.scheduler.finish(record, "auth_failed")
        return web.json_response({"error": "unknown key" if key else "no key"}, status=401)

    async def on_frame(self, conn: ToyConnection, data: str | bytes, binary: bool, received_ns: int) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "hello" and conn.record is None:
            conn.record = self.scheduler.open(PROTOCOL, conn.sid, received_ns)
            conn.fault = self.scheduler.fault_for(conn.record)
            self.scheduler.accept(conn.record)
            conn.setup_task = spawn(self._set_up(conn))
        elif conn.record is None or not conn.ready:
            self.scheduler.violation(conn.violation_target(), f"{kind or 'a message'} before ready")
        elif kind == "audio":
            try:
                pcm = base64.b64decode(message.get("pcm16") or "", validate=True)
            except (binascii.Error, ValueError):
                self.scheduler.violation(conn.record, "audio whose pcm16 is not base64")
                return
            conn.record.note_input(len(pcm) // 2, 0.0, received_ns)
        elif kind == "end_of_turn":
            await self._end_turn(conn, received_ns)
        else:
            self.scheduler.violation(conn.record, f"unknown message type {kind!r}")

    async def _set_up(self, conn: ToyConnection) -> None:
        record, fault = conn.record, conn.fault
        await self.scheduler.admit(record)
        await sleep_until(time.perf_counter_ns() + int(record.injected.total_setup_ms * 1e6))
        if fault is not None and fault.kind == "error":
            await self.send_json(conn, {"type": "error", "message": f"the service is busy ({fault.option('type')})"})
            await self.close_with(conn, 1011, "error", "error")
            return
        if fault is not None and fault.kind == "drop" and fault.option("when") == "before_ready":
            self._drop(conn)
            return
        conn.ready = True
        ready = record.t_ns["ready_sent"] = time.perf_counter_ns()
        await self.send_json(conn, {"type": "ready"})
        self.schedule_greeting(conn, ready)

    async def _end_turn(self, conn: ToyConnection, received_ns: int) -> None:
        record, fault = conn.record, conn.fault
        record.note_last_input(received_ns)
        if fault is not None and fault.kind == "drop" and fault.option("when") != "before_ready":
            self._drop(conn)
            return
        self.stop_greeting(conn)
        start = received_ns + int(self.scheduler.first_audio_delay(record) * 1e6)
        conn.reply_task = spawn(self._respond(conn, record.current_turn().turn, start))

    async def _respond(self, conn: WebSocketConnection, turn: int, start_ns: int, greeting: bool = False) -> None:
        record = conn.record

        async def send_chunk(_index: int, chunk: str) -> None:
            await self.send_json(conn, {"type": "audio", "turn": turn, "pcm16": chunk})

        if greeting:
            await self.greeting.stream(record, start_ns, send_chunk, greeting=True)
        else:
            await self.reply.stream(record, start_ns, send_chunk, leading_silence_ms=record.injected.leading_silence_ms)
            record.note_reply_end(time.perf_counter_ns())
        await self.send_json(conn, {"type": "reply_done", "turn": turn})

    async def greet(self, conn: WebSocketConnection, start_ns: int) -> None:
        """A reply nobody asked for, as turn 0."""
        await sleep_until(start_ns)
        await self._respond(conn, wire.GREETING_TURN, start_ns, greeting=True)

    def _drop(self, conn: ToyConnection) -> None:
        """The connection closed without a goodbye (the ``drop`` fault)."""
        conn.cancel_tasks()
        if conn.record is not None and conn.record.outcome is None:
            conn.record.t_ns["ended_sent"] = time.perf_counter_ns()
            self.scheduler.finish(conn.record, "dropped")
        if conn.transport is not None:
            conn.transport.abort()


def build(context: ProtocolContext) -> ToyVoiceProtocol:
    """The ToyVoice emulation for one reference server (the ``bootbench.server_protocols`` entry point)."""
    return ToyVoiceProtocol(context)
