"""Nothing lost, nobody let in: faults of the service, bad input, and secrets, through real headless Locust runs.

Most tests read one run per protocol (``matrices``, see tests/support/fault_matrix.py): a
reference server striking every other session with one fault each, in that
protocol's words, one Locust user going through all of them with a 1 s timeout
and a recognisable fake key. At one user sessions are sequential, so iteration
N is the server's session N. The protocols are the server's table
(``bootbench.server.protocols``) that bootbench drives: a new one joins with its
fault forms. Its first protocol's run (``PROCESS_RUN``, the real ``locust``
command) is in ``make test-quick`` as it always was; the others are ``slow``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bootbench.server.faults import KINDS, FaultNotPlayable, FaultPlan, parse_fault, served_forms
from bootbench.server.launcher import ReferenceServer
from support.fault_matrix import (DIFFERENCES, LEAK_KEY, PROCESS_RUN, MatrixRun, cases, fault_texts, forms, missing,
                                  protocols, readme_tables, run_matrices, session_of, table)
from support.processes import LOCUST, LOCUSTFILE, ROOT, clean_env, free_port, locust_process, read_jsonl, stop_process, wait_for_samples

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

TIMING_TOLERANCE_MS = 10


def by_protocol(*names: str) -> list:
    """``names`` as parameters, the matrices other than :data:`PROCESS_RUN`'s marked ``slow``."""
    return [pytest.param(name, marks=() if name == PROCESS_RUN else pytest.mark.slow, id=name) for name in names]


def each_case() -> list:
    return [pytest.param(protocol, index, case, marks=pytest.mark.slow, id=f"{protocol}-{case.fault}")
            for protocol in protocols() for index, case in enumerate(cases(protocol))]


PROTOCOLS = by_protocol(*protocols())


@pytest.fixture(scope="module")
def matrices(tmp_path_factory):
    """Factory: the matrix run of a protocol (run on first use, then kept for the module).

    The first use of an in-process protocol's matrix runs every in-process protocol's, side by side
    (``run_matrices``); :data:`PROCESS_RUN`'s runs alone.
    """
    runs: dict[str, MatrixRun] = {}

    def matrix(protocol: str) -> MatrixRun:
        if protocol not in runs:
            wanted = [protocol] if protocol == PROCESS_RUN else \
                [p for p in protocols() if p != PROCESS_RUN and p not in runs]
            runs.update(run_matrices({p: tmp_path_factory.mktemp(f"matrix-{p}") for p in wanted}))
        return runs[protocol]

    return matrix


# ---------------------------------------------------------------- each fault, on each protocol


@pytest.mark.parametrize("protocol, index, case", each_case())
def test_each_fault_is_recorded_with_its_error_kind_and_the_servers_words(matrices, protocol, index, case):
    matrix = matrices(protocol)
    iteration = session_of(index)
    assert matrix.session(iteration)["fault"] == forms(protocol).resolve(parse_fault(case.fault)).record()
    sample = matrix.sample(iteration)
    if case.kind is None:
        assert sample["ok"], sample
        assert (sample["first_audible_ms"] is not None) == case.audible, sample
    else:
        assert (sample["ok"], sample["error_kind"]) == (False, case.kind), sample
        assert case.words in sample["error"]
        assert sample["first_response_ms"] is None and sample["cold_start_ms"] is None
    assert sample["anomalies"] == case.anomalies
    following = matrix.sample(iteration + 1)
    assert following["ok"], f"the cycle did not recover after {case.fault}: {following}"
    assert following["anomalies"] == case.next_anomalies


