"""Aivoco speech-to-speech over Socket.IO (PROTOCOLS.md section 1).

    driver = AivocoDriver(DriverConfig(url="wss://sts.aivoco.on.cloud.vispark.in", api_key=key), Stimulus.sine())
    tl = Timeline(); driver.connect(tl); driver.start(tl, deadline); driver.send_audio(tl)
    driver.first_audio(tl, deadline); driver.stop(tl); driver.close()

Each session gets its own :class:`~bootbench.providers.base.SessionState`; events that arrive for no
session, or for a session that already ended, are counted in
``driver.anomalies`` and never taken as the next session's answer.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from urllib.parse import urlparse

import requests
import socketio
from socketio import exceptions as sio_errors

from bootbench.audio import Chunk
from bootbench.providers.base import (CycleError, Driver, SessionState, STOP_TIMEOUT, diagnose_unreachable,
                                      public_url, remaining)
from bootbench.samples import Timeline

log = logging.getLogger(__name__)

ERROR_TYPES = {"invalid_api_key": "auth_failed"}
"""Aivoco ``error`` types with a kind of their own; every other type is a ``server_error``."""


class AivocoDriver(Driver):
    """One Socket.IO connection to an Aivoco-protocol server, websocket transport only."""

    name = "aivoco"
    input_rate = 16_000
    known_hosts = ("aivoco.on.cloud.vispark.in",)
    public_url = "wss://sts.aivoco.on.cloud.vispark.in"
    key_variables = ("AIVOCO_API_KEY",)
    turn_modes = ("vad",)

    def __init__(self, config, stimulus) -> None:
        super().__init__(config, stimulus)
        self._sio: socketio.Client | None = None
        self._session: SessionState | None = None
        self._sessions = 0
        self._connected_ns: int | None = None

    @property
    def connected(self) -> bool:
        return self._sio is not None and self._sio.connected

    def connect(self, timeline: Timeline) -> None:
        sio = socketio.Client(reconnection=False, handle_sigint=False, logger=False, engineio_logger=False,
                              http_session=_tls_session(self.config.ca_bundle))
        self._register(sio)
        self._connected_ns = None
        timeline.connect_start = time.perf_counter_ns()
        try:
            sio.connect(self.config.url, transports=["websocket"], wait_timeout=self.config.timeout)
        except sio_errors.ConnectionError as exc:
            _disconnect_in_background(sio)
            reason = diagnose_unreachable(self.config.url, self.config.ca_bundle)
            raise CycleError("connect_failed", f"cannot reach {public_url(self.config.url)}: {reason}") from None
        timeline.connected = self._connected_ns or time.perf_counter_ns()
        self._sio = sio
        log.info("connected to %s (sid %s)", public_url(self.config.url), sio.sid)

    def start(self, timeline: Timeline, deadline_ns: int) -> None:
        self._sessions += 1
        session = self._session = SessionState(self._sessions)
        payload = {
            "auth_key": self.config.api_key,
            "system_message": self.config.system_message,
            "voice_choice": self.config.voice or "female",
            "custom_functions": [],
        }
        timeline.start_sent = time.perf_counter_ns()
        self._emit("start_call", payload)
        if not session.ready.wait(remaining(deadline_ns)):
            session.fail("session_timeout", f"no session_ready within {self.config.timeout:g} s")
        if session.failure:
            raise session.failure
        timeline.session_ready = session.ready_ns

    def _send_chunk(self, chunk: Chunk) -> None:
        self._emit("audio_data", {"audio_data": chunk.base64, "has_audio": chunk.has_audio,
                                  "max_amplitude": chunk.peak})

    def first_audio(self, timeline: Timeline, deadline_ns: int) -> None:
        session = self._current()
        if not session.audio.wait(remaining(deadline_ns)):
            session.fail("audio_timeout", f"no audio_response within {self.config.timeout:g} s")
        if session.first_audio_ns is not None:
            timeline.first_audio = session.first_audio_ns
        if session.failure and session.first_audio_ns is None:
            raise session.failure

    def stop(self, timeline: Timeline, timeout: float = STOP_TIMEOUT) -> None:
        session = self._session
        if session is None or session.ended_ns is not None or not self.connected:
            return
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
        if self._session is not None and self._session.open:
            self._session.fail("disconnected", "connection closed by the client")
        if sio is not None:
            _disconnect_in_background(sio)

    def _current(self) -> SessionState:
        if self._session is None:
            raise CycleError("protocol_error", "no session was started")
        return self._session

    def _emit(self, event: str, data=None) -> None:
        sio = self._sio
        if sio is None or not sio.connected:
            raise CycleError("disconnected", f"connection lost before {event} could be sent")
        try:
            if data is None:
                sio.emit(event)
            else:
                sio.emit(event, data)
        except (sio_errors.SocketIOError, OSError) as exc:
            raise CycleError("send_failed", f"{event} could not be sent: {exc}") from None

    def _register(self, sio: socketio.Client) -> None:
        sio.on("connect", self._on_connect)
        sio.on("disconnect", self._on_disconnect)
        sio.on("auth_success", lambda data=None: None)
        sio.on("auth_failed", self._on_auth_failed)
        sio.on("session_ready", self._on_session_ready)
        sio.on("audio_response", self._on_audio_response)
        sio.on("text_response", lambda data=None: None)
        sio.on("session_ended", self._on_session_ended)
        sio.on("error", self._on_error)
        sio.on("*", self._on_other)

    def _on_connect(self) -> None:
        self._connected_ns = time.perf_counter_ns()

    def _on_disconnect(self, reason=None) -> None:
        session = self._session
        if session is not None and session.open:
            why = f" ({reason})" if reason else ""
            session.fail("disconnected", f"connection closed by the server{why}")
            session.ended.set()

    def _on_session_ready(self, data=None) -> None:
        now = time.perf_counter_ns()
        session = self._session
        if session is None or not session.open or session.ready_ns is not None:
            self.anomalies["stray_session_ready"] += 1
            return
        session.ready_ns = now
        session.ready.set()

    def _on_audio_response(self, data=None) -> None:
        now = time.perf_counter_ns()
        session = self._session
        if session is None or not session.open or session.stopping:
            self.anomalies["stray_audio"] += 1
            return
        if session.ready_ns is None:
            self.anomalies["audio_before_ready"] += 1
            return
        if session.first_audio_ns is not None:
            return
        problem = _audio_problem(data)
        if problem:
            session.fail("protocol_error", f"malformed audio_response: {problem}")
            return
        session.first_audio_ns = now
        session.audio.set()

    def _on_auth_failed(self, data=None) -> None:
        self._fail_session("auth_failed", _message(data, "authentication failed"))

    def _on_error(self, data=None) -> None:
        kind = ERROR_TYPES.get(data.get("type"), "server_error") if isinstance(data, dict) else "server_error"
        error_type = data.get("type") if isinstance(data, dict) else None
        message = _message(data, "error")
        self._fail_session(kind, f"{error_type}: {message}" if error_type else message)

    def _on_session_ended(self, data=None) -> None:
        now = time.perf_counter_ns()
        session = self._session
        if session is None or session.ended_ns is not None:
            self.anomalies["stray_session_ended"] += 1
            return
        session.ended_ns = now
        if not session.stopping and session.first_audio_ns is None:
            reason = data.get("reason") if isinstance(data, dict) else None
            detail = _message(data, "session ended")
            session.fail("server_error", f"session ended by the server before any audio ({reason}): {detail}")
        session.ended.set()

    def _on_other(self, event, data=None) -> None:
        self.anomalies[f"unknown_event:{event}"] += 1

    def _fail_session(self, kind: str, message: str) -> None:
        session = self._session
        if session is None or not session.open:
            self.anomalies[f"stray_{kind}"] += 1
            return
        session.fail(kind, message)


def _audio_problem(data) -> str | None:
    """Why an ``audio_response`` payload is unusable, or None when it holds base64 audio."""
    if not isinstance(data, dict):
        return f"payload is {type(data).__name__}, not an object"
    audio = data.get("audio_data")
    if not isinstance(audio, str) or not audio:
        return "audio_data missing or not a string"
    try:
        base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        return "audio_data is not valid base64"
    return None


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
