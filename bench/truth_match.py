"""Ground truth matching: each client iteration against the reference server's record of the same session.

Pure logic on plain dicts, no processes: the server's ground-truth log
(one JSON record per session, ``t_ns`` stamps on its monotonic clock), the
client's rows (one per iteration: its ``first_response_ms`` and friends,
the Socket.IO sid, kernel stamps when it has them), and the figures
``bench/accuracy.py`` reports from the pairs: |error| statistics, the
client-side part of the error, the server's send path, the efficiency of
a 1-user run. Every statistic goes through :mod:`bootbench.stats`.

    pairs, unmatched = match(rows, load_truth(path), started_ns, ended_ns)
    errs = errors(pairs)                       # {"first_response_ms": [...], ...}
    error_stats(errs["first_response_ms"])     # {"n", "mean", "median_abs", "p99_abs", "max_abs"}
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

from bootbench.stats import summarize

Pair = tuple[dict, dict]
"""A client row and the server record of the same session."""


def load_truth(path: Path) -> list[dict]:
    """The server's session records (not its connection-level lines), in the order the sessions started."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted((r for r in records if r.get("session") is not None), key=lambda r: r["t_ns"]["start_received"])


def match(rows: list[dict], truth: list[dict], started: int, ended: int) -> tuple[list[Pair], int]:
    """Pairs (client row, server record) of one client run; the number of rows left unmatched.

    The run's server records are those that started inside its time window.
    Within one sid, the k-th session the server saw is the k-th iteration the
    client ran on that connection (iterations of one user are numbered in
    the order they ran). A row without sid (one user, plain locustfile) takes
    the window's only sid. A sid whose counts differ on the two sides is
    not matched at all (its rows count as unmatched): pairing by order would
    shift every pair after the missing one.
    """
    records = [r for r in truth if started <= r["t_ns"]["start_received"] <= ended]
    by_sid: dict[str, list[dict]] = {}
    for record in records:
        by_sid.setdefault(record["sid"], []).append(record)
    if rows and all(row.get("sid") is None for row in rows) and len(by_sid) == 1:
        only = next(iter(by_sid))
        rows = [dict(row, sid=only) for row in rows]
    by_client: dict[str | None, list[dict]] = {}
    for row in sorted(rows, key=lambda r: r["iteration"]):
        by_client.setdefault(row.get("sid"), []).append(row)
    pairs: list[Pair] = []
    unmatched = 0
    for sid, client_rows in by_client.items():
        server_rows = by_sid.get(sid, [])
        if len(server_rows) != len(client_rows):
            unmatched += len(client_rows)
            continue
        pairs.extend(zip(client_rows, server_rows))
    return pairs, unmatched


def steady_pairs(pairs: list[Pair]) -> list[Pair]:
    """The pairs of sessions that started once every sid (user) had started its first one.

    Users are spawned at once, so the first cycles overlap a storm of
    connection handshakes; the rest is the steady part of the run.
    """
    first_start: dict[str, int] = {}
    for _row, record in pairs:
        start = record["t_ns"]["start_received"]
        first_start[record["sid"]] = min(first_start.get(record["sid"], start), start)
    steady_from = max(first_start.values(), default=0)
    return [(row, record) for row, record in pairs if record["t_ns"]["start_received"] >= steady_from]


def server_interval_ms(record: dict, start: str, end: str) -> float | None:
    """The server's own interval between two of its ``t_ns`` stamps (ms), None if either is missing."""
    t = record["t_ns"]
    return None if t.get(start) is None or t.get(end) is None else (t[end] - t[start]) / 1e6


ERROR_SPANS = {"first_response_ms": ("ready_sent", "first_audio_sent"),
               "session_start_ms": ("start_received", "ready_sent")}
"""Each client phase and the server stamps its truth lies between."""


def errors(pairs: list[Pair]) -> dict[str, list[float]]:
    """Client value minus the server's own, per phase, over the pairs that succeeded on both sides (ms)."""
    found: dict[str, list[float]] = {"first_response_ms": [], "session_start_ms": [], "first_audible_ms": []}
    for row, record in pairs:
        if not row.get("ok") or record.get("outcome") != "ok":
            continue
        for name, (start, end) in ERROR_SPANS.items():
            truth = server_interval_ms(record, start, end)
            if row.get(name) is not None and truth is not None:
                found[name].append(row[name] - truth)
        # The server's first audible sample: its first answer chunk plus the leading silence it injected.
        audible = (record.get("measured") or {}).get("first_audible_ms")
        if row.get("first_audible_ms") is not None and audible is not None:
            found["first_audible_ms"].append(row["first_audible_ms"] - audible)
    return found


