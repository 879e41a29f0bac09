"""A concurrency sweep's results: each level's exact statistics and CPU use, and the capacity they show.

``metrics.json`` ``levels`` holds, per level of ``--sweep``, the
:func:`~bootbench.stats.summarize_samples` block of that level's samples,
its run facts (rounds, duration) and the CPU each process that ran users
spent during it. ``capacity`` is the estimate of :func:`estimate_capacity`:
the highest level, counting up from the lowest, whose calls still start as
fast as the lowest level's and still succeed.

Why the measure is ``cold_start_ms`` and not the headline: a service that
is out of capacity queues the new session *before* it is ready, so the wait
shows in ``session_start_ms`` and ``cold_start_ms`` (cycle start to first
audio), while ``first_response_ms`` starts at session ready and never sees it.

Why a tolerance of 1.5 (``--sweep-tolerance``): it must sit above sampling
noise and below queueing. Two independent p95s of 50 draws of the reference
server's first-audio delay (lognormal, sigma 0.25) differ by more than 1.26x
in 1 % of pairs and 1.35x in 0.1 % (1.40x at 20 draws), so a level within
capacity stays under 1.5x. A call that waits for a free session waits about
one whole service time, so its cold start at least doubles; once more than
5 % of a level's calls wait, its p95 is one of them, well over 1.5x.
"""

from __future__ import annotations

from typing import Any, Sequence

from bootbench.samples import Sample
from bootbench.stats import summarize_samples

CAPACITY_PHASE = "cold_start_ms"
"""The phase whose p95 decides the capacity (see the module docstring)."""
MIN_SUCCESS_RATE = 0.99
"""A level within capacity has at least this success rate."""
HARNESS_CORES = 0.8
"""A process that ran users and used more than this share of a core during a level makes it harness-bound."""


def summarize_levels(samples: Sequence[Sample], windows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """metrics.json ``levels``: per level (``windows``: the sweep's run facts, in order) its samples' statistics.

    Each entry is ``users``, ``planned``, the level's
    :func:`~bootbench.stats.summarize_samples` block (``iterations``,
    ``successes``, ``failures``, ``success_rate``, ``p99_is_max``, ``phases``),
    ``rounds``, ``duration_s``, ``cpu`` (per process: ``cpu_s``, ``wall_s``,
    ``cores``) and ``harness_bound``.
    """
    levels = []
    for window in windows:
        users = window["users"]
        mine = sorted((s for s in samples if s.level == users), key=lambda s: s.iteration)
        cpu = window.get("cpu") or {}
        busiest = max((use["cores"] for use in cpu.values() if use.get("cores") is not None), default=None)
        levels.append({
            "users": users,
            "planned": window.get("planned"),
            **summarize_samples(mine),
            "rounds": window.get("rounds"),
            "duration_s": window.get("duration_s"),
            "cpu": cpu,
            "busiest_process_cores": busiest,
            "harness_bound": busiest is not None and busiest > HARNESS_CORES,
        })
    return levels


def estimate_capacity(levels: Sequence[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """metrics.json ``capacity``: the highest level, counted up from the lowest, within capacity; and why not more.

    A level is within capacity when at least :data:`MIN_SUCCESS_RATE` of its
    calls succeeded and its :data:`CAPACITY_PHASE` p95 is at most
    ``tolerance`` times the lowest level's. The first level that is not ends
    the count (``users`` 0 when even the lowest is not). ``harness_bound`` is
    true when a level up to that one was harness-bound: then bootbench's own
    CPU, not the service, may set the limit, and the reason says so.
    """
    if not levels:
        return {"users": None, "reason": "no level ran", "harness_bound": False, "phase": CAPACITY_PHASE,
                "tolerance": tolerance, "baseline_p95_ms": None, "limit_p95_ms": None, "failed_level": None}
    lowest = levels[0]
    baseline = lowest["phases"][CAPACITY_PHASE]["p95"]
    limit = baseline * tolerance if baseline is not None else None
    capacity, failed, reason = 0, None, ""
    judged = []
    for level in levels:
        judged.append(level)
        why = _over_capacity(level, lowest, baseline, tolerance)
        if why:
            failed, reason = level, why
            break
        capacity = level["users"]
    if failed is None:
        reason = (f"every level stayed within capacity: at least {_users(capacity)} (the highest level run); "
                  f"a sweep to higher levels would find the limit")
    elif capacity == 0:
        reason = f"even the lowest level is over capacity: {reason}"
    else:
        reason = f"{_users(capacity)} is the highest level within capacity; at {reason}"
    bound = [level for level in judged if level.get("harness_bound")]
    if bound:
        worst = max(bound, key=lambda level: level["busiest_process_cores"])
        reason += (f". Harness-bound: a bootbench process used {worst['busiest_process_cores'] * 100:.0f} % of a core "
                   f"at {_users(worst['users'])} (over {HARNESS_CORES * 100:.0f} %), so the limit may be bootbench's "
                   f"own, not the service's: run more worker processes (--processes N)")
    return {"users": capacity, "reason": reason, "harness_bound": bool(bound), "phase": CAPACITY_PHASE,
            "tolerance": tolerance, "baseline_p95_ms": baseline, "limit_p95_ms": limit,
            "failed_level": failed["users"] if failed else None}


def _over_capacity(level: dict[str, Any], lowest: dict[str, Any], baseline: float | None,
                   tolerance: float) -> str:
    """Why ``level`` is over capacity ("" when it is within): the words that follow "at"."""
    users = level["users"]
    if not level["iterations"]:
        return f"{_users(users)} no iteration finished"
    rate = level["success_rate"]
    if rate < MIN_SUCCESS_RATE:
        return (f"{_users(users)} only {rate * 100:.1f} % of the calls succeeded "
                f"(below {MIN_SUCCESS_RATE * 100:.0f} %)")
    p95 = level["phases"][CAPACITY_PHASE]["p95"]
    if p95 is None or baseline is None:
        return f"{_users(users)} no call measured a cold start"
    if p95 > tolerance * baseline:
        return (f"{_users(users)} the cold-start p95 of {p95:.1f} ms is {p95 / baseline:.2f} x the "
                f"{lowest['users']}-user p95 of {baseline:.1f} ms, above the {tolerance:g} x tolerance")
    return ""


def _users(count: int) -> str:
    return f"{count} user{'' if count == 1 else 's'}"
