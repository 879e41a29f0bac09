"""Recorded replies (``--record-replies``) and their audio cross-check (``bootbench verify``).

In-process runs against a reference server that starts every reply with 230 ms of noise (its ground truth says
so per session): the kept WAV files decode, their audible start is where the server put it, and ``verify``
recomputes the live figures from them; edited recordings (the onset moved, the audio silenced, the file
broken) make it fail naming the iteration. The choice of replies, the report's players, a master with a worker.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gevent
import numpy as np
import pytest
import soundfile

from support.browser import Browser, require_chromium
from support.cli import bootbench
from support.ground_truth import PROVIDER_ARGS, SHARED_LEADING_MS, SHARED_RUN_SERVER, ground_truth_run
from support.inprocess import environment, finish, init, run_to_end
from support.processes import free_port
from support.provider_table import BUILTINS, key_variable

from bootbench.providers.base import SessionState
from bootbench.replies import INDEX_FILE, REPLIES_DIR, Reply, ReplySpool, choose, wav_name
from bootbench.samples import Sample
from bootbench.views.verify import onset

pytestmark = pytest.mark.truth  # held to the reference server's ground truth within milliseconds

RATE = 24_000
DBFS = -50.0


def recorded_run(server, folder: Path, provider: str, *args: str, users: int = 1):
    return ground_truth_run(server, folder, "--provider", provider, *PROVIDER_ARGS.get(provider, ()), *args,
                            users=users, environ={key_variable(provider): "k-123456"})


def index_of(folder: Path) -> dict:
    return json.loads((folder / REPLIES_DIR / INDEX_FILE).read_text())


def onset_ms(path: Path) -> float | None:
    pcm, rate = soundfile.read(path, dtype="float64")
    found = onset(pcm, rate, DBFS)
    return None if found is None else found * 1000 / rate


@pytest.fixture(scope="module")
def openai_run(shared_reference_server, tmp_path_factory):
    """Six iterations of two OpenAI users, three replies kept."""
    server = shared_reference_server(**SHARED_RUN_SERVER)
    return recorded_run(server, tmp_path_factory.mktemp("replies"), "openai", "-i", "6", "--record-replies", "3",
                        users=2)


def test_the_kept_replies_are_the_slowest_the_median_and_one_more_and_decode_where_the_server_began_to_speak(
        openai_run):
    run, folder = openai_run, openai_run.folder
    assert run.exit_code == 0 and run.metrics["run"]["record_replies"] == 3
    index = index_of(folder)
    files = sorted(p.name for p in (folder / REPLIES_DIR).iterdir())
    assert files == sorted([INDEX_FILE, *(entry["wav"] for entry in index["replies"])]), "the spool is gone"
    assert len(index["replies"]) == 3 and index["recorded"] == 6
    samples = {s["iteration"]: s for s in run.samples}
    ranked = sorted(samples.values(), key=lambda s: (s["first_audible_ms"], s["iteration"]))
    roles = {entry["role"]: entry["iteration"] for entry in index["replies"]}
    assert roles["slowest"] == ranked[-1]["iteration"] and roles["median"] == ranked[2]["iteration"]
    assert set(roles) == {"slowest", "median", "sample"}
    truth = {session["sid"]: session for session in run.sessions}
    assert all(session["injected"]["leading_silence_ms"] == SHARED_LEADING_MS for session in truth.values())
    for entry in index["replies"]:
        sample = samples[entry["iteration"]]
        assert entry["wav"] == wav_name(entry["iteration"]) and entry["clip"] == sample["clip"] == "sine"
        assert (entry["first_audible_ms"], entry["leading_silence_ms"]) == (sample["first_audible_ms"],
                                                                           sample["leading_silence_ms"])
        pcm, rate = soundfile.read(folder / REPLIES_DIR / entry["wav"], dtype="int16")
        assert rate == RATE and len(pcm) * 2 == sum(entry["chunk_bytes"]) > 0
        assert entry["chunk_arrival_ns"][0] == 0 and entry["chunk_arrival_ns"] == sorted(entry["chunk_arrival_ns"])
        # the server's noise ends and its tone starts 230 ms into the reply: found within a sample or two
        assert SHARED_LEADING_MS <= onset_ms(folder / REPLIES_DIR / entry["wav"]) <= SHARED_LEADING_MS + 0.2
        # what arrived until the stop: the reply is kept at least until it became audible
        assert len(pcm) / rate * 1000 >= SHARED_LEADING_MS


def test_verify_agrees_with_the_live_figures_and_prints_each_difference(openai_run):
    done = bootbench("verify", str(openai_run.folder))
    assert done.returncode == 0, done.stderr
    iterations = [entry["iteration"] for entry in index_of(openai_run.folder)["replies"]]
    rows = done.stdout.splitlines()[1:-1]
    assert [int(row.split()[0]) for row in rows] == iterations
    for row in rows:
        cells = row.split()
        live, recomputed, difference = (float(cells[i]) for i in (3, 4, 5))
        assert abs(recomputed - live) <= 0.01 and abs(difference) <= 0.01 and cells[-1] == "ok"
        assert SHARED_LEADING_MS <= float(cells[7]) <= SHARED_LEADING_MS + 30  # leading silence, recomputed
    assert done.stdout.splitlines()[-1] == "all 3 recorded replies agree with the live figures within 2 ms"


def tampered(folder: Path, tmp_path: Path, edit) -> tuple[Path, int]:
    """A copy of ``folder`` whose slowest reply was edited by ``edit(pcm int16) -> pcm``; and its iteration."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    entry = next(e for e in index_of(copy)["replies"] if e["role"] == "slowest")
    path = copy / REPLIES_DIR / entry["wav"]
    pcm, rate = soundfile.read(path, dtype="int16")
    edited = edit(pcm)
    if edited is not None:
        soundfile.write(path, edited, rate, subtype="PCM_16")
    return copy, entry["iteration"]


