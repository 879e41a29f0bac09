"""The Ultravox driver: a call created over HTTPS, then joined over a raw WebSocket (docs/protocols/ultravox.md).

    connect: open the REST host's HTTPS connection (kept alive; every call's create request reuses it)
    start:   POST /api/calls (X-API-Key) -> 201 {"joinUrl"}  [call_create_ms]
             WebSocket upgrade to the joinUrl -> first "state" message  [join_ms]; both are session_start_ms
    input:   raw PCM16 at 16 kHz in binary frames; the service's VAD ends the turn (trailing silence)
    answer:  raw PCM16 at 24 kHz in binary frames; its "state" leaving "speaking" ends the reply
    stop:    close frame (the hang-up); the server's close frame acknowledges it

The ``joinUrl`` is the call's credential (its query carries a secret): it is never logged or written
anywhere, only its scheme, host and path (:func:`~bootbench.providers.network.redacted_url`).

Greetings: with ``--provider-option first_speaker=agent`` (the service's own default) the agent speaks
first. The answer is the first agent turn (``state`` ``speaking``) after the service said it heard the
caller's turn (``state`` ``thinking`` after the caller's first input chunk went out); audio of any agent
turn before that is a greeting, recorded apart. A service that sends no ``state`` at all has its first
audio after the input began taken as the answer.

Stages: ``state`` ``thinking`` (the one that marks the answer) is both the turn end and the response start;
the caller's first ``transcript`` after the input began is the transcript, the agent's first ``transcript``
of the answer the first text.
"""

from __future__ import annotations

import json
import logging
import time
from http.client import HTTPException
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import websocket
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, ReadTimeoutError

from bootbench.audio import Chunk
from bootbench.providers.base import STOP_TIMEOUT, CycleError, ProviderOption, remaining
from bootbench.providers.network import diagnose_unreachable, redacted_url
from bootbench.providers.websocket import WebSocketDriver
from bootbench.samples import ErrorKind, Timeline
from bootbench.trace import RECEIVED, SENT
from bootbench.wire import ULTRAVOX_CALLS_PATH, ULTRAVOX_INPUT_RATE, ULTRAVOX_OUTPUT_RATE, ULTRAVOX_TURN_END_MS

log = logging.getLogger(__name__)

DEFAULT_MODEL = "ultravox-v0.7"
DEFAULT_VOICE = "Mark"
CREATE_KINDS = {401: ErrorKind.AUTH_FAILED, 403: ErrorKind.AUTH_FAILED}
"""The create request's refusals that mean the key; every other refusal (429 among them) is a server error."""
JOIN_KINDS = {401: ErrorKind.AUTH_FAILED, 403: ErrorKind.AUTH_FAILED}
MAX_AUDIO_FRAME_S = 30
"""The longest agent audio one binary frame may hold, in seconds: the largest client buffer the vendor's docs
suggest (``clientBufferSizeMs`` 30000). A larger frame is no streamed audio: a protocol error."""
SPEAKING = "speaking"
THINKING = "thinking"
"""The ``state`` in which the service considers its response to what it heard (after the caller's turn ended)."""
NOT_READY = "idle"
"""The ``state`` of a call whose server is still warming up (the vendor's JavaScript SDK): not ready yet."""


def _whole_ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("give a whole number of milliseconds") from None
    if not 0 < value <= 600_000:
        raise ValueError("give a whole number of milliseconds from 1 to 600000")
    return value