@pytest.mark.parametrize("protocol", by_protocol(*protocols()))
def test_stray_audio_is_an_anomaly_never_the_answer(matrices, protocol):
    matrix = matrices(protocol)
    strays = [i for i, c in enumerate(matrix.cases)
              if c.fault.startswith("stray") and (c.anomalies or c.next_anomalies)]
    if not strays:
        pytest.skip(f"{protocol}'s stray audio never reaches a one-turn session (no form, or a later turn)")
    (index,) = strays
    struck = [n for n in (session_of(index), session_of(index) + 1) if matrix.sample(n)["anomalies"]]
    assert len(struck) == 1, [matrix.sample(n) for n in (session_of(index), session_of(index) + 1)]
    sample, truth = matrix.sample(struck[0]), matrix.session(struck[0])
    assert sample["anomalies"] == {"audio_before_ready": 3}
    # the strays arrived before the session was ready; taken as the answer, first_response_ms would be ~0 or negative
    assert sample["first_response_ms"] == pytest.approx(truth["measured"]["first_response_ms"], abs=TIMING_TOLERANCE_MS)
    assert matrix.metrics["errors"]["anomalies"]["audio_before_ready"] == 3


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_run_reaches_its_n_iterations_and_counts_and_lists_every_failure(matrices, protocol):
    matrix = matrices(protocol)
    assert matrix.returncode == 1, matrix.stderr[-3000:]
    metrics = matrix.metrics
    budget = metrics["run"]["iterations"]
    assert (budget["planned"], budget["finished"], budget["complete"]) == (matrix.iterations, matrix.iterations, True)
    assert metrics["run"]["aborted"] is None
    expected = Counter(c.kind for c in matrix.cases if c.kind)
    assert metrics["errors"]["by_kind"] == dict(expected)
    assert metrics["summary"]["failures"] == sum(expected.values())
    failed = [session_of(i) for i, c in enumerate(matrix.cases) if c.kind]
    assert [e["iteration"] for e in metrics["errors"]["first"]] == failed[:20]
    assert all(e["message"] for e in metrics["errors"]["first"])
    if protocol == PROCESS_RUN:
        locust_stats = json.loads((matrix.results_dir.parent / "locust.json").read_text())  # Locust's own count
        assert sum(entry["num_failures"] for entry in locust_stats) == sum(expected.values())
    assert "Traceback" not in matrix.stderr


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_successful_iteration_matches_the_servers_ground_truth(matrices, protocol):
    matrix = matrices(protocol)
    successes = [s for s in matrix.metrics["samples"] if s["ok"]]
    assert len(successes) == matrix.iterations - sum(1 for c in matrix.cases if c.kind)
    for sample in successes:
        measured = matrix.session(sample["iteration"])["measured"]
        assert sample["first_response_ms"] == pytest.approx(measured["first_response_ms"], abs=TIMING_TOLERANCE_MS), \
            sample["iteration"]
        assert sample["session_start_ms"] == pytest.approx(measured["session_start_ms"], abs=TIMING_TOLERANCE_MS), \
            sample["iteration"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_client_commits_no_protocol_violation_while_faults_fly(matrices, protocol):
    matrix = matrices(protocol)
    assert len([t for t in matrix.truth if t["session"] is not None]) == matrix.iterations
    assert [t for t in matrix.truth if t["violation_count"]] == []
    assert [t for t in matrix.truth if t["note_count"]] == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_output_of_any_fault_contains_the_api_key(matrices, protocol):
    matrix = matrices(protocol)
    files = [p for p in matrix.results_dir.parent.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"metrics.json", "samples.jsonl", "samples.csv", "summary.csv", "report.html", "truth.jsonl"} <= names
    assert any(p.name.startswith("boot_") and p.suffix == ".log" for p in files)
    if protocol == PROCESS_RUN:
        assert {"locust.html", "locust.json", "locust_stats.csv", "locust_failures.csv"} <= names
    outputs = {"stdout": matrix.stdout, "stderr": matrix.stderr, "server stderr": matrix.server_stderr,
               **{str(p): p.read_text(errors="replace") for p in files}}
    assert [where for where, text in outputs.items() if LEAK_KEY in text] == []
    echoed = [i for i, c in enumerate(matrix.cases) if "echo=yes" in c.fault]
    # where the server's words quoted the key (echo=yes), it left the client only as ***
    assert all("***" in matrix.sample(session_of(i))["error"] for i in echoed)
    if echoed and protocol == PROCESS_RUN:
        assert "(key: ***)" in (matrix.results_dir.parent / "locust_failures.csv").read_text()
        assert "(key: ***)" in matrix.stderr  # Locust's error report


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_readme_fault_table_is_the_one_this_run_recorded(matrices, protocol):
    assert (readme_tables() or {}).get(protocol) == table(matrices(protocol)), \
        "regenerate it: python tests/support/fault_matrix.py --readme"


# ---------------------------------------------------------------- what each protocol plays


def test_every_protocol_has_a_form_of_every_kind_or_says_why():
    from bootbench.server import protocols as table

    for name, protocol_forms in served_forms(table.factories()).items():
        for kind, (_, options) in KINDS.items():
            played = [text for text in fault_texts(protocol_forms)
                      if text.split(":")[0] == kind and protocol_forms.why_not(parse_fault(text)) is None]
            assert played or protocol_forms.missing.get(kind), f"{name} neither plays {kind} nor says why"
            for option_name, option in options.items():
                if option.own and kind not in protocol_forms.missing:
                    assert protocol_forms.words.get(option_name), f"{name} has no words for {kind}'s {option_name}"


def test_the_matrix_expects_only_faults_it_plays_and_lists_the_others():
    for protocol in protocols():
        texts = fault_texts(forms(protocol))
        assert set(DIFFERENCES.get(protocol, {})) <= set(texts), f"{protocol}: an expectation for a fault not run"
        assert {c.fault for c in cases(protocol)} | {t for t, _ in missing(protocol)} == set(texts)
    assert missing("gemini") == [("auth:echo=yes", "Google's close reasons never quote the key"),
                                 ("error:echo=yes", "Google's close reasons never quote the key")]


def test_an_auth_fault_drawn_after_openais_upgrade_is_refused_in_the_services_words(reference_server):
    """At several users an upgrade may be accepted before its session draws an ``auth`` fault: the key is then
    refused the way the service did after an upgrade (an ``error`` event, then close 3000)."""
    import websocket

    server = reference_server(setup_delay=5, first_audio_delay=5, cold_penalty=0,
                              extra_args=["--fault", "auth:protocol=openai:at=2"])
    url = server.url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime"
    first, second = (websocket.create_connection(url, header=["Authorization: Bearer k-1"], timeout=5)
                     for _ in range(2))   # both upgrades before any session: neither draws session 2
    try:
        for ws in (first, second):
            assert json.loads(ws.recv())["type"] == "session.created"
        first.send(json.dumps({"type": "input_audio_buffer.clear"}))   # opens session 1
        assert json.loads(first.recv())["type"] == "input_audio_buffer.cleared"
        second.send(json.dumps({"type": "input_audio_buffer.clear"}))  # opens session 2: the auth fault
        error = json.loads(second.recv())
        assert (error["type"], error["error"]["code"]) == ("error", "invalid_api_key")
        opcode, frame = second.recv_data()
        assert (opcode, int.from_bytes(frame[:2], "big"), frame[2:]) == (
            websocket.ABNF.OPCODE_CLOSE, 3000, b"invalid_request_error.invalid_api_key")
    finally:
        first.close()
        second.close()
    server.stop()
    outcomes = {t["session"]: (t["outcome"], t["fault"]) for t in read_jsonl(server.ground_truth)
                if t["session"] is not None}
    assert outcomes[2] == ("auth_failed", {"kind": "auth", "echo": "no"})


# ---------------------------------------------------------------- the server dies


def test_a_server_killed_and_restarted_mid_run_costs_only_the_iterations_it_was_down(reference_server, tmp_path):
    port = free_port()
    delays = dict(setup_delay=20, first_audio_delay=40, cold_penalty=0, reply_ms=200, port=port)
    first = reference_server(**delays)
    proc = locust_process("--headless", "-u", "1", "-i", "30", "-H", first.url, "--timeout", "1", "--wait-ms", "50",
                          "--results-dir", str(tmp_path / "r"), cwd=tmp_path, log=tmp_path / "out.log")
    try:
        assert wait_for_samples(tmp_path / "r", 8, timeout=30), "the run did not get going"
        first.process.kill()
        first.process.wait()
        time.sleep(0.3)
        second = reference_server(**delays)
        code = proc.wait(60)
    finally:
        proc.kill()
    assert code == 1, (tmp_path / "out.log").read_text()[-3000:]
    (folder,) = (tmp_path / "r").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    budget = metrics["run"]["iterations"]
    assert (budget["finished"], budget["complete"], metrics["run"]["aborted"]) == (30, True, None)
    samples = metrics["samples"]
    failures = [s for s in samples if not s["ok"]]
    assert 1 <= len(failures) <= 8
    assert {s["error_kind"] for s in failures} <= {"disconnected", "connect_failed"}
    back = next(s for s in samples if s["ok"] and s["iteration"] > failures[-1]["iteration"])
    assert back["connected_this_cycle"] and back["connect_ms"] > 0
    assert all(s["ok"] for s in samples if s["iteration"] > failures[-1]["iteration"])
    # every success matches a session of the server that served it (a session cut by the kill has no line)
    before = [t for t in read_jsonl(first.ground_truth) if t["outcome"] == "ok"]
    after = [t for t in read_jsonl(second.ground_truth) if t["outcome"] == "ok"]
    successes = [s for s in samples if s["ok"]]
    assert len(successes) - len(before) - len(after) in (0, 1)
    pairs = list(zip(successes, before)) + list(zip(successes[len(successes) - len(after):], after))
    for sample, truth in pairs:
        assert sample["first_response_ms"] == pytest.approx(truth["measured"]["first_response_ms"],
                                                            abs=TIMING_TOLERANCE_MS)


# ---------------------------------------------------------------- bad input: one sentence, exit code 2


def without_root_file_powers() -> None:
    """preexec_fn: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so root meets file permissions like anyone."""
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def bad_input_run(tmp_path: Path, *args: str, as_anyone: bool = False) -> subprocess.CompletedProcess:
    preexec = without_root_file_powers if as_anyone and os.geteuid() == 0 else None
    try:
        return subprocess.run([*LOCUST, "-f", str(LOCUSTFILE), "--headless", "-u", "1", *args], cwd=tmp_path,
                              env=clean_env(), capture_output=True, text=True, timeout=60, preexec_fn=preexec)
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot run without root's file permissions here: {exc}")


def sentences(stderr: str) -> list[str]:
    """bootbench's sentences, and Locust's argparse errors (``locust: error: ...``, ``__main__.py: error: ...``)."""
    return [line for line in stderr.splitlines() if line.startswith("bootbench:") or ": error: " in line]


@pytest.mark.parametrize("args, sentence", [
    (["--no-such-option"], "error: unrecognized arguments: --no-such-option"),
    (["--timeout", "soon"], "error: argument --timeout: invalid float value: 'soon'"),
    (["--timeout", "0"], "bootbench: --timeout must be a positive number of seconds, not 0"),
    (["-i", "-5"], "bootbench: --iterations must be a positive number (or 0 for no limit), not -5"),
    (["--provider", "skype"], "bootbench: unknown provider 'skype'; choose one of"),
    (["-H", "sts.example.com"], "bootbench: host 'sts.example.com' is not a URL"),
    (["-H", "wss://sts.aivoco.example"], "bootbench: AIVOCO_API_KEY is not set"),
    (["--audio", "empty"], "bootbench: audio folder empty holds no audio files"),
    (["--audio", "missing.wav"], "bootbench: audio file missing.wav does not exist"),
    (["--audio", "notes.wav"], "bootbench: audio file notes.wav is not in an audio format bootbench can read"),
    (["--results-dir", "locust.log/runs"], "bootbench: results folder locust.log/runs is not writable"),
])
def test_bad_input_is_one_sentence_and_exit_code_2_before_anything_starts(refusals, tmp_path, args, sentence):
    # in-process (tests/support/refusals.py); the real command's exit code 2: tests/test_bad_input.py and below
    (tmp_path / "locust.log").write_text("a file, not a folder")
    (tmp_path / "notes.wav").write_text("these are not samples")
    (tmp_path / "empty").mkdir()
    line = refusals.line("--headless", "-u", "1", *args)
    assert sentence in line
    assert not (tmp_path / "results").exists()


def test_an_unreadable_audio_file_is_one_sentence_and_exit_code_2(tmp_path):
    audio = tmp_path / "locked.wav"
    audio.write_bytes(b"RIFF")
    audio.chmod(0)
    run = bad_input_run(tmp_path, "--audio", str(audio), as_anyone=True)
    assert run.returncode == 2
    assert sentences(run.stderr) == [f"bootbench: audio file {audio} cannot be read (permission denied)"]
    assert not (tmp_path / "results").exists()


def test_an_unwritable_results_folder_is_one_sentence_and_exit_code_2(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    run = bad_input_run(tmp_path, "--results-dir", str(locked / "runs"), as_anyone=True)
    assert run.returncode == 2
    assert sentences(run.stderr) == [f"bootbench: results folder {locked / 'runs'} is not writable (Permission denied)"]
    assert list(locked.iterdir()) == []


# ---------------------------------------------------------------- nobody let in


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table_path, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table_path).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, bytes.fromhex(address)[::-1]))
                else:
                    raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, 32, 8))
                    found.add(socket.inet_ntop(socket.AF_INET6, raw))
    return found