def test_verify_fails_naming_the_iteration_whose_onset_was_moved_50_ms_earlier(openai_run, tmp_path):
    cut = int(0.050 * RATE)
    folder, iteration = tampered(openai_run.folder, tmp_path, lambda pcm: np.concatenate([pcm[cut:], pcm[:cut]]))
    done = bootbench("verify", str(folder))
    assert done.returncode == 3
    [row] = [line for line in done.stdout.splitlines()[1:-1] if line.split()[0] == str(iteration)]
    # play time grows by at least a sample's duration per sample (more across an underrun): 50 ms of audio earlier
    # plays at least 50 ms earlier
    assert "DISAGREES: first_audible_ms differs by -" in row and float(row.split()[5]) <= -49.99
    assert done.stdout.splitlines()[-1] == (f"1 of 3 recorded replies disagree with the live figures by more than 2 ms: "
                                         f"iteration {iteration}")
    allowed = str(-float(row.split()[5]) + 1)
    assert bootbench("verify", str(folder), "--tolerance-ms", allowed).returncode == 0, "within a tolerance that allows it"


def test_verify_fails_on_a_recording_moved_later_silenced_emptied_or_broken(openai_run, tmp_path):
    shift = int(0.050 * RATE)
    edits = {
        "later": (lambda pcm: np.concatenate([np.zeros(shift, np.int16), pcm[:-shift]]), "never audible"),
        "silenced": (lambda pcm: np.zeros_like(pcm), "never audible"),
        "emptied": (lambda pcm: pcm[:0], "is empty"),
    }
    for name, (edit, words) in edits.items():
        folder, iteration = tampered(openai_run.folder, tmp_path / name, edit)
        done = bootbench("verify", str(folder))
        assert done.returncode == 3, name
        assert words in next(line for line in done.stdout.splitlines() if line.split()[0] == str(iteration)), name
    folder, iteration = tampered(openai_run.folder, tmp_path / "broken", lambda pcm: None)
    (folder / REPLIES_DIR / wav_name(iteration)).write_bytes(b"RIFF not really")
    done = bootbench("verify", str(folder))
    assert done.returncode == 3 and "does not decode" in done.stdout and f"iteration {iteration}" in done.stdout


