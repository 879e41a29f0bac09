"""The provider table: bootbench's own drivers, installed packages' and a locustfile's, by name.

    registry.get("openai")            # the driver class; ProviderError (one sentence) for an unknown name
    registry.names()                  # every name, built-ins first
    @registry.register                # in a locustfile or a plugin: add a driver class
    class EchoDriver(WebSocketDriver): name = "echo"; api_version = 1; ...

The built-ins are :data:`BUILTINS`; an installed package adds a driver with an
entry point in the group ``bootbench.providers`` (name = the provider's
name, value = ``module:Class``). Both are loaded once, on the first question
asked of the table (importing this module loads nothing). A driver class
says which contract it was written for (``api_version``, declared by the
class itself or a base of its own: one inherited from bootbench's base
classes says nothing). One written for another version, with no version, a
name given by two sources, or a class that is not a
:class:`~bootbench.providers.base.Driver` is refused with one sentence naming
the sources.

A refusal is not raised where the class is registered (a locustfile's import,
where Locust would print a traceback): every later question asked of the
table raises it, the first being the run's pre-flight check, which prints it
as one sentence and exits with 2.
"""

from __future__ import annotations

import sys
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
BOOTBENCH_PACKAGE = "bootbench."


class ProviderError(UserError):
    """A provider that cannot be used: unknown, defined twice, or written for another driver contract."""


class Registry:
    """Every known driver class by provider name, with where it came from (for the sentences)."""

    def __init__(self) -> None:
        self._drivers: dict[str, type[Driver]] = {}
        self._sources: dict[str, str] = {}
        self._loaded = False
        self._refusal: ProviderError | None = None
        """The first class refused: every question asked of the table raises it."""

    def register(self, cls: type[Driver], source: str | None = None) -> type[Driver]:
        """Add ``cls`` under ``cls.name``; returns it, so it works as a class decorator.

        A class that cannot be added is kept as the table's refusal (raised by every question), not raised here.
        """
        self._load()
        try:
            self._add(cls, source or source_of(cls))
        except ProviderError as exc:
            self._refusal = self._refusal or exc
        return cls

    def get(self, name: str) -> type[Driver]:
        self._ready()
        try:
            return self._drivers[name]
        except KeyError:
            raise ProviderError(f"unknown provider {name!r}; choose one of {', '.join(self._drivers)} "
                                f"(or install the package that provides it: `bootbench providers` lists what "
                                f"this machine has)") from None

    def drivers(self) -> dict[str, type[Driver]]:
        self._ready()
        return dict(self._drivers)

    def source(self, name: str) -> str:
        """Where the provider ``name`` came from: bootbench, a package (and its entry point), or a module."""
        self.get(name)
        return self._sources[name]

    def _ready(self) -> None:
        self._load()
        if self._refusal is not None:
            raise self._refusal

    def _add(self, cls: object, source: str) -> type[Driver]:
        if not (isinstance(cls, type) and issubclass(cls, Driver)) or not getattr(cls, "name", ""):
            raise ProviderError(f"{source} is not a bootbench driver (a subclass of bootbench.providers.base.Driver "
                                f"with a name)")
        version = declared_version(cls)
        if version is None:
            raise ProviderError(f"the provider {cls.name!r} from {source} does not say which driver API version it "
                                f"was written for (declare api_version = {API_VERSION} on its class)")
        if version != API_VERSION:
            raise ProviderError(f"the provider {cls.name!r} from {source} was written for driver API version "
                                f"{version}; this bootbench has version {API_VERSION}")
        known = self._drivers.get(cls.name)
        if known is not None and known is not cls and self._sources[cls.name] != source:
            raise ProviderError(f"two sources define the provider {cls.name!r}: {self._sources[cls.name]} "
                                f"and {source}")
        # the same source again is the same module imported anew (a locustfile loaded twice): its class now
        self._drivers[cls.name] = cls
        self._sources[cls.name] = source
        return cls

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # first: a plugin module that calls register() while it is imported finds the table
        try:
            for target in BUILTINS.values():
                module, _, attribute = target.partition(":")
                self._add(getattr(import_module(module), attribute), f"bootbench ({target})")
            for point in entry_points(group=ENTRY_POINT_GROUP):
                self._add_entry_point(point)
        except ProviderError as exc:
            self._refusal = self._refusal or exc

    def _add_entry_point(self, point) -> None:
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


def declared_version(cls: type[Driver]) -> int | None:
    """The driver API version ``cls`` was written for; None when only bootbench's own base classes name one.

    A built-in driver is bootbench's, so the base's version is its own; a plugin's class (or a base class of
    the plugin's) must say it, or a plugin written for an older contract would pass as the current one.
    """
    for klass in cls.__mro__:
        if "api_version" in vars(klass):
            inherited = klass.__module__.startswith(BOOTBENCH_PACKAGE)
            if inherited and not cls.__module__.startswith(BOOTBENCH_PACKAGE):
                return None
            return vars(klass)["api_version"]
    return None


def source_of(cls: object) -> str:
    """Where a class registered with :func:`register` was defined: its name and file (a locustfile's path)."""
    module = getattr(cls, "__module__", "?")
    name = getattr(cls, "__qualname__", repr(cls))
    path = getattr(sys.modules.get(module), "__file__", None)
    return f"{name} in {path}" if path else f"{module}.{name}"


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
    """Where provider ``name`` came from, as the sentences name it."""
    return _REGISTRY.source(name)


def infer(host: str) -> str:
    """The provider whose public endpoint ``host`` names; :data:`DEFAULT` otherwise."""
    hostname = urlparse(host).hostname or ""
    for name, driver in drivers().items():
        if any(hostname.endswith(known) for known in driver.known_hosts):
            return name
    return DEFAULT