@pytest.mark.slow
def test_everything_bootbench_opens_listens_on_127_0_0_1_unless_told_otherwise(tmp_path):
    with ReferenceServer.start() as server:  # what the embedded server runs
        assert listening_addresses(server.port) == {"127.0.0.1"}
    web, master = free_port(), free_port()
    proc = locust_process("--master", "--web-port", str(web), "--master-bind-port", str(master), cwd=tmp_path,
                          log=tmp_path / "master.log")
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (listening_addresses(web) and listening_addresses(master)):
            time.sleep(0.05)
        assert listening_addresses(web) == {"127.0.0.1"}
        assert listening_addresses(master) == {"127.0.0.1"}
    finally:
        stop_process(proc, signal.SIGTERM, 10)


# ---------------------------------------------------------------- the fault plan


@pytest.mark.parametrize("spec, reason", [
    ("crash", "unknown kind 'crash' (use auth, error, never_ready, silence, silent_audio, drop, end, malformed, stray, "
              "slow)"),
    ("error:type=Teapot", "type must be a word of lowercase letters, digits and underscores, not 'Teapot'"),
    ("drop:how=rst", "drop has no option 'how' (it takes when, protocol, rate, every, at)"),
    ("error:when=mid_reply", "when must be one of before_ready, after_input"),
    ("slow:phase=audio", "slow needs ms=..."),
    ("silence:rate=1.5", "rate must be a number above 0 and at most 1, not '1.5'"),
    ("silence:at=2,x", "at must be a whole number, not 'x'"),
    ("silence:at=2:every=3", "give only one of rate, every and at"),
    ("silence:every", "'every' is not OPTION=VALUE"),
])
def test_a_bad_fault_spec_is_one_sentence(spec, reason):
    with pytest.raises(ValueError) as caught:
        parse_fault(spec)
    assert str(caught.value) == f"invalid fault {spec!r}: {reason}"


