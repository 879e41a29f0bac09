"""The "bootbench" tab of Locust's web UI: exact live numbers of the current (or last) run.

Locust's React UI renders extra tabs from ``web_ui.template_args``
(``extended_tabs``, ``extended_tables``, ``extended_csv_files``) and fills
them from an ``extended_stats`` entry in the JSON of ``/stats/requests``,
which it polls every 2 s while a run goes. :func:`install` adds:

- the tab: count, median, p95, p99, success rate and errors by kind, computed
  from the raw samples (not Locust's rounded buckets), and a histogram of the
  first response drawn with block characters;
- ``<web-base-path>/bootbench/metrics.json``: the metrics.json of the samples
  so far (the final one once the run has ended), linked from Locust's
  "Download Data" tab.

Locust's own tabs are untouched. Once a run has ended the tab keeps showing
its final numbers until the next run starts.

    webui.install(environment, lambda: state.office or state.last_office)
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from flask import Blueprint, Response, make_response, request

from bootbench.exporters import build_metrics, now_iso
from bootbench.views.formatting import format_count, format_ms, format_rate
from bootbench.views.live import Snapshot, histogram, snapshot
from bootbench.samples import SMALL_SAMPLE
from bootbench.secrets import redact

TAB_KEY = "bootbench"
BAR_WIDTH = 32
BLOCKS = " ▏▎▍▌▋▊▉█"

log = logging.getLogger("bootbench.webui")

CurrentRun = Callable[[], Any]
"""Returns the office (events.py's ``_Office``) of the running or last run, or None."""


def install(environment: Any, current_run: CurrentRun) -> bool:
    """Add the bootbench tab and routes to ``environment.web_ui``; False when there is no web UI."""
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return False
    base = (getattr(environment.parsed_options, "web_base_path", "") or "").rstrip("/")
    args = web_ui.template_args
    args.setdefault("extended_tabs", []).append({"title": "bootbench", "key": TAB_KEY})
    args.setdefault("extended_tables", []).append({"key": TAB_KEY, "structure": [
        {"key": "label", "title": "bootbench (exact, from raw samples)"},
        {"key": "value", "title": "Value"},
        {"key": "bar", "title": "Histogram"},
    ]})
    args.setdefault("extended_csv_files", []).append(
        {"href": "./bootbench/metrics.json", "title": "Download bootbench metrics.json (exact statistics and every sample)"})
    tab = _Tab(current_run)

    @web_ui.app.after_request
    def _add_extended_stats(response: Response) -> Response:
        if request.endpoint != "locust.request_stats" or response.status_code != 200:
            return response
        try:
            payload = json.loads(response.get_data(as_text=True))
            others = [e for e in payload.get("extended_stats") or [] if e.get("key") != TAB_KEY]
            payload["extended_stats"] = [*others, {"key": TAB_KEY, "data": tab.rows()}]
            response.set_data(json.dumps(payload))
        except Exception:
            log.exception("the bootbench tab could not be updated")
        return response

    blueprint = Blueprint("bootbench", __name__, url_prefix=f"{base}/bootbench")

    @blueprint.route("/metrics.json")
    @web_ui.auth_required_if_enabled
    def metrics_json() -> Response:
        office = current_run()
        if office is None:
            return make_response("No bootbench run has started yet.\n", 404, {"Content-Type": "text/plain"})
        metrics = live_metrics(office)
        response = make_response(redact(json.dumps(metrics, indent=2, allow_nan=False)) + "\n")
        response.headers["Content-Type"] = "application/json"
        response.headers["Content-Disposition"] = f'attachment; filename="{office.recorder.run_id}-metrics.json"'
        return response

    web_ui.app.register_blueprint(blueprint)
    return True


class _Tab:
    """The tab's rows, recomputed only when the run or its number of samples changed."""

    def __init__(self, current_run: CurrentRun) -> None:
        self.current_run = current_run
        self._key: tuple | None = None
        self._rows: list[dict[str, str]] = []

    def rows(self) -> list[dict[str, str]]:
        office = self.current_run()
        if office is None:
            return [{"label": "No bootbench run has started yet.", "value": "", "bar": ""}]
        key = (office.recorder.run_id, len(office.recorder.samples), office.metrics is None)
        if key != self._key:
            snap = snapshot(office.recorder.samples, office.tickets.planned)
            self._rows = tab_rows(snap, office.recorder.run_id, running=office.metrics is None)
            self._key = key
        return self._rows


def tab_rows(snap: Snapshot, run_id: str, *, running: bool) -> list[dict[str, str]]:
    """The rows of the bootbench tab: headline numbers, errors by kind, then the histogram."""
    def row(label: str, value: str = "", bar: str = "") -> dict[str, str]:
        return {"label": label, "value": value, "bar": bar}

    def ms(value: float | None) -> str:
        return f"{format_ms(value)} ms" if value is not None else format_ms(value)

    done = f"{snap.iterations} of {snap.planned}" if snap.planned else format_count(snap.iterations)
    p99_note = f" (= max, fewer than {SMALL_SAMPLE} samples)" if snap.p99_is_max and snap.p99 is not None else ""
    rows = [
        row("Run", f"{run_id} ({'running' if running else 'finished'})"),
        row("Iterations", done),
        row("Successful / failed", f"{snap.successes} / {snap.failures}"),
        row("Success rate", format_rate(snap.success_rate)),
        row("First response median", ms(snap.median)),
        row("First response p95", ms(snap.p95)),
        row("First response p99", ms(snap.p99) + p99_note),
        row("First response mean", ms(snap.mean)),
        row("Session start median", ms(snap.session_start_median)),
    ]
    if snap.errors_by_kind:
        rows += [row(f"Errors: {kind}", format_count(count)) for kind, count in snap.errors_by_kind.items()]
    else:
        rows.append(row("Errors", "none"))
    bins = histogram(snap.first_response_ms)
    most = max((count for _, _, count in bins), default=0)
    for low, high, count in bins:
        rows.append(row(f"First response {_edge(low)}–{_edge(high)} ms", format_count(count), text_bar(count, most)))
    return rows


def text_bar(count: int, most: int, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of block characters, ``width`` cells long for ``most``."""
    if most <= 0 or count <= 0:
        return ""
    eighths = max(1, round(count / most * width * 8))
    return BLOCKS[-1] * (eighths // 8) + (BLOCKS[eighths % 8] if eighths % 8 else "")


def _edge(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:g}"


def live_metrics(office: Any) -> dict[str, Any]:
    """metrics.json of the office's run: the final document once it ended, else one built from the samples so far."""
    if office.metrics is not None:
        return office.metrics
    run = {
        "id": office.recorder.run_id,
        "started_at": office.recorder.started.isoformat(timespec="milliseconds"),
        "snapshot_at": now_iso(),
        "in_progress": True,
        **office.describe(),
    }
    return build_metrics(run, list(office.recorder.samples))