def error_stats(values: Sequence[float]) -> dict[str, Any]:
    """Signed mean and |error| median / p99 / max (ms, 3 decimals); ``{"n": 0}`` without values."""
    if not values:
        return {"n": 0}
    signed = summarize(values, intervals=False)
    absolute = summarize([abs(v) for v in values], intervals=False)
    return {"n": signed["count"], "mean": round(signed["mean"], 3), "median_abs": round(absolute["median"], 3),
            "p99_abs": round(absolute["p99"], 3), "max_abs": round(absolute["max"], 3)}


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median / p99 / max of ``values`` (ms, 3 decimals)."""
    stats = summarize(values, intervals=False)
    return {"median": round(stats["median"], 3), "p99": round(stats["p99"], 3), "max": round(stats["max"], 3)}


def client_side(rows: list[dict]) -> dict:
    """From kernel stamps: what the client process itself added to each error, and each message's wait in it.

    Each timed message has a kernel arrival stamp and the stamp its handler
    took; the client-side error of ``first_response_ms`` is
    (audio handler - audio arrival) - (ready handler - ready arrival).
    """
    errs, ready, audio = [], [], []
    for row in rows:
        r, a = row.get("ready") or {}, row.get("audio") or {}
        if not (row.get("ok") and r.get("kernel") and r.get("handler") and a.get("kernel") and a.get("handler")):
            continue
        ready.append((r["handler"] - r["kernel"]) / 1e6)
        audio.append((a["handler"] - a["kernel"]) / 1e6)
        errs.append(audio[-1] - ready[-1])
    if not errs:
        return {}
    return {"first_response_error": error_stats(errs),
            "kernel_to_handler_ms": {"session_ready": spread(ready), "audio": spread(audio)}}


def server_send_path(pairs: list[Pair]) -> dict:
    """Wire client only: server timestamp -> kernel arrival, per timed message (the server's own send path)."""
    ready, audio = [], []
    for row, record in pairs:
        t = record["t_ns"]
        if row.get("ready_rx_ns") and t.get("ready_sent"):
            ready.append((row["ready_rx_ns"] - t["ready_sent"]) / 1e6)
        if row.get("audio_rx_ns") and t.get("first_audio_sent"):
            audio.append((row["audio_rx_ns"] - t["first_audio_sent"]) / 1e6)
    return {name: spread(v) for name, v in (("session_ready", ready), ("audio", audio)) if v}


def efficiency(records: list[dict], wait_ms: float) -> dict:
    """Ideal over actual time of the run's full cycles, on the server's clock (see RESULTS.md).

    W runs from the first session's ``start_received`` to the last one's, so
    it holds N-1 complete cycles; ideal is their injected delays plus the
    waits. Overhead per cycle is split on the server's clock between its
    stamps. Empty when a session failed or there are fewer than two.
    """
    records = sorted(records, key=lambda r: r["t_ns"]["start_received"])
    if len(records) < 2 or any(r.get("outcome") != "ok" for r in records):
        return {}
    cycles = records[:-1]
    wall_ms = (records[-1]["t_ns"]["start_received"] - records[0]["t_ns"]["start_received"]) / 1e6
    ideal_ms = sum(r["injected"]["setup_delay_ms"] + r["injected"]["cold_penalty_ms"]
                   + r["injected"]["first_audio_delay_ms"] + wait_ms for r in cycles)
    parts: dict[str, list[float]] = {"setup_timer_late": [], "ready_to_input": [], "audio_timer_late": [],
                                     "audio_to_stop": [], "stop_to_ended": [], "ended_to_next_start": []}
    for record, following in zip(cycles, records[1:]):
        t, injected = record["t_ns"], record["injected"]
        ms = lambda a, b: (t[b] - t[a]) / 1e6  # noqa: E731
        parts["setup_timer_late"].append(ms("start_received", "ready_sent") - injected["setup_delay_ms"]
                                         - injected["cold_penalty_ms"])
        parts["ready_to_input"].append(ms("ready_sent", "first_input_received"))
        parts["audio_timer_late"].append(ms("first_input_received", "first_audio_sent")
                                         - injected["first_audio_delay_ms"])
        parts["audio_to_stop"].append(ms("first_audio_sent", "stop_received"))
        parts["stop_to_ended"].append(ms("stop_received", "ended_sent"))
        parts["ended_to_next_start"].append((following["t_ns"]["start_received"] - t["ended_sent"]) / 1e6 - wait_ms)
    return {"cycles": len(cycles), "wall_ms": round(wall_ms, 1), "ideal_ms": round(ideal_ms, 1),
            "efficiency": round(ideal_ms / wall_ms, 4),
            "overhead_ms_per_cycle": round((wall_ms - ideal_ms) / len(cycles), 3),
            "overhead_parts_ms": {k: round(summarize(v, intervals=False)["mean"], 3) for k, v in parts.items()}}


def samples_wall_check(rows: list[dict]) -> float | None:
    """The same wall time from the samples' own ``started_at`` labels (ms resolution), as a cross-check."""
    stamps = sorted(datetime.fromisoformat(r["started_at"]).timestamp() for r in rows if r.get("started_at"))
    return round((stamps[-1] - stamps[0]) * 1000, 1) if len(stamps) > 1 else None