def server_forms() -> dict:
    from bootbench.server import protocols as table

    return served_forms(table.factories())


@pytest.mark.parametrize("spec, reason", [
    ("error:type=teapot:protocol=openai,gemini",
     "no form of it on gemini: its type is one of resource_exhausted, quota_exceeded, internal, not_found, "
     "invalid_argument; openai: its type is one of rate_limit_exceeded, inference_rate_limit_exceeded, "
     "insufficient_quota, server_error, invalid_api_key"),
    ("end:reason=go_away:protocol=openai", "no form of it on openai: its reason is one of session_expired"),
    ("auth:echo=yes:protocol=gemini,aivoco", "no form of it on gemini: Google's close reasons never quote the key"),
])
def test_a_fault_a_named_protocol_cannot_play_is_refused_in_one_sentence(spec, reason):
    with pytest.raises(FaultNotPlayable) as caught:
        FaultPlan([parse_fault(spec)], forms=server_forms())
    assert str(caught.value) == f"invalid fault {spec!r}: {reason}"


def test_a_fault_no_protocol_can_play_or_naming_an_unknown_one_is_refused_with_every_protocols_reason():
    forms = server_forms()
    with pytest.raises(FaultNotPlayable) as caught:
        FaultPlan([parse_fault("error:type=teapot")], forms=forms)
    sentence = str(caught.value)
    assert sentence.startswith("invalid fault 'error:type=teapot': no protocol of this server has a form of it (")
    assert [part.split(":")[0] for part in sentence.split("(", 1)[1].split("; ")] == list(forms)
    assert "aivoco: its type is one of rate_limit_exceeded, insufficient_credits, invalid_api_key;" in sentence
    with pytest.raises(FaultNotPlayable) as caught:
        FaultPlan([parse_fault("silence:protocol=skype")], forms=forms)
    assert str(caught.value) == (f"invalid fault 'silence:protocol=skype': this server has no protocol 'skype' "
                                 f"(it serves {', '.join(forms)})")


