"""bench/truth_match.py: client iterations matched to the server's sessions, and the errors from the pairs.

Pure logic, in process: fake ground-truth records (``t_ns`` on the server's
clock, in ns) and client rows, the way bench/accuracy.py reads them. Last,
the clean environment bench/accuracy_runs.py gives its clients is the tests' own.
"""

from __future__ import annotations

import pytest

from support.bench import bench_module
from support.processes import FOREIGN_PREFIXES


truth_match = bench_module("truth_match")

MS = 1_000_000
"""ns per ms."""


def session(sid: str, start_ms: float, setup_ms: float, first_audio_ms: float, outcome: str = "ok") -> dict:
    """A server record: start_call received at ``start_ms``, ready ``setup_ms`` later, audio ``first_audio_ms`` on."""
    start = int(start_ms * MS)
    ready = start + int(setup_ms * MS)
    audio = ready + int(first_audio_ms * MS)
    return {"session": f"{sid}@{start_ms}", "sid": sid, "outcome": outcome,
            "t_ns": {"start_received": start, "ready_sent": ready, "first_audio_sent": audio},
            "measured": {"first_audible_ms": first_audio_ms}}


def row(iteration: int, first_response_ms: float, sid: str | None = None, ok: bool = True, **extra) -> dict:
    return {"iteration": iteration, "sid": sid, "ok": ok, "first_response_ms": first_response_ms, **extra}


def test_one_user_without_sid_takes_the_windows_only_sid_and_its_errors_are_client_minus_server():
    truth = [session("a", 1000, 30, 80), session("a", 1300, 25, 90), session("a", 1600, 35, 70)]
    rows = [row(2, 90.5), row(1, 79.75), row(3, 71.0)]  # out of order: matched by iteration number
    pairs, unmatched = truth_match.match(rows, truth, started=0, ended=2000 * MS)
    assert unmatched == 0
    assert [(r["iteration"], r["sid"], rec["t_ns"]["start_received"]) for r, rec in pairs] == [
        (1, "a", 1000 * MS), (2, "a", 1300 * MS), (3, "a", 1600 * MS)]
    assert truth_match.errors(pairs)["first_response_ms"] == pytest.approx([-0.25, 0.5, 1.0])


