"""The one place bootbench reaches into python-socketio / python-engineio private APIs, and why.

:class:`TunedClient` is ``socketio.Client`` with three receive-path changes
that bench/RESULTS.md measured (at 50 users they cut the median timing error
from 14 to 0.75 ms), one robustness change and two send-path changes that cut
CPU per cycle. Each leans on something the
libraries do not promise to keep, so tests/test_socketio_tuning.py fails when
one of those hooks is gone or no longer called; python-socketio and
python-engineio are pinned to the tested ranges in pyproject.toml.

1. :class:`InlineEngineIO` overrides ``engineio.Client._trigger_event`` (private)
   so Socket.IO events run in engineio's read loop instead of a new thread
   (under Locust: greenlet) per message.
2. :class:`TunedClient` overrides ``socketio.Client._engineio_client_class``
   (private) to put (1) under python-socketio.
3. ``websocket_extra_options={"skip_utf8_validation": True}`` (public option,
   websocket-client's keyword).
4. :class:`TolerantPacket` overrides ``socketio.packet.Packet.decode`` and sets
   its fields (``packet_type``, ``namespace``, ``id``, ``data``: internals) so an
   undecodable message becomes an :data:`UNDECODABLE` event.
5. :meth:`InlineEngineIO._send_packet` overrides ``engineio.Client._send_packet``
   (private) to write a packet on the websocket transport at once, from the
   greenlet that sends it, instead of queueing it for the write loop's greenlet.
6. :class:`PreparedEvent` and :meth:`TunedClient.emit_prepared`: an event whose
   data is the same every cycle (the stimulus) is encoded once, with the
   client's packet class, and its text handed to ``engineio.Client.send``
   (public) each time. ``emit`` would JSON-encode about 43 KB of base64 per
   cycle, about 0.5 ms of CPU.
7. ``websocket_extra_options={"class_": ...}`` (public: websocket-client's
   ``create_connection`` keyword, which python-engineio passes on) opens the
   transport with :func:`bootbench.providers.kernel_clock.socket_class`'s
   WebSocket, and :meth:`TunedClient.arrival_ns` reads the arrival stamp of
   the message being handled from ``engineio.Client.ws`` (internal: the
   transport's WebSocket, which handlers run next to since (1)).
8. :func:`skipping_packet_class` (on (4)): an event the caller says it will not
   read (``TunedClient(unread=...)``) reaches its handler with :data:`UNREAD`
   as its argument, recognised by its text's prefix before any JSON is decoded
   (an Aivoco answer's ``audio_response`` chunks once the answer is audible:
   about 11 us of JSON each, 14 of a reply's 15).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import engineio
import socketio
import websocket
from engineio import packet as engineio_packet
from socketio import exceptions as sio_exceptions
from socketio import packet as sio_packet

UNDECODABLE = "bootbench:undecodable"
"""The event an undecodable Socket.IO message becomes (see :class:`TolerantPacket`); its argument says why."""


class TolerantPacket(sio_packet.Packet):
    """A Socket.IO packet that turns a message it cannot decode into an :data:`UNDECODABLE` event.

    python-socketio would raise inside its read loop and log-and-drop the
    message, leaving the session to time out with no word of why. It builds a
    packet with ``packet_class(encoded_packet=...)``, which calls ``decode``;
    we fill the fields ``decode`` would have set.
    """

    def decode(self, encoded_packet):
        try:
            return super().decode(encoded_packet)
        except Exception as exc:  # invalid JSON, unknown packet type, bad attachment count
            size = len(encoded_packet) if isinstance(encoded_packet, (str, bytes)) else 0
            self.packet_type, self.namespace, self.id = sio_packet.EVENT, None, None
            self.data = [UNDECODABLE, f"{type(exc).__name__} in a {size}-byte message"]
            return 0


class Unread(enum.Enum):
    """The argument of an event whose payload was not decoded (:func:`skipping_packet_class`): a singleton."""

    PAYLOAD = "payload not decoded"


UNREAD = Unread.PAYLOAD


def skipping_packet_class(events: Iterable[str], unread: Callable[[str], bool]) -> type[TolerantPacket]:
    """A :class:`TolerantPacket` that leaves the payload of ``events`` undecoded when ``unread(event)`` says so.

    The event is recognised by its text's prefix, ``2["name",`` (a Socket.IO EVENT in the default namespace,
    no ack id, JSON without spaces, as Socket.IO servers write it); a message written any other way is decoded
    as before. ``unread`` is asked while the packet is decoded, right before python-socketio hands the event
    to its handler in the same read loop (inline, :class:`InlineEngineIO`), so nothing runs in between that
    could change the answer. A payload left unread is not checked either: a malformed one is counted as the
    event, not as :data:`UNDECODABLE`.
    """
    prefixes = tuple((event, f"{sio_packet.EVENT}{json.dumps([event])[:-1]},") for event in events)

    class SkippingPacket(TolerantPacket):
        def decode(self, encoded_packet):
            if isinstance(encoded_packet, str):
                for event, prefix in prefixes:
                    if encoded_packet.startswith(prefix) and unread(event):
                        self.packet_type, self.namespace, self.id = sio_packet.EVENT, None, None
                        self.data = [event, UNREAD]
                        return 0
            return super().decode(encoded_packet)

    return SkippingPacket


class InlineEngineIO(engineio.Client):
    """Engine.IO client that hands Socket.IO events to their handlers in its read loop.

    python-engineio's ``_receive_packet`` calls ``_trigger_event("message", data,
    run_async=True)``, which starts a thread (under Locust, a greenlet) for
    every incoming message, so a receive timestamp would wait for that thread
    to be scheduled, behind every other ready greenlet of the process.
    bootbench's handlers never block, so Socket.IO events (Engine.IO message
    data starting with packet type ``2``) run at once; every other message
    (connect, disconnect, acks, binary events) keeps the library's path.
    """

    def _trigger_event(self, event, *args, **kwargs):
        if event == "message" and args and is_inline_message(args[0]):
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)

    def _send_packet(self, pkt):
        """Write ``pkt`` on the WebSocket now, in the caller's greenlet; the library queues it for its write loop.

        The queue costs every packet a wake-up of the write loop's greenlet and a ``get`` with a timeout (a
        gevent timer) before the write, CPU at hundreds of sessions, and puts the write after whatever else
        is ready to run, so a send stamp (taken just before the send) came before the bytes left by as much.
        websocket-client locks each frame's write (engineio opens it with ``enable_multithread``), so a
        packet written here never interleaves with one the write loop still sends. A failed write ends the
        write loop as the library's own failure does (the read loop then sees the connection go); the
        sender is not told, as it was not before. The polling transport keeps the library's queue, and so do
        packets other than messages (the pongs): the write loop takes a queue empty for longer than the ping
        interval (plus 5 s) as a dead connection and drops it, so the pong of every server ping must still
        pass through it (tests/test_socketio_tuning.py, the idle connection).
        """
        if (self.state != "connected" or self.current_transport != "websocket" or self.ws is None
                or pkt.packet_type != engineio_packet.MESSAGE):
            return super()._send_packet(pkt)
        encoded = pkt.encode()
        try:
            if pkt.binary:
                self.ws.send_binary(encoded)
            else:
                self.ws.send(encoded)
        except (websocket.WebSocketConnectionClosedException, BrokenPipeError, OSError):
            self.logger.warning("WebSocket connection was closed, aborting")
            self.queue.put(None)  # the write loop's end, as after its own failed write


def is_inline_message(data: Any) -> bool:
    """True for the Engine.IO message data :class:`InlineEngineIO` hands over in the read loop: a Socket.IO EVENT."""
    return isinstance(data, str) and data.startswith(str(sio_packet.EVENT))


class PreparedEvent:
    """A Socket.IO event with its arguments, encoded once to send many times (:meth:`TunedClient.emit_prepared`)."""

    def __init__(self, event: str, data: Any, namespace: str = "/") -> None:
        self.event, self.namespace = event, namespace
        encoded = TolerantPacket(sio_packet.EVENT, namespace=namespace, data=[event, data]).encode()
        if not isinstance(encoded, str):  # binary data travels as attachments: not worth caching
            raise TypeError(f"a prepared {event} event must hold JSON data, not binary")
        self.encoded = encoded


class TunedClient(socketio.Client):
    """python-socketio's client on :class:`InlineEngineIO`, decoding with :class:`TolerantPacket`, without UTF-8 checks.

    ``skip_utf8_validation``: websocket-client would otherwise check every
    text frame byte by byte in pure Python before the handler runs (about
    0.9 ms for one 40 ms audio chunk on our machines); the frame is still
    decoded as UTF-8 strictly, so an invalid one still fails. Any other
    option is python-socketio's.
    """

    def __init__(self, *args: Any, socket_class: type | None = None,
                 unread: tuple[Iterable[str], Callable[[str], bool]] | None = None, **kwargs: Any) -> None:
        """``unread``: (events, predicate) for :func:`skipping_packet_class`; ``socket_class``: the transport's
        WebSocket class (:mod:`~bootbench.providers.kernel_clock`)."""
        kwargs.setdefault("serializer", TolerantPacket if unread is None else skipping_packet_class(*unread))
        extra = {"skip_utf8_validation": True, **({"class_": socket_class} if socket_class is not None else {})}
        kwargs["websocket_extra_options"] = {**extra, **kwargs.get("websocket_extra_options", {})}
        super().__init__(*args, **kwargs)

    def arrival_ns(self) -> int:
        """The arrival stamp of the message being handled (call it in an inline handler, on engineio's read loop):
        the transport socket's ``arrival_ns()`` (:mod:`~bootbench.providers.kernel_clock`), else ``perf_counter_ns``."""
        arrival = getattr(getattr(self.eio, "ws", None), "arrival_ns", None)
        return time.perf_counter_ns() if arrival is None else arrival()

    def _engineio_client_class(self):
        return InlineEngineIO

    def emit_prepared(self, prepared: PreparedEvent) -> None:
        """``emit(prepared.event, data)`` without encoding ``data`` again: the same packet on the wire."""
        if prepared.namespace not in self.namespaces:
            raise sio_exceptions.BadNamespaceError(f"{prepared.namespace} is not a connected namespace.")
        self.eio.send(prepared.encoded)
