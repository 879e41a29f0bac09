"""One driver per wire protocol; none of them imports Locust.

    driver = providers.create("aivoco", DriverConfig(url=..., api_key=...), stimulus)
"""

from __future__ import annotations

from urllib.parse import urlparse

from bootbench.providers import websocket_tuning
from bootbench.providers.base import CycleError, Driver, DriverConfig
from bootbench.providers.aivoco import AivocoDriver
from bootbench.providers.gemini_live import GeminiLiveDriver
from bootbench.providers.openai_realtime import OpenAIRealtimeDriver

DRIVERS: dict[str, type[Driver]] = {
    AivocoDriver.name: AivocoDriver,
    OpenAIRealtimeDriver.name: OpenAIRealtimeDriver,
    GeminiLiveDriver.name: GeminiLiveDriver,
}
NAMES: tuple[str, ...] = tuple(DRIVERS)

websocket_tuning.install()  # cheaper frame masking and reads in websocket-client (see the module)

__all__ = ["CycleError", "Driver", "DriverConfig", "DRIVERS", "NAMES", "create", "infer"]


def create(name: str, config: DriverConfig, stimulus) -> Driver:
    """A new, unconnected driver of provider ``name``."""
    return DRIVERS[name](config, stimulus)


def infer(host: str) -> str:
    """The provider whose public endpoint ``host`` names; aivoco otherwise."""
    hostname = urlparse(host).hostname or ""
    for name, driver in DRIVERS.items():
        if any(hostname.endswith(known) for known in driver.known_hosts):
            return name
    return "aivoco"