def test_a_fault_strikes_only_the_protocols_with_a_form_of_it_in_their_own_words():
    plan = FaultPlan([parse_fault(s) for s in ("auth:echo=yes:at=2", "error:every=3", "end:protocol=gemini:at=4")],
                     forms=server_forms())
    assert plan.pick(2, "gemini") is None                       # Google never quotes the key
    assert plan.pick(2, "aivoco").record() == {"kind": "auth", "echo": "yes"}
    assert [plan.pick(3, p).record()["type"] for p in ("aivoco", "openai", "gemini")] == [
        "rate_limit_exceeded", "rate_limit_exceeded", "resource_exhausted"]   # each protocol's default words
    assert plan.pick(4, "gemini").record() == {"kind": "end", "reason": "go_away"}
    assert plan.pick(4, "openai") is None and plan.pick(4, "aivoco") is None
    assert "gemini (Google's close reasons never quote the key)" in plan.describe()
    assert plan.pick(3, "xai") is None   # xAI's error words are not known: no form


def test_the_server_refuses_a_bad_fault_with_one_line_and_exit_code_2(tmp_path):
    truth = tmp_path / "truth.jsonl"
    for spec, line in [
        ("drop:when=never", "invalid fault 'drop:when=never': when must be one of before_ready, after_input, "
                            "mid_reply"),
        ("stray:protocol=aivoco,gemini:chunks=x", "invalid fault 'stray:protocol=aivoco,gemini:chunks=x': chunks must "
                                                  "be a whole number, not 'x'"),
        ("end:reason=session_expired:protocol=gemini", "invalid fault 'end:reason=session_expired:protocol=gemini': "
                                                       "no form of it on gemini: its reason is one of go_away"),
    ]:
        result = subprocess.run([sys.executable, "-m", "bootbench.server", "--port", "0", "--ground-truth", str(truth),
                                 "--fault", spec], capture_output=True, text=True, timeout=20, cwd=ROOT)
        assert (result.returncode, result.stdout) == (2, "")
        assert result.stderr.strip().splitlines() == [f"python -m bootbench.server: error: argument --fault: {line}"]
    assert not truth.exists()   # nothing started