def test_verify_refuses_with_one_sentence_a_folder_without_recorded_replies(openai_run, tmp_path):
    plain = tmp_path / "plain"
    shutil.copytree(openai_run.folder, plain)
    shutil.rmtree(plain / REPLIES_DIR)
    cases = {plain: "has no recorded replies", tmp_path: "is not a bootbench result folder",
             tmp_path / "nowhere": "is not a folder"}
    for folder, words in cases.items():
        done = bootbench("verify", str(folder))
        assert done.returncode == 2 and done.stdout == "" and words in done.stderr, folder
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    done = bootbench("verify", str(openai_run.folder), "--tolerance-ms", "-1")
    assert done.returncode == 2 and "--tolerance-ms must be" in done.stderr


def test_the_report_plays_the_slowest_and_the_median_reply_with_their_waveforms(openai_run):
    html = (openai_run.folder / "report.html").read_text()
    index = index_of(openai_run.folder)
    for role in ("slowest", "median"):
        entry = next(e for e in index["replies"] if e["role"] == role)
        assert f'id="reply-{role}"' in html
        assert f'<audio controls preload="metadata" src="replies/{entry["wav"]}"' in html
        assert f'data-plot="reply-{role}"' in html
    assert html.count("<audio") == 2


@pytest.mark.browser
def test_the_reports_players_load_their_replies_in_a_browser(openai_run, tmp_path):
    """Chromium opens report.html from disk: both players load their WAV file, the waveforms are drawn."""
    require_chromium()
    browser = Browser(tmp_path / "profile")
    try:
        browser.open((openai_run.folder / "report.html").as_uri())
        loaded = browser.wait_for("(() => { const a = [...document.querySelectorAll('#replies audio')];"
                                  " return a.length == 2 && a.every(x => x.readyState >= 1)"
                                  " && a.map(x => [x.closest('figure').id, x.duration]); })()")
        index = index_of(openai_run.folder)
        for role, duration in loaded:
            entry = next(e for e in index["replies"] if f"reply-{e['role']}" == role)
            assert duration == pytest.approx(sum(entry["chunk_bytes"]) / 2 / RATE, abs=0.01), role
        sizes = browser.evaluate("[...document.querySelectorAll('#replies svg')].map(s => "
                                 "{const r = s.getBoundingClientRect(); return [s.dataset.plot, r.width, r.height]})")
        assert [name for name, *_ in sizes] == ["reply-slowest", "reply-median"]
        assert all(width > 600 and height > 100 for _, width, height in sizes)
        assert browser.errors == []
        assert [url for url in browser.requests if not url.startswith(("file://", "data:"))] == []
        browser.evaluate("document.getElementById('replies').scrollIntoView()")
        browser.screenshot("report_replies.png")
    finally:
        browser.close()


@pytest.mark.parametrize("provider", BUILTINS)
def test_every_driver_records_its_reply_and_verify_agrees(shared_reference_server, tmp_path, provider):
    """``all`` with more replies than iterations: each driver keeps decoding while it records."""
    server = shared_reference_server(**SHARED_RUN_SERVER)
    run = recorded_run(server, tmp_path / "r", provider, "-i", "2", "--record-replies", "all")
    assert run.exit_code == 0 and run.metrics["summary"]["successes"] == 2
    index = index_of(run.folder)
    assert sorted(entry["iteration"] for entry in index["replies"]) == [1, 2]
    for entry in index["replies"]:
        assert SHARED_LEADING_MS <= onset_ms(run.folder / REPLIES_DIR / entry["wav"]) <= SHARED_LEADING_MS + 0.2
    done = bootbench("verify", str(run.folder))
    assert done.returncode == 0, done.stdout


def test_more_replies_asked_than_iterations_keeps_every_one(shared_reference_server, tmp_path):
    server = shared_reference_server(**SHARED_RUN_SERVER)
    run = recorded_run(server, tmp_path / "r", "aivoco", "-i", "3", "--record-replies", "10")
    index = index_of(run.folder)
    assert sorted(entry["iteration"] for entry in index["replies"]) == [1, 2, 3]
    assert sorted(entry["role"] for entry in index["replies"]) == ["median", "sample", "slowest"]


