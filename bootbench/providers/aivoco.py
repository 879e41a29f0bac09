"""The Aivoco driver: the cycle over Aivoco's Socket.IO protocol (docs/protocols/aivoco.md).

    driver = AivocoDriver(DriverConfig(url="wss://sts.aivoco.on.cloud.vispark.in", api_key=key), Stimulus.sine())
    tl = Timeline(); driver.connect(tl); driver.start(tl, deadline); driver.send_audio(tl)
    driver.first_audio(tl, deadline); driver.stop(tl); driver.close()

The Socket.IO client is :class:`~bootbench.providers.socketio_tuning.TunedClient`.
Each session gets its own :class:`~bootbench.providers.base.SessionState`; events that arrive for no
session, or for a session that already ended, are counted in
``driver.anomalies`` and never taken as the next session's answer. Aivoco's
``audio_response`` carries no session id, so "stray" can only mean: after
``stop_call`` was sent, after the session ended, or before the new session
is ready. A reply has ended once no ``audio_response`` came for
``reply_gap_ms`` (the protocol has no end-of-reply event): with ``--turns`` > 1
the next turn starts then, and an answer never audible stops being waited for.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from urllib.parse import urlsplit

import requests
import socketio
from socketio import exceptions as sio_errors

from bootbench.audio import Chunk
from bootbench.providers import kernel_clock
from bootbench.providers.base import STOP_TIMEOUT, CycleError, Driver, SessionState
from bootbench.providers.network import diagnose_unreachable, redacted_url
from bootbench.providers.socketio_tuning import UNDECODABLE, UNREAD, PreparedEvent, TunedClient
from bootbench.samples import ErrorKind, Timeline
from bootbench.trace import RECEIVED, SENT
from bootbench.wire import AIVOCO_INPUT_RATE, AIVOCO_SOCKETIO_PATH

log = logging.getLogger(__name__)

ERROR_TYPES = {"invalid_api_key": ErrorKind.AUTH_FAILED}
"""Aivoco ``error`` types with a kind of their own; every other type is a ``server_error``."""
MAX_AUDIO_CHARS = 1 << 20
"""Largest ``audio_data`` taken as a streamed chunk (1 MiB of base64, about 16 s of 24 kHz PCM16)."""


class AivocoDriver(Driver):
    """One Socket.IO connection to an Aivoco-protocol server, websocket transport only."""

    name = "aivoco"
    input_rate = AIVOCO_INPUT_RATE
    known_hosts = ("aivoco.on.cloud.vispark.in",)
    public_url = "wss://sts.aivoco.on.cloud.vispark.in"
    max_message_bytes = 16 * 1024 * 1024
    """Aivoco documents no message limit (its docs no longer describe this interface, 2026-12-03): this is the
    reference server's own limit (Socket.IO ``max_http_buffer_size``, ``bootbench.server.protocols.aivoco.protocol.MAX_MESSAGE_BYTES``)."""
    max_message_source = "the reference server's limit (Aivoco documents none)"
    key_variables = ("AIVOCO_API_KEY",)
    turn_modes = ("vad",)
    ends_reply_by_gap = True
    tells_greeting_from_answer = False
    default_voice = "female"

    def __init__(self, config, stimulus) -> None:
        super().__init__(config, stimulus)
        self._sio: socketio.Client | None = None
        self._sessions = 0
        self._connected_ns: int | None = None
        self._discard_connection = False
        """Set by an ``error`` event: the server's view of the session is unknown, so start afresh."""
        self._input_started = False
        """The current session's first input chunk is going out: audio from now on is the answer."""
        self._prepared_chunks: dict[Chunk, PreparedEvent] = {}
        self._prepared_start: PreparedEvent | None = None
        """``start_call``: the same payload every session (the settings do not change), encoded once."""
        self._reader_threads = kernel_clock.ReaderThreads()
        self._socket_class = kernel_clock.socket_class(config.clock, self._reader_threads)
        """KernelWebSocket (its reader threads kept from one connection to the next) or ProcessWebSocket."""
        self._arrival_ns = time.perf_counter_ns
        """The arrival stamp of the message being handled: the connection's ``TunedClient.arrival_ns``."""

    @property
    def late_stamp_reads(self) -> int | None:
        return self._reader_threads.late_reads_counted()

    @property
    def connected(self) -> bool:
        return self._sio is not None and self._sio.connected

    def connect(self, timeline: Timeline) -> None:
        sio = TunedClient(reconnection=False, handle_sigint=False, logger=False, engineio_logger=False,
                          http_session=_tls_session(self.config.ca_bundle), socket_class=self._socket_class,
                          unread=(("audio_response",), self._audio_unread))
        self._register(sio)
        self._arrival_ns = sio.arrival_ns
        self._connected_ns = None
        self._discard_connection = False
        timeline.connect_start = time.perf_counter_ns()
        try:
            sio.connect(self.config.url, transports=["websocket"], socketio_path=socketio_path(self.config.url),
                        wait_timeout=self.config.timeout)
        except sio_errors.ConnectionError:
            _disconnect_in_background(sio)
            reason = diagnose_unreachable(self.config.url, self.config.ca_bundle)
            raise CycleError(ErrorKind.CONNECT_FAILED,
                             f"cannot reach {redacted_url(self.config.url)}: {reason}") from None
        timeline.connected = self._connected_ns or time.perf_counter_ns()
        self._sio = sio
        log.info("connected to %s (sid %s)", redacted_url(self.config.url), sio.sid)

    def start(self, timeline: Timeline, deadline_ns: int) -> None:
        self._sessions += 1
        self._input_started = False
        session = self.session = self.new_session(self._sessions)
        if self._prepared_start is None:
            self._prepared_start = PreparedEvent("start_call", {
                "auth_key": self.config.api_key,
                "system_message": self.config.system_message,
                "voice_choice": self.config.voice or self.default_voice,
                "custom_functions": [],
            })
        timeline.start_sent = time.perf_counter_ns()
        self._emit("start_call", prepared=self._prepared_start)
        session.await_ready(timeline, deadline_ns, "session_ready", self.config.timeout)

    def send_chunk(self, chunk: Chunk) -> None:
        prepared = self._prepared_chunks.get(chunk)
        if prepared is None:  # the same chunks go out every cycle: encode each once
            prepared = self._prepared_chunks[chunk] = PreparedEvent(
                "audio_data", {"audio_data": chunk.base64, "has_audio": chunk.has_audio, "max_amplitude": chunk.peak})
        self._emit(prepared.event, prepared=prepared)

    def first_audio(self, timeline: Timeline, deadline_ns: int) -> None:
        """The answer's first audio, then its first audible sample; an answer never audible ends with its last
        ``audio_response`` before ``reply_gap_ms`` of quiet (the protocol has no end-of-reply event), not at
        the deadline."""
        self._current().await_first_audio(timeline, deadline_ns, "audio_response", self.config.timeout,
                                          self.timeout_hint(), reply_gap_ns=int(self.config.reply_gap_ms * 1e6))

    def reply_end(self, timeline: Timeline, deadline_ns: int) -> None:
        """Aivoco signals no end of a reply: it ended with the last ``audio_response`` before ``reply_gap_ms`` of quiet."""
        self.await_reply_gap(self._current(), timeline, deadline_ns, "audio_response")

    def stop(self, timeline: Timeline, timeout: float = STOP_TIMEOUT) -> None:
        session = self.session
        if self._discard_connection:
            self.close()
            return
        if session is None or session.ended_ns is not None or not self.connected:
            return
        if session.failure is not None and session.failure.kind == ErrorKind.AUTH_FAILED:
            return  # no session was opened, so there is nothing to stop
        session.stopping = True
        timeline.stop_sent = time.perf_counter_ns()
        try:
            self._emit("stop_call")
        except CycleError:
            return
        if session.ended.wait(timeout):
            timeline.stop_acked = session.ended_ns
        else:
            self.anomalies["stop_unacknowledged"] += 1
            log.warning("session %d: no session_ended within %g s; dropping the connection", session.number, timeout)
            self.close()

    def close(self) -> None:
        sio, self._sio = self._sio, None
        if self.session is not None and self.session.open:
            self.session.fail(ErrorKind.DISCONNECTED, "connection closed by the client")
        if sio is not None:
            _disconnect_in_background(sio)

    def session_over(self) -> bool:
        session = self.session
        return session is not None and not session.open

    def _current(self) -> SessionState:
        if self.session is None:
            raise CycleError(ErrorKind.PROTOCOL_ERROR, "no session was started")
        return self.session

    def _emit(self, event: str, data=None, prepared: PreparedEvent | None = None) -> None:
        sio = self._sio
        if sio is None or not sio.connected:
            raise CycleError(ErrorKind.DISCONNECTED, f"connection lost before {event} could be sent")
        try:
            if prepared is not None:
                sio.emit_prepared(prepared)
            elif data is None:
                sio.emit(event)
            else:
                sio.emit(event, data)
        except (sio_errors.SocketIOError, OSError) as exc:
            raise CycleError(ErrorKind.SEND_FAILED, f"{event} could not be sent: {exc}") from None
        if self.trace is not None:   # --trace (bootbench.trace): after the send
            self.trace.event(SENT, event, data, encoded=prepared.encoded if prepared is not None else None)

    def _register(self, sio: socketio.Client) -> None:
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        sio.on("auth_success", lambda data=None: self.trace is not None and self.trace.event(RECEIVED, "auth_success", data))
        sio.on("auth_failed", self._on_auth_failed)
        sio.on("session_ready", self._on_session_ready)
        sio.on("audio_response", self._on_audio_response)
        sio.on("text_response", self._on_text_response)
        sio.on("session_ended", self._on_session_ended)
        sio.on("error", self._on_error)
        sio.on(UNDECODABLE, self._on_undecodable)
        sio.on("*", self._on_other)

    def _on_connect(self) -> None:
        self._connected_ns = time.perf_counter_ns()
        if self.trace is not None:   # --trace (bootbench.trace), after the stamp
            self.trace.event(RECEIVED, "connect", None, self._connected_ns)

    def _on_disconnect(self, reason=None) -> None:
        self._traced("disconnect")
        session = self.session
        if session is not None and session.open:
            why = f" ({reason})" if reason else ""
            session.fail(ErrorKind.DISCONNECTED, f"connection closed by the server{why}")
            session.session_ended()

    def _on_session_ready(self, data=None) -> None:
        now = self._arrival_ns()
        if self.trace is not None:   # --trace (bootbench.trace), after the stamp
            self.trace.event(RECEIVED, "session_ready", data, now)
        session = self.session
        if session is None or not session.open or session.ready_ns is not None:
            self.anomalies["stray_session_ready"] += 1
            return
        session.ready_ns = now
        session.ready.set()

    def _audio_unread(self, event: str) -> bool:
        """An ``audio_response`` arriving now need not be decoded: nothing traces it and no session decodes
        audio (the answer is audible already, or there is no session: the handler reads only its arrival)."""
        session = self.session
        return self.trace is None and (session is None or not session.decoding)

    def _on_audio_response(self, data=None) -> None:
        now = self._arrival_ns()
        if self.trace is not None:   # --trace (bootbench.trace), after the stamp
            self.trace.event(RECEIVED, "audio_response", data, now)
        session = self.session
        if session is None or not session.open or session.stopping:
            self.anomalies["stray_audio"] += 1
            return
        if session.ready_ns is None:
            self.anomalies["audio_before_ready"] += 1
            return
        if session.between_turns:
            self.anomalies["audio_between_turns"] += 1
            return
        if not self._input_started:
            session.greeting_audio(now)   # nothing was said yet: this reply was not asked for
            return
        session.last_audio_ns = now  # the end of a reply is quiet after its last chunk (reply_end)
        if not session.decoding or data is UNREAD:
            return   # audible already: no need to decode the rest (_audio_unread left its JSON undecoded)
        pcm, problem = _decode_audio(data)
        if problem:
            if session.first_audio_ns is None:
                session.fail(ErrorKind.PROTOCOL_ERROR, f"malformed audio_response: {problem}")
            else:
                self.anomalies["malformed_audio"] += 1
            return
        session.answer_audio(pcm, now)

    def _on_text_response(self, data=None) -> None:
        """The answer's first ``text_response`` is its first text (a service stage); one before the input began
        is a greeting's, one outside a ready session belongs to none."""
        now = time.perf_counter_ns()
        if self.trace is not None:   # --trace (bootbench.trace), after the stamp
            self.trace.event(RECEIVED, "text_response", data, now)
        session = self.session
        if (session is not None and session.open and not session.stopping and session.ready_ns is not None
                and self._input_started):
            session.stage("first_text", now)

    def input_starting(self) -> None:
        self._input_started = True

    def _on_auth_failed(self, data=None) -> None:
        """No session was started: nothing to stop, and the connection stays usable."""
        self._traced("auth_failed", data)
        if self._fail_session(ErrorKind.AUTH_FAILED, _message(data, "authentication failed")):
            self._ended_by_server()

    def _on_error(self, data=None) -> None:
        """Terminal (docs/protocols/aivoco.md): no stop_call, and the connection is not reused."""
        self._traced("error", data)
        error_type = data.get("type") if isinstance(data, dict) else None
        kind = ERROR_TYPES.get(error_type, ErrorKind.SERVER_ERROR)
        message = _message(data, "error")
        if self._fail_session(kind, f"{error_type}: {message}" if error_type else message):
            self._ended_by_server()
            self._discard_connection = True

    def _on_undecodable(self, reason=None) -> None:
        self._traced("undecodable")
        session = self.session
        if session is None or not session.open or session.stopping:
            self.anomalies["undecodable_message"] += 1
            return
        session.fail(ErrorKind.PROTOCOL_ERROR, f"undecodable message from the server ({reason})")

    def _ended_by_server(self) -> None:
        session = self.session
        if session is not None and session.ended_ns is None:
            session.ended_ns = time.perf_counter_ns()
            session.session_ended()

    def _on_session_ended(self, data=None) -> None:
        now = self._arrival_ns()
        if self.trace is not None:   # --trace (bootbench.trace), after the stamp
            self.trace.event(RECEIVED, "session_ended", data, now)
        session = self.session
        if session is None or session.ended_ns is not None:
            self.anomalies["stray_session_ended"] += 1
            return
        session.ended_ns = now
        if not session.stopping and session.first_audio_ns is None:
            reason = data.get("reason") if isinstance(data, dict) else None
            detail = _message(data, "session ended")
            session.fail(ErrorKind.SERVER_ERROR, f"session ended by the server before any audio ({reason}): {detail}")
        session.session_ended()

    def _on_other(self, event, data=None) -> None:
        self._traced(event, data)
        self.anomalies[f"unknown_event:{event}"] += 1

    def _traced(self, event: str, data=None, received_ns: int | None = None) -> None:
        """--trace (bootbench.trace): an event received, after the handler's own stamp (or now, for one without)."""
        if self.trace is not None:
            self.trace.event(RECEIVED, event, data, received_ns)

    def _fail_session(self, kind: ErrorKind, message: str) -> bool:
        """Fail the open session; False (and an anomaly) when there is none."""
        session = self.session
        if session is None or not session.open:
            self.anomalies[f"stray_{kind}"] += 1
            return False
        session.fail(kind, message)
        return True


