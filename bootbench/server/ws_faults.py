"""How a raw-WebSocket protocol plays the faults of :mod:`.faults`, given only its own messages.

Every kind works the same way on every protocol that carries one session per
socket (where it strikes, what it withholds, how it drops the connection or
spoils the reply); what differs is the service's messages, which the protocol
provides through a few hooks:

    class MyProtocol(WebSocketProtocol):          # WebSocketProtocol is a WebSocketFaults
        async def play_auth(self, conn, fault): ...    # the refusal, in the service's words
        async def play_error(self, conn, fault): ...   # an error of fault.option("type"), at fault.option("when")
        async def play_end(self, conn, fault): ...     # the service ends the session (fault.option("reason"))
        def stray_message(self, conn, chunk): ...      # a reply chunk's message outside any reply

and calls the shared part where its session opens (:meth:`strike`, then
:meth:`accept_session`), where it would become ready (:meth:`fault_before_ready`),
where the reply would start (:meth:`fault_at_turn_end`) and to stream the
answer (:meth:`stream_answer`, which takes the protocol's reply message with a
given audio value, for the malformed forms). Faults strike a session's first
turn only, never a greeting. Kinds a protocol has no form of are declared in
its :class:`~.faults.FaultForms` and never reach it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from .faults import FaultSpec
from .reply import silenced

if TYPE_CHECKING:
    from .ws_protocol import WebSocketConnection

log = logging.getLogger("bootbench.server")

MISSING = object()
"""The audio value of ``malformed:what=missing_field``: the message without its audio field."""
HUGE_BYTES = 8 * 1024 * 1024
"""Size of the ``malformed:what=huge`` audio: one 8 MiB base64 string (6 MiB of PCM silence)."""
MID_REPLY_DROP_S = 0.002
"""``drop:when=mid_reply`` drops this long after the first chunk went out (its frame leaves first)."""

ReplyMessage = Callable[[Any], dict[str, Any]]
"""The protocol's reply chunk message carrying a given audio value (:data:`MISSING`: without the field)."""
ChunkSender = Callable[[int, str], Awaitable[None]]


class _ReplyCut(Exception):
    """The fault ended the reply after its first message: nothing more is sent."""


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("fault task failed", exc_info=task.exception())


def echo(fault: FaultSpec | None, key: str) -> str:
    """The tail quoting the client's key that ``fault`` adds to its message ("" without ``echo=yes``).

    The key goes on the wire only, never into the server's log or ground truth.
    """
    if fault is not None and dict(fault.options).get("echo") == "yes":
        return f" (key: {key})"
    return ""


@lru_cache(maxsize=1)
def huge_audio() -> str:
    """The ``malformed:what=huge`` audio value (built once per process)."""
    return "A" * HUGE_BYTES


def malformed_text(what: str, chunk: str, message: ReplyMessage) -> str:
    """The text of one malformed reply message of ``malformed:what=WHAT`` (``chunk``: the good first chunk)."""
    if what == "not_json":
        # The message's tail from its audio field on, cut short: no JSON, and the same text in every run (the
        # head carries the protocol's random ids).
        text = json.dumps(message(chunk), separators=(",", ":"))
        start = text.rfind(',"', 0, text.index(chunk)) + 1
        return text[start:start + 96]
    if what == "not_object":
        return json.dumps("audio follows")
    if what == "wrong_type":
        value: Any = 12345
    elif what == "missing_field":
        value = MISSING
    elif what == "bad_base64":
        value = "%%not*base64%%" + chunk[:32]
    else:
        value = huge_audio()
    return json.dumps(message(value), separators=(",", ":"))


