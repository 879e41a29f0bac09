"""The "bootbench" tab of Locust's web UI: exact live numbers of the current (or last) run.

Locust's React UI renders extra tabs from ``web_ui.template_args``
(``extended_tabs``, ``extended_tables``, ``extended_csv_files``) and fills
them from an ``extended_stats`` entry in the JSON of ``/stats/requests``,
which it polls every 2 s while a run goes. :func:`install` adds the tab
(headline numbers, the cold penalty of a run with ``--turns`` > 1,
errors by kind and a text histogram of the first response, from :func:`bootbench.stats.snapshot`) and
``<web-base-path>/bootbench/metrics.json`` (the run's metrics.json so far,
linked from Locust's "Download Data" tab); Locust's own tabs are untouched,
and a finished run's numbers stay until the next run starts. An empty host
is bootbench's documented way to benchmark the embedded reference server, so
the start form's "no host attribute set. Please provide one" note (text in
Locust's script bundle, shown while the host field is empty) is replaced by
:data:`EMPTY_HOST_NOTE`.

    webui.install(environment, lambda: current or last run)
    webui.check_swarm(environment, check)   # a run the form asks for is checked before it starts

:func:`check_swarm` answers a start with bad input (a host that is not a
URL, an option out of range) the way Locust answers a bad user count: the
JSON ``{"success": false, "message": ...}`` the UI shows, and nothing starts.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Mapping, Protocol, Sequence

from flask import Blueprint, Response, jsonify, make_response, request

from bootbench.exporters import build_metrics
from bootbench.samples import HEADLINE, PHASE_BY_NAME, Sample
from bootbench.secrets import redact
from bootbench.stats import Snapshot, p99_note, round_bins, snapshot
from bootbench.views.text import format_count, format_ms, format_rate

TAB_KEY = "bootbench"
STATS_PATH = "/stats/requests"
"""The route of Locust's web UI whose JSON carries the extended tabs' data (under --web-base-path)."""
SWARM_PATH = "/swarm"
"""The route of Locust's web UI that starts a run (POST, the start form's fields)."""
BAR_WIDTH = 32
BLOCKS = " ▏▎▍▌▋▊▉█"

LOCUST_MISSING_HOST_NOTE = ("One or more User class in your locustfile has no host attribute set. "
                            "Please provide one in the field above.")
"""The start form's note while the host field is empty, as Locust 2.x's web UI bundle spells it."""
EMPTY_HOST_NOTE = ("No host: bootbench benchmarks its embedded reference server (no API key needed). "
                   "Enter a service's URL above to benchmark that service instead.")

log = logging.getLogger("bootbench.webui")


class LiveRun(Protocol):
    """What the tab reads of a run (the master's, or the single local process's)."""

    samples: Sequence[Sample]
    planned: int
    """Planned iterations; 0 means no limit."""
    run_id: str
    started_at: str
    metrics: dict[str, Any] | None
    """The final metrics.json document; None while the run goes."""

    def run_block(self) -> dict[str, Any]:
        """metrics.json's ``run`` block so far, without id, times and versions."""
        ...


CurrentRun = Callable[[], LiveRun | None]
"""Returns the running or last run, or None before the first run."""


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
    stats_path = base + STATS_PATH

    @web_ui.app.after_request
    def _add_extended_stats(response: Response) -> Response:
        if request.path != stats_path or response.status_code != 200:
            return response
        try:
            payload = json.loads(response.get_data(as_text=True))
            others = [e for e in payload.get("extended_stats") or [] if e.get("key") != TAB_KEY]
            payload["extended_stats"] = [*others, {"key": TAB_KEY, "data": tab.rows()}]
            response.set_data(json.dumps(payload))
        except Exception:
            log.exception("the bootbench tab could not be updated")
        return response

    assets_path = base + "/assets/"

    @web_ui.app.after_request
    def _explain_empty_host(response: Response) -> Response:
        if not (request.path.startswith(assets_path) and request.path.endswith(".js")) or response.status_code != 200:
            return response
        response.direct_passthrough = False  # a file response: read it to rewrite it
        script = response.get_data(as_text=True)
        if LOCUST_MISSING_HOST_NOTE in script:
            response.set_data(script.replace(LOCUST_MISSING_HOST_NOTE, EMPTY_HOST_NOTE))
        return response

    blueprint = Blueprint("bootbench", __name__, url_prefix=f"{base}/bootbench")

    @blueprint.route("/metrics.json")
    @web_ui.auth_required_if_enabled
    def metrics_json() -> Response:
        run = current_run()
        if run is None:
            return make_response("No bootbench run has started yet.\n", 404, {"Content-Type": "text/plain"})
        response = make_response(redact(json.dumps(live_metrics(run), indent=2, allow_nan=False)) + "\n")
        response.headers["Content-Type"] = "application/json"
        response.headers["Content-Disposition"] = f'attachment; filename="{run.run_id}-metrics.json"'
        return response

    web_ui.app.register_blueprint(blueprint)
    return True


