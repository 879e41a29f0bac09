"""The base of the raw-WebSocket drivers (OpenAI Realtime, Gemini Live): one socket carries one session.

A :class:`WebSocketDriver` opens the socket with websocket-client (without
its pure-Python UTF-8 check, which cost ~1 ms per audio frame before the
timestamp; ``json.loads`` still rejects invalid UTF-8), reads it in a
background thread (a greenlet under Locust), stamps every frame with its
arrival (``config.clock``: the kernel's arrival stamp of the bytes that
completed it, :mod:`~bootbench.providers.kernel_clock`, or ``perf_counter_ns``
when the frame has been read), and hands the decoded JSON message to the
subclass's :meth:`~WebSocketDriver.on_message`. Stopping a session is
closing the socket; the server's close frame acknowledges the stop.
"""

from __future__ import annotations

import json
import logging
import ssl
import struct
import threading
import time
from typing import Any

import websocket

from bootbench.audio import Chunk
from bootbench.providers import kernel_clock
from bootbench.providers.base import STOP_TIMEOUT, CycleError, Driver, SessionState
from bootbench.providers.network import diagnose_unreachable, redacted_url
from bootbench.samples import ErrorKind, Timeline

log = logging.getLogger(__name__)

HTTP_KINDS = {401: ErrorKind.AUTH_FAILED, 403: ErrorKind.AUTH_FAILED, 429: ErrorKind.SERVER_ERROR}
MAX_AUDIO_CHARS = 1 << 20
"""Largest base64 audio taken as one streamed chunk (1 MiB, about 16 s of 24 kHz PCM16; the Aivoco driver's limit
too). A larger message is no stream, and its arrival stamp would include its own transfer (an 8 MiB frame
arrived about 300 ms after the reference server began sending it)."""


def oversized_audio(what: str, audio: str) -> str | None:
    """The failure message for base64 ``audio`` too large to be a streamed chunk, or None."""
    if len(audio) <= MAX_AUDIO_CHARS:
        return None
    return f"{what} of {len(audio) / (1 << 20):.1f} MiB is not a streamed chunk (limit {MAX_AUDIO_CHARS >> 20} MiB)"


