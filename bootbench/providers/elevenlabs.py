"""The ElevenLabs Agents driver: a conversation on the agent's WebSocket (docs/protocols/elevenlabs.md).

One WebSocket is one conversation. ``connect`` asks the REST endpoint for
the agent's signed URL (``xi-api-key`` header; the URL's query is a
secret, shown nowhere) and opens it; ``start`` sends
``conversation_initiation_client_data`` and the session is ready at
``conversation_initiation_metadata``; the audio goes out as
``{"user_audio_chunk": <base64 PCM16>}`` with trailing silence, since the
agent ends the user's turn by itself (there is no manual turn); every
``ping`` is answered with a ``pong`` carrying its ``event_id``.

Which audio is the answer: the agent numbers each turn (``event_id``); its
``user_transcript`` after our input began carries the turn's id, and the
answer's ``audio`` events carry the same or a later one. Audio before that
transcript, or with a lower id, is the agent's greeting (its first
message) in turn 1 and a late chunk of an earlier reply after; an
``interruption`` voids audio of lower ids (equal ids belong to the new
reply, the JS client's rule). There is no end-of-reply event: with
``--turns`` > 1 a reply has ended after ``--reply-gap-ms`` of quiet.

Stages: the turn's ``user_transcript`` is the transcript, the answer's
``agent_response`` (after it, of its id or later) the first text; no event
says the turn ended or the response started apart from these.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from bootbench.audible import AudibleDetector
from bootbench.providers.base import CycleError, ProviderOption
from bootbench.providers.network import diagnose_unreachable, redacted_url
from bootbench.providers.websocket import HTTP_KINDS, WebSocketDriver, oversized_audio
from bootbench.samples import ErrorKind, Timeline
from bootbench.wire import (ELEVENLABS_DEFAULT_INPUT_FORMAT, ELEVENLABS_INPUT_FORMATS, ELEVENLABS_REFERENCE_AGENT,
                            ELEVENLABS_SIGNED_URL_PATH, VAD_SILENCE_MS)

log = logging.getLogger(__name__)

AUTH_WORDS = ("auth", "signature", "api key", "api_key")
"""Words in a 1008 close reason or an error's message that mean the service refused who we are."""
CLOSE_KINDS = {1002: ErrorKind.SERVER_ERROR, 1008: ErrorKind.SERVER_ERROR, 1011: ErrorKind.SERVER_ERROR}
"""The service's close codes: 1002 operational error (timeouts, LLM/TTS/ASR failures), 1008 a refused message or
setting, 1011 internal error; 1000 is the agent ending the conversation."""


def _agent_id(text: str) -> str:
    if not text or any(c.isspace() or c in "&?#/" for c in text):
        raise ValueError("an agent id is one word, such as agent_7101k5zvyjhmfg983brhmhkd98n6")
    return text


