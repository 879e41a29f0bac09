"""No run state in module globals: a run's state hangs off its Locust environment (bootbench.run.harness).

A static scan of every module of bootbench/ for the shapes module-level
state takes: a ``global`` statement, a module-level variable that starts
empty (``None``, ``[]``, ``{}``, ``set()``) to be filled later, a counter,
an event or result a greenlet waits on, or an instance of a stateful class.
Constant tables (a non-empty literal mapping of names to values, never
assigned again) are allowed. Two runs in one process prove the rest
(tests/test_run_inprocess.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "bootbench"

ALLOWED = {
    ("secrets.py", "_known"):
        "the redaction registry is the process's on purpose: a key read by any run must be masked in every "
        "log line and file the process writes, whichever run writes it",
    ("providers/registry.py", "_REGISTRY"):
        "the provider table is the process's, like the entry points it is loaded from: a locustfile's "
        "@providers.register runs at import, before any Locust environment exists, and every run of the "
        "process may use the driver it added",
}
"""Module-level state kept on purpose, with the reason."""

STATEFUL_CALLS = frozenset({"dict", "list", "set", "defaultdict", "deque", "OrderedDict", "Counter", "bytearray",
                            "count", "AsyncResult", "Event", "Queue", "Lock", "RLock", "Semaphore"})
IMMUTABLE_CALLS = frozenset({"frozenset", "tuple", "MappingProxyType", "TypeVar", "getLogger", "compile", "Path",
                             "namedtuple", "NewType", "cast"})


def module_state(path: Path) -> list[str]:
    """Module-level state of one module: ``'name (line N): why'`` per finding."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            found.append(f"global {', '.join(node.names)} (line {node.lineno})")
    for node in tree.body:
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        name = ast.unparse(targets[0])
        if name == "__all__":
            continue
        why = _why_state(value)
        if why:
            found.append(f"{name} (line {node.lineno}): {why}")
    return found


def _why_state(value: ast.expr) -> str | None:
    if isinstance(value, ast.Constant) and value.value is None:
        return "starts as None, to be set later"
    if isinstance(value, (ast.List, ast.Dict, ast.Set)) and not (value.elts if not isinstance(value, ast.Dict)
                                                                  else value.keys):
        return "an empty container, to be filled later"
    if isinstance(value, ast.Call):
        func = value.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called in STATEFUL_CALLS:
            return f"{called}() holds state"
        if called.lstrip("_")[:1].isupper() and called not in IMMUTABLE_CALLS:
            return f"an instance of {called}"
    return None


def test_no_module_of_bootbench_keeps_run_state_in_globals():
    findings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for finding in module_state(path):
            name = finding.split(" ", 1)[0]
            if (relative, name) not in ALLOWED:
                findings.append(f"bootbench/{relative}: {finding}")
    assert not findings, "module-level state (put it on the run's Harness):\n" + "\n".join(findings)


@pytest.mark.parametrize("source, expected", [
    ("_current = None", "starts as None"),
    ("_pending: dict[int, int] = {}", "an empty container"),
    ("_ids = itertools.count(1)", "count() holds state"),
    ("_watch = _Watch()", "an instance of _Watch"),
    ("def f():\n    global x\n", "global x"),
])
def test_the_scan_finds_each_shape_of_module_state(tmp_path, source, expected):
    module = tmp_path / "m.py"
    module.write_text(source + "\n")
    (finding,) = module_state(module)
    assert expected in finding


@pytest.mark.parametrize("source", [
    "LIMIT = 3", "TABLE = {'a': 1}", "NAMES = ('a', 'b')", "log = logging.getLogger('x')",
    "PATTERN = re.compile('x')", "KINDS = frozenset({'a'})",
])
def test_the_scan_leaves_constants_alone(tmp_path, source):
    module = tmp_path / "m.py"
    module.write_text(source + "\n")
    assert module_state(module) == []
