"""The report of bench/accuracy.py: judge the levels, write bench/results.json and bench/RESULTS.md.

It reads only the results dict the runs produced (``levels``, ``machine``,
``server``), so ``python bench/accuracy.py --report-only results.json``
rewrites the report of an earlier run. :func:`scale` finds the largest
level whose steady p99 stays under :data:`SCALE_LIMIT_MS`, :func:`verdicts`
judges :data:`TARGETS`, :func:`markdown` renders RESULTS.md; the sections
other bench scripts append (from :data:`CAPACITY_HEADING` on) are kept.
"""

from __future__ import annotations

import json
from pathlib import Path

SCALE_LIMIT_MS = 2.0
TARGETS = {"p99_1_user_ms": 1.0, "p99_vs_raw_1_user_ms": 0.5, "p99_200_users_ms": 5.0, "efficiency": 0.95}
CAPACITY_HEADING = "## How many sessions one worker process holds"
"""The section bench/capacity.py writes at the end of RESULTS.md; a rerun of bench/accuracy.py keeps it."""
CLOCK_HEADING = "## The receive clock: kernel arrival stamps against the process's own"
"""The hand-written section before CAPACITY_HEADING (issue 23's before/after runs); a rerun keeps it too."""


def _p99(level: dict, kind: str, client_side_only: bool = False, steady: bool = False) -> float | None:
    entry = level.get(kind, {})
    if client_side_only:
        stats = (entry.get("client_side_steady" if steady else "client_side") or {}).get("first_response_error", {})
    else:
        stats = entry.get("first_response_error_steady" if steady else "first_response_error", {})
    return stats.get("p99_abs")


def scale(levels: list[dict]) -> dict:
    """The largest level whose steady-state p99 is under the limit: against the truth, and its client-side part.

    Steady state: sessions that started after every user had started its first one (the connection storm
    of users spawned at once is over).
    """
    levels = [lv for lv in levels if not lv["realtime"]]
    base = next((lv["bootbench"].get("resources", {}).get("client_rss_mib") for lv in levels if lv["users"] == 1), None)

    def best(p99_of) -> dict:
        passing = [lv for lv in levels if (p99_of(lv) if p99_of(lv) is not None else 1e9) < SCALE_LIMIT_MS]
        failing = [lv["users"] for lv in levels if lv not in passing]
        if not passing:
            return {"users": None, "first_failing": failing[0] if failing else None}
        top = max(passing, key=lambda lv: lv["users"])
        users, res = top["users"], top["bootbench"].get("resources", {})
        cores = res.get("client_cores")
        return {"users": users, "p99_abs_ms": p99_of(top),
                "first_failing": min((u for u in failing if u > users), default=None),
                "client_cores": cores,
                "cpu_percent_of_core_per_session": round(100 * cores / users, 3) if cores is not None else None,
                "client_cpu_ms_per_cycle": res.get("client_cpu_ms_per_cycle"),
                "client_rss_mib": res.get("client_rss_mib"),
                "rss_kib_per_session": round(1024 * (res["client_rss_mib"] - base) / (users - 1), 1)
                if base is not None and users > 1 and res.get("client_rss_mib") else None}

    return {"against_truth": best(lambda lv: _p99(lv, "bootbench", steady=True)),
            "client_side": best(lambda lv: _p99(lv, "probe", client_side_only=True, steady=True))}


