"""The services that speak OpenAI Realtime's events, as the emulation serves them: where, how they check a key and
a URL, how they lay out a session and name their audio events (docs/protocols/openai-realtime.md, azure.md, xai.md).

    flavour = flavour_of(request)                # by path, and on /v1/realtime by model (xAI's are grok-*)
    refusal = flavour.refusal(request, api_key)  # None, or the upgrade's answer in that service's words

One protocol serves them all (:class:`.protocol.OpenAIRealtimeProtocol`): a
:class:`Flavour` is data plus the two upgrade checks, so a difference between
the services is a field here, never a copy of the protocol. Each flavour's
name is the ground truth's ``protocol`` (the provider's name: openai, azure,
xai). Wordings marked "the emulation's" were not found in the vendor's
documentation; the others are quoted there (the pages say where).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from bootbench.wire import (AZURE_OPENAI_PATH, AZURE_OPENAI_PREVIEW_PATH, AZURE_VOICE_LIVE_PATH, OPENAI_REALTIME_PATH,
                            XAI_MODEL_PREFIX)

# ---- OpenAI (docs/protocols/openai-realtime.md)
OPENAI_NO_KEY = ("You didn't provide an API key. You need to provide your API key in an Authorization header using "
                 "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
OPENAI_BAD_KEY = "Incorrect API key provided"

# ---- Azure (docs/protocols/azure.md)
AZURE_BAD_KEY = ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key "
                 "for an active subscription and use a correct regional API endpoint for your resource.")
AZURE_NO_KEY = ("Access denied due to missing subscription key. Make sure to include subscription key when making "
                "requests to an API.")
"""Azure API Management's wording for a request without a key (the emulation uses it for Azure's upgrade)."""
AZURE_BAD_TOKEN = ("Unauthorized. Access token is missing, invalid, audience is incorrect "
                   "(https://cognitiveservices.azure.com), or have expired.")
AZURE_NO_API_VERSION = "The api-version query parameter (?api-version=) is required for all requests."
AZURE_NO_DEPLOYMENT = ("The API deployment for this resource does not exist. If you created the deployment within "
                       "the last 5 minutes, please wait a moment and try again.")

# ---- xAI (docs/protocols/xai.md)
XAI_BAD_KEY = "Incorrect API key provided. You can obtain an API key from https://console.x.ai."
XAI_DEFAULT_MODEL = "grok-voice-fast-1.0"
"""The model of a session whose URL names none (the REST API reference's default)."""


@dataclass(frozen=True)
class Refusal:
    """An upgrade refused: the HTTP status, the JSON body, why (for the log), and whether it is about the key."""

    status: int
    body: dict[str, Any]
    reason: str
    auth: bool = False

    def response(self) -> web.Response:
        return web.json_response(self.body, status=self.status)


@dataclass(frozen=True)
class Flavour:
    """One service's way of speaking OpenAI Realtime's events."""

    name: str
    """The provider's name, and the ground truth's ``protocol``."""
    service: str
    """Which endpoint, for messages (``Azure Voice Live``)."""
    path: str
    shape: str
    """How its sessions are laid out: ``ga``, ``preview``, ``voice-live`` or ``xai`` (:mod:`.shapes`)."""
    model_query: str = "model"
    """The query parameter that names the model (Azure OpenAI's preview: ``deployment``)."""
    api_version: str = ""
    """``required`` (Voice Live, Azure OpenAI's preview), ``refused`` (Azure OpenAI's GA endpoint) or empty."""
    first_event: str = "session.created"
    default_model: str = ""
    """The model of a URL that names none; empty: the URL must name one."""
    default_voice: str = "alloy"
    unsupported: frozenset[str] = frozenset()
    """OpenAI client events this service does not take (refused as unknown)."""

    @property
    def preview_events(self) -> bool:
        """The preview's event names (``response.audio.delta``) instead of GA's (``response.output_audio.delta``)."""
        return self.shape in ("preview", "voice-live")

    def model(self, request: web.Request) -> str:
        return request.query.get(self.model_query) or self.default_model

    def refusal(self, request: web.Request, api_key: str | None) -> Refusal | None:
        """The answer to an upgrade the service refuses (the key first, then the URL), or None."""
        return self.key_refusal(request, api_key) or self.query_refusal(request)

    def key_refusal(self, request: web.Request, api_key: str | None, *, force: bool = False) -> Refusal | None:
        """A bad or missing key's refusal, in this service's words; ``force``: refuse even a good key (a fault)."""
        header = request.headers.get("Authorization", "")
        bearer = header[len("Bearer "):].strip() if header.startswith("Bearer ") else ""
        if self.name == "azure":
            key = request.headers.get("api-key", "").strip()
            if key:
                wrong = force or (api_key is not None and key != api_key)
                return _azure(401, "401", AZURE_BAD_KEY, "wrong api-key", auth=True) if wrong else None
            if bearer:
                wrong = force or (api_key is not None and bearer != api_key)
                return _azure(401, "401", AZURE_BAD_TOKEN, "wrong bearer token", auth=True) if wrong else None
            return _azure(401, "401", AZURE_NO_KEY, "no api-key header and no bearer token", auth=True)
        if bearer and not force and (api_key is None or bearer == api_key):
            return None
        if self.name == "xai":
            # xAI's REST API answers a wrong key with 400 and this body (the upgrade's is not documented)
            return Refusal(400, {"code": "invalid-argument", "error": XAI_BAD_KEY},
                           "no key" if not bearer else "wrong key", auth=True)
        message = OPENAI_NO_KEY if not bearer else OPENAI_BAD_KEY
        return Refusal(401, {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                       "code": None if not bearer else "invalid_api_key"}},
                       message, auth=True)

    def query_refusal(self, request: web.Request) -> Refusal | None:
        query = request.query
        if self.api_version == "required" and not query.get("api-version"):
            return _azure(400, "MissingApiVersionParameter", AZURE_NO_API_VERSION,
                          f"{self.service} upgrade without ?api-version=")
        if self.api_version == "refused" and "api-version" in query:
            # Microsoft's migration guide: an api-version on the GA URL gets 401 (the body is the emulation's)
            return _azure(401, "401", AZURE_BAD_KEY, f"{self.service} upgrade with ?api-version= (GA takes none)")
        if self.model(request):
            return None
        if self.name == "azure":
            return _azure(404, "DeploymentNotFound", AZURE_NO_DEPLOYMENT,
                          f"{self.service} upgrade without ?{self.model_query}=")
        return Refusal(400, {"error": {"message": f"Missing required parameter: '{self.model_query}'.",
                                       "type": "invalid_request_error", "param": self.model_query,
                                       "code": "missing_required_parameter"}},
                       f"upgrade without ?{self.model_query}= in the URL")


