"""Reading a result folder back: its metrics.json, checked, and upgraded from older schema versions.

Report and compare read runs through :func:`load_metrics`, so a folder
written by an older bootbench reads with today's keys (v1 ``run.delay_ms``
becomes ``run.wait_ms``). Anything that is not a readable bootbench result
folder (a value of the wrong type included: :mod:`bootbench.views.metrics_shape`) raises :class:`ResultFolderError` with one sentence for the user.
A folder whose process was killed before it wrote metrics.json reads too:
its metrics are rebuilt from run.json and samples.jsonl, marked
``run.rebuilt_from_samples`` and incomplete
(:func:`bootbench.exporters.rebuild_metrics`).

    metrics = load_metrics("results/20250101-120000-aivoco")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bootbench.errors import UserError
from bootbench.views.metrics_shape import shape_problem

METRICS_FILE = "metrics.json"
RUN_FILE = "run.json"
SAMPLES_FILE = "samples.jsonl"
SCHEMA_PREFIX = "bootbench/metrics/"
RENAMED_RUN_KEYS = {"bootbench/metrics/v1": {"delay_ms": "wait_ms"}}
"""Per older schema: ``run`` keys that have a new name since."""


class ResultFolderError(UserError, ValueError):
    """A path that is not a readable bootbench result folder; ``str()`` is the one sentence to show."""


def load_metrics(folder: str | Path) -> dict[str, Any]:
    """The metrics.json of a result folder with current keys; raises :class:`ResultFolderError` for anything else."""
    folder = Path(folder)
    if not folder.exists():
        raise ResultFolderError(f"{folder} does not exist")
    if not folder.is_dir():
        raise ResultFolderError(f"{folder} is not a folder (expected a bootbench result folder)")
    path = folder / METRICS_FILE
    if not path.is_file():
        return rebuilt_metrics(folder)
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultFolderError(f"{path} cannot be read as JSON ({exc})") from None
    if not isinstance(metrics, dict) or not str(metrics.get("schema", "")).startswith(SCHEMA_PREFIX):
        raise ResultFolderError(f"{path} is not a bootbench metrics file (no {SCHEMA_PREFIX}* schema)")
    for key in ("run", "summary", "errors", "samples"):
        if key not in metrics:
            raise ResultFolderError(f"{path} is incomplete (it has no {key!r} section)")
    problem = shape_problem(metrics)
    if problem:
        raise ResultFolderError(f"{path} cannot be read: {problem}")
    return upgrade(metrics)


def rebuilt_metrics(folder: Path) -> dict[str, Any]:
    """The metrics of a run killed before it wrote metrics.json, rebuilt from its run.json and samples.jsonl."""
    if not (folder / SAMPLES_FILE).is_file():
        raise ResultFolderError(f"{folder} is not a bootbench result folder (it has no {METRICS_FILE})")
    if not (folder / RUN_FILE).is_file():
        raise ResultFolderError(f"{folder} has no {METRICS_FILE}, and no {RUN_FILE} to rebuild it from "
                                f"{SAMPLES_FILE} (it was written by an older bootbench)")
    from bootbench.exporters import rebuild_metrics  # exporters imports the views: import at use

    try:
        metrics, _samples = rebuild_metrics(folder)
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise ResultFolderError(f"{folder} has no {METRICS_FILE}, and its {RUN_FILE} and {SAMPLES_FILE} "
                                f"cannot be read ({exc})") from None
    problem = shape_problem(metrics)
    if problem:
        raise ResultFolderError(f"{folder}'s {SAMPLES_FILE} cannot be read: {problem}")
    return metrics


def upgrade(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with the ``run`` keys of older schema versions renamed to today's (in place, keeping order)."""
    renamed = RENAMED_RUN_KEYS.get(metrics.get("schema", ""))
    if renamed and isinstance(metrics["run"], dict):
        metrics["run"] = {renamed.get(key, key): value for key, value in metrics["run"].items()}
    return metrics
