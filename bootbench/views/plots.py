"""The figures of bootbench's HTML pages, drawn with matplotlib and returned as inline SVG.

Each function takes plain numbers (or sample dicts from metrics.json) and
returns one ``<svg>`` element ready to paste into an HTML page: no XML
prologue, no metadata, no namespace URLs, no fonts or network needed. Figures
are :class:`matplotlib.figure.Figure` objects rendered straight to SVG, never
through pyplot, so no GUI backend or global figure state is involved.

Drawing is the slow part of a report (every run writes one), so two choices
are about speed, measured on a 2-core machine for the five figures of a run
(1.09 s of CPU before, 0.43 s after):

- Text stays text (``svg.fonttype: none``): the browser draws it with the
  page's sans-serif font instead of matplotlib writing every glyph as a path
  (a third of the drawing time, and half the page's size).
- Margins are fixed in inches per figure (:class:`Margins`) instead of
  matplotlib's constrained layout, which draws each figure twice to measure
  it. They leave room for five-digit tick labels, the axis labels and the
  legends that sit outside the axes.

    svg = histogram_svg([151.2, 148.9, 160.3], median=151.2, p95=159.4, p99=160.1)
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from bootbench.samples import PHASE_BY_NAME
from bootbench.stats import block_means, percentiles, plot_bin_edges, rolling_median
from bootbench.views.text import users_text

PHASE_COLORS = {
    "connect_ms": "#8172b3",
    "session_start_ms": "#4c72b0",
    "first_response_ms": "#dd8452",
    "stop_ms": "#55a868",
}
STACKED_PHASES = ("connect_ms", "session_start_ms", "first_response_ms", "stop_ms")
SERIES_COLORS = ("#dd8452", "#4c72b0", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
                 "#ccb974", "#64b5cd")
HEADLINE_COLOR = PHASE_COLORS["first_response_ms"]
FAILED_COLOR = "#c44e52"
INK = "#333333"
BAR_LIMIT = 200
"""Above this many iterations the phase plot shows one bar per block of consecutive iterations."""
RASTER_LIMIT = 5000
"""Above this many points, point clouds are embedded as an image inside the SVG to keep the page small."""

RC = {
    "svg.fonttype": "none",
    "font.size": 9.5,
    "axes.titlesize": 10,
    "axes.labelsize": 9.5,
    "axes.edgecolor": "#888888",
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e4e4e4",
    "grid.linewidth": 0.8,
    "xtick.color": "#555555",
    "ytick.color": "#555555",
    "legend.frameon": False,
    "legend.fontsize": 8.5,
}


@dataclass(frozen=True)
class Margins:
    """Room around the axes, in inches: tick labels of up to five digits and a sign, and an axis label on the left and at
    the bottom; ``top`` grows for a legend placed above the axes, ``right`` for a second y axis."""

    left: float = 0.85
    right: float = 0.25
    bottom: float = 0.55
    top: float = 0.2

    def apply(self, fig: Any, **spacing: float) -> None:
        width, height = fig.get_size_inches()
        fig.subplots_adjust(left=self.left / width, right=1 - self.right / width, bottom=self.bottom / height,
                            top=1 - self.top / height, **spacing)


LEGEND_ABOVE_IN = 0.45
"""The top margin for a one-row legend above the axes (histogram, phases), in inches."""


def _figure(width: float = 5.6, height: float = 3.3, margins: Margins = Margins()):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    margins.apply(fig)
    ax = fig.add_subplot()
    ax.set_axisbelow(True)
    return fig, ax


def to_svg(fig: Any, name: str, label: str) -> str:
    """Render ``fig`` as an inline ``<svg>`` element; ``name`` keeps its ids unique in a page."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"bootbench-{name}"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    end = text.index(">")
    root = re.sub(r'\s(?:xmlns(?::\w+)?|version|width|height)="[^"]*"', "", text[:end])
    root += f' role="img" aria-label="{_attr(label)}" data-plot="{_attr(name)}"'
    return root + text[end:]


def _attr(text: str) -> str:
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")