class WebSocketDriver(Driver):
    """Base of the raw-WebSocket drivers: one connection, one session."""

    def __init__(self, config, stimulus) -> None:
        super().__init__(config, stimulus)
        self._ws: websocket.WebSocket | None = None
        self._reader_threads = kernel_clock.ReaderThreads()
        self._socket_class = kernel_clock.socket_class(config.clock, self._reader_threads)
        """KernelWebSocket (its reader threads kept from one connection to the next) or ProcessWebSocket: whose
        ``arrival_ns`` stamps each message."""
        self._used = False
        self._sessions = 0

    # ---- what a subclass provides (the public hooks of the driver contract, API_VERSION)

    def endpoint(self) -> str:
        """The WebSocket URL to open (keys travel in headers; a query is redacted wherever it is shown)."""
        raise NotImplementedError

    def headers(self) -> list[str]:
        """The upgrade request's extra headers (``"Name: value"``), the key among them."""
        raise NotImplementedError

    def subprotocols(self) -> list[str]:
        """The ``Sec-WebSocket-Protocol`` values to offer (none by default)."""
        return []

    def start_message(self) -> dict[str, Any] | bytes | None:
        """What :meth:`start` sends to start the session; None when the protocol sends nothing
        (:meth:`on_message` then decides when the session is ready)."""
        raise NotImplementedError

    def on_message(self, message: dict[str, Any], received_ns: int) -> None:
        """A JSON object the server sent, stamped on arrival; runs on the receive thread."""
        raise NotImplementedError

    def on_binary(self, data: bytes, received_ns: int) -> None:
        """A binary frame the server sent, stamped on arrival; runs on the receive thread.

        By default it carries JSON (Gemini sends JSON in binary frames); a protocol that streams raw
        audio (Deepgram, Ultravox) overrides it.
        """
        self._on_json_frame(data, received_ns)

    def audio_message(self, chunk: Chunk) -> dict[str, Any] | bytes:
        """One chunk of input audio as the protocol sends it: a JSON object, or bytes for a binary frame."""
        raise NotImplementedError

    def close_error(self, code: int | None, reason: str) -> CycleError:
        """The failure a close by the server means, before the session got its audio."""
        detail = f": {reason}" if reason else ""
        return CycleError(ErrorKind.DISCONNECTED, f"connection closed by the server (code {code}{detail})")

    # ---- the verbs

    @property
    def late_stamp_reads(self) -> int | None:
        return self._reader_threads.late_reads_counted()

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._ws.connected and not self._used

    def connect(self, timeline: Timeline) -> None:
        self._sessions += 1
        self.session = self.new_session(self._sessions)
        self._used = False
        timeline.connect_start = time.perf_counter_ns()
        try:
            ws = websocket.create_connection(self.endpoint(), header=self.headers(), timeout=self.config.timeout,
                                             subprotocols=self.subprotocols() or None,
                                             sslopt=self._sslopt(), enable_multithread=True,
                                             skip_utf8_validation=True, class_=self._socket_class)
        except websocket.WebSocketBadStatusException as exc:
            raise _status_error(exc) from None
        except (OSError, websocket.WebSocketException):
            reason = diagnose_unreachable(self.endpoint(), self.config.ca_bundle)
            raise CycleError(ErrorKind.CONNECT_FAILED,
                             f"cannot reach {redacted_url(self.endpoint())}: {reason}") from None
        timeline.connected = time.perf_counter_ns()
        ws.settimeout(None)
        self._ws = ws
        threading.Thread(target=self._read_loop, args=(ws, self.session), name=f"bootbench-{self.name}-reader",
                         daemon=True).start()
        log.info("connected to %s", redacted_url(self.endpoint()))

    def start(self, timeline: Timeline, deadline_ns: int) -> None:
        session = self.session
        if session is None or self._ws is None or self._used:
            raise CycleError(ErrorKind.DISCONNECTED, "no open connection to start a session on")
        self._used = True
        message = self.start_message()
        timeline.start_sent = time.perf_counter_ns()
        if message is not None:
            self.send(message)
        session.await_ready(timeline, deadline_ns, "session ready", self.config.timeout)

    def first_audio(self, timeline: Timeline, deadline_ns: int) -> None:
        session = self.session
        if session is None:
            raise CycleError(ErrorKind.PROTOCOL_ERROR, "no session was started")
        session.await_first_audio(timeline, deadline_ns, "audio", self.config.timeout, self.timeout_hint())

    def stop(self, timeline: Timeline, timeout: float = STOP_TIMEOUT) -> None:
        ws, session = self._ws, self.session
        if ws is None or session is None or not ws.connected:
            return
        session.stopping = True
        timeline.stop_sent = time.perf_counter_ns()
        try:
            ws.send_close(websocket.STATUS_NORMAL, b"")
        except (OSError, websocket.WebSocketException):
            self.close()
            return
        if session.ended.wait(timeout):
            timeline.stop_acked = session.ended_ns
        else:
            self.anomalies["stop_unacknowledged"] += 1
        self.close()

    def close(self) -> None:
        ws, self._ws = self._ws, None
        session = self.session
        if session is not None and session.open and not session.stopping:
            session.fail(ErrorKind.DISCONNECTED, "connection closed by the client")
        if ws is not None:
            threading.Thread(target=_shutdown, args=(ws,), daemon=True).start()

    # ---- plumbing

    def send(self, message: dict[str, Any] | bytes) -> None:
        """Send a JSON object as a text frame, or bytes as a binary frame; CycleError when it cannot go."""
        ws = self._ws
        if ws is None or not ws.connected:
            raise CycleError(ErrorKind.DISCONNECTED, "connection lost before a message could be sent")
        frame = message if isinstance(message, bytes) else json.dumps(message, separators=(",", ":"))
        try:
            if isinstance(frame, bytes):
                ws.send_binary(frame)
            else:
                ws.send(frame)
        except (OSError, websocket.WebSocketException) as exc:
            raise CycleError(ErrorKind.SEND_FAILED, f"message could not be sent: {exc}") from None
        if self.trace is not None:   # --trace (bootbench.trace): after the send, never delaying it
            self.trace.sent(frame)

    def send_quietly(self, message: dict[str, Any] | bytes) -> None:
        """Send from the receive thread: a failure there is the session's, reported to the waiting cycle."""
        try:
            self.send(message)
        except CycleError as exc:
            if self.session is not None:
                self.fail(self.session, exc.kind, exc.message)

    def send_chunk(self, chunk: Chunk) -> None:
        self.send(self.audio_message(chunk))

    def _read_loop(self, ws: websocket.WebSocket, session: SessionState) -> None:
        code, reason = None, ""
        closed = None
        arrival_ns = ws.arrival_ns  # type: ignore[attr-defined]  # kernel_clock's socket classes
        try:
            while True:
                opcode, data = ws.recv_data()
                received = arrival_ns()
                if self.trace is not None:   # --trace (bootbench.trace): after the stamp; only appends
                    self.trace.received(opcode, data, received)
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code, reason = _close_payload(data)
                    closed = received
                    break
                if session is not self.session:
                    self.anomalies["stray_message"] += 1
                elif opcode == websocket.ABNF.OPCODE_BINARY:
                    self.on_binary(data, received)
                else:
                    self._on_json_frame(data, received)
        except (OSError, websocket.WebSocketException):
            pass
        closed = closed or time.perf_counter_ns()
        if session.open and not session.stopping and not session.between_turns:
            error = self.close_error(code, reason)  # before the first audio, or before the end of a reply
            session.fail(error.kind, error.message)
        session.ended_ns = session.ended_ns or closed
        session.session_ended()

    def _on_json_frame(self, data: bytes, received_ns: int) -> None:
        """A frame that must hold a JSON object: to :meth:`on_message`, or the session fails."""
        session = self.session
        try:
            message = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            self.fail(session, ErrorKind.PROTOCOL_ERROR, f"a frame that is not JSON: {data[:80]!r}")
            return
        if not isinstance(message, dict):
            self.fail(session, ErrorKind.PROTOCOL_ERROR, f"a JSON frame that is not an object: {str(message)[:80]}")
            return
        self.on_message(message, received_ns)

    def fail(self, session: SessionState, kind: ErrorKind, message: str) -> None:
        """The session fails (before its first audio); after it, the failure is only counted as late."""
        if session.open and session.first_audio_ns is None:
            session.fail(kind, message)
        else:
            self.anomalies[f"late_{kind}"] += 1

    def _sslopt(self) -> dict[str, Any]:
        if self.config.ca_bundle:
            return {"ca_certs": self.config.ca_bundle, "cert_reqs": ssl.CERT_REQUIRED}
        return {"cert_reqs": ssl.CERT_REQUIRED}


