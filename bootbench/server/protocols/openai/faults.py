"""How the faults of :mod:`bootbench.server.faults` look on OpenAI Realtime's wire (docs/protocols/openai-realtime.md).

One form per service this package serves (:mod:`.flavours`: ``openai``, ``azure``, ``xai``): the same shared
kinds, each service's own refusal, and the errors only where its words are known. OpenAI's words and forms, each
from the source the page names (checked 2026-12-03):

- ``auth``: the upgrade refused with HTTP 401 and the JSON error body ``invalid_api_key``; with ``echo=yes``
  the message quotes the key where the service quotes it ("Incorrect API key provided: KEY. ...").
- ``error`` before ready: an ``error`` event ``{type, code, message, param, event_id}`` instead of
  ``session.updated``; after the input: the answer's ``response.created`` then ``response.done`` with
  ``status: "failed"`` and ``status_details.error {type, code, message}``, as the service reports a response
  that a rate limit or the quota stopped.
- ``end``: ``session_expired``: the ``error`` event the service sends when a session reaches its maximum
  duration, then a close 1001 (going away) with the same words.
- the other kinds are the shared ones (:mod:`bootbench.server.ws_faults`) with this protocol's messages.
"""

from __future__ import annotations

import secrets
from functools import partial
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bootbench.server.faults import FaultForms, FaultSpec
from bootbench.server.ws_faults import echo

from .flavours import AZURE_BAD_KEY, OPENAI_BAD_KEY, XAI_BAD_KEY, Flavour

if TYPE_CHECKING:
    from bootbench.server.ws_protocol import WebSocketConnection