def _azure(status: int, code: str, message: str, reason: str, auth: bool = False) -> Refusal:
    return Refusal(status, {"error": {"code": code, "message": message}}, reason, auth)


FLAVOURS: dict[str, Flavour] = {
    "openai": Flavour("openai", "OpenAI Realtime", OPENAI_REALTIME_PATH, "ga"),
    "xai": Flavour("xai", "xAI Voice Agent", OPENAI_REALTIME_PATH, "xai", first_event="conversation.created",
                   default_model=XAI_DEFAULT_MODEL, default_voice="ara",
                   unsupported=frozenset({"conversation.item.retrieve", "conversation.item.truncate",
                                          "output_audio_buffer.clear"})),
    "azure-voice-live": Flavour("azure", "Azure Voice Live", AZURE_VOICE_LIVE_PATH, "voice-live",
                                api_version="required"),
    "azure-openai": Flavour("azure", "Azure OpenAI", AZURE_OPENAI_PATH, "ga", api_version="refused"),
    "azure-openai-preview": Flavour("azure", "Azure OpenAI (preview)", AZURE_OPENAI_PREVIEW_PATH, "preview",
                                    model_query="deployment", api_version="required"),
}
"""Every flavour the emulation serves (a constant table of frozen records)."""
OPENAI, XAI = FLAVOURS["openai"], FLAVOURS["xai"]
BY_PATH = {flavour.path: flavour for label, flavour in FLAVOURS.items() if label != "xai"}
"""Every path the emulation serves; ``/v1/realtime`` is OpenAI's unless the model is xAI's (:func:`flavour_of`)."""


def flavour_of(request: web.Request) -> Flavour:
    """The service a request speaks to: by path; on OpenAI's path, xAI's when the model is one of xAI's."""
    flavour = BY_PATH.get(request.path, OPENAI)
    if flavour is OPENAI and request.query.get("model", "").startswith(XAI_MODEL_PREFIX):
        return XAI
    return flavour
