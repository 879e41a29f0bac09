"""Providers from outside bootbench, for tests: a fresh provider table, installed distributions, locustfiles.

    table = isolated_registry(monkeypatch)          # the process's table replaced by an empty one for the test
    table.register(SomeDriver)
    install_distribution(tmp_path / "site", "plugged", {"bootbench.providers": {"plugged": "plugged:PluggedDriver"}},
                         {"plugged.py": PLUGGED_MODULE})   # a folder to put on sys.path or PYTHONPATH

An installed distribution is a ``NAME-VERSION.dist-info`` folder beside its
modules (what pip writes): ``importlib.metadata`` finds its entry points on
``sys.path``, so a folder on PYTHONPATH is a package installed for one
process and not another (a master that has a plugin, a worker that has not).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from bootbench.providers import registry

PLUGGED_MODULE = '''\
"""A plugin's driver: OpenAI Realtime's wire under another name (the reference server serves it at /v1/realtime)."""
import logging
{header}
from bootbench.providers import ProviderOption
from bootbench.providers.openai_realtime import OpenAIRealtimeDriver

log = logging.getLogger("plugged")


def _team(text):
    if not text.isalnum():
        raise ValueError("a team is letters and digits")
    return text


{decorator}class PluggedDriver(OpenAIRealtimeDriver):
    """A plugged-in driver that speaks OpenAI Realtime."""

    name = "{name}"
    api_version = 1
    known_hosts = ()
    key_variables = ("PLUGGED_API_KEY",)
    options = (
        ProviderOption("region", "Where the agent runs.", default="eu", choices=("eu", "us")),
        ProviderOption("team", "The team that owns the agent.", check=_team),
        ProviderOption("token", "A session token the service wants beside the key.", secret=True),
    )

    def headers(self):
        token = self.option("token")
        if token:
            log.info("%s: sending session token %s in the region %s", self.name, token, self.option("region"))
        return super().headers() + ([f"X-Session-Token: {{token}}"] if token else [])
'''
"""A plugin module whose driver ``{name}`` speaks OpenAI Realtime and declares three options (one secret); it logs
the secret one, so a test sees it masked."""
LOCUSTFILE_HEADER = '''
from bootbench import events  # noqa: F401  (bootbench's locustfile.py, plus a provider of its own)
from bootbench.providers import register
from bootbench.user import BootUser  # noqa: F401
'''


def plugged_module(name: str = "plugged") -> str:
    """The source of a plugin module with the driver ``name``."""
    return PLUGGED_MODULE.format(name=name, header="", decorator="")


def locustfile_with_provider(folder: Path, name: str = "plugged") -> Path:
    """A locustfile in ``folder`` that defines its own driver ``name`` and ``@register``-s it (Locust imports it on
    every process: the master and each worker)."""
    path = folder / "locustfile_with_provider.py"
    path.write_text(PLUGGED_MODULE.format(name=name, header=LOCUSTFILE_HEADER, decorator="@register\n"))
    return path


def install_distribution(site: Path, name: str, entry_points: dict[str, dict[str, str]],
                         modules: dict[str, str] | None = None, version: str = "0.1") -> Path:
    """Write an installed distribution ``name`` into the folder ``site`` (its modules and dist-info); ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sections = [f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items())
                for group, points in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(sections))
    for filename, source in (modules or {}).items():
        (site / filename).write_text(source)
    return site


def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> registry.Registry:
    """A fresh provider table (built-ins and installed plugins, loaded on first use) in place of the process's."""
    table = registry.Registry()
    monkeypatch.setattr(registry, "_REGISTRY", table)
    return table


def import_locustfile(path: Path, monkeypatch: pytest.MonkeyPatch):
    """Import a locustfile as Locust does (module named after the file, in ``sys.modules``, undone after the test)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, path.stem, module)
    spec.loader.exec_module(module)
    return module


def layered_venv(folder: Path) -> Path:
    """A fresh venv whose interpreter also sees this one's packages (bootbench, its dependencies, pip, pytest); its
    python. What is installed into it stays there: this venv, the test run's, never sees it.

    Offline: nothing is downloaded (a ``.pth`` file adds this venv's site-packages, its own ``.pth`` files included).
    """
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    site_packages = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    Path(site_packages, "_bootbench_test_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python