def test_concurrent_users_are_matched_per_sid_in_order_and_only_inside_the_runs_window():
    truth = [session("a", 100, 30, 80),  # an earlier client's run on the same server: outside the window
             session("a", 1000, 30, 80), session("b", 1005, 20, 60),
             session("b", 1200, 20, 61), session("a", 1210, 30, 82)]
    rows = [row(1, 80.5, "a"), row(2, 60.25, "b"), row(3, 62.0, "b"), row(4, 81.0, "a")]
    pairs, unmatched = truth_match.match(rows, truth, started=900 * MS, ended=2000 * MS)
    assert unmatched == 0
    assert [(r["iteration"], rec["sid"], rec["t_ns"]["start_received"] // MS) for r, rec in pairs] == [
        (1, "a", 1000), (4, "a", 1210), (2, "b", 1005), (3, "b", 1200)]
    assert truth_match.errors(pairs)["first_response_ms"] == pytest.approx([0.5, -1.0, 0.25, 1.0])


def test_a_sid_whose_counts_differ_is_left_unmatched_rather_than_shifted():
    truth = [session("a", 1000, 30, 80), session("a", 1300, 30, 80), session("b", 1001, 30, 80)]
    rows = [row(1, 80.0, "a"), row(2, 80.0, "b"), row(3, 80.0, "b")]  # b lost a session on the server side
    pairs, unmatched = truth_match.match(rows, truth, started=0, ended=2000 * MS)
    assert unmatched == 3  # a: 1 row for 2 sessions; b: 2 rows for 1 session
    assert pairs == []


def test_failed_iterations_and_sessions_give_no_error():
    truth = [session("a", 1000, 30, 80), session("a", 1300, 30, 80, outcome="error"), session("a", 1600, 30, 80)]
    rows = [row(1, 81.0, "a"), row(2, 80.0, "a"), row(3, 85.0, "a", ok=False)]
    pairs, _ = truth_match.match(rows, truth, started=0, ended=2000 * MS)
    assert len(pairs) == 3
    assert truth_match.errors(pairs)["first_response_ms"] == pytest.approx([1.0])


def test_session_start_and_first_audible_errors_use_their_own_server_intervals():
    truth = [session("a", 1000, 30, 80)]
    rows = [row(1, 80.0, "a", session_start_ms=32.5, first_audible_ms=79.0)]
    pairs, _ = truth_match.match(rows, truth, started=0, ended=2000 * MS)
    errs = truth_match.errors(pairs)
    assert errs["session_start_ms"] == pytest.approx([2.5])
    assert errs["first_audible_ms"] == pytest.approx([-1.0])


def test_error_stats_are_the_signed_mean_and_absolute_median_p99_max_by_linear_interpolation():
    values = [-4.0, 1.0, -2.0, 3.0, 0.5]  # |error| sorted: 0.5 1 2 3 4
    stats = truth_match.error_stats(values)
    # p99 of 5 values: rank 0.99 * 4 = 3.96, between 3 and 4 -> 3.96
    assert stats == {"n": 5, "mean": -0.3, "median_abs": 2.0, "p99_abs": 3.96, "max_abs": 4.0}
    assert truth_match.error_stats([]) == {"n": 0}


def test_steady_pairs_drop_the_sessions_before_every_user_had_started_its_first():
    truth = [session("a", 1000, 30, 80), session("b", 1100, 30, 80), session("a", 1150, 30, 80),
             session("b", 1300, 30, 80), session("a", 1310, 30, 80)]
    rows = [row(1, 80.0, "a"), row(2, 80.0, "b"), row(3, 80.0, "a"), row(4, 80.0, "b"), row(5, 80.0, "a")]
    pairs, _ = truth_match.match(rows, truth, started=0, ended=2000 * MS)
    steady = truth_match.steady_pairs(pairs)
    assert sorted(rec["t_ns"]["start_received"] // MS for _r, rec in steady) == [1100, 1150, 1300, 1310]


def test_client_side_error_is_the_audio_wait_minus_the_ready_wait_from_kernel_stamps():
    def stamped(kernel_ready: int, ready_wait_ms: float, audio_wait_ms: float, ok: bool = True) -> dict:
        kernel_audio = kernel_ready + 80 * MS
        return {"ok": ok, "ready": {"kernel": kernel_ready, "handler": kernel_ready + int(ready_wait_ms * MS)},
                "audio": {"kernel": kernel_audio, "handler": kernel_audio + int(audio_wait_ms * MS)}}

    rows = [stamped(10**9, 0.25, 0.5), stamped(2 * 10**9, 1.0, 0.5), stamped(3 * 10**9, 0.5, 2.5),
            stamped(4 * 10**9, 9.0, 9.0, ok=False), {"ok": True, "ready": None, "audio": None}]
    side = truth_match.client_side(rows)
    assert side["first_response_error"] == {"n": 3, "mean": 0.583, "median_abs": 0.5, "p99_abs": 1.97,
                                            "max_abs": 2.0}
    assert side["kernel_to_handler_ms"]["session_ready"] == {"median": 0.5, "p99": 0.99, "max": 1.0}
    assert truth_match.client_side([{"ok": True}]) == {}


def test_efficiency_is_the_injected_time_over_the_servers_wall_time_of_the_full_cycles():
    def cycle(start_ms: float) -> dict:
        start = int(start_ms * MS)
        t = {"start_received": start, "ready_sent": start + 21 * MS, "first_input_received": start + 23 * MS,
             "first_audio_sent": start + 85 * MS, "stop_received": start + 87 * MS, "ended_sent": start + 88 * MS}
        return {"sid": "a", "outcome": "ok", "t_ns": t,
                "injected": {"setup_delay_ms": 20.0, "cold_penalty_ms": 0.0, "first_audio_delay_ms": 60.0}}

    records = [cycle(0), cycle(200), cycle(400)]  # each cycle: 88 ms to ended, 100 ms wait, 12 ms to the next start
    e = truth_match.efficiency(records, wait_ms=100.0)
    assert (e["cycles"], e["wall_ms"], e["ideal_ms"], e["efficiency"]) == (2, 400.0, 360.0, 0.9)
    assert e["overhead_ms_per_cycle"] == 20.0
    assert e["overhead_parts_ms"] == {"setup_timer_late": 1.0, "ready_to_input": 2.0, "audio_timer_late": 2.0,
                                      "audio_to_stop": 2.0, "stop_to_ended": 1.0, "ended_to_next_start": 12.0}
    assert truth_match.efficiency(records[:1], wait_ms=100.0) == {}


def test_the_bench_runs_its_clients_in_the_same_clean_environment_as_the_tests(monkeypatch):
    runs = bench_module("accuracy_runs")
    assert runs.FOREIGN_PREFIXES == FOREIGN_PREFIXES
    monkeypatch.setenv("BOOTBENCH_USERS", "7")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    env = runs.clean_env({"PYTHONPATH": "x"})
    assert "BOOTBENCH_USERS" not in env and "OPENAI_API_KEY" not in env and env["PYTHONPATH"] == "x"
