"""One driver per wire protocol; none of them imports Locust.

    providers.install_tuning()   # once per process that runs drivers (a run's users do it in Locust's init)
    driver = providers.create("aivoco", DriverConfig(url=..., api_key=...), stimulus)
    providers.get("openai")      # a driver class; providers.names(): every provider (bootbench's and plugins')

The table of providers is :mod:`.registry` (built-ins, installed packages' entry points,
``@providers.register`` in a locustfile).

Importing this package changes no library: :func:`install_tuning` does, when
a process is about to run drivers, so ``bootbench compare`` or a refusal of
bad input leaves websocket-client as it is.
"""

from __future__ import annotations

from bootbench.providers import registry, websocket_tuning
from bootbench.providers.base import API_VERSION, CycleError, Driver, DriverConfig, ProviderOption
from bootbench.providers.registry import ProviderError, drivers, get, infer, names, register

__all__ = ["API_VERSION", "CycleError", "Driver", "DriverConfig", "ProviderError", "ProviderOption", "create",
           "drivers", "get", "infer", "install_tuning", "names", "register", "registry"]


def install_tuning() -> None:
    """Make websocket-client, under every driver, mask and read frames the cheaper way (idempotent).

    Same bytes on the wire, less CPU per frame: see :mod:`bootbench.providers.websocket_tuning`.
    Called where drivers are about to run: ``bootbench.events`` in a worker or the single
    local process, and tests or tools that drive a provider without Locust.
    """
    websocket_tuning.install()


def create(name: str, config: DriverConfig, stimulus) -> Driver:
    """A new, unconnected driver of provider ``name``."""
    return get(name)(config, stimulus)