def mpl_text(text: str) -> str:
    """``text`` safe for a matplotlib label (a ``$`` would start math mode)."""
    return text.replace("$", r"\$")


def _style():
    import matplotlib

    return matplotlib.rc_context(RC)


def histogram_svg(values: Sequence[float], *, median: float, p95: float, p99: float) -> str:
    """Histogram of first-response times with the median, p95 and p99 marked."""
    data = np.asarray(values, dtype=float)
    with _style():
        fig, ax = _figure(margins=Margins(top=LEGEND_ABOVE_IN))
        ax.hist(data, bins=plot_bin_edges(data), color=HEADLINE_COLOR, alpha=0.85, edgecolor="white", linewidth=0.6)
        for value, name, style in ((median, "median", "-"), (p95, "p95", "--"), (p99, "p99", ":")):
            ax.axvline(value, color=INK, linestyle=style, linewidth=1.2, label=f"{name} {value:.1f} ms")
        ax.set_xlabel("first response (ms)")
        ax.set_ylabel("iterations")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3)
        return to_svg(fig, "histogram", "Histogram of first response times in milliseconds")


def cdf_svg(series: Sequence[tuple[str, Sequence[float]]], *, name: str = "cdf", mark_percentiles: bool = True,
            size: tuple[float, float] = (5.6, 3.3)) -> str:
    """Empirical CDF of first-response times, one step line per ``(label, values)`` series."""
    with _style():
        fig, ax = _figure(*size)
        for index, (label, values) in enumerate(series):
            data = np.sort(np.asarray(values, dtype=float))
            if data.size == 0:
                continue
            color = SERIES_COLORS[index % len(SERIES_COLORS)] if len(series) > 1 else HEADLINE_COLOR
            share = np.arange(1, data.size + 1) / data.size * 100
            ax.step(np.concatenate([[data[0]], data]), np.concatenate([[0], share]), where="post",
                    color=color, linewidth=1.6, label=mpl_text(f"{label} (n={data.size})"))
            if mark_percentiles:
                lines = []
                for q, x in zip((50, 95, 99), percentiles(data, (50, 95, 99))):
                    ax.plot([x], [q], marker="o", markersize=4.5, color=INK, zorder=3)
                    ax.plot([x, x], [0, q], color=INK, linestyle=":", linewidth=0.9)
                    lines.append(f"p{q}  {x:.1f} ms")
                ax.text(0.98, 0.04, "\n".join(lines), transform=ax.transAxes, ha="right", va="bottom",
                        fontsize=9, color=INK, family="monospace",
                        bbox=dict(boxstyle="round,pad=0.4", facecolor="white", edgecolor="#dddddd"))
        ax.set_ylim(0, 102)
        ax.set_yticks([0, 25, 50, 75, 90, 95, 100] if mark_percentiles else [0, 25, 50, 75, 100])
        ax.set_xlabel("first response (ms)")
        ax.set_ylabel("iterations at or below (%)")
        if len(series) > 1:
            ax.legend(loc="lower right")
        return to_svg(fig, name, "Cumulative distribution of first response times in milliseconds")


def audible_svg(samples: Sequence[dict[str, Any]]) -> str:
    """First response (x) against first audible (y) per successful iteration; the diagonal is no leading silence.

    An iteration whose answer never became audible is marked on the x axis.
    """
    ok = [s for s in samples if s.get("ok") and s.get("first_response_ms") is not None]
    heard = [(s["first_response_ms"], s["first_audible_ms"]) for s in ok if s.get("first_audible_ms") is not None]
    silent = [s["first_response_ms"] for s in ok if s.get("first_audible_ms") is None]
    with _style():
        fig, ax = _figure()
        if heard:
            x, y = np.asarray(heard, dtype=float).T
            ax.scatter(x, y, s=12, color=HEADLINE_COLOR, alpha=0.7, linewidths=0, label=f"heard (n={len(heard)})")
        if silent:
            ax.scatter(silent, np.zeros(len(silent)), marker="x", s=18, color=FAILED_COLOR,
                       label=f"never audible (n={len(silent)})")
        values = [v for pair in heard for v in pair] + silent
        if values:
            low, high = min(values), max(values)
            ax.plot([low, high], [low, high], color=INK, linestyle=":", linewidth=0.9, label="no leading silence")
        ax.set_xlabel("first response (ms)")
        ax.set_ylabel("first audible (ms)")
        ax.legend(loc="upper left")
        return to_svg(fig, "audible", "First audible against first response time per iteration, in milliseconds")