def test_the_fault_plan_strikes_the_chosen_sessions_first_spec_first_and_rates_by_seed():
    def kinds(specs: list[str], seed: int) -> list[str | None]:
        plan = FaultPlan([parse_fault(s) for s in specs], seed=seed)
        return [fault.kind if fault else None for fault in map(plan.pick, range(1, 301))]

    mixed = kinds(["auth:at=3,7", "silence:every=3", "stray:rate=0.5"], seed=4)
    assert mixed[2] == mixed[6] == "auth"
    assert all(mixed[n - 1] == "silence" for n in range(6, 301, 3))
    assert mixed == kinds(["auth:at=3,7", "silence:every=3", "stray:rate=0.5"], seed=4)
    alone = kinds(["stray:rate=0.5"], seed=4)
    assert 110 < alone.count("stray") < 190
    assert alone != kinds(["stray:rate=0.5"], seed=5)
    # a rate spec's draw depends on the session alone, so sessions taken by earlier specs do not shift its choices
    quiet = kinds(["auth:at=9999", "silence:at=9999", "stray:rate=0.5"], seed=4)
    assert [m if m == "stray" else None for m in mixed] == [q if m not in ("auth", "silence") else None
                                                           for m, q in zip(mixed, quiet)]
    # asking which fault a session will draw draws nothing (OpenAI asks at the upgrade, before the session exists)
    plan = FaultPlan([parse_fault("stray:rate=0.5")], seed=4)
    assert [plan.pick(n) for n in range(1, 301)] == [plan.pick(n) for n in range(1, 301)]
    assert parse_fault("drop:when=mid_reply:at=2").record() == {"kind": "drop", "when": "mid_reply"}


