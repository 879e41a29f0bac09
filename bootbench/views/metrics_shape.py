"""The types metrics.json's values must have for report and compare to read them, checked in one walk.

A metrics.json can be valid JSON and still not be what a run wrote (edited
by hand, cut by another tool): a phase's median that is a string, a summary
that is a list. :func:`shape_problem` walks the document against
:data:`SHAPE` and names the first key whose value has the wrong type, so the
reader can say so in one sentence instead of failing deep inside a view.

    problem = shape_problem(metrics)   # e.g. 'summary.phases.first_response_ms.median should be a number ...'

:data:`SHAPE` maps a key path to the kinds its value may have. A path
segment ``*`` is any key of an object, ``[]`` any entry of a list; where two
paths match, the one with more named segments wins. A kind ending in ``?``
may also be null or missing; any other path whose parent exists must be
there. Keys the views do not read are not checked.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from bootbench.samples import PHASES, TURN_PHASES

_STATS = ("mean", "median", "min", "max", "stdev", "p90", "p95", "p99")

SHAPE: Mapping[tuple[str, ...], str] = {
    ("run",): "object",
    ("run", "id"): "string?",
    ("run", "users"): "integer?",
    ("run", "turns"): "integer?",
    ("run", "aborted"): "string?",
    ("run", "interrupted"): "string?",
    ("run", "iterations"): "object?",
    **{("run", "iterations", key): "integer?" for key in ("planned", "started", "finished", "lost")},
    ("run", "clips"): "list?",
    ("run", "clips", "[]"): "object",
    ("run", "workers_lost"): "list?",
    ("run", "workers_lost", "[]"): "object",
    ("run", "workers_lost", "[]", "in_flight"): "list?",
    ("summary",): "object",
    ("summary", "iterations"): "integer",
    ("summary", "successes"): "integer",
    ("summary", "failures"): "integer",
    ("summary", "success_rate"): "number?",
    ("summary", "phases"): "object",
    ("summary", "phases", "*"): "object",
    ("summary", "phases", "*", "count"): "integer",
    **{("summary", "phases", "*", stat): "number?" for stat in _STATS},
    ("summary", "phases", "*", "ci95_median"): "list?",
    ("summary", "phases", "*", "ci95_median", "[]"): "number?",
    ("summary", "phases", "*", "ci95_mean"): "list?",
    ("summary", "phases", "*", "ci95_mean", "[]"): "number?",
    ("summary", "service_latency"): "object?",
    ("summary", "service_latency", "turns"): "integer",
    ("summary", "service_latency", "service"): "object",
    ("summary", "service_latency", "service", "*"): "number",
    ("summary", "service_latency", "measured"): "object",
    ("summary", "service_latency", "measured", "input_to_audio_ms"): "number?",
    ("errors",): "object",
    ("errors", "by_kind"): "object?",
    ("errors", "by_kind", "*"): "integer",
    ("errors", "first"): "list?",
    ("errors", "first", "[]"): "object",
    ("errors", "anomalies"): "object?",
    ("errors", "anomalies", "*"): "integer",
    ("samples",): "list",
    ("samples", "[]"): "object",
    ("samples", "[]", "ok"): "boolean?",
    **{("samples", "[]", phase): "number?" for phase in PHASES},
    ("samples", "[]", "turns"): "list?",
    ("samples", "[]", "turns", "[]"): "object",
    **{("samples", "[]", "turns", "[]", phase): "number?" for phase in (*PHASES, *TURN_PHASES)},
    ("levels",): "list?",
    ("levels", "[]"): "object",
    ("levels", "[]", "users"): "integer",
    ("levels", "[]", "iterations"): "integer",
    ("levels", "[]", "success_rate"): "number?",
    ("levels", "[]", "duration_s"): "number?",
    ("levels", "[]", "busiest_process_cores"): "number?",
    ("levels", "[]", "phases"): "object",
    ("levels", "[]", "phases", "*"): "object",
    **{("levels", "[]", "phases", "*", stat): "number?" for stat in _STATS},
    ("capacity",): "object?",
    ("capacity", "users"): "integer?",
    ("capacity", "phase"): "string?",
    ("capacity", "baseline_p95_ms"): "number?",
    ("checks",): "list?",
    ("checks", "[]"): "object",
    ("checks", "[]", "ok"): "boolean",
    ("checks", "[]", "value"): "number?",
    ("checks", "[]", "threshold"): "number",
}
"""Key path -> the kind of value report and compare can read there (see the module docstring)."""

_KIND_WORDS = {"object": "an object", "list": "a list", "string": "a string", "integer": "a whole number",
               "number": "a number", "boolean": "true or false"}


def shape_problem(metrics: Mapping[str, Any]) -> str | None:
    """The first key of ``metrics`` whose value report and compare cannot read, as a phrase; None if all fit."""
    for path, value in _walk(metrics, ()):
        kind = _kind_at(path)
        if kind is not None and not _fits(value, kind):
            allowed = _KIND_WORDS[kind.rstrip("?")] + (" or null" if kind.endswith("?") else "")
            return f"{_dotted(path)} should be {allowed}, not {_shown(value)}"
        if isinstance(value, dict):
            for required in _required_children(path):
                if required not in value:
                    return f"{_dotted((*path, required))} is missing"
    return None


def _walk(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every node with its path, parents first (the root's path is empty; list indices are ints)."""
    yield path, value
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _walk(child, (*path, str(key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk(child, (*path, index))


def _pattern(path: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple("[]" if isinstance(segment, int) else segment for segment in path)


def _kind_at(path: tuple[Any, ...]) -> str | None:
    """The kind :data:`SHAPE` asks for at ``path`` (the most specific match), or None when it asks nothing."""
    concrete = _pattern(path)
    best, best_named = None, -1
    for pattern, kind in SHAPE.items():
        if len(pattern) != len(concrete):
            continue
        if all(p == c or (p == "*" and c != "[]") for p, c in zip(pattern, concrete)):
            named = sum(p != "*" for p in pattern)
            if named > best_named:
                best, best_named = kind, named
    return best


def _required_children(path: tuple[Any, ...]) -> list[str]:
    """The named keys :data:`SHAPE` requires directly under the object at ``path``."""
    concrete = _pattern(path)
    return [pattern[-1] for pattern, kind in SHAPE.items()
            if len(pattern) == len(concrete) + 1 and not kind.endswith("?") and pattern[-1] not in ("*", "[]")
            and all(p == c or (p == "*" and c != "[]") for p, c in zip(pattern, concrete))]


def _fits(value: Any, kind: str) -> bool:
    if value is None:
        return kind.endswith("?")
    base = kind.rstrip("?")
    if base == "object":
        return isinstance(value, dict)
    if base == "list":
        return isinstance(value, list)
    if base == "string":
        return isinstance(value, str)
    if base == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return base == "number" or float(value).is_integer()


def _dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for segment in path:
        text += f"[{segment}]" if isinstance(segment, int) else (f".{segment}" if text else segment)
    return text


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "an object" if isinstance(value, dict) else "a list"
    text = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    if value is None:
        text = "null"
    return text if len(text) <= 40 else text[:37] + "..."