def trend_svg(samples: Sequence[dict[str, Any]]) -> str:
    """First response of every iteration in order, with a rolling median and failed iterations marked."""
    ok = [(s["iteration"], s["first_response_ms"]) for s in samples
          if s.get("ok") and s.get("first_response_ms") is not None]
    failed = [s["iteration"] for s in samples if not s.get("ok")]
    with _style():
        fig, ax = _figure(width=10.0, height=3.3)
        if ok:
            x = np.array([i for i, _ in ok], dtype=float)
            y = np.array([v for _, v in ok], dtype=float)
            many = len(ok) > RASTER_LIMIT
            ax.plot(x, y, color=HEADLINE_COLOR, linewidth=0.8 if len(ok) < 300 else 0.5, alpha=0.55,
                    marker="o" if len(ok) <= 300 else None, markersize=3, rasterized=many,
                    label="first response")
            window = max(3, min(25, len(ok) // 10))
            ax.plot(x, rolling_median(y, window), color=INK, linewidth=1.5,
                    label=f"rolling median ({window} iterations)")
            [median] = percentiles(y, [50])
            ax.axhline(median, color="#777777", linestyle=":", linewidth=1, label=f"overall median {median:.1f} ms")
            ax.set_ylim(bottom=0)
        _mark_failed(ax, failed)
        ax.set_xlabel("iteration (in the order started)")
        ax.set_ylabel("first response (ms)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="lower right", ncols=4)
        return to_svg(fig, "trend", "First response time of each iteration, in order, in milliseconds")


def phases_svg(samples: Sequence[dict[str, Any]]) -> str:
    """Stacked phase durations (connect, session start, first response, stop) of every iteration.

    Above :data:`BAR_LIMIT` iterations, consecutive iterations are grouped into
    equal blocks and each bar shows, per phase, the mean over the block's
    iterations that reached that phase, so the figure stays readable and quick
    to draw for any run length.
    """
    iterations = np.array([s["iteration"] for s in samples], dtype=float)
    block = max(1, math.ceil(len(samples) / BAR_LIMIT))
    with _style():
        fig, ax = _figure(width=10.0, height=3.5, margins=Margins(top=LEGEND_ABOVE_IN))
        x = block_means(iterations, block)
        bottom = np.zeros(len(x))
        for phase in STACKED_PHASES:
            # a connection opened ahead (outside any cycle) is on record with the first cycle that used it, but
            # that cycle did not open it: its connect time is not drawn as part of that iteration
            values = np.array([np.nan if s.get(phase) is None or (phase == "connect_ms" and not s.get(
                "connected_this_cycle", True)) else s[phase] for s in samples], dtype=float)
            if np.isnan(values).all():
                continue
            heights = block_means(values, block)
            _bars(ax, x, heights, bottom, 0.8 * block, color=PHASE_COLORS[phase], label=PHASE_BY_NAME[phase].label)
            bottom = bottom + heights
        failed = [s["iteration"] for s in samples if not s.get("ok")]
        _mark_failed(ax, failed)
        ax.set_xlabel("iteration (in the order started)" if block == 1
                      else f"iteration (in the order started; each bar: mean per phase over {block} iterations)")
        ax.set_ylabel("time (ms)")
        ax.autoscale_view()
        ax.set_ylim(bottom=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 1.12), ncols=5)
        return to_svg(fig, "phases", "Phase durations of each iteration in milliseconds, stacked")


def _mark_failed(ax: Any, iterations: Sequence[int]) -> None:
    """Mark failed iterations with an x on the top edge of a per-iteration plot."""
    if iterations:
        ax.plot(iterations, [1.0] * len(iterations), linestyle="none", marker="x", color=FAILED_COLOR, markersize=6,
                transform=ax.get_xaxis_transform(), clip_on=False, label=f"failed ({len(iterations)})")


def _bars(ax: Any, x: np.ndarray, heights: np.ndarray, bottom: np.ndarray, width: float, **style: Any) -> None:
    """Vertical bars as one collection: the same picture as ``ax.bar`` at a fraction of the drawing time."""
    from matplotlib.collections import PolyCollection

    left, right, top = x - width / 2, x + width / 2, bottom + heights
    verts = np.stack([np.column_stack([left, bottom]), np.column_stack([left, top]),
                      np.column_stack([right, top]), np.column_stack([right, bottom])], axis=1)
    ax.add_collection(PolyCollection(verts, linewidths=0, facecolors=style["color"], label=style["label"]),
                      autolim=True)


COLD_COLOR, WARM_COLOR = "#4c72b0", "#55a868"


def cold_warm_svg(cold: Sequence[float], warm: Sequence[float]) -> str:
    """``--turns`` > 1: histograms of turn 1's and the warm turns' input to audio, side by side on one time axis."""
    data = [np.asarray(cold, dtype=float), np.asarray(warm, dtype=float)]
    edges = plot_bin_edges(np.concatenate(data))
    with _style():
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10.0, 3.3))
        Margins(top=0.35).apply(fig, wspace=0.12)  # room for the titles
        axes = fig.subplots(1, 2, sharex=True, sharey=True)
        for ax, values, label, color in zip(axes, data, ("cold: turn 1", "warm: turns 2..N"), (COLD_COLOR, WARM_COLOR)):
            ax.set_axisbelow(True)
            ax.hist(values, bins=edges, color=color, alpha=0.85, edgecolor="white", linewidth=0.6)
            if values.size:
                [median] = percentiles(values, [50])
                ax.axvline(median, color=INK, linewidth=1.2, label=f"median {median:.1f} ms")
                ax.legend(loc="upper right")
            ax.set_title(mpl_text(f"{label} (n={values.size})"))
            ax.set_xlabel("input to audio (ms)")
            ax.yaxis.get_major_locator().set_params(integer=True)
        axes[0].set_ylabel("turns")
        return to_svg(fig, "cold-warm", "Histograms of input to audio times of cold and warm turns, in milliseconds")