# ---------------------------------------------------------------- the drivers pass the service's words on


def test_a_failed_openai_answer_fails_its_iteration_with_the_services_error_not_a_timeout():
    from bootbench.audio import Stimulus
    from bootbench.providers.base import DriverConfig
    from bootbench.providers.openai_realtime import OpenAIRealtimeDriver
    from bootbench.server.protocols.openai.faults import error_object

    driver = OpenAIRealtimeDriver(DriverConfig(url="ws://127.0.0.1:9", api_key="k"), Stimulus.sine())
    driver._asked, driver._answer, driver._unasked, driver._retry_create, driver._phases = True, None, set(), False, {}
    driver.session = driver.new_session(1)
    driver.session.ready_ns = 1
    error = {k: v for k, v in error_object("insufficient_quota").items() if k in ("type", "code", "message")}
    driver.on_message({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}, 10)
    driver.on_message({"type": "response.done", "response": {"id": "resp_1", "status": "failed", "status_details": {
        "type": "failed", "error": error}}}, 20)
    failure = driver.session.failure
    assert failure is not None and failure.kind == "server_error"
    assert failure.message == f"insufficient_quota: {error['message']}"
    assert driver.session.audio.is_set()   # the cycle stops waiting for audio at once


@pytest.mark.parametrize("data, failure", [
    (12345, "a modelTurn audio part whose data is int, not base64 text"),
    ("%%not*base64%%AAAA", "a modelTurn audio part whose data is not base64"),
    ("AAAAAP__", None),                      # URL-safe, unpadded: protobuf JSON allows both
    ("AAAAAP//", None),
])
def test_gemini_audio_that_is_not_base64_fails_the_iteration_instead_of_being_the_answer(data, failure):
    from bootbench.audio import Stimulus
    from bootbench.providers.base import DriverConfig
    from bootbench.providers.gemini_live import GeminiLiveDriver

    driver = GeminiLiveDriver(DriverConfig(url="ws://127.0.0.1:9", api_key="k"), Stimulus.sine())
    driver._turn_over, driver._model_turn = True, None
    driver.session = driver.new_session(1)
    driver.session.ready_ns = 1
    part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": data}}
    driver.on_message({"serverContent": {"modelTurn": {"parts": [part]}}}, 20)
    session = driver.session
    if failure is None:
        assert session.failure is None and session.first_audio_ns == 20
    else:
        assert (session.failure.kind, session.failure.message) == ("protocol_error", failure)
        assert session.first_audio_ns is None


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_audio_too_large_for_a_streamed_chunk_fails_the_iteration_instead_of_being_timed(provider):
    """An 8 MiB audio message arrived ~300 ms after the server began sending it: stamped as the first audio, that
    transfer would be measured as the service's latency. Aivoco's driver refuses it too (limit 1 MiB)."""
    from bootbench.audio import Stimulus
    from bootbench.providers.base import DriverConfig
    from bootbench.providers.gemini_live import GeminiLiveDriver
    from bootbench.providers.openai_realtime import OpenAIRealtimeDriver

    driver = (OpenAIRealtimeDriver if provider == "openai" else GeminiLiveDriver)(
        DriverConfig(url="ws://127.0.0.1:9", api_key="k"), Stimulus.sine())
    driver._asked, driver._answer, driver._unasked, driver._retry_create, driver._phases = True, None, set(), False, {}
    driver._turn_over, driver._model_turn = True, None
    driver.session = driver.new_session(1)
    driver.session.ready_ns = 1
    huge = "A" * (8 << 20)
    if provider == "openai":
        driver.on_message({"type": "response.created", "response": {"id": "resp_1"}}, 10)
        driver.on_message({"type": "response.output_audio.delta", "response_id": "resp_1", "delta": huge}, 20)
        what = "response.output_audio.delta audio"
    else:
        part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": huge}}
        driver.on_message({"serverContent": {"modelTurn": {"parts": [part]}}}, 20)
        what = "a modelTurn audio part"
    failure = driver.session.failure
    assert (failure.kind, failure.message) == ("protocol_error",
                                               f"{what} of 8.0 MiB is not a streamed chunk (limit 1 MiB)")
    assert driver.session.first_audio_ns is None
