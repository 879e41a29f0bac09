"""``bootbench compare``: a results table of real runs, its Markdown form, the refusal, the comparison page."""

from __future__ import annotations

import json
import re

import pytest

from bootbench.stats import p99_note
from bootbench.views.compare import Run, definition_differences
from support.cli import bootbench
from support.folders import failures, record_run, timings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Finished runs in one results folder (so each has its own id), recorded in-process: A and B alike, C with
    realtime pacing, O of OpenAI's protocol (its turn mode is manual, Aivoco's vad), X that stopped early
    (every connection refused, as when nothing listens at its host), U of 8 users and T of 3 turns per session."""
    folder = tmp_path_factory.mktemp("compare")
    refused = failures(5, "connect_failed", "connection refused")
    plans = {"A": (["-i", "6"], timings(6, seed=1)), "B": (["-i", "5"], timings(5, seed=2)),
             "C": (["-i", "3", "--pace", "realtime"], timings(3, seed=3)),
             "O": (["-i", "4", "--provider", "openai"], timings(4, seed=4)), "X": (["-i", "5"], refused),
             "U": (["-i", "8", "-u", "8"], timings(8, seed=5, first_audio_ms=120)),
             "T": (["-i", "3", "--turns", "3"], timings(3, seed=6))}
    users = {"U": 8}
    return {name: record_run(folder, *args, samples=samples, users=users.get(name, 1), report=False)
            for name, (args, samples) in plans.items()}


def expected_row(folder) -> list[str]:
    metrics = json.loads((folder / "metrics.json").read_text())
    run, summary = metrics["run"], metrics["summary"]
    head, session = summary["phases"]["first_response_ms"], summary["phases"]["session_start_ms"]
    audible = summary["phases"]["first_audible_ms"]
    return [run["id"], run["provider"], run["target"], str(run["users"]), str(summary["iterations"]),
            f"{summary['success_rate'] * 100:.1f} %", *(f"{head[k]:.1f}" for k in ("mean", "median", "p95", "p99")),
            f"{session['median']:.1f}", f"{audible['median']:.1f}"]


def test_compare_prints_one_row_per_run_with_the_numbers_of_its_metrics(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = bootbench("compare", runs["A"], runs["B"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["Run", "Provider", "Target", "Users", "N", "Success", "Mean (ms)", "Median (ms)",
                                             "P95 (ms)", "P99 (ms)", "Session start median (ms)",
                                             "First audible median (ms)"]
    assert set(lines[1]) == {"-", " "}
    rows = [re.split(r"\s{2,}", line.strip()) for line in lines[2:4]]
    assert rows == [expected_row(runs["A"]), expected_row(runs["B"])]
    names = [json.loads((runs[n] / "metrics.json").read_text())["run"]["id"] for n in "AB"]
    assert lines[4].endswith(f" {', '.join(names)}: {p99_note(6)}.")
    assert not list(tmp_path.iterdir())  # a page only when asked for with --html


def test_markdown_output_is_a_valid_markdown_table(runs, tmp_path):
    from markdown_it import MarkdownIt

    done = bootbench("compare", runs["A"], runs["B"], "--markdown")
    assert done.returncode == 0, done.stderr
    rendered = MarkdownIt("commonmark").enable("table").render(done.stdout)
    assert rendered.count("<table>") == 1
    header = re.findall(r"<th[^>]*>(.*?)</th>", rendered)
    assert len(header) == 12 and header[0] == "Run" and header[-1] == "First audible median (ms)"
    assert header[3] == "Users"
    body = re.search(r"<tbody>(.*)</tbody>", rendered, re.S).group(1)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    assert cells == [expected_row(runs["A"]), expected_row(runs["B"])]
    assert 'style="text-align:right"' in rendered


def test_compare_refuses_runs_measured_differently_in_one_sentence(runs, tmp_path):
    done = bootbench("compare", runs["A"], runs["C"])
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    a, c = (json.loads((runs[n] / "metrics.json").read_text())["run"]["id"] for n in "AC")
    assert f"pace: burst in {a} vs realtime in {c}" in done.stderr and "--force" in done.stderr
    assert done.stdout == "" and not (tmp_path / "compare.html").exists()


def run_id(folder) -> str:
    return json.loads((folder / "metrics.json").read_text())["run"]["id"]


def test_runs_of_different_providers_compare_and_their_turn_modes_are_a_labelled_difference(runs, tmp_path):
    label = "turn mode differs: aivoco vad, openai manual"
    done = bootbench("compare", runs["A"], runs["O"])
    assert done.returncode == 0, done.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in done.stdout.splitlines()[2:4]]
    assert rows == [expected_row(runs["A"]), expected_row(runs["O"])]
    assert f"Note: {label} (each provider's own way of ending a turn)." in done.stdout.splitlines()
    markdown = bootbench("compare", "--markdown", runs["A"], runs["O"])
    assert markdown.returncode == 0 and label in markdown.stdout
    page = bootbench("compare", "--html", tmp_path / "p.html", runs["A"], runs["O"])
    assert page.returncode == 0 and label in (tmp_path / "p.html").read_text()
    assert 'id="forced"' not in (tmp_path / "p.html").read_text()
    refused = bootbench("compare", runs["C"], runs["O"])  # pace still changes the measurement
    assert refused.returncode == 2 and "pace: realtime in" in refused.stderr and "turn" not in refused.stderr


def test_runs_of_one_provider_with_different_turn_modes_are_refused(runs):
    a = json.loads((runs["O"] / "metrics.json").read_text())
    b = json.loads(json.dumps(a))
    b["run"].update(id="vad-run", turn="vad")
    assert definition_differences([Run(runs["O"], a), Run(runs["O"], b)]) == [
        f"provider turn mode: manual in {a['run']['id']} vs vad in vad-run"]


def test_an_incomplete_run_is_flagged_in_every_format(runs, tmp_path):
    flagged = f"{run_id(runs['X'])} (incomplete)"
    why = f"Flagged: {run_id(runs['X'])} is incomplete (stopped early: "
    done = bootbench("compare", runs["A"], runs["X"])
    assert done.returncode == 0, done.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in done.stdout.splitlines()[2:4]]
    assert rows[0] == expected_row(runs["A"]) and rows[1][0] == flagged
    assert any(line.startswith(why) for line in done.stdout.splitlines())
    assert "(incomplete)" not in done.stdout.splitlines()[2]
    markdown = bootbench("compare", "--markdown", runs["A"], runs["X"]).stdout
    assert f"| {flagged} |" in markdown and why in markdown
    bootbench("compare", "--html", tmp_path / "p.html", runs["A"], runs["X"])
    page = (tmp_path / "p.html").read_text()
    assert f"<td>{flagged}</td>" in page and why in page


def test_force_compares_anyway_and_says_so_on_the_page(runs, tmp_path):
    done = bootbench("compare", runs["A"], runs["C"], "--force", "--html", tmp_path / "forced.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "forced.html").read_text()
    assert 'id="forced"' in page and "pace: burst in" in page


def test_comparison_page_overlays_the_cdfs_of_every_run(runs, tmp_path):
    done = bootbench("compare", runs["A"], runs["B"], "--html", tmp_path / "out.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "out.html").read_text()
    assert page.count("<svg") == 1 and 'data-plot="compare-cdf"' in page
    for name, n in (("A", 6), ("B", 5)):
        run_id = json.loads((runs[name] / "metrics.json").read_text())["run"]["id"]
        assert f"{run_id} (n={n})" in page
        assert f"<td>{run_id}</td>" in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|<script|<link""", page, re.I)