class UltravoxDriver(WebSocketDriver):
    """Ultravox calls over the ``serverWebSocket`` medium: one HTTPS connection for creates, one socket per call."""

    name = "ultravox"
    input_rate = ULTRAVOX_INPUT_RATE
    known_hosts = ("ultravox.ai",)
    public_url = "https://api.ultravox.ai"
    max_message_bytes = 16 * 1024 * 1024
    """Ultravox documents no message limit (2026-12-03): this is the reference server's own
    (``bootbench.server.ws_protocol.MAX_MESSAGE_BYTES``)."""
    max_message_source = "the reference server's limit (Ultravox documents none)"
    key_variables = ("ULTRAVOX_API_KEY",)
    default_model = DEFAULT_MODEL
    default_voice = DEFAULT_VOICE
    turn_modes = ("vad",)
    vad_silence_ms = ULTRAVOX_TURN_END_MS
    vad_trailing_silence_ms = 400  # at real-time pace the turn ends in the clip's last 64 ms chunk: more would
    # let the answer start before the last chunk went (no input_to_audio_ms)
    options = (
        ProviderOption("first_speaker", "Who speaks first: user (bootbench's default: the answer to the caller is "
                       "measured) or agent (the service's default: the agent greets, recorded as a greeting).",
                       default="user", choices=("user", "agent")),
        ProviderOption("client_buffer_ms", "medium.serverWebSocket.clientBufferSizeMs: how far ahead of real time "
                       "the service may stream its audio, in ms. Default: not sent (the service's 60).",
                       check=_whole_ms),
    )

    def __init__(self, config, stimulus) -> None:
        super().__init__(config, stimulus)
        self._api: HTTPConnection | None = None
        """The REST host's connection, kept alive between calls."""
        self._join_url: str | None = None
        self._input_started = False
        self._heard = False
        """The service said it heard the caller's turn (``thinking`` after the input began): its next turn answers."""
        self._states = False
        """The current call has sent a ``state`` message."""
        self._agent_turn: str | None = None
        """``"greeting"`` or ``"answer"`` while the agent speaks a turn of the current session, else None."""

    # ---- what the service is sent

    def create_url(self) -> str:
        """The create endpoint: the host's path (if any) + ``/api/calls``, its query kept (shown redacted)."""
        parts = urlsplit(self.config.url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        path = parts.path.rstrip("/")
        if not path.endswith(ULTRAVOX_CALLS_PATH):
            path += ULTRAVOX_CALLS_PATH
        return urlunsplit((scheme, parts.netloc, path, parts.query, ""))

    def call_request(self) -> dict[str, Any]:
        """The create request's body: the ``serverWebSocket`` medium, model, voice, prompt, who speaks first."""
        medium: dict[str, Any] = {"inputSampleRate": ULTRAVOX_INPUT_RATE, "outputSampleRate": ULTRAVOX_OUTPUT_RATE}
        if self.option("client_buffer_ms") != "":
            medium["clientBufferSizeMs"] = self.option("client_buffer_ms")
        body: dict[str, Any] = {}
        if self.config.system_message:
            body["systemPrompt"] = self.config.system_message
        body["model"] = self.config.model or self.default_model
        body["voice"] = self.config.voice or self.default_voice
        body["medium"] = {"serverWebSocket": medium}
        body["firstSpeakerSettings"] = {self.option("first_speaker"): {}}
        return body

    def endpoint(self) -> str:
        """The call's join URL (a secret query: shown only through ``redacted_url``)."""
        if self._join_url is None:
            raise CycleError(ErrorKind.PROTOCOL_ERROR, "no call was created to join")
        return self._join_url

    def headers(self) -> list[str]:
        return []   # the join URL is the credential

    def start_message(self) -> None:
        return None  # a joined call starts by itself; its first "state" says it is ready

    def audio_message(self, chunk: Chunk) -> bytes:
        return chunk.pcm

    # ---- the verbs

    @property
    def connected(self) -> bool:
        """True while the REST host's connection is alive and no call is joined (a new call may start)."""
        api = self._api
        return api is not None and api.is_connected and (self._ws is None or not self._ws.connected)

    def connect(self, timeline: Timeline) -> None:
        """Open the REST host's HTTPS connection (TCP and TLS): ``connect_start``, ``connected``."""
        self._close_api()
        url = self.create_url()
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        if secure:
            api: HTTPConnection = HTTPSConnection(parts.hostname, port, timeout=self.config.timeout,
                                                  cert_reqs="CERT_REQUIRED", ca_certs=self.config.ca_bundle or None)
        else:
            api = HTTPConnection(parts.hostname, port, timeout=self.config.timeout)
        timeline.connect_start = time.perf_counter_ns()
        try:
            api.connect()
        except (OSError, HTTPError):
            api.close()
            raise CycleError(ErrorKind.CONNECT_FAILED, f"cannot reach {redacted_url(url)}: "
                                                       f"{diagnose_unreachable(url, self.config.ca_bundle)}") from None
        timeline.connected = time.perf_counter_ns()
        self._api = api
        log.info("connected to %s", redacted_url(url))

    def start(self, timeline: Timeline, deadline_ns: int) -> None:
        """Create the call (``start_sent``, ``call_created``), join it (``join_sent``), wait for its first state."""
        if self._api is None or not self._api.is_connected:
            self.connect(timeline)   # the kept-alive connection went away since the cycle began
        self.reset_turn()
        self._states = False
        self._join_url = self._create_call(timeline, deadline_ns)
        joining = Timeline()
        try:
            super().connect(joining)   # the call's socket: a new session on it
        except CycleError as exc:
            raise self._join_error(exc) from None
        finally:
            timeline.join_sent = joining.connect_start
        self._used = True
        self.current_session().await_ready(timeline, deadline_ns, "state message", self.config.timeout)

    def stop(self, timeline: Timeline, timeout: float = STOP_TIMEOUT) -> None:
        """Hang up: the client's close frame, acknowledged by the server's; the REST connection stays open."""
        ws, session = self._ws, self.session
        if ws is None or session is None or not ws.connected:
            self._hang_up()
            return
        session.stopping = True
        timeline.stop_sent = time.perf_counter_ns()
        try:
            ws.send_close(websocket.STATUS_NORMAL, b"")
        except (OSError, websocket.WebSocketException):
            self._hang_up()
            return
        if session.ended.wait(timeout):
            timeline.stop_acked = session.ended_ns
        else:
            self.anomalies["stop_unacknowledged"] += 1
        self._hang_up()

    def close(self) -> None:
        """Drop the call's socket and the REST connection, without waiting."""
        self._hang_up()
        self._close_api()

    def session_over(self) -> bool:
        return self.session is not None and not self.session.open

    def input_starting(self) -> None:
        self._input_started = True

    def reset_turn(self) -> None:
        self._input_started = self._heard = False
        self._agent_turn = None

    # ---- the create request

    def _create_call(self, timeline: Timeline, deadline_ns: int) -> str:
        """POST the call; its ``joinUrl`` (with ``apiVersion=1``, as the vendor's clients add), or CycleError."""
        api = self._api
        assert api is not None
        url = self.create_url()
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        body = json.dumps(self.call_request(), separators=(",", ":")).encode("utf-8")
        headers = {"X-API-Key": self.config.api_key, "Content-Type": "application/json",
                   "Accept": "application/json", "User-Agent": "bootbench"}
        try:
            api.timeout = max(remaining(deadline_ns), 0.001)   # getresponse() puts it on the socket
            if api.sock is not None:
                api.sock.settimeout(api.timeout)
            timeline.start_sent = time.perf_counter_ns()
            api.request("POST", target, body=body, headers=headers, preload_content=False)
            response = api.getresponse()
            timeline.call_created = time.perf_counter_ns()
            status, data = response.status, response.read()
            if self.trace is not None:   # --trace (bootbench.trace): the request and its answer, no query, no body
                self.trace.http(SENT, f"POST {parts.path}", len(body), timeline.start_sent)
                self.trace.http(RECEIVED, f"HTTP {status}", len(data), timeline.call_created)
        except (TimeoutError, ReadTimeoutError):
            self._close_api()
            raise CycleError(ErrorKind.SESSION_TIMEOUT, f"no answer to the create request within "
                                                        f"{self.config.timeout:g} s") from None
        except (OSError, HTTPError, HTTPException) as exc:   # reset, closed, or not HTTP at all
            self._close_api()
            raise CycleError(ErrorKind.DISCONNECTED, f"the create request to {redacted_url(url)} got no answer "
                                                     f"({type(exc).__name__})") from None
        text = data.decode("utf-8", "replace")
        if status not in (200, 201):
            detail = _error_text(text) or "(no body)"
            kind = CREATE_KINDS.get(status, ErrorKind.SERVER_ERROR)
            raise CycleError(kind, f"the call could not be created: HTTP {status}: {detail}")
        try:
            join_url = json.loads(text).get("joinUrl")
        except (ValueError, AttributeError):
            join_url = None
        if not isinstance(join_url, str) or urlsplit(join_url).scheme not in ("ws", "wss"):
            raise CycleError(ErrorKind.PROTOCOL_ERROR, f"the create request's HTTP {status} answer has no "
                                                       f"ws:// or wss:// joinUrl")
        return _with_api_version(join_url)

    def _join_error(self, exc: CycleError) -> CycleError:
        """A refused join in its own words: 401/403 the credential, another status the call (server error)."""
        if exc.message.startswith("HTTP "):
            status = exc.message[5:8]
            kind = JOIN_KINDS.get(int(status), ErrorKind.SERVER_ERROR) if status.isdigit() else exc.kind
            return CycleError(kind, f"the call could not be joined: {exc.message}")
        return exc

    def _hang_up(self) -> None:
        """Drop the call's socket (the base's close: a live session fails as closed by the client)."""
        super().close()

    def _close_api(self) -> None:
        api, self._api = self._api, None
        if api is not None:
            try:
                api.close()
            except OSError:
                pass

    # ---- what the service sends

    def on_message(self, message: dict[str, Any], received_ns: int) -> None:
        kind = message.get("type")
        session = self.session
        if kind == "state":
            state = message.get("state")
            if not isinstance(state, str):
                self.fail(session, ErrorKind.PROTOCOL_ERROR, f"a state message whose 'state' is "
                                                             f"{type(state).__name__}, not a string")
                return
            self._on_state(state, received_ns)
        elif kind == "transcript":
            self._transcript(message.get("role"), received_ns)
        elif kind == "playback_clear_buffer":
            if self._agent_turn == "answer":
                self.anomalies["playback_clear_buffer"] += 1   # the answer was interrupted
        elif not isinstance(kind, str):
            self.fail(session, ErrorKind.PROTOCOL_ERROR, "a data message without a 'type'")
        # pong, call_started, debug and newer messages: nothing bootbench times

    def _on_state(self, state: str, received_ns: int) -> None:
        session = self.session
        self._states = True
        if session.ready_ns is None and state != NOT_READY and session.open:
            session.ready_ns = received_ns
            session.ready.set()
        if state == THINKING and self._input_started:
            self._heard = True
            session.stage("turn_end", received_ns)   # the service heard the caller's turn end and considers
            session.stage("response_start", received_ns)   # its response: both stages in one event
        if state == SPEAKING:
            if self._agent_turn is None:
                self._agent_turn = "answer" if self._heard else "greeting"
            return
        if self._agent_turn == "answer" and session.first_audio_ns is not None:
            session.end_reply(received_ns)   # the agent's turn is over: the end of the reply
        self._agent_turn = None

    def _transcript(self, role: Any, received_ns: int) -> None:
        """The caller's transcript once the input began; the agent's first one of the answer (not a greeting's)."""
        if role == "user" and self._input_started:
            self.session.stage("input_transcript", received_ns)
        elif role == "agent" and (self._heard or (self._input_started and not self._states)):
            self.session.stage("first_text", received_ns)

    def on_binary(self, data: bytes, received_ns: int) -> None:
        session = self.session
        if len(data) % 2 or len(data) > MAX_AUDIO_FRAME_S * ULTRAVOX_OUTPUT_RATE * 2:
            what = (f"{len(data)} bytes, not whole PCM16 samples" if len(data) % 2 else
                    f"{len(data) / (1024 * 1024):.1f} MiB, more than {MAX_AUDIO_FRAME_S} s of audio")
            self.fail(session, ErrorKind.PROTOCOL_ERROR, f"a binary audio frame of {what}")
            return
        if session.ready_ns is None and session.open:
            session.ready_ns = received_ns   # audio before any state: the call is live
            session.ready.set()
        if session.between_turns:
            self.anomalies["audio_between_turns"] += 1
            return
        if self._agent_turn is None:   # audio without a "speaking" state before it
            self._agent_turn = "answer" if self._heard or (self._input_started and not self._states) else "greeting"
        if self._agent_turn == "greeting":
            session.greeting_audio(received_ns)
            return
        if session.open:
            session.answer_audio(data if session.decoding else None, received_ns)

    def close_error(self, code: int | None, reason: str) -> CycleError:
        """No close frame: the connection dropped; a close frame before the answer: the service ended the call."""
        if code is None:
            return CycleError(ErrorKind.DISCONNECTED, "connection closed by the server")
        detail = f": {reason}" if reason else ""
        return CycleError(ErrorKind.SERVER_ERROR, f"the call ended (code {code}{detail})")


def _with_api_version(url: str) -> str:
    """``url`` with ``apiVersion=1`` in its query unless it names one (the vendor's clients add it)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "apiVersion" for key, _ in query):
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([*query, ("apiVersion", "1")]),
                       parts.fragment))


def _error_text(body: str) -> str:
    """An error body's words: DRF's ``{"detail": ...}``, an ``{"error": ...}``, else its first line."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip().splitlines()[0][:200] if body.strip() else ""
    if isinstance(data, dict):
        for key in ("detail", "error", "message"):
            value = data.get(key)
            if isinstance(value, dict):
                value = value.get("message") or value
            if value:
                return str(value)[:300]
    return json.dumps(data)[:300]