def websocket_url(host: str, default_path: str) -> str:
    """``host`` (http/https/ws/wss, with or without a path) as a ws(s):// URL with ``default_path`` if it has none."""
    from urllib.parse import urlparse, urlunparse

    parsed = urlparse(host)
    scheme = {"http": "ws", "https": "wss"}.get(parsed.scheme, parsed.scheme)
    path = parsed.path if parsed.path not in ("", "/") else default_path
    return urlunparse((scheme, parsed.netloc, path, "", parsed.query, ""))


def _status_error(exc: websocket.WebSocketBadStatusException) -> CycleError:
    status = exc.status_code
    body = exc.resp_body.decode("utf-8", "replace") if isinstance(exc.resp_body, bytes) else str(exc.resp_body or "")
    detail = _error_text(body) or f"HTTP {status}"
    kind = HTTP_KINDS.get(status, ErrorKind.CONNECT_FAILED)
    return CycleError(kind, f"HTTP {status}: {detail}" if not detail.startswith("HTTP") else detail)


def _error_text(body: str) -> str:
    """The message of a JSON error body ({"error": {"message": ...}}; Deepgram's {"err_code", "err_msg"} as
    ``err_code: err_msg``), else the body's first line."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and isinstance(data.get("err_msg"), str):
            return f"{data['err_code']}: {data['err_msg']}" if data.get("err_code") else data["err_msg"]
        error = data.get("error", data)
        return str(error.get("message") or error) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        return body.strip().splitlines()[0][:200] if body.strip() else ""


def _close_payload(data: bytes) -> tuple[int | None, str]:
    if len(data) >= 2:
        return struct.unpack("!H", data[:2])[0], data[2:].decode("utf-8", "replace")
    return None, ""


def _shutdown(ws: websocket.WebSocket) -> None:
    try:
        ws.shutdown()
    except Exception:  # noqa: BLE001 - a socket torn down on purpose has nothing left to report
        pass