def test_without_the_option_nothing_is_recorded(shared_reference_server, tmp_path):
    server = shared_reference_server(**SHARED_RUN_SERVER)
    run = recorded_run(server, tmp_path / "r", "aivoco", "-i", "1")
    assert not (run.folder / REPLIES_DIR).exists() and run.metrics["run"]["record_replies"] is None
    assert "<audio" not in (run.folder / "report.html").read_text()


def test_a_worker_sends_its_replies_to_the_master_which_writes_them(shared_reference_server, tmp_path):
    server = shared_reference_server(**SHARED_RUN_SERVER)
    port = free_port()
    master = environment("-i", "4", "--expect-workers", "1", "--provider", "openai", "--record-replies", "2",
                         host=server.url, results_dir=tmp_path / "results")
    master.create_master_runner(master_bind_host="127.0.0.1", master_bind_port=port)
    init(master)
    worker = environment(host=server.url)
    worker.create_worker_runner("127.0.0.1", port)
    init(worker)
    try:
        with gevent.Timeout(10):
            while len(master.runner.clients.ready) < 1:
                gevent.sleep(0.05)
        run = run_to_end(master, users=2)
    finally:
        worker.runner.quit()
        finish(worker)
    assert run.metrics["run"]["mode"] == "master" and run.metrics["summary"]["successes"] == 4
    assert {s.worker for s in run.samples} == {worker.runner.client_id}
    index = index_of(run.recorder.folder)
    assert index["recorded"] == 4 and sorted(e["role"] for e in index["replies"]) == ["median", "slowest"]
    for entry in index["replies"]:
        assert SHARED_LEADING_MS <= onset_ms(run.recorder.folder / REPLIES_DIR / entry["wav"]) <= SHARED_LEADING_MS + 0.2
    assert bootbench("verify", str(run.recorder.folder)).returncode == 0


# ---------------------------------------------------------------- the parts, without a run


def test_a_recording_session_keeps_decoding_after_the_answer_is_audible_until_it_is_taken():
    loud = (np.full(240, 8000, np.int16)).tobytes()
    session = SessionState(1)
    session.answer_audio(loud, 1_000)
    assert not session.decoding, "without recording, decoding stops once audible"
    session = SessionState(1)
    session.keep_answer_audio()
    session.answer_audio(loud, 1_000)
    session.answer_audio(loud, 2_000)
    assert session.audible.is_set() and session.decoding
    assert session.take_answer_audio() == [(1_000, loud), (2_000, loud)]
    assert not session.decoding and session.take_answer_audio() == []
    session = SessionState(1)
    session.keep_answer_audio()
    session.answer_audio(loud, 1_000)
    session.end_reply(1_500)
    session.begin_turn()
    session.answer_audio(loud, 3_000)
    assert session.take_answer_audio() == [(1_000, loud)], "turn 1's answer only"


def test_a_reply_survives_the_workers_message_and_keeps_its_arrival_offsets():
    reply = Reply.of(7, "speech", RATE, [(5_000, b"\x01\x00" * 3), (9_000, b"\x02\x00")])
    assert reply.arrivals_ns == (0, 4_000) and reply.sizes == (6, 2) and len(reply.pcm) == 8
    assert Reply.from_message(reply.to_message()) == reply


def sample(iteration: int, audible: float | None) -> Sample:
    return Sample(iteration=iteration, worker="local", user=1, started_at="t", ok=True, first_response_ms=1.0,
                  first_audible_ms=audible)


def test_the_choice_is_the_slowest_the_median_and_an_even_sample_of_the_rest():
    samples = [sample(i, float(100 + (i * 37) % 11)) for i in range(1, 12)]   # 11 distinct values
    ranked = [s.iteration for s in sorted(samples, key=lambda s: s.first_audible_ms)]
    roles = choose(samples, 5)
    assert roles[ranked[-1]] == "slowest" and roles[ranked[5]] == "median"
    rest = [i for i in ranked if i not in (ranked[-1], ranked[5])]
    assert [i for i in rest if i in roles] == [rest[0], rest[4], rest[8]], "spread evenly, the fastest included"
    assert choose(samples, 5) == roles, "the same run keeps the same replies"
    assert choose(samples, 1) == {ranked[-1]: "slowest"}
    assert len(choose(samples, "all")) == len(choose(samples, 50)) == 11
    assert choose(samples, 0) == {} and choose([], 3) == {}
    never = [*samples, sample(99, None)]
    assert choose(never, 1) == {99: "slowest"}, "a reply never audible is the slowest a caller heard"


