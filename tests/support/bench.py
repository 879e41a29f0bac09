"""bench/ scripts loaded as modules in the tests (bench/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys

from support.processes import ROOT


def bench_module(name: str):
    """A bench/ script module loaded from its file; its own imports of its siblings resolve while it loads.

    It is registered in ``sys.modules`` as ``bench_<name>`` (dataclasses look their module up there).
    """
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "bench"))