def verdicts(levels: list[dict], eff: dict) -> dict:
    """Each target, judged on the error against the truth and on the part the client process added."""
    by_users = {lv["users"]: lv for lv in levels if not lv["realtime"]}
    found = {}

    def judge(name: str, value: float | None, below: bool = True) -> None:
        if value is not None:
            target = TARGETS[name.split(":")[0].split(" ")[0]]
            found[name] = {"value": round(value, 3), "target": target,
                           "met": value < target if below else value > target}

    for one, tag in ((by_users.get(1), ""),
                     (next((lv for lv in levels if lv["users"] == 1 and lv["realtime"]), None), " SCHED_FIFO")):
        if not one:
            continue
        judge(f"p99_1_user_ms:against_truth{tag}", _p99(one, "bootbench"))
        judge(f"p99_1_user_ms:client_side{tag}", _p99(one, "probe", True))
        b, r = _p99(one, "bootbench"), _p99(one, "raw")
        judge(f"p99_vs_raw_1_user_ms:against_truth{tag}", None if b is None or r is None else b - r)
        b, r = _p99(one, "probe", True), _p99(one, "raw", True)
        judge(f"p99_vs_raw_1_user_ms:client_side{tag}", None if b is None or r is None else b - r)
    if 200 in by_users:
        judge("p99_200_users_ms:against_truth", _p99(by_users[200], "bootbench"))
        judge("p99_200_users_ms:against_truth steady", _p99(by_users[200], "bootbench", steady=True))
        judge("p99_200_users_ms:client_side", _p99(by_users[200], "probe", True))
        judge("p99_200_users_ms:client_side steady", _p99(by_users[200], "probe", True, steady=True))
    if eff:
        judge("efficiency", eff["efficiency"], below=False)
    rt = next((lv for lv in levels if lv["users"] == 1 and lv["realtime"]), None)
    if rt and rt["bootbench"].get("efficiency"):
        judge("efficiency SCHED_FIFO", rt["bootbench"]["efficiency"]["efficiency"], below=False)
    return found


def _label(level: dict) -> str:
    return f"{level['users']} (SCHED_FIFO)" if level["realtime"] else str(level["users"])


def _cell(stats: dict | None) -> str:
    if not stats or not stats.get("n"):
        return "-"
    return f"{stats['median_abs']} / {stats['p99_abs']} / {stats['max_abs']}"