BAD_KEY = OPENAI_BAD_KEY
REFUSALS = {"openai": BAD_KEY, "azure": AZURE_BAD_KEY, "xai": XAI_BAD_KEY}
"""Each service's words refusing a key (:mod:`.flavours`); Azure's for its ``api-key`` header."""
KEY_HELP = "You can find your API key at https://platform.openai.com/account/api-keys."
ERRORS: dict[str, tuple[str, str | None, str]] = {
    "rate_limit_exceeded": (
        "requests", "rate_limit_exceeded",
        "Rate limit reached for gpt-realtime in organization org-bootbench on requests per min (RPM): Limit 100, "
        "Used 100, Requested 1. Please try again in 600ms. Visit https://platform.openai.com/account/rate-limits "
        "to learn more."),
    "inference_rate_limit_exceeded": (
        "invalid_request_error", "inference_rate_limit_exceeded",
        "We're currently processing too many requests \u2014 please try again later."),
    "insufficient_quota": (
        "insufficient_quota", "insufficient_quota",
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."),
    "server_error": (
        "server_error", None,
        "The server had an error while processing your request. Sorry about that! Please contact us through our "
        "help center at help.openai.com if the error persists. We recommend you retry your request."),
    "invalid_api_key": ("invalid_request_error", "invalid_api_key", f"{BAD_KEY}. {KEY_HELP}"),
}
"""``error:type=`` -> the error's ``type``, ``code`` and ``message`` (the first is the default)."""
ENDS: dict[str, tuple[str, int]] = {
    "session_expired": ("Your session hit the maximum duration of 60 minutes.", 1001),
}
"""``end:reason=`` -> the ``session_expired`` error's message (also the close reason) and the close code."""
AUTH_CLOSE = (3000, "invalid_request_error.invalid_api_key")
"""A key refused after the upgrade (an ``auth`` fault drawn by a session whose upgrade was already accepted, at
several users at once): the ``error`` event, then this close, the form the service used in 2024."""


AZURE_ERRORS = ("inference_rate_limit_exceeded",)
"""Azure's ``error:type`` words: the one error a public report quotes from an Azure deployment (openai-python#2502)."""
NO_ECHO = "the service's refusals and errors never quote the key"
SAYS = {
    "error": "sends the error {type} instead of {when}",
    "stray": "sends {chunks} reply chunks of no response before session.updated",
}


def fault_forms() -> dict[str, FaultForms]:
    """Each service's forms, by the ground truth's protocol name (a flavour's)."""
    return {
        "openai": FaultForms(
            words={"type": tuple(ERRORS), "reason": tuple(ENDS)},
            says={**SAYS, "auth": "refuses the WebSocket upgrade with HTTP 401 (invalid_api_key)",
                  "end": "sends the error {reason} and closes (1001) instead of answering"},
            message=partial(said, service="openai")),
        "azure": FaultForms(
            words={"type": AZURE_ERRORS},
            missing={"auth:echo=yes": NO_ECHO, "error:echo=yes": NO_ECHO,
                     "end": "how Azure ends a session by itself was found neither documented nor reported "
                            "(checked 2026-12-03)"},
            says={**SAYS, "auth": "refuses the WebSocket upgrade with HTTP 401 (access denied)"},
            message=partial(said, service="azure")),
        "xai": FaultForms(
            missing={"auth:echo=yes": NO_ECHO,
                     "error": "xAI documents neither the shape nor the words of its error events "
                              "(docs/protocols/xai.md)",
                     "end": "how xAI ends a session by itself is not documented"},
            says={**SAYS, "auth": "refuses the WebSocket upgrade with HTTP 400 (invalid-argument)"},
            message=partial(said, service="xai")),
    }


def said(spec: FaultSpec, service: str = "openai") -> str:
    """The words of ``service`` a session struck by ``spec`` receives (its key shown as bootbench masks it, ***)."""
    key = echo(spec, "***")
    if spec.kind == "auth":
        return f"{BAD_KEY}: ***. {KEY_HELP}" if key else REFUSALS[service]
    if spec.kind == "error":
        error_type, code, message = ERRORS[spec.option("type")]
        return f"{code or error_type}: {message}{key}"
    if spec.kind == "end":
        return f"session_expired: {ENDS[spec.option('reason')][0]}"
    return ""


def presented_key(request: web.Request) -> str:
    """The key a client presented at the upgrade (a bearer token, or Azure's ``api-key`` header)."""
    header = request.headers.get("Authorization", "")
    return header[len("Bearer "):].strip() if header.startswith("Bearer ") else request.headers.get("api-key", "")


def auth_refusal(flavour: Flavour, fault: FaultSpec, request: web.Request) -> web.Response:
    """The ``auth`` fault at the upgrade: the service's refusal of a key (OpenAI's quotes it with ``echo=yes``)."""
    key = presented_key(request)
    if echo(fault, key):
        body = {"error": {"message": f"{BAD_KEY}: {key}. {KEY_HELP}", "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}
        return web.json_response(body, status=401)
    refusal = flavour.key_refusal(request, None, force=True)
    assert refusal is not None
    return refusal.response()


def error_object(error_type: str, tail: str = "") -> dict[str, Any]:
    """The ``error`` object of ``error:type=TYPE`` (``tail``: the key quoted with ``echo=yes``)."""
    kind, code, message = ERRORS[error_type]
    return {"type": kind, "code": code, "message": message + tail, "param": None, "event_id": None}


def _event_id() -> str:
    return f"event_{secrets.token_hex(10)}"


class OpenAIFaults:
    """The hooks of :class:`~bootbench.server.ws_faults.WebSocketFaults`: OpenAI Realtime's messages for each fault.

    Mixed into the protocol before its WebSocket base, whose ``send_json``, ``close_with`` and ``_response`` it uses.
    """

    send_json: Any
    close_with: Any
    _response: Any

    async def play_auth(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        error = error_object("invalid_api_key", echo(fault, conn.key))
        await self.send_json(conn, {"type": "error", "event_id": _event_id(), "error": error})
        await self.close_with(conn, *AUTH_CLOSE, "auth_failed")

    async def play_error(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        error = error_object(fault.option("type"), echo(fault, conn.key))
        if fault.option("when") == "before_ready":
            await self.send_json(conn, {"type": "error", "event_id": _event_id(), "error": error})
            return
        # After the input: the answer's response fails (the error object without param and event_id).
        response_id = f"resp_{secrets.token_hex(10)}"
        await self.send_json(conn, {"type": "response.created", "event_id": _event_id(),
                                    "response": self._response(response_id, "in_progress", [])})
        failed = self._response(response_id, "failed", [])
        failed["status_details"] = {"type": "failed", "error": {k: error[k] for k in ("type", "code", "message")}}
        await self.send_json(conn, {"type": "response.done", "event_id": _event_id(), "response": failed})

    async def play_end(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        message, code = ENDS[fault.option("reason")]
        error = {"type": "invalid_request_error", "code": fault.option("reason"), "message": message, "param": None,
                 "event_id": None}
        await self.send_json(conn, {"type": "error", "event_id": _event_id(), "error": error})
        await self.close_with(conn, code, message, "ended_by_server")

    def stray_message(self, conn: WebSocketConnection, chunk: str) -> dict[str, Any]:
        audio = "response.audio" if getattr(conn, "flavour", None) and conn.flavour.preview_events \
            else "response.output_audio"
        return {"type": f"{audio}.delta", "event_id": _event_id(),
                "response_id": f"resp_{secrets.token_hex(10)}", "item_id": f"item_{secrets.token_hex(10)}",
                "output_index": 0, "content_index": 0, "delta": chunk}