@pytest.mark.parametrize("make, sentence", [
    (lambda tmp: tmp / "nowhere", "does not exist"),
    (lambda tmp: tmp, "is not a bootbench result folder"),
])
def test_compare_mistakes_are_one_sentence_and_exit_code_2(runs, tmp_path, make, sentence):
    done = bootbench("compare", runs["A"], make(tmp_path))
    assert done.returncode == 2
    assert sentence in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr + done.stdout and done.stdout == ""


def test_a_bad_option_is_one_sentence_and_exit_code_2(tmp_path):
    done = bootbench("compare", "--sideways", "x")
    assert done.returncode == 2 and "--sideways" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_v1_result_folder_compares_with_a_v2_one(runs, tmp_path):
    metrics = json.loads((runs["A"] / "metrics.json").read_text())
    run = {("delay_ms" if key == "wait_ms" else key): value for key, value in metrics["run"].items()}
    old = tmp_path / "v1"
    old.mkdir()
    (old / "metrics.json").write_text(json.dumps({**metrics, "schema": "bootbench/metrics/v1", "run": run}))
    done = bootbench("compare", old, runs["B"])
    assert done.returncode == 0, done.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in done.stdout.splitlines()[2:4]]
    assert rows == [expected_row(runs["A"]), expected_row(runs["B"])]


