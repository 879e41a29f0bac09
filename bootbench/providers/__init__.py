"""One driver per wire protocol; none of them imports Locust.

    providers.install_tuning()   # once per process that runs drivers (a run's users do it in Locust's init)
    driver = providers.create("aivoco", DriverConfig(url=..., api_key=...), stimulus)

Importing this package changes no library: :func:`install_tuning` does, when
a process is about to run drivers, so ``bootbench compare`` or a refusal of
bad input leaves websocket-client as it is.
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

__all__ = ["CycleError", "Driver", "DriverConfig", "DRIVERS", "NAMES", "create", "infer", "install_tuning"]


def install_tuning() -> None:
    """Make websocket-client, under every driver, mask and read frames the cheaper way (idempotent).

    Same bytes on the wire, less CPU per frame: see :mod:`bootbench.providers.websocket_tuning`.
    Called where drivers are about to run: ``bootbench.events`` in a worker or the single
    local process, and tests or tools that drive a provider without Locust.
    """
    websocket_tuning.install()


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