def socketio_path(url: str) -> str:
    """The Socket.IO endpoint of a host URL: ``/socket.io/`` at the root, ``<path>/socket.io/`` under a path.

    python-socketio takes the endpoint from ``socketio_path`` alone and drops
    the URL's path, so a service behind a prefix (``https://host/voice``,
    served at ``/voice/socket.io/``) is reached only through this. A path that
    already ends in ``socket.io`` is the endpoint itself.
    """
    path = urlsplit(url).path.strip("/")
    if not path:
        return AIVOCO_SOCKETIO_PATH
    if path.rsplit("/", 1)[-1] == AIVOCO_SOCKETIO_PATH.strip("/"):
        return f"/{path}/"
    return f"/{path}{AIVOCO_SOCKETIO_PATH}"


def _decode_audio(data) -> tuple[bytes | None, str | None]:
    """The PCM16 of an ``audio_response`` payload, or None and why it is unusable."""
    if not isinstance(data, dict):
        return None, f"payload is {type(data).__name__}, not an object"
    if "audio_data" not in data:
        return None, "audio_data is missing"
    audio = data["audio_data"]
    if not isinstance(audio, str):
        return None, f"audio_data is {type(audio).__name__}, not a string"
    if not audio:
        return None, "audio_data is empty"
    if len(audio) > MAX_AUDIO_CHARS:
        return None, f"audio_data of {len(audio) / (1 << 20):.1f} MiB is not a streamed chunk (limit 1 MiB)"
    try:
        return base64.b64decode(audio, validate=True), None
    except (binascii.Error, ValueError):
        return None, "audio_data is not valid base64"


def _message(data, default: str) -> str:
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    if isinstance(data, str) and data:
        return data
    return default


def _tls_session(ca_bundle: str) -> requests.Session | None:
    """An HTTP session that verifies TLS against ``ca_bundle``; None keeps the system's CAs."""
    if not ca_bundle:
        return None
    session = requests.Session()
    session.verify = ca_bundle
    return session


def _disconnect_in_background(sio: socketio.Client) -> None:
    """``Client.disconnect()`` can block ~3 s and swallow Locust's kill; never wait for it."""
    threading.Thread(target=sio.disconnect, name="bootbench-disconnect", daemon=True).start()
