"""bench/capacity.py's bookkeeping, in process: the clocks it may run, what held per clock, its RESULTS.md section.

The runs themselves are benchmarks (bench/RESULTS.md); these check the logic that turns their levels into the
table, on level records shaped as capacity.json holds them (older runs' records lack the newer keys).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bootbench.providers import kernel_clock
from support.bench import bench_module

capacity = bench_module("capacity")


def level(users: int, holds: bool, clock: str | None = None, truth: dict | None = None) -> dict:
    record = {"users": users, "iterations": users * 8, "failed": 0, "steady_iterations": users * 7,
              "client_side_steady": {"first_response_error": {"median_abs": 0.2, "p99_abs": 1.5 if holds else 9.0,
                                                              "max_abs": 12.0}},
              "resources": {"client_cpu_ms_per_cycle": 1.3, "client_cores": 0.5, "server_cores": 0.6,
                            "other_cores": 0.1},
              "load_average_start": [1.0, 1.0, 1.0], "load_average_end": [1.5, 1.0, 1.0], "holds": holds}
    if clock is not None:
        record["clock"] = clock
    if truth is not None:
        record["truth_steady"] = truth
    return record


def run(levels: list[dict]) -> dict:
    machine = {"date": "2026-12-03T21:00:00+00:00", "cpu": "AMD EPYC", "cores": 2, "python": "3.11.7",
               "locust": "2.47.0", "gevent": "26.9.0"}
    return {"command": "python bench/capacity.py --realtime", "machine": machine, "realtime": True,
            "cycles_per_user": 8, "commit": "abc1234", "levels": levels}


def test_clocks_are_those_bootbench_offers_or_default(monkeypatch):
    assert capacity.parse_clocks("default", ()) == ["default"]
    with pytest.raises(ValueError, match="has no --clock option yet"):
        capacity.parse_clocks("kernel", ())
    assert capacity.parse_clocks("kernel, process", ("kernel", "process")) == ["kernel", "process"]
    with pytest.raises(ValueError, match="offers kernel, process"):
        capacity.parse_clocks("kernel,wall", ("kernel", "process"))
    with pytest.raises(ValueError, match="names no clock"):
        capacity.parse_clocks(" , ", ("kernel",))


def test_clocks_offered_reads_bootbenchs_option_table(monkeypatch):
    class Row:
        def __init__(self, flags, choices=None):
            self.flags, self.choices = flags, choices

    monkeypatch.setattr(capacity, "OPTIONS", (Row(("--turns",)), Row(("--clock",), ("kernel", "process"))))
    assert capacity.clocks_offered() == ("kernel", "process")
    monkeypatch.setattr(capacity, "OPTIONS", (Row(("--turns",)),))
    assert capacity.clocks_offered() == ()


def test_what_held_is_counted_per_clock_up_to_the_first_level_that_did_not():
    levels = [level(100, True, "kernel"), level(100, True, "process"), level(200, True, "kernel"),
              level(200, False, "process"), level(300, True, "process"), level(300, False, "kernel")]
    assert capacity.holds_by_clock(levels) == {"kernel": 200, "process": 100}
    assert capacity.holds_by_clock([level(100, False), level(200, True)]) == {"default": None}


def test_the_section_has_a_row_per_level_and_clock_and_reads_older_runs():
    old = run([level(100, True), level(200, False)])  # no clock, no truth: a run from before these columns
    new = run([level(200, True, "kernel", {"median_abs": 0.3, "p99_abs": 0.9}),
               level(200, False, "process", {"median_abs": 0.4, "p99_abs": 30.2})])
    text = capacity.section({"runs": {"older": old, "both clocks": new}})
    rows = [line for line in text.splitlines() if line.startswith("| 1") or line.startswith("| 2")]
    assert rows[0].startswith("| 100 | default | 800 (700) | 0 | 0.2 / 1.5 / 12.0 | - / - | 1.3 |")
    assert rows[2].startswith("| 200 | kernel | 1600 (1400) | 0 | 0.2 / 1.5 / 12.0 | 0.3 / 0.9 | 1.3 |")
    assert rows[3].startswith("| 200 | process |") and "| 0.4 / 30.2 |" in rows[3] and rows[3].endswith("| no |")
    assert "at this and every lower level): **100 sessions**." in text
    assert "kernel: **200 sessions**; process: **no tested level**" in text


def test_a_level_whose_capture_lost_packets_is_recorded_with_its_other_figures_and_judged_unknown():
    """A capture with gaps gives no client-side figure (accuracy_runs.stamp_from_capture): the level is kept, with
    its truth and CPU figures, its client-side cell says why it is empty, and what held stops below it."""
    lost = level(300, True, "kernel", {"median_abs": 0.01, "p99_abs": 0.06})
    lost.update(client_side_steady={}, capture_lost=1119, holds=None)
    levels = [level(100, True, "kernel"), level(200, True, "kernel"), lost, level(400, True, "kernel")]
    assert capacity.holds_by_clock(levels) == {"kernel": 200}
    text = capacity.section({"runs": {"lost": run(levels)}})
    [row] = [line for line in text.splitlines() if line.startswith("| 300 ")]
    assert row.startswith("| 300 | kernel | 2400 (2100) | 0 | capture lost 1119 packets | 0.01 / 0.06 | 1.3 |")
    assert row.endswith("| unknown |")


def test_a_capture_with_gaps_stamps_no_row_and_a_whole_one_stamps_them(tmp_path, capsys):
    runs = bench_module("accuracy_runs")
    rows = [{"port": 50000, "ok": True, "ready": {"handler": 1}, "audio": {"handler": 2}, "realtime_offset_ns": 0}]
    captured = {"captured": 900, "received by filter": 2019, "dropped by kernel": 1119}
    runs.stamp_from_capture(captured, rows, tmp_path / "never-read.pcap", 8765)   # not opened: it has gaps
    assert captured["stamped_rows"] == 0 and "kernel" not in rows[0]["ready"]
    assert "the packet capture lost 1119 packets" in capsys.readouterr().err


def test_rewriting_the_section_keeps_what_comes_before_and_a_later_section_written_by_hand(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# results\n\nintro\n\n{capacity.CAPACITY_HEADING}\n\nold table\n\n## By hand\n\nkept\n")
    capacity.write_section(path, {"runs": {"now": run([level(100, True)])}})
    text = path.read_text()
    assert text.startswith("# results\n\nintro\n\n" + capacity.CAPACITY_HEADING)
    assert "old table" not in text and "### now" in text
    assert text.endswith("\n## By hand\n\nkept\n") and text.count(capacity.CAPACITY_HEADING) == 1


def test_the_profile_leaves_out_reader_threads_waiting_in_the_kernel(tmp_path):
    """bench/profile_cycle.py: py-spy samples every thread, the kernel clock's readers waiting in recvmsg included;
    their stacks are counted apart, so the shares are of the work."""
    profile = bench_module("profile_cycle")
    raw = tmp_path / "py-spy.txt"
    # a reader thread's stack as py-spy printed it (bench/RESULTS.md's --gil run): kept by its driver, in recvmsg
    raw.write_text("_ReaderThread.serve (bootbench/providers/kernel_clock.py:411);"
                   "ArrivalReader.run (bootbench/providers/kernel_clock.py:262) 830\n"
                   "Hub.run (gevent/hub.py:647);_read_loop (bootbench/providers/websocket.py:205);recv_data (websocket/_core.py:460) 120\n"
                   "Hub.run (gevent/hub.py:647);_fire_events (bootbench/user.py:300) 50\n")
    stacks, waiting = profile.read_collapsed(raw)
    assert waiting == 830 and sum(stacks.values()) == 170
    shares = profile.shares(stacks)
    assert shares["receiving (WebSocket frames, read loop)"] == pytest.approx(120 / 170, abs=1e-4)


def test_reader_threads_bench_starts_a_thread_per_connection_or_one_per_owner():
    """bench/reader_threads.py as a process (it patches with gevent itself): its counts of threads started."""
    if kernel_clock.available() is not None:
        pytest.skip("no kernel arrival stamps here")
    script = Path(__file__).resolve().parents[1] / "bench" / "reader_threads.py"
    done = subprocess.run([sys.executable, str(script), "--owners", "4", "--connections", "3", "--rounds", "1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = re.findall(r"(a thread per connection|threads kept per owner): +([\d.]+) us CPU per connection, "
                      r"(\d+) threads started for 12 connections", done.stdout)
    assert [(what, int(started)) for what, _cpu, started in rows] == [("a thread per connection", 12),
                                                                       ("threads kept per owner", 4)]
    assert all(float(cpu) > 0 for _what, cpu, _started in rows)