def markdown(results: dict) -> str:
    m, server = results["machine"], results["server"]
    profiles = server["profiles"]
    lines = [
        "# bootbench: accuracy and overhead",
        "",
        f"Generated by `python bench/accuracy.py{' --quick' if results['quick'] else ''}"
        f"{f' --scrape {scrape:g}' if (scrape := results.get('scrape_s')) else ''}` on {m['date']} "
        f"in {results['elapsed_s']:.0f} s: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}, Locust {m['locust']}, gevent {m['gevent']}, "
        f"python-socketio {m['python-socketio']}, python-engineio {m['python-engineio']}, "
        f"websocket-client {m['websocket-client']}. Load average at start "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_end'])}. The machine is shared: `other cores` is "
        "CPU used by other processes during the run (noise). Figures: `bench/results.json`.",
        "",
        "Machine floor (a 20-line Python process blocked in `recv`, woken every 20 ms: kernel arrival -> user "
        "space, ms): " + "; ".join(f"{'SCHED_FIFO' if k == 'sched_fifo' else 'normal'} median {v['median']}, "
                                    f"p99 {v['p99']}, max {v['max']}" for k, v in m["wake_floor_ms"].items())
        + ". A p99 below the normal floor's cannot be measured on this machine without SCHED_FIFO.",
        "",
        "Reference server on 127.0.0.1, no cold penalty, unlimited capacity, seed "
        f"{server['seed']}; 1 user: setup {profiles['short']['setup_delay']} ms, first audio "
        f"{profiles['short']['first_audio_delay']} ms; more users: setup {profiles['call']['setup_delay']} ms, "
        f"first audio {profiles['call']['first_audio_delay']} ms (a real service's pace). One worker process "
        f"(no `--processes`), users spawned at once, {server['wait_ms']:g} ms wait.",
        "",
        "Error = the client's `first_response_ms` minus the server's own interval for the same session "
        "(ground truth `session_ready` sent -> first `audio_response` sent; matched on the Socket.IO sid and "
        "the order of sessions on it). Cells: |error| median / p99 / max, ms (under 100 iterations p99 is "
        "about the maximum).",
        "",
        "- **bootbench**: `locust -f locustfile.py`, as shipped.",
        "- **raw**: `bench/raw_client.py`, python-socketio in a few lines, gevent-patched like Locust, "
        "same transport options, the library's own dispatch.",
        "- **wire**: `bench/wire_client.py`, raw sockets timed by the kernel's arrival stamps: only the "
        "server's own send jitter is left. No client can do better.",
        "- **client-side**: the part of each error the client process added: (audio recorded - audio arrival) - "
        "(ready recorded - ready arrival). bootbench's is from a second run (`bench/probe_locustfile.py`, "
        "bootbench unpatched) under a packet capture (`bench/wire_capture.py`: tcpdump's kernel stamp of the "
        "segment that completed each message, taken outside the client, so it judges either `--clock`); raw's "
        "from kernel arrival stamps read inside it (`bench/kernel_stamps.py`).",
        "",
        "## first_response_ms error",
        "",
        "| users | iterations | bootbench | raw | wire (server floor) | bootbench client-side | raw client-side "
        "| bootbench p99, steady | bootbench client-side p99, steady | bootbench first_audible_ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in results["levels"]:
        cs = lambda k: (lv[k].get("client_side") or {}).get("first_response_error")  # noqa: E731
        lines.append(f"| {_label(lv)} | {lv['bootbench']['matched']} | {_cell(lv['bootbench']['first_response_error'])} "
                     f"| {_cell(lv['raw']['first_response_error'])} | {_cell(lv['wire']['first_response_error'])} "
                     f"| {_cell(cs('probe'))} | {_cell(cs('raw'))} | {_p99(lv, 'bootbench', steady=True) or '-'} "
                     f"| {_p99(lv, 'probe', True, steady=True) or '-'} "
                     f"| {_cell(lv['bootbench'].get('first_audible_error'))} |")
    lines += ["", "Steady: sessions that started after every user had started its first one (users are spawned "
              "at once, so the first cycles overlap a storm of connection handshakes).",
              "", "bootbench first_audible_ms: its error against the server's first audible sample (first answer "
              "chunk sent plus the injected leading silence, here none: the reply is a -23 dBFS tone from its "
              "first sample), so it adds the detector and the playback model to the first_response_ms error."]
    lines += ["", "## Where the time goes at each level", "",
              "Kernel arrival -> handler timestamp inside the client (ms, median / p99), the server's own send "
              "path (its timestamp -> kernel arrival, from the wire client), and CPU (bootbench run, steady part).",
              "",
              "| users | bootbench ready | bootbench audio | raw ready | raw audio | server ready | server audio "
              "| bootbench cores | CPU ms/cycle | RSS MiB | server cores | other cores |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for lv in results["levels"]:
        def wait(kind: str, name: str) -> str:
            w = ((lv[kind].get("client_side") or {}).get("kernel_to_handler_ms") or {}).get(name)
            return f"{w['median']} / {w['p99']}" if w else "-"
        send = lv["wire"].get("server_send_path_ms", {})
        srv = lambda n: f"{send[n]['median']} / {send[n]['p99']}" if n in send else "-"  # noqa: E731
        res = lv["bootbench"].get("resources", {})
        lines.append(f"| {_label(lv)} | {wait('probe', 'session_ready')} | {wait('probe', 'audio')} | "
                     f"{wait('raw', 'session_ready')} | {wait('raw', 'audio')} | {srv('session_ready')} | "
                     f"{srv('audio')} | {res.get('client_cores')} | {res.get('client_cpu_ms_per_cycle')} | "
                     f"{res.get('client_rss_mib')} | {res.get('server_cores')} | {res.get('other_cores')} |")
    lines += ["", "## session_start_ms error (|error| median / p99 / max, ms)", "",
              "Includes the `start_call` and `session_ready` transits by definition (the server's interval "
              "starts when it has the request and ends before it sends the answer).", "",
              "| users | bootbench | raw | wire |", "| --- | --- | --- | --- |"]
    for lv in results["levels"]:
        lines.append(f"| {_label(lv)} | {_cell(lv['bootbench']['session_start_error'])} | "
                     f"{_cell(lv['raw']['session_start_error'])} | {_cell(lv['wire']['session_start_error'])} |")
    one = next((lv for lv in results["levels"] if lv["users"] == 1 and not lv["realtime"]), None)
    if one and one["bootbench"].get("efficiency"):
        lines += ["", f"## Efficiency at 1 user ({one['iterations']} iterations)", "",
                  "W = from the server's receipt of the first `start_call` to its receipt of the last "
                  "(`t_ns.start_received`, the server's monotonic clock): N-1 complete cycles, each with its "
                  "stop round trip, bookkeeping, wait and next ticket. Ideal = those cycles' injected setup and "
                  "first-audio delays plus the 100 ms waits. Efficiency = ideal / W. Connecting is not in it "
                  "(done ahead, once); neither are Locust's start-up and shutdown. Overhead per cycle, split on "
                  "the server's clock (ms): the server's timers firing late (`setup late`, `audio late`); "
                  "`ready -> input`: session_ready delivery, client turn-around and the 1 s audio upload; "
                  "`audio -> stop`: audio delivery, client turn-around, stop_call transit; `ended -> next`: "
                  "session_ended delivery, the harness's bookkeeping, the wait's overshoot, ticket, start_call "
                  "transit.", "",
                  "| client | cycles | W ms | ideal ms | efficiency | overhead ms/cycle | setup late | "
                  "ready -> input | audio late | audio -> stop | stop -> ended | ended -> next |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        rt = next((lv for lv in results["levels"] if lv["users"] == 1 and lv["realtime"]), None)
        for level, kind in [(one, k) for k in ("bootbench", "raw", "wire")] + \
                [(rt, k) for k in ("bootbench", "raw", "wire") if rt]:
            e = level[kind].get("efficiency")
            if not e:
                continue
            p = e["overhead_parts_ms"]
            lines.append(f"| {kind}{' (SCHED_FIFO)' if level['realtime'] else ''} | {e['cycles']} | {e['wall_ms']} | {e['ideal_ms']} | {e['efficiency']} | "
                         f"{e['overhead_ms_per_cycle']} | {p['setup_timer_late']} | {p['ready_to_input']} | "
                         f"{p['audio_timer_late']} | {p['audio_to_stop']} | {p['stop_to_ended']} | "
                         f"{p['ended_to_next_start']} |")
        check = one["bootbench"]["efficiency"].get("wall_ms_from_samples_started_at")
        lines += ["", f"Cross-check: bootbench's W from its samples' `started_at` labels (wall clock, ms "
                  f"resolution): {check} ms."]
    lines += ["", "## Scale: one worker process", ""]
    lines.append(f"Largest tested level whose steady-state p99 |error| stays under {SCALE_LIMIT_MS:g} ms, with the "
                 "bootbench worker's CPU and memory there (steady part of the run; RSS per session is the growth "
                 "over the 1-user run).")
    lines.append("")
    for key, what in (("against_truth", "error against the truth"),
                      ("client_side", "client-side error (what the harness process adds)")):
        sc = results["scale"][key]
        if sc.get("users"):
            lines.append(f"- By {what}, p99 under {SCALE_LIMIT_MS:g} ms: **{sc['users']} users** "
                         f"(p99 {sc['p99_abs_ms']} ms; next level tried: {sc['first_failing']}). There the worker "
                         f"used {sc['client_cores']} cores: {sc['cpu_percent_of_core_per_session']} % of one core "
                         f"and {sc['rss_kib_per_session']} KiB RSS per session, {sc['client_cpu_ms_per_cycle']} ms "
                         f"CPU per cycle, {sc['client_rss_mib']} MiB RSS in all.")
        else:
            lines.append(f"- By {what}: no tested level had p99 under {SCALE_LIMIT_MS:g} ms "
                         f"(not even {sc.get('first_failing')} user(s)).")
    lines += ["", "## Targets", "", "| target | value | goal | met |", "| --- | --- | --- | --- |"]
    for name, v in results["verdicts"].items():
        lines.append(f"| {name} | {v['value']} | {'>' if name.startswith('efficiency') else '<'} {v['target']} | "
                     f"{'yes' if v['met'] else 'no'} |")
    lines.append("")
    return "\n".join(lines)


def report(results: dict, out: Path) -> int:
    """Judge the levels, write results.json and RESULTS.md, print the Markdown."""
    one = next((lv for lv in results["levels"] if lv["users"] == 1 and not lv["realtime"]), None)
    eff = one["bootbench"].get("efficiency", {}) if one else {}
    results["scale"] = scale(results["levels"])
    results["verdicts"] = verdicts(results["levels"], eff)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    kept = kept_sections(out / "RESULTS.md")
    (out / "RESULTS.md").write_text(markdown(results) + ("\n" + kept if kept else ""))
    print(markdown(results))
    return 0


def kept_sections(path: Path) -> str:
    """The part of an existing RESULTS.md written by hand or by other bench scripts (from CLOCK_HEADING or
    CAPACITY_HEADING on), or ""."""
    text = path.read_text() if path.is_file() else ""
    found = [at for at in (text.find("\n" + heading) for heading in (CLOCK_HEADING, CAPACITY_HEADING)) if at >= 0]
    return text[min(found) + 1:] if found else ""

