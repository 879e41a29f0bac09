"""The provider table: bootbench's own drivers, installed packages' and a locustfile's, by name.

    registry.get("openai")            # the driver class; ProviderError (one sentence) for an unknown name
    registry.names()                  # every name, built-ins first
    @registry.register                # in a locustfile or a plugin: add a driver class
    class EchoDriver(WebSocketDriver): name = "echo"; ...

The built-ins are :data:`BUILTINS`; an installed package adds a driver with an
entry point in the group ``bootbench.providers`` (name = the provider's
name, value = ``module:Class``). Both are loaded once, on the first question
asked of the table (importing this module loads nothing). A driver class
says which contract it was written for (``api_version``); one written for
another version, a name given by two sources, or a class that is not a
:class:`~bootbench.providers.base.Driver` is refused with one sentence naming
the sources.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from urllib.parse import urlparse

from bootbench.errors import UserError
from bootbench.providers.base import API_VERSION, Driver

ENTRY_POINT_GROUP = "bootbench.providers"
BUILTINS: dict[str, str] = {
    "aivoco": "bootbench.providers.aivoco:AivocoDriver",
    "openai": "bootbench.providers.openai_realtime:OpenAIRealtimeDriver",
    "gemini": "bootbench.providers.gemini_live:GeminiLiveDriver",
    "azure": "bootbench.providers.azure:AzureDriver",
    "xai": "bootbench.providers.xai:XAIDriver",
    "elevenlabs": "bootbench.providers.elevenlabs:ElevenLabsDriver",
    "ultravox": "bootbench.providers.ultravox:UltravoxDriver",
    "deepgram": "bootbench.providers.deepgram:DeepgramDriver",
}
"""Name -> ``module:Class`` of every driver bootbench ships (in the order help texts list them)."""
DEFAULT = "aivoco"
"""The provider of a host no driver claims (the original benchmark's service)."""


class ProviderError(UserError):
    """A provider that cannot be used: unknown, defined twice, or written for another driver contract."""


class Registry:
    """Every known driver class by provider name, with where it came from (for the sentences)."""

    def __init__(self) -> None:
        self._drivers: dict[str, type[Driver]] = {}
        self._sources: dict[str, str] = {}
        self._loaded = False

    def register(self, cls: type[Driver], source: str | None = None) -> type[Driver]:
        """Add ``cls`` under ``cls.name``; returns it, so it works as a class decorator."""
        self._load()
        return self._add(cls, source or f"{cls.__module__}.{cls.__qualname__}")

    def get(self, name: str) -> type[Driver]:
        self._load()
        try:
            return self._drivers[name]
        except KeyError:
            raise ProviderError(f"unknown provider {name!r}; choose one of {', '.join(self._drivers)} "
                                f"(or install the package that provides it)") from None

    def drivers(self) -> dict[str, type[Driver]]:
        self._load()
        return dict(self._drivers)

    def source(self, name: str) -> str:
        """Where the provider ``name`` came from: bootbench, a package (and its entry point), or a module."""
        self._load()
        return self._sources[name]

    def _add(self, cls: object, source: str) -> type[Driver]:
        if not (isinstance(cls, type) and issubclass(cls, Driver)) or not getattr(cls, "name", ""):
            raise ProviderError(f"{source} is not a bootbench driver (a subclass of bootbench.providers.base.Driver "
                                f"with a name)")
        version = getattr(cls, "api_version", None)
        if version != API_VERSION:
            raise ProviderError(f"the provider {cls.name!r} from {source} was written for driver API version "
                                f"{version}; this bootbench has version {API_VERSION}")
        known = self._drivers.get(cls.name)
        if known is not None and known is not cls:
            raise ProviderError(f"two sources define the provider {cls.name!r}: {self._sources[cls.name]} "
                                f"and {source}")
        self._drivers[cls.name] = cls
        self._sources[cls.name] = source
        return cls

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for name, target in BUILTINS.items():
            module, _, attribute = target.partition(":")
            self._add(getattr(import_module(module), attribute), f"bootbench ({target})")
        for point in entry_points(group=ENTRY_POINT_GROUP):
            package = point.dist.name if point.dist is not None else "an unnamed package"
            source = f"the package {package} (entry point {point.name} = {point.value})"
            try:
                cls = point.load()
            except Exception as exc:  # noqa: BLE001 - a broken plugin is named in one sentence, never a traceback
                raise ProviderError(f"{source} could not be loaded: {type(exc).__name__}: {exc}") from None
            if getattr(cls, "name", None) != point.name:
                raise ProviderError(f"{source} names the provider {point.name!r} but its class is named "
                                    f"{getattr(cls, 'name', None)!r}")
            self._add(cls, source)


_REGISTRY = Registry()


def register(cls: type[Driver]) -> type[Driver]:
    """Add a driver class to the process's table (a class decorator; a locustfile's reaches every worker)."""
    return _REGISTRY.register(cls)


def get(name: str) -> type[Driver]:
    """The driver class of provider ``name``; :class:`ProviderError` when none has that name."""
    return _REGISTRY.get(name)


def names() -> tuple[str, ...]:
    """Every provider's name: the built-ins first, then packages' and locustfiles'."""
    return tuple(_REGISTRY.drivers())


def drivers() -> dict[str, type[Driver]]:
    """Every provider's driver class by name."""
    return _REGISTRY.drivers()


def source(name: str) -> str:
    return _REGISTRY.source(name)


def infer(host: str) -> str:
    """The provider whose public endpoint ``host`` names; :data:`DEFAULT` otherwise."""
    hostname = urlparse(host).hostname or ""
    for name, driver in drivers().items():
        if any(hostname.endswith(known) for known in driver.known_hosts):
            return name
    return DEFAULT