class ElevenLabsDriver(WebSocketDriver):
    """ElevenLabs Agents: one conversation per WebSocket, joined through the agent's signed URL."""

    name = "elevenlabs"
    input_rate = ELEVENLABS_INPUT_FORMATS[ELEVENLABS_DEFAULT_INPUT_FORMAT]
    known_hosts = ("elevenlabs.io",)
    public_url = "https://api.elevenlabs.io"
    max_message_bytes = 16 * 1024 * 1024
    """ElevenLabs documents no message limit for this socket; its SDKs open it with a 16 MiB limit
    (``elevenlabs`` 2.78 ``conversation.py``, ``max_size=16 * 1024 * 1024``), the reference server's limit too."""
    max_message_source = "the 16 MiB its SDKs allow on this socket (ElevenLabs documents no limit)"
    key_variables = ("ELEVENLABS_API_KEY",)
    turn_modes = ("vad",)
    """The agent ends the user's turn by itself; no client message ends it (``user_activity`` only keeps it quiet)."""
    vad_silence_ms = VAD_SILENCE_MS
    vad_trailing_silence_ms = VAD_SILENCE_MS + 100  # a margin over the detector's silence
    ends_reply_by_gap = True
    options = (
        ProviderOption("agent_id", "The ElevenLabs agent to talk to (its id, agent_...).", check=_agent_id,
                       required=True),
        ProviderOption("input_format", "The agent's user input audio format (its ASR setting), which bootbench "
                       "sends: PCM16 at that rate.", default=ELEVENLABS_DEFAULT_INPUT_FORMAT,
                       choices=tuple(ELEVENLABS_INPUT_FORMATS)),
        ProviderOption("override_prompt", "yes: send --system-message as the agent's prompt, an override the agent "
                       "must allow (no: the agent's own prompt).", default="no", choices=("no", "yes")),
    )

    def __init__(self, config, clips) -> None:
        super().__init__(config, clips)
        self.input_rate = ELEVENLABS_INPUT_FORMATS[self.option("input_format")]
        self._http = requests.Session()
        self._signed_url: str | None = None
        self._reset_conversation()

    def _reset_conversation(self) -> None:
        self._output_pcm = True
        self._listening = False
        """Our input of the current turn has begun: the next ``user_transcript`` names the turn."""
        self._turn_id: int | None = None
        """The current turn's ``event_id`` (from its ``user_transcript``): audio with it or a later one answers."""
        self._void_below = 0
        """The latest interruption's ``event_id``: audio of lower ids was interrupted."""

    # ---- the wire

    def connect(self, timeline: Timeline) -> None:
        self._signed_url = None
        self._reset_conversation()
        super().connect(timeline)   # endpoint() asks for the signed URL inside the timed connect

    def endpoint(self) -> str:
        if self._signed_url is None:
            self._signed_url = self._request_signed_url()
        return self._signed_url

    def headers(self) -> list[str]:
        return []   # the signed URL authenticates the socket; the key went with the REST request only

    def start_message(self) -> dict[str, Any]:
        override: dict[str, Any] = {}
        prompt: dict[str, Any] = {}
        if self.option("override_prompt") == "yes" and self.config.system_message:
            prompt["prompt"] = self.config.system_message
        if self.config.model:
            prompt["llm"] = self.config.model
        if prompt:
            override["agent"] = {"prompt": prompt}
        if self.config.voice:
            override["tts"] = {"voice_id": self.config.voice}
        message: dict[str, Any] = {"type": "conversation_initiation_client_data"}
        if override:   # only what was asked: an override the agent does not allow ends the conversation
            message["conversation_config_override"] = override
        return message

    def audio_message(self, chunk) -> dict[str, Any]:
        return {"user_audio_chunk": chunk.base64}

    def input_starting(self) -> None:
        self._listening = True

    def reset_turn(self) -> None:
        self._listening = False
        self._turn_id = None

    def session_over(self) -> bool:
        return self.session is not None and not self.session.open

    def reply_end(self, timeline: Timeline, deadline_ns: int) -> None:
        """No end-of-reply event: the reply ended with its last ``audio`` before ``--reply-gap-ms`` of quiet."""
        self.await_reply_gap(self.current_session(), timeline, deadline_ns, "audio")

    def timeout_hint(self) -> str:
        hint = super().timeout_hint()
        if self._listening and self._turn_id is None:
            hint += ("; no user_transcript came, so the agent did not end the turn (it must send user_transcript, "
                     "one of its default client events)")
        return hint

    # ---- what the server sends

    def on_message(self, message: dict[str, Any], received_ns: int) -> None:
        kind = message.get("type")
        session = self.session
        if kind == "audio":
            self._audio(message.get("audio_event"), received_ns)
        elif kind == "ping":
            event = message.get("ping_event")
            event_id = event.get("event_id") if isinstance(event, dict) else None
            if not _is_id(event_id):
                self.fail(session, ErrorKind.PROTOCOL_ERROR, "a ping without an integer ping_event.event_id")
                return
            self.send_quietly({"type": "pong", "event_id": event_id})
        elif kind == "user_transcript":
            event = message.get("user_transcription_event")
            event_id = event.get("event_id") if isinstance(event, dict) else None
            if self._listening and self._turn_id is None and _is_id(event_id):
                self._turn_id = event_id
                session.stage("input_transcript", received_ns)
        elif kind == "agent_response":
            event = message.get("agent_response_event")
            event_id = event.get("event_id") if isinstance(event, dict) else None
            # the answer's text: after the turn's transcript, of its id or a later one (a greeting's is earlier)
            if self._turn_id is not None and (not _is_id(event_id) or event_id >= max(self._turn_id,
                                                                                     self._void_below)):
                session.stage("first_text", received_ns)
        elif kind == "interruption":
            event = message.get("interruption_event")
            event_id = event.get("event_id") if isinstance(event, dict) else None
            if _is_id(event_id):
                self._void_below = max(self._void_below, event_id)
        elif kind == "conversation_initiation_metadata":
            self._metadata(message.get("conversation_initiation_metadata_event"), received_ns)
        elif kind == "error":
            event = message.get("error_event") if isinstance(message.get("error_event"), dict) else {}
            what = event.get("error_type") or f"code {event.get('code')}"
            text = f"{what}: {event.get('message') or event.get('reason') or 'error'}"
            self.fail(session, _auth_or(ErrorKind.SERVER_ERROR, text), text)
        elif not isinstance(kind, str):
            self.fail(session, ErrorKind.PROTOCOL_ERROR, "a server message without a 'type'")

    def _metadata(self, event: Any, received_ns: int) -> None:
        session = self.session
        if not isinstance(event, dict):
            self.fail(session, ErrorKind.PROTOCOL_ERROR,
                      "conversation_initiation_metadata without conversation_initiation_metadata_event")
            return
        wanted = self.option("input_format")
        taken = event.get("user_input_audio_format") or ELEVENLABS_DEFAULT_INPUT_FORMAT  # the SDKs' default too
        if taken != wanted:
            advice = (f"give --provider-option input_format={taken}" if taken in ELEVENLABS_INPUT_FORMATS
                      else "bootbench sends PCM16: set the agent's user input format to pcm_16000")
            self.fail(session, ErrorKind.PROTOCOL_ERROR, f"the agent takes {taken} input, not {wanted}: {advice}")
            return
        output = str(event.get("agent_output_audio_format") or "")
        rate = output.removeprefix("pcm_")
        if output.startswith("pcm_") and rate.isdigit():
            session.detector = AudibleDetector(int(rate), session.detector.audible_dbfs)
        else:
            self._output_pcm = False   # first audio is still stamped; not decoded for the audible check
            self.anomalies["output_not_pcm"] += 1
        if session.ready_ns is None and session.open:
            session.ready_ns = received_ns
            session.ready.set()

    def _audio(self, event: Any, received_ns: int) -> None:
        session = self.session
        event_id = event.get("event_id") if isinstance(event, dict) else None
        if not _is_id(event_id):
            self.fail(session, ErrorKind.PROTOCOL_ERROR, "an audio event without an integer audio_event.event_id")
            return
        if session.ready_ns is None:
            self.anomalies["audio_before_ready"] += 1
            return
        if event_id < self._void_below:
            self.anomalies["interrupted_audio"] += 1   # a reply the user's speech interrupted: never played
            return
        if self._turn_id is None or event_id < self._turn_id:
            if session.turn == 1:
                session.greeting_audio(received_ns)   # the agent's first message, unasked
            else:
                self.anomalies["audio_between_turns"] += 1
            return
        if session.between_turns:
            self.anomalies["audio_between_turns"] += 1
            return
        if not session.open:
            return
        session.last_audio_ns = received_ns   # the end of a reply is quiet after its last chunk (reply_end)
        pcm = None
        if session.decoding and self._output_pcm:
            data = event.get("audio_base_64")
            if isinstance(data, str) and (too_big := oversized_audio("an audio event's audio_base_64", data)):
                self.fail(session, ErrorKind.PROTOCOL_ERROR, too_big)
                return
            try:
                pcm = base64.b64decode(data, validate=True) if isinstance(data, str) else None
            except (binascii.Error, ValueError):
                pcm = None
            if pcm is None:
                self.fail(session, ErrorKind.PROTOCOL_ERROR, "an audio event whose audio_base_64 is not base64")
                return
        session.answer_audio(pcm, received_ns)

    def close_error(self, code: int | None, reason: str) -> CycleError:
        detail = reason or "no reason given"
        if code == 1000:
            return CycleError(ErrorKind.SERVER_ERROR, f"the agent ended the conversation (code 1000: {detail})")
        if code in CLOSE_KINDS:
            kind = _auth_or(CLOSE_KINDS[code], reason) if code == 1008 else CLOSE_KINDS[code]
            return CycleError(kind, f"connection closed (code {code}): {detail}")
        return super().close_error(code, reason)

    # ---- the signed URL

    def _request_signed_url(self) -> str:
        """Ask the REST endpoint for the agent's signed URL; CycleError in the service's words when it refuses."""
        parts = urlsplit(self.config.url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        url = urlunsplit((scheme, parts.netloc, ELEVENLABS_SIGNED_URL_PATH, "", ""))
        agent = self.option("agent_id") or ELEVENLABS_REFERENCE_AGENT
        try:
            response = self._http.get(url, params={"agent_id": agent}, headers={"xi-api-key": self.config.api_key},
                                      timeout=self.config.timeout, verify=self.config.ca_bundle or True,
                                      allow_redirects=False)
        except requests.RequestException:
            reason = diagnose_unreachable(url, self.config.ca_bundle)
            raise CycleError(ErrorKind.CONNECT_FAILED, f"cannot reach {redacted_url(url)}: {reason}") from None
        if response.status_code != 200:
            detail = _error_detail(response.text)
            kind = HTTP_KINDS.get(response.status_code, ErrorKind.CONNECT_FAILED)
            if response.status_code >= 500:
                kind = ErrorKind.SERVER_ERROR
            raise CycleError(kind, f"HTTP {response.status_code} from the signed-URL request: {detail}")
        try:
            signed = response.json().get("signed_url")
        except (ValueError, AttributeError):
            signed = None
        if not isinstance(signed, str) or urlsplit(signed).scheme not in ("ws", "wss"):
            raise CycleError(ErrorKind.PROTOCOL_ERROR, "the signed-URL request answered without a ws(s) signed_url")
        return signed


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _auth_or(kind: ErrorKind, text: str) -> ErrorKind:
    lowered = text.lower()
    return ErrorKind.AUTH_FAILED if any(word in lowered for word in AUTH_WORDS) else kind


def _error_detail(body: str) -> str:
    """The words of an ElevenLabs REST error: ``{"detail": {"status", "message"}}``, a string, or a validation list."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return body.strip().splitlines()[0][:200] if body.strip() else "no detail"
    if isinstance(detail, dict):
        message, status = detail.get("message") or "", detail.get("status") or ""
        return f"{status}: {message}" if status and message else str(message or status or detail)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return "; ".join(str(item.get("msg", item)) for item in detail)[:300]
    return str(detail)[:300]
