"""The ``bootbench`` command: work with result folders after a run.

    bootbench report results/20250101-120000-aivoco        # re-render report.html from metrics.json
                                                          # (rebuilt first if the run was killed)
    bootbench compare results/a results/b --markdown      # a results table, and compare.html

Runs themselves are started with ``locust`` (see locustfile.py). Every
mistake a user can make ends with one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from bootbench.views import compare
from bootbench.views.load import METRICS_FILE, ResultFolderError, load_metrics
from bootbench.views.report import write_report

USER_ERROR = 2


class UserError(Exception):
    """A mistake on the command line or in the files named; ``str()`` is the sentence to show."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one sentence and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"bootbench: {message} (see: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``bootbench`` argument parser with one sub-command per job."""
    parser = _Parser(prog="bootbench", description="Work with bootbench result folders.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report_command = commands.add_parser(
        "report", help="re-render report.html of a result folder from its metrics.json",
        description="Re-render FOLDER/report.html from FOLDER/metrics.json. A run killed before it wrote "
                    "metrics.json gets one first, rebuilt from run.json and samples.jsonl and marked incomplete.")
    report_command.add_argument("folder", help="a result folder (the last line a run prints)")
    report_command.set_defaults(handler=_report_command)

    compare_command = commands.add_parser(
        "compare", help="compare runs in a results table and compare.html",
        description="Print one row per run (first response, ms) and write an HTML page with their CDFs overlaid. "
                    "Runs measured differently are refused.")
    compare_command.add_argument("folders", nargs="+", metavar="FOLDER", help="result folders to compare")
    compare_command.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    compare_command.add_argument("--html", default="compare.html", metavar="FILE",
                                 help="where to write the comparison page (default: ./compare.html)")
    compare_command.add_argument("--force", action="store_true",
                                 help="compare even when the runs were measured differently")
    compare_command.set_defaults(handler=_compare_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 user error)."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (UserError, ResultFolderError) as exc:
        sys.stderr.write(f"bootbench: {exc}\n")
        return USER_ERROR


def _report_command(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    try:
        if folder.is_dir() and not (folder / METRICS_FILE).exists():
            _rebuild(folder)
        path = write_report(folder)
    except OSError as exc:
        raise UserError(f"cannot write {folder / 'report.html'} ({exc.strerror or exc})") from None
    print(path)
    return 0


def _rebuild(folder: Path) -> None:
    """Write metrics.json, summary.csv and samples.csv of a killed run from its run.json and samples.jsonl."""
    from bootbench.exporters import read_samples, write_metrics

    metrics = load_metrics(folder)
    write_metrics(folder, metrics, read_samples(folder))
    sys.stderr.write(f"bootbench: {folder} had no {METRICS_FILE}; rebuilt it from its {len(metrics['samples'])} "
                     f"samples (marked incomplete)\n")


def _compare_command(args: argparse.Namespace) -> int:
    runs = compare.load_runs(args.folders)
    differences = compare.definition_differences(runs)
    if differences and not args.force:
        raise UserError(f"these runs were measured differently ({'; '.join(differences)}), so their numbers do not "
                        f"compare; pass --force to compare them anyway")
    print(compare.markdown_table(runs) if args.markdown else compare.text_table(runs))
    html_path = Path(args.html)
    try:
        html_path.write_text(compare.render_html(runs, differences), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {html_path} ({exc.strerror or exc})") from None
    sys.stderr.write(f"bootbench: comparison page written to {html_path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
