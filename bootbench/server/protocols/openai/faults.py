"""How the faults of :mod:`bootbench.server.faults` look on OpenAI Realtime's wire (docs/protocols/openai-realtime.md).

The service's own words and forms, each from the source the page names (checked 2026-12-03):

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
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bootbench.server.faults import FaultForms, FaultSpec
from bootbench.server.ws_faults import echo

if TYPE_CHECKING:
    from bootbench.server.ws_protocol import WebSocketConnection

BAD_KEY = "Incorrect API key provided"
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


def fault_forms() -> FaultForms:
    """This protocol's words for ``error:type`` and ``end:reason``; it has a form of every kind."""
    return FaultForms(
        words={"type": tuple(ERRORS), "reason": tuple(ENDS)},
        says={
            "auth": "refuses the WebSocket upgrade with HTTP 401 (invalid_api_key)",
            "error": "sends the error {type} instead of {when}",
            "end": "sends the error {reason} and closes (1001) instead of answering",
            "stray": "sends {chunks} reply chunks of no response before session.updated",
        },
        message=said)


def said(spec: FaultSpec) -> str:
    """The service's words a session struck by ``spec`` receives (its key shown as bootbench masks it, ***)."""
    key = echo(spec, "***")
    if spec.kind == "auth":
        return f"{BAD_KEY}: ***. {KEY_HELP}" if key else BAD_KEY
    if spec.kind == "error":
        error_type, code, message = ERRORS[spec.option("type")]
        return f"{code or error_type}: {message}{key}"
    if spec.kind == "end":
        return f"session_expired: {ENDS[spec.option('reason')][0]}"
    return ""


def refusal(fault: FaultSpec, key: str) -> web.Response:
    """The ``auth`` fault at the upgrade: HTTP 401 with the service's error body (the key only with ``echo=yes``)."""
    message = f"{BAD_KEY}: {key}. {KEY_HELP}" if echo(fault, key) else BAD_KEY
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
    return web.json_response(body, status=401)


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
        return {"type": "response.output_audio.delta", "event_id": _event_id(),
                "response_id": f"resp_{secrets.token_hex(10)}", "item_id": f"item_{secrets.token_hex(10)}",
                "output_index": 0, "content_index": 0, "delta": chunk}
