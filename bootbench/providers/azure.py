"""Azure Voice Live and Azure OpenAI Realtime: the OpenAI Realtime driver at Azure's URLs (docs/protocols/azure.md).

    locust --provider azure -H https://myres.services.ai.azure.com              # Voice Live, model gpt-realtime
    locust --provider azure -H https://myres.openai.azure.com --model my-deployment   # Azure OpenAI (GA)
    locust --provider azure --provider-option resource=myres                    # the same host, built

A configuration of :class:`~.openai_realtime.OpenAIRealtimeDriver`, not a copy:
the endpoint (path and query of the flavour), the key's header (``api-key``,
or ``Authorization: Bearer`` with a Microsoft Entra token), the key variables,
the defaults and Azure's own settings as provider options. The events are
OpenAI's; Voice Live and the Azure OpenAI preview lay ``session.update`` out in
the preview's flat fields (:attr:`session_shape`) and answer with the preview's
event names, which the shared driver receives as well.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from bootbench.providers.openai_realtime import OpenAIRealtimeDriver
from bootbench.providers.base import ProviderOption
from bootbench.providers.websocket import websocket_url
from bootbench.wire import (AZURE_OPENAI_PATH, AZURE_OPENAI_PREVIEW_API_VERSION, AZURE_OPENAI_PREVIEW_PATH,
                            AZURE_VOICE_LIVE_API_VERSION, AZURE_VOICE_LIVE_PATH)

FLAVOURS = ("voice-live", "openai", "openai-preview")
"""Voice Live; Azure OpenAI's GA endpoint; Azure OpenAI's preview endpoint (deprecated since 2026-04-30)."""
PATHS = {"voice-live": AZURE_VOICE_LIVE_PATH, "openai": AZURE_OPENAI_PATH, "openai-preview": AZURE_OPENAI_PREVIEW_PATH}
API_VERSIONS = {"voice-live": AZURE_VOICE_LIVE_API_VERSION, "openai-preview": AZURE_OPENAI_PREVIEW_API_VERSION}
"""The current ``api-version`` of the flavours that need one (the GA endpoint refuses one)."""
SHAPES = {"voice-live": "voice-live", "openai": "ga", "openai-preview": "preview"}
OPENAI_HOST = ".openai.azure.com"
VOICE_LIVE_HOST = ".services.ai.azure.com"
RESOURCE_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]+")
"""A Microsoft Entra access token (a JWT: three base64url parts, the header's JSON starting ``{"``)."""
AUTH_MODES = ("auto", "api-key", "bearer")


def _resource(text: str) -> str:
    if not RESOURCE_NAME.fullmatch(text):
        raise ValueError("a resource name is lower-case letters, digits and hyphens (the first part of its host "
                         "name, e.g. myres for myres.services.ai.azure.com)")
    return text


def _api_version(text: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(-preview)?", text):
        raise ValueError("an api-version is a date like 2026-07-15, or one with -preview")
    return text


def _deployment(text: str) -> str:
    if not re.fullmatch(r"[\w.-]{1,64}", text):
        raise ValueError("a deployment name is up to 64 letters, digits, '-', '_' or '.'")
    return text


def infer_flavour(url: str) -> str:
    """The flavour a URL names by its path, else by its host (an Azure OpenAI host: GA), else Voice Live."""
    parsed = urlparse(url)
    path = parsed.path.rstrip("/")
    for flavour, flavour_path in sorted(PATHS.items(), key=lambda item: -len(item[1])):
        if path.endswith(flavour_path):
            return flavour
    return "openai" if (parsed.hostname or "").endswith(OPENAI_HOST) else "voice-live"


class AzureDriver(OpenAIRealtimeDriver):
    """Azure Voice Live / Azure OpenAI Realtime: OpenAI's events, Azure's endpoint, key header and options."""

    name = "azure"
    known_hosts = ("openai.azure.com", "services.ai.azure.com", "cognitiveservices.azure.com")
    public_url = ""
    """None of its own: each resource has its host (:meth:`public_endpoint` builds it from ``resource``)."""
    max_message_source = ("Voice Live's and OpenAI's documented limit of input_audio_buffer.append (15 MiB; Azure "
                          "OpenAI follows OpenAI's reference)")
    key_variables = ("AZURE_VOICELIVE_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_AD_TOKEN")
    reference_protocol = "openai"  # a flavour of the OpenAI emulation (bootbench/server/protocols/openai/flavours.py)
    """The azure-ai-voicelive README's name, the openai SDK's (AzureOpenAI), and its name for an Entra token."""
    default_model = "gpt-realtime"
    default_voice = "alloy"
    options = (
        ProviderOption("flavour", "Which Azure endpoint: voice-live (Voice Live), openai (Azure OpenAI, GA) or "
                       "openai-preview (Azure OpenAI's deprecated preview). Default: the one the -H URL names by its "
                       "path, else openai for an *.openai.azure.com host, else voice-live.", choices=FLAVOURS),
        ProviderOption("resource", "Your Azure resource's name: without -H, the run targets "
                       "wss://NAME.services.ai.azure.com (voice-live) or wss://NAME.openai.azure.com (openai "
                       "flavours). -H wins when given.", check=_resource),
        ProviderOption("api-version", f"The api-version query of voice-live (default {AZURE_VOICE_LIVE_API_VERSION}) "
                       f"and openai-preview (default {AZURE_OPENAI_PREVIEW_API_VERSION}); the GA endpoint takes "
                       "none and is sent none.", check=_api_version),
        ProviderOption("deployment", "Your Azure OpenAI deployment's name (openai flavours). Default: --model.",
                       check=_deployment),
        ProviderOption("auth", "How the key is sent: api-key (the api-key header), bearer (Authorization: Bearer, "
                       "for a Microsoft Entra token) or auto (bearer for a token, api-key for a key).",
                       default="auto", choices=AUTH_MODES),
        *OpenAIRealtimeDriver.options,   # transcription
    )

    @classmethod
    def option_values(cls, given: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        values = super().option_values(given)
        if values["flavour"] == "openai" and values["api-version"]:
            raise ValueError("provider option api-version: Azure OpenAI's GA endpoint (flavour=openai) takes no "
                             "api-version (it refuses one with 401); leave it out, or use flavour=openai-preview")
        return values

    @classmethod
    def public_endpoint(cls, options: dict[str, Any]) -> str:
        resource = options.get("resource")
        if not resource:
            raise ValueError("the azure provider has no public endpoint of its own: give your resource's URL with "
                             "-H (https://NAME.services.ai.azure.com) or its name with --provider-option resource=NAME")
        flavour = options.get("flavour") or "voice-live"
        host = f"{resource}{OPENAI_HOST if flavour.startswith('openai') else VOICE_LIVE_HOST}"
        return f"wss://{host}{PATHS[flavour]}"

    @property
    def flavour(self) -> str:
        return self.option("flavour") or infer_flavour(self.config.url)

    @property
    def session_shape(self) -> str:  # type: ignore[override]  # the flavour decides it
        return SHAPES[self.flavour]

    def endpoint(self) -> str:
        flavour = self.flavour
        url = websocket_url(self.config.url, PATHS[flavour])
        parsed = urlparse(url)
        query = dict(parse_qsl(parsed.query, keep_blank_values=True))
        wanted: dict[str, str] = {}
        if flavour in API_VERSIONS:
            wanted["api-version"] = self.option("api-version") or API_VERSIONS[flavour]
        if flavour == "voice-live":
            wanted["model"] = self.config.model or self.default_model
        else:
            wanted["deployment" if flavour == "openai-preview" else "model"] = (
                self.option("deployment") or self.config.model or self.default_model)
        for key, value in wanted.items():
            query.setdefault(key, value)   # what the URL names wins
        return urlunparse(parsed._replace(query=urlencode(query, safe=":")))

    def headers(self) -> list[str]:
        key = self.config.api_key
        auth = self.option("auth")
        bearer = auth == "bearer" or (auth == "auto" and JWT.fullmatch(key) is not None)
        return [f"Authorization: Bearer {key}"] if bearer else [f"api-key: {key}"]