def test_a_bad_record_replies_value_is_refused_with_one_sentence(refusals):
    words = "--record-replies must be a"
    assert refusals.sentence("--record-replies", "some") == f"{words} number of replies or all, not 'some'"
    assert refusals.sentence("--record-replies", "-2") == f"{words} positive number of replies or all, not -2"
    assert refusals.sentence("--record-replies", "1.5") == f"{words} number of replies or all, not '1.5'"
    assert refusals.check("--record-replies", "ALL").settings.record_replies == "all"


def test_the_spool_holds_replies_on_disk_and_keeps_only_the_chosen_ones(tmp_path):
    spool = ReplySpool(tmp_path, keep=1)
    tones = {}
    for iteration, audible in ((1, 300.0), (2, 500.0), (3, 400.0)):
        tones[iteration] = (np.arange(480, dtype=np.int16) * iteration).tobytes()
        spool.add(Reply.of(iteration, f"clip{iteration}", RATE, [(10, tones[iteration][:500]),
                                                                 (20, tones[iteration][500:])]))
    assert spool.spooled == {1, 2, 3} and len(list(spool.spool.iterdir())) == 6, "on disk, not in memory"
    entries = spool.finish([sample(i, a) for i, a in ((1, 300.0), (2, 500.0), (3, 400.0))], audible_dbfs=DBFS)
    assert [(e["iteration"], e["role"], e["clip"]) for e in entries] == [(2, "slowest", "clip2")]
    assert entries[0]["chunk_arrival_ns"] == [0, 10] and entries[0]["chunk_bytes"] == [500, 460]
    assert sorted(p.name for p in spool.folder.iterdir()) == [INDEX_FILE, wav_name(2)], "the rest deleted"
    pcm, rate = soundfile.read(spool.folder / wav_name(2), dtype="int16")
    assert rate == RATE and pcm.tobytes() == tones[2]
    spool.add(Reply.of(4, "late", RATE, [(0, b"\x00\x01")]))
    assert not spool.spool.exists() and 4 not in spool.spooled, "a straggler after the end is dropped"


def test_verify_takes_an_onset_after_the_cycle_stopped_waiting_as_no_live_figure(tmp_path):
    """An answer still silent when the cycle stopped waiting, audible in a chunk that came after (before the stop):
    live first_audible is rightly none, and verify agrees; the same onset before that point would disagree."""
    folder = tmp_path / "run"
    (folder / REPLIES_DIR).mkdir(parents=True)
    (folder / "run.json").write_text("{}")
    quiet, loud = np.zeros(960, np.int16), np.full(960, 8000, np.int16)   # 40 ms chunks
    soundfile.write(folder / REPLIES_DIR / wav_name(1), np.concatenate([quiet, quiet, loud]), RATE, subtype="PCM_16")
    entry = {"iteration": 1, "wav": wav_name(1), "clip": "sine", "role": "slowest", "rate": RATE,
             "first_response_ms": 100.0, "first_audible_ms": None, "leading_silence_ms": None,
             "chunk_arrival_ns": [0, 40_000_000, 80_000_000], "chunk_bytes": [1920, 1920, 1920]}

    def verify_with(judged: int) -> str:
        index = {"schema": "bootbench/replies/v1", "audible_dbfs": DBFS, "replies": [{**entry, "chunks_when_judged": judged}]}
        (folder / REPLIES_DIR / INDEX_FILE).write_text(json.dumps(index))
        return bootbench("verify", str(folder))

    done = verify_with(2)
    assert done.returncode == 0 and "audible only after the cycle stopped waiting" in done.stdout
    done = verify_with(3)
    assert done.returncode == 3 and "first_audible_ms is none (never audible) live but 180.00" in done.stdout