class WebSocketFaults:
    """The shared part: where each kind strikes a raw-WebSocket session and what it withholds or spoils.

    Mixed into :class:`~.ws_protocol.WebSocketProtocol`, whose scheduler, reply and send helpers it uses.
    """

    scheduler: Any
    reply: Any

    # ---- what a protocol provides (its messages)

    async def play_auth(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        """Refuse the session as unauthenticated, in the service's words (the caller records the end)."""
        raise NotImplementedError

    async def play_error(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        """Send the service's error of ``fault.option("type")`` (``when``: before ready, or instead of the answer)."""
        raise NotImplementedError

    async def play_end(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        """The service ends the session by itself (``fault.option("reason")``) instead of answering."""
        raise NotImplementedError

    def stray_message(self, conn: WebSocketConnection, chunk: str) -> dict[str, Any]:
        """A reply chunk's message that belongs to no reply of this session (``stray``)."""
        raise NotImplementedError

    # ---- the shared part

    def strike(self, conn: WebSocketConnection) -> FaultSpec | None:
        """Draw the fault of the session just opened on ``conn`` (noted in its ground truth)."""
        assert conn.record is not None
        conn.fault = self.scheduler.fault_for(conn.record)
        return conn.fault

    def accept_session(self, conn: WebSocketConnection) -> None:
        """Draw the session's delays; a ``slow`` fault sets its slow phase."""
        assert conn.record is not None
        injected = self.scheduler.accept(conn.record)
        if conn.fault is not None and conn.fault.kind == "slow":
            conn.record.injected = conn.fault.slowed(injected)

    def turn_fault(self, conn: WebSocketConnection) -> FaultSpec | None:
        """The fault of the turn being answered: the session's on its first turn, none after."""
        record = conn.record
        if conn.fault is None or record is None or record.current_turn().turn != 1:
            return None
        return conn.fault

    async def end_session(self, conn: WebSocketConnection, outcome: str, play: Awaitable[None]) -> None:
        """The server ends the session by itself: stamp it, send what ``play`` sends, record ``outcome``."""
        record = conn.record
        assert record is not None
        log.info("session %s %s: ended by the server (%s)", record.session, record.sid, outcome)
        if record.outcome is None:
            record.t_ns["ended_sent"] = time.perf_counter_ns()
        conn.cancel_tasks()
        await play
        if record.outcome is None:
            self.scheduler.finish(record, outcome)

    async def fault_before_ready(self, conn: WebSocketConnection) -> bool:
        """Faults striking where the session would become ready; True when it goes no further."""
        fault = conn.fault
        if fault is None:
            return False
        if fault.kind == "error" and fault.option("when") == "before_ready":
            await self.end_session(conn, "error", self.play_error(conn, fault))
            return True
        if fault.kind == "never_ready":
            return True
        if fault.kind == "drop" and fault.option("when") == "before_ready":
            await self.drop(conn)
            return True
        if fault.kind == "stray":
            await self._send_strays(conn, fault.option("chunks"))
        return False

    async def fault_at_turn_end(self, conn: WebSocketConnection) -> bool:
        """Faults striking where the answer would start; True when none is sent."""
        fault = self.turn_fault(conn)
        if fault is None:
            return False
        if fault.kind == "silence":
            return True
        if fault.kind == "error" and fault.option("when") == "after_input":
            await self.end_session(conn, "error", self.play_error(conn, fault))
            return True
        if fault.kind == "end":
            await self.end_session(conn, "ended_by_server", self.play_end(conn, fault))
            return True
        if fault.kind == "drop" and fault.option("when") == "after_input":
            await self.drop(conn)
            return True
        return False

    async def stream_answer(self, conn: WebSocketConnection, start_ns: int, send: ChunkSender,
                            message: ReplyMessage) -> bool:
        """Stream the answer with ``send(index, chunk)`` as the turn's fault wants; False when it cut the reply."""
        record = conn.record
        assert record is not None and record.injected is not None
        fault = self.turn_fault(conn)

        async def send_chunk(index: int, chunk: str) -> None:
            if fault is not None and fault.kind == "silent_audio":
                chunk = silenced(chunk)
            if index == 0 and fault is not None and fault.kind == "malformed":
                await self.send_text(conn, malformed_text(fault.option("what"), chunk, message))
                raise _ReplyCut
            await send(index, chunk)
            if index == 0 and fault is not None and fault.kind == "drop" and fault.option("when") == "mid_reply":
                asyncio.create_task(self._drop_soon(conn)).add_done_callback(_log_failure)

        try:
            await self.reply.stream(record, start_ns, send_chunk, leading_silence_ms=record.injected.leading_silence_ms)
        except _ReplyCut:
            return False
        return True

    def spoilt_reply(self, conn: WebSocketConnection) -> bool:
        """True when the session's answer began with a malformed message (its outcome is ``malformed_reply``)."""
        record = conn.record
        return (conn.fault is not None and conn.fault.kind == "malformed" and record is not None
                and record.t_ns["first_audio_sent"] is not None)

    async def drop(self, conn: WebSocketConnection) -> None:
        """The ``drop`` fault: close the TCP connection under the client, with no WebSocket close frame."""
        record = conn.record
        if record is not None and record.outcome is None:
            self.scheduler.finish(record, "dropped")
        log.info("dropping connection %s", conn.sid)
        if conn.transport is not None:
            conn.transport.abort()
        conn.cancel_tasks()

    async def _drop_soon(self, conn: WebSocketConnection) -> None:
        """``drop:when=mid_reply``: drop once the first reply chunk's frame has left."""
        await asyncio.sleep(MID_REPLY_DROP_S)
        await self.drop(conn)

    async def _send_strays(self, conn: WebSocketConnection, chunks: int) -> None:
        """``stray``: reply chunks of no reply of this session, sent just before it becomes ready."""
        for chunk, _ in self.reply.chunks[:chunks]:
            await self.send_text(conn, json.dumps(self.stray_message(conn, chunk), separators=(",", ":")))
        log.info("sent %d stray reply chunk(s) to %s before its session was ready", chunks, conn.sid)

    async def send_text(self, conn: WebSocketConnection, text: str) -> None:
        """Send one text frame as it is; a socket already closing drops it."""
        if conn.ws.closed:
            return
        try:
            await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("%s: message dropped, socket closing (%s)", conn.sid, exc)