def penalty_svg(samples: Sequence[dict[str, Any]]) -> str:
    """``--turns`` > 1: the cold penalty of every iteration in order, with its median and the zero line."""
    points = [(s["iteration"], s["cold_penalty_ms"]) for s in samples
              if s.get("ok") and s.get("cold_penalty_ms") is not None]
    with _style():
        fig, ax = _figure(width=10.0, height=3.3)
        ax.axhline(0, color="#999999", linewidth=0.9)
        if points:
            x = np.array([i for i, _ in points], dtype=float)
            y = np.array([v for _, v in points], dtype=float)
            ax.plot(x, y, linestyle="none", marker="o", markersize=3.5 if len(points) <= 300 else 1.5,
                    color=COLD_COLOR, alpha=0.8, rasterized=len(points) > RASTER_LIMIT, label="cold penalty")
            [median] = percentiles(y, [50])
            ax.axhline(median, color=INK, linestyle="--", linewidth=1.2, label=f"median {median:.1f} ms")
        failed = [s["iteration"] for s in samples if not s.get("ok")]
        _mark_failed(ax, failed)
        ax.set_xlabel("iteration (in the order started)")
        ax.set_ylabel("cold penalty (ms)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(loc="lower right", ncols=3)
        return to_svg(fig, "cold-penalty", "Cold penalty of each iteration, in order, in milliseconds")


def sweep_svg(levels: Sequence[dict[str, Any]], capacity: dict[str, Any] | None) -> str:
    """A sweep's curve: median and p95 of the cold start and of the headline, and the success rate, against users.

    The x axis is log-scaled (levels usually double); the capacity is marked
    with a vertical line, the tolerance limit with a dotted horizontal one.
    """
    phase = (capacity or {}).get("phase", "cold_start_ms")
    users = np.array([level["users"] for level in levels], dtype=float)

    def series(name: str, stat: str) -> np.ndarray:
        return np.array([np.nan if level["phases"][name][stat] is None else level["phases"][name][stat]
                         for level in levels], dtype=float)

    with _style():
        fig, ax = _figure(width=7.5, height=4.4, margins=Margins(right=0.8, bottom=1.25))
        cold = PHASE_COLORS["session_start_ms"]
        ax.plot(users, series(phase, "median"), color=cold, marker="o", linewidth=1.6,
                label=f"{PHASE_BY_NAME[phase].label} median")
        ax.plot(users, series(phase, "p95"), color=cold, marker="s", linestyle="--", linewidth=1.4,
                label=f"{PHASE_BY_NAME[phase].label} p95")
        if phase != "first_response_ms":
            ax.plot(users, series("first_response_ms", "median"), color=HEADLINE_COLOR, marker="o", linewidth=1.2,
                    alpha=0.8, label="first response median")
            ax.plot(users, series("first_response_ms", "p95"), color=HEADLINE_COLOR, marker="s", linestyle="--",
                    linewidth=1.0, alpha=0.8, label="first response p95")
        ax.set_xscale("log")
        ax.set_xticks(users)
        ax.set_xticklabels([f"{int(u)}" for u in users])
        ax.minorticks_off()
        ax.set_xlabel("users starting calls at once (log scale)")
        ax.set_ylabel("time (ms)")
        ax.set_ylim(bottom=0)
        if capacity and capacity.get("limit_p95_ms"):
            # on the time axis, which must reach it: set_ylim above fixed the top at the highest curve
            limit = capacity["limit_p95_ms"]
            ax.axhline(limit, color="#999999", linestyle=":", linewidth=1,
                       label=f"p95 limit ({capacity['tolerance']:g} x lowest level)")
            ax.set_ylim(0, max(ax.get_ylim()[1], limit * 1.08))
        if capacity and capacity.get("users"):
            ax.axvline(capacity["users"], color=INK, linewidth=1.4, alpha=0.7,
                       label=f"capacity {users_text(capacity['users'])}")
        rate = ax.twinx()
        rate.plot(users, [100 * (level["success_rate"] or 0) for level in levels], color=FAILED_COLOR,
                  marker="^", linewidth=1.0, label="success rate (right axis)")
        rate.set_ylim(0, 105)
        rate.set_ylabel("success rate (%)")
        rate.grid(False)
        rate.spines["right"].set_visible(True)
        handles, labels = ax.get_legend_handles_labels()
        more, more_labels = rate.get_legend_handles_labels()
        ax.legend(handles + more, labels + more_labels, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3)
        return to_svg(fig, "sweep", "Cold start and first response median and p95, and success rate, "
                                    "against the number of users starting calls at once")


def waveform_svg(pcm: Sequence[float], rate: int, *, onset_sample: int | None, name: str, label: str) -> str:
    """A recorded reply's waveform (min/max per column), its first audible sample marked (``onset_sample``)."""
    samples = np.asarray(pcm, dtype=float)
    columns = max(1, min(1200, samples.size))
    edges = np.linspace(0, samples.size, columns + 1).astype(int)
    low = np.array([samples[a:b].min() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    high = np.array([samples[a:b].max() if b > a else 0.0 for a, b in zip(edges[:-1], edges[1:])])
    x = edges[:-1] * 1000.0 / rate
    with _style():
        fig, ax = _figure(width=10.0, height=2.4)
        ax.fill_between(x, low, high, color=SERIES_COLORS[1], linewidth=0.4, step="post", label="reply audio")
        if onset_sample is not None:
            ax.axvline(onset_sample * 1000.0 / rate, color=FAILED_COLOR, linewidth=1.4,
                       label=f"first audible ({onset_sample * 1000.0 / rate:.1f} ms into the audio)")
        ax.set_xlim(0, max(samples.size * 1000.0 / rate, 1.0))
        ax.set_ylim(-1.0, 1.0)
        ax.set_xlabel("reply audio (ms from its first sample)")
        ax.set_ylabel("amplitude")
        ax.legend(loc="upper right")
        return to_svg(fig, name, label)