def check_swarm(environment: Any, check: Callable[[Mapping[str, str]], str | None]) -> bool:
    """Refuse a start from the web UI whose form ``check`` finds a problem with; False when there is no web UI.

    ``check`` gets the form's fields and returns the sentence to show, or
    None to let Locust start the run. Matched by path (under
    --web-base-path), before Locust's own handler runs.
    """
    web_ui = getattr(environment, "web_ui", None)
    if web_ui is None:
        return False
    swarm_path = (getattr(environment.parsed_options, "web_base_path", "") or "").rstrip("/") + SWARM_PATH

    @web_ui.app.before_request
    def _check_swarm() -> Response | None:
        if request.path != swarm_path or request.method != "POST":
            return None
        problem = check(request.form)
        if problem is None:
            return None
        log.error("run not started: %s", problem)
        return jsonify({"success": False, "message": problem, "host": environment.host})

    return True


class _Tab:
    """The tab's rows, recomputed only when the run or its number of samples changed."""

    def __init__(self, current_run: CurrentRun) -> None:
        self.current_run = current_run
        self._key: tuple | None = None
        self._rows: list[dict[str, str]] = []

    def rows(self) -> list[dict[str, str]]:
        run = self.current_run()
        if run is None:
            return [{"label": "No bootbench run has started yet.", "value": "", "bar": ""}]
        level = run.level_label() if hasattr(run, "level_label") else ""
        key = (run.run_id, len(run.samples), run.metrics is None, level)
        if key != self._key:
            headline = getattr(getattr(run, "settings", None), "headline", HEADLINE)
            self._rows = tab_rows(snapshot(run.samples, run.planned, headline), run.run_id,
                                  running=run.metrics is None, level=level)
            self._key = key
        return self._rows


def tab_rows(snap: Snapshot, run_id: str, *, running: bool, level: str = "") -> list[dict[str, str]]:
    """The rows of the bootbench tab: headline numbers, errors by kind, then the histogram.

    ``level`` names a sweep's current level (a "Sweep level" row after the run's).
    """
    def row(label: str, value: str = "", bar: str = "") -> dict[str, str]:
        return {"label": label, "value": value, "bar": bar}

    def ms(value: float | None) -> str:
        return f"{format_ms(value)} ms" if value is not None else format_ms(value)

    done = f"{snap.iterations} of {snap.planned}" if snap.planned else format_count(snap.iterations)
    note = p99_note(len(snap.first_response_ms))
    head = PHASE_BY_NAME[snap.headline].label.capitalize()
    rows = [
        row("Run", f"{run_id} ({'running' if running else 'finished'})"),
        *([row("Sweep level", level)] if level else []),
        row("Iterations", done),
        row("Successful / failed", f"{snap.successes} / {snap.failures}"),
        row("Success rate", format_rate(snap.success_rate)),
        row(f"{head} median", ms(snap.median)),
        row(f"{head} p95", ms(snap.p95)),
        row(f"{head} p99", ms(snap.p99) + (f" ({note})" if note else "")),
        row(f"{head} mean", ms(snap.mean)),
        row("Session start median", ms(snap.session_start_median)),
    ]
    if snap.headline != "first_audible_ms":
        rows.append(row("First audible median", ms(snap.first_audible_median)))
    rows.append(row("Inaudible replies", format_count(snap.inaudible_replies)))
    if snap.late_stamp_reads is not None:   # the kernel clock
        rows.append(row("Late kernel-stamp reads", format_count(snap.late_stamp_reads)))
    if snap.cold_penalty_median is not None or snap.warm_input_to_audio_median is not None:  # --turns > 1
        rows += [
            row("Cold penalty median", ms(snap.cold_penalty_median)),
            row("Input to audio median, cold (turn 1)", ms(snap.cold_input_to_audio_median)),
            row("Input to audio median, warm (turns 2..N)", ms(snap.warm_input_to_audio_median)),
            row("Input to audible median, warm (turns 2..N)",
                ms((snap.phases.get("warm_input_to_audible_ms") or {}).get("median"))),
        ]
    if snap.errors_by_kind:
        rows += [row(f"Errors: {kind}", format_count(count)) for kind, count in snap.errors_by_kind.items()]
    else:
        rows.append(row("Errors", "none"))
    bins = round_bins(snap.first_response_ms)
    most = max((count for _, _, count in bins), default=0)
    for low, high, count in bins:
        rows.append(row(f"{head} {_edge(low)}–{_edge(high)} ms", format_count(count), text_bar(count, most)))
    return rows


def text_bar(count: int, most: int, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of block characters, ``width`` cells long for ``most``."""
    if most <= 0 or count <= 0:
        return ""
    eighths = max(1, round(count / most * width * 8))
    return BLOCKS[-1] * (eighths // 8) + (BLOCKS[eighths % 8] if eighths % 8 else "")


def _edge(value: float) -> str:
    return f"{value:.0f}" if abs(value - round(value)) < 1e-9 else f"{value:g}"


def live_metrics(run: LiveRun) -> dict[str, Any]:
    """metrics.json of ``run``: the final document once it ended, else one built from the samples so far."""
    if run.metrics is not None:
        return run.metrics
    levels = run.sweep_levels() if hasattr(run, "sweep_levels") else None
    return build_metrics(run.run_id, run.started_at, run.run_block(), list(run.samples), levels=levels)