def test_runs_of_different_users_show_users_and_say_so(runs):
    """Issue 20 item 9: concurrency is a column, and a difference in it is said under the table."""
    done = bootbench("compare", runs["A"], runs["U"])
    assert done.returncode == 0, done.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in done.stdout.splitlines()[2:4]]
    assert rows == [expected_row(runs["A"]), expected_row(runs["U"])]
    assert [row[3] for row in rows] == ["1", "8"]
    assert (f"Note: users differ: 1 in {run_id(runs['A'])} vs 8 in {run_id(runs['U'])} (latency depends on how many "
            "calls run at once: compare rows of equal users)." in done.stdout.splitlines())
    same = bootbench("compare", runs["A"], runs["B"])
    assert "users differ" not in same.stdout


def test_runs_of_different_turns_per_session_are_refused(runs):
    done = bootbench("compare", runs["A"], runs["T"])
    assert done.returncode == 2 and done.stdout == ""
    assert f"turns per session: 1 in {run_id(runs['A'])} vs 3 in {run_id(runs['T'])}" in done.stderr


def sweep_like(folder, tmp_path, name="S", levels=(1, 2), per_level=4, first_audio_ms=(80.0, 140.0)):
    """A sweep folder measured like ``folder`` (its run settings), of ``levels`` with ``per_level`` iterations each;
    the first response at level k is ``first_audio_ms[k]`` plus 0..3 ms."""
    from bootbench.exporters import build_metrics, write_metrics
    from bootbench.samples import Sample

    run = {key: value for key, value in json.loads((folder / "metrics.json").read_text())["run"].items()
           if key not in ("id", "started_at", "ended_at", "versions", "provenance")}
    run.update(sweep=",".join(map(str, levels)), users=max(levels))
    samples, number = [], 0
    for users, first in zip(levels, first_audio_ms):
        for k in range(per_level):
            number += 1
            samples.append(Sample(iteration=number, worker="local", user=1, started_at="", ok=True,
                                  first_response_ms=first + k, cold_start_ms=first + k + 30, level=users))
    windows = [{"users": users, "planned": per_level, "rounds": per_level // users, "duration_s": 1.0, "cpu": {}}
               for users in levels]
    metrics = build_metrics(f"sweep-{name}", "", run, samples, ended_at="x", levels=windows)
    out = tmp_path / name
    out.mkdir()
    write_metrics(out, metrics, samples)
    return out


def test_a_sweep_compares_level_by_level(runs, tmp_path):
    """Issue 20 item 9: a sweep is one row per level (its users), never one row pooling every level."""
    sweep = sweep_like(runs["A"], tmp_path)
    done = bootbench("compare", runs["A"], sweep)
    assert done.returncode == 0, done.stderr
    rows = [re.split(r"\s{2,}", line.strip()) for line in done.stdout.splitlines()[2:5]]
    assert rows[0] == expected_row(runs["A"])
    assert [row[0] for row in rows[1:]] == ["sweep-S (level 1)", "sweep-S (level 2)"]
    assert [(row[3], row[4], row[7]) for row in rows[1:]] == [("1", "4", "81.5"), ("2", "4", "141.5")]
    assert len([line for line in done.stdout.splitlines() if line.startswith("sweep-S")]) == 2  # no pooled row
    markdown = bootbench("compare", "--markdown", runs["A"], sweep).stdout
    assert "| sweep-S (level 2) | aivoco |" in markdown and "| 2 | 4 |" in markdown
    assert f"Every row: {p99_note(4)}." in done.stdout  # the note does not list the whole table again


def test_baseline_compares_like_with_like_only(runs, tmp_path):
    """Issue 20 item 9: --baseline pairs rows of equal users; --fail-if-slower refuses unlike runs."""
    sweep = sweep_like(runs["A"], tmp_path)
    done = bootbench("compare", "--baseline", runs["A"], sweep, "--fail-if-slower", "10%")
    assert done.returncode == 0, done.stderr
    headings = [line for line in done.stdout.splitlines() if " against the baseline " in line]
    assert headings == [f"sweep-S (level 1) against the baseline {run_id(runs['A'])}"]
    assert "sweep-S (level 2): no baseline row with 2 users" in done.stdout
    unlike = bootbench("compare", "--baseline", runs["A"], runs["U"])
    assert unlike.returncode == 0, unlike.stderr
    assert (f"{run_id(runs['U'])} against the baseline {run_id(runs['A'])} (unlike: users 1 vs 8)"
            in unlike.stdout.splitlines())
    for args in ((runs["A"], runs["U"]), (runs["A"], runs["C"], "--force"), (runs["A"], runs["T"], "--force")):
        gated = bootbench("compare", "--baseline", *args, "--fail-if-slower", "10%")
        assert gated.returncode == 2 and gated.stdout == "", gated.stdout
        assert "--fail-if-slower compares like with like" in gated.stderr
        assert len(gated.stderr.strip().splitlines()) == 1


def test_the_refusal_of_many_mixed_runs_is_one_short_sentence_and_force_labels_the_table(runs, tmp_path):
    """Issue 20 item 16: the refusal summarises which settings differ, whatever the number of runs."""
    base = json.loads((runs["A"] / "metrics.json").read_text())
    folders = []
    for number in range(14):
        metrics = json.loads(json.dumps(base))
        metrics["run"].update(id=f"20261125-1037{number:02d}-aivoco-with-a-long-name",
                              pace=("burst", "realtime")[number % 2], timeout_s=5.0 + number,
                              connect_per_call=number % 3 == 0)
        folder = tmp_path / f"r{number}"
        folder.mkdir()
        (folder / "metrics.json").write_text(json.dumps(metrics))
        folders.append(folder)
    done = bootbench("compare", *folders)
    assert done.returncode == 2 and done.stdout == ""
    sentence = done.stderr.strip()
    assert len(sentence.splitlines()) == 1 and len(sentence) < 400, (len(sentence), sentence)
    assert "pace: burst in 7 runs vs realtime in 7 runs" in sentence
    assert "timeout (s): 14 different values" in sentence and "connect per call: yes in 5 runs vs no in 9 runs" in sentence
    assert "--force" in sentence
    forced = bootbench("compare", "--force", *folders[:2])
    assert forced.returncode == 0, forced.stderr
    label = ("Forced: compared with --force although measured differently (connect per call: yes in "
             "20261125-103700-aivoco-with-a-long-name vs no in 20261125-103701-aivoco-with-a-long-name;")
    assert any(line.startswith(label) for line in forced.stdout.splitlines()), forced.stdout
    markdown = bootbench("compare", "--force", "--markdown", *folders[:2]).stdout
    assert "Forced: compared with --force although measured differently" in markdown


def test_the_comparison_page_takes_the_window_width_and_wraps_wide_headers(runs, tmp_path):
    """Issue 20 item 22: the regression table's p-value and verdict columns were cut at 1400 px (a 1180 px column)."""
    done = bootbench("compare", "--baseline", runs["A"], runs["B"], "--html", tmp_path / "p.html")
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "p.html").read_text()
    assert '<main class="wide">' in page and "main.wide { max-width: none; }" in page
    assert "#regression thead th { white-space: normal;" in page.replace("#comparison thead th, ", "")
    assert 'id="regression-1"' in page and "Verdict" in page
