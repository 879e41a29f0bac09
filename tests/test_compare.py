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
    realtime pacing, O of OpenAI's protocol (its turn mode is manual, Aivoco's vad), and X that stopped early
    (every connection refused, as when nothing listens at its host)."""
    folder = tmp_path_factory.mktemp("compare")
    refused = failures(5, "connect_failed", "connection refused")
    plans = {"A": (["-i", "6"], timings(6, seed=1)), "B": (["-i", "5"], timings(5, seed=2)),
             "C": (["-i", "3", "--pace", "realtime"], timings(3, seed=3)),
             "O": (["-i", "4", "--provider", "openai"], timings(4, seed=4)), "X": (["-i", "5"], refused)}
    return {name: record_run(folder, *args, samples=samples, report=False) for name, (args, samples) in plans.items()}


def expected_row(folder) -> list[str]:
    metrics = json.loads((folder / "metrics.json").read_text())
    run, summary = metrics["run"], metrics["summary"]
    head, session = summary["phases"]["first_response_ms"], summary["phases"]["session_start_ms"]
    audible = summary["phases"]["first_audible_ms"]
    return [run["id"], run["provider"], run["target"], str(summary["iterations"]),
            f"{summary['success_rate'] * 100:.1f} %", *(f"{head[k]:.1f}" for k in ("mean", "median", "p95", "p99")),
            f"{session['median']:.1f}", f"{audible['median']:.1f}"]


def test_compare_prints_one_row_per_run_with_the_numbers_of_its_metrics(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    done = bootbench("compare", runs["A"], runs["B"])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["Run", "Provider", "Target", "N", "Success", "Mean (ms)", "Median (ms)",
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
    assert len(header) == 11 and header[0] == "Run" and header[-1] == "First audible median (ms)"
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
