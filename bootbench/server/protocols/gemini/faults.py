"""How the faults of :mod:`bootbench.server.faults` look on Gemini Live's wire (docs/protocols/gemini-live.md).

The service has no error message: it closes the socket with a code and a reason (at most 123 bytes, cut
there as the service cuts it). The words, each from the source the page names (checked 2026-12-03):

- ``auth``: a close 1007 "API key not valid. Please pass a valid API key." after ``setup``. Google's reasons
  never quote the key, so ``echo=yes`` has no form here.
- ``error``: a close with the code and reason of ``type`` (1011 for an exhausted quota or rate limit and for
  an internal error, 1008 for a model the endpoint does not serve, 1007 for an invalid argument), before
  ``setupComplete`` or instead of the answer.
- ``end``: ``go_away``: ``goAway {timeLeft}`` then, the session's time being up, a close 1008 with the
  service's reason for a client that did not close after it.
- the other kinds are the shared ones (:mod:`bootbench.server.ws_faults`) with this protocol's messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bootbench.server.faults import FaultForms, FaultSpec
from bootbench.server.ws_protocol import MAX_CLOSE_REASON_BYTES
from bootbench.wire import GEMINI_OUTPUT_RATE

if TYPE_CHECKING:
    from bootbench.server.ws_protocol import WebSocketConnection

BAD_KEY = (1007, "API key not valid. Please pass a valid API key.")
ERRORS: dict[str, tuple[int, str]] = {
    "resource_exhausted": (1011, "Resource has been exhausted (e.g. check quota)."),
    "quota_exceeded": (1011, "You exceeded your current quota, please check your plan and billing details."),
    "internal": (1011, "Internal error encountered."),
    "not_found": (1008, "{model} is not found for API version v1beta, or is not supported for bidiGenerateContent. "
                        "Call ListModels to see the list of available models and their supported methods."),
    "invalid_argument": (1007, "Request contains an invalid argument."),
}
"""``error:type=`` -> the close code and reason (``{model}``: the session's model); the first is the default."""
GO_AWAY_REASON = ("Connection aborted because the client failed to close the connection after receiving a GoAway "
                  "signal once the session duration expired")
ENDS: dict[str, tuple[int, str]] = {"go_away": (1008, GO_AWAY_REASON)}
"""``end:reason=`` -> the close that follows ``goAway``."""
GO_AWAY_TIME_LEFT = "0s"
NO_ECHO = "Google's close reasons never quote the key"
OUTPUT_MIME = f"audio/pcm;rate={GEMINI_OUTPUT_RATE}"
DEFAULT_MODEL = "models/gemini-2.5-flash-native-audio-preview-12-2025"
"""The model named in ``not_found`` when the setup named none (the driver's default)."""


def fault_forms() -> FaultForms:
    """This protocol's words for ``error:type`` and ``end:reason``; no key echo (Google never quotes it)."""
    return FaultForms(
        words={"type": tuple(ERRORS), "reason": tuple(ENDS)},
        missing={"auth:echo=yes": NO_ECHO, "error:echo=yes": NO_ECHO},
        says={
            "auth": "closes the socket after setup with 1007 (API key not valid)",
            "error": "closes the socket ({type}) instead of {when}",
            "end": "sends goAway, then closes (1008) instead of answering",
            "stray": "sends {chunks} reply chunks of no model turn before setupComplete",
        },
        message=said)


def close_reason(text: str) -> str:
    """A close reason as the service sends it: cut at 123 bytes."""
    return text.encode("utf-8")[:MAX_CLOSE_REASON_BYTES].decode("utf-8", "ignore")


def error_close(error_type: str, model: str = DEFAULT_MODEL) -> tuple[int, str]:
    """The close code and reason of ``error:type=TYPE`` for a session of ``model``."""
    code, reason = ERRORS[error_type]
    return code, close_reason(reason.format(model=model))


def said(spec: FaultSpec) -> str:
    """The service's words a session struck by ``spec`` receives (the close code and reason)."""
    if spec.kind == "auth":
        return f"(code {BAD_KEY[0]}): {BAD_KEY[1]}"
    if spec.kind == "error":
        code, reason = error_close(spec.option("type"))
        return f"(code {code}): {reason}"
    if spec.kind == "end":
        code, reason = ENDS[spec.option("reason")]
        return f"(code {code}): {close_reason(reason)}"
    return ""


class GeminiFaults:
    """The hooks of :class:`~bootbench.server.ws_faults.WebSocketFaults`: Gemini Live's messages for each fault.

    Mixed into the protocol before its WebSocket base, whose ``send_json`` and ``close_with`` it uses.
    """

    send_json: Any
    close_with: Any

    async def play_auth(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        await self.close_with(conn, *BAD_KEY, "auth_failed")

    async def play_error(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        await self.close_with(conn, *error_close(fault.option("type"), getattr(conn, "model", "") or DEFAULT_MODEL),
                              "error")

    async def play_end(self, conn: WebSocketConnection, fault: FaultSpec) -> None:
        await self.send_json(conn, {"goAway": {"timeLeft": GO_AWAY_TIME_LEFT}})
        code, reason = ENDS[fault.option("reason")]
        await self.close_with(conn, code, close_reason(reason), "ended_by_server")

    def stray_message(self, conn: WebSocketConnection, chunk: str) -> dict[str, Any]:
        return {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": OUTPUT_MIME, "data": chunk}}]}}}
