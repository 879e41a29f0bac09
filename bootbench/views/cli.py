"""The ``bootbench`` command: work with result folders after a run.

    bootbench report results/20250101-120000-aivoco        # re-render report.html from metrics.json
    bootbench compare results/a results/b --markdown      # a results table (--html FILE: a page too)
    bootbench options                                     # the options locust takes for a bootbench run

Runs themselves are started with ``locust`` (see locustfile.py). Every
mistake a user can make ends with one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from bootbench.views import compare
from bootbench.views.load import ResultFolderError
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
    parser = _Parser(prog="bootbench", description="Work with bootbench result folders. Runs are started with "
                     "locust (locust --headless -u 1 -i 100); 'bootbench options' lists the options it takes for them.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report_command = commands.add_parser(
        "report", help="re-render report.html of a result folder from its metrics.json",
        description="Re-render FOLDER/report.html from FOLDER/metrics.json.")
    report_command.add_argument("folder", help="a result folder (the last line a run prints)")
    report_command.set_defaults(handler=_report_command)

    compare_command = commands.add_parser(
        "compare", help="compare runs in a results table (and an HTML page with --html)",
        description="Print one row per run (first response, ms); with --html also write a page with their CDFs "
                    "overlaid. Runs measured differently are refused; runs of different providers may differ in "
                    "how a turn ends (said below the table); incomplete runs are flagged.")
    compare_command.add_argument("folders", nargs="+", metavar="FOLDER", help="result folders to compare")
    compare_command.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    compare_command.add_argument("--html", default=None, metavar="FILE",
                                 help="also write the comparison page (overlaid CDFs) to FILE")
    compare_command.add_argument("--force", action="store_true",
                                 help="compare even when the runs were measured differently")
    compare_command.set_defaults(handler=_compare_command)

    options_command = commands.add_parser(
        "options", help="list the options locust takes for a bootbench run, with their defaults",
        description="List bootbench's options of locust (locust --help cannot: it prints before it loads the "
                    "locustfile). Locust's own options: locust --help.")
    options_command.set_defaults(handler=_options_command)
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
        path = write_report(folder)
    except OSError as exc:
        raise UserError(f"cannot write {folder / 'report.html'} ({exc.strerror or exc})") from None
    print(path)
    return 0


def _compare_command(args: argparse.Namespace) -> int:
    runs = compare.load_runs(args.folders)
    differences = compare.definition_differences(runs)
    if differences and not args.force:
        raise UserError(f"these runs were measured differently ({'; '.join(differences)}), so their numbers do not "
                        f"compare; pass --force to compare them anyway")
    print(compare.markdown_table(runs) if args.markdown else compare.text_table(runs))
    if args.html is None:
        return 0
    html_path = Path(args.html)
    try:
        html_path.write_text(compare.render_html(runs, differences), encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {html_path} ({exc.strerror or exc})") from None
    sys.stderr.write(f"bootbench: comparison page written to {html_path}\n")
    return 0


def _options_command(args: argparse.Namespace) -> int:
    print(options_help(), end="")
    return 0


def options_help() -> str:
    """The help of bootbench's option group, as Locust's own parser formats it (with every default)."""
    from locust.argument_parser import get_empty_argument_parser

    from bootbench.options import HELP_GROUP, add_arguments

    parser = get_empty_argument_parser(add_help=False, default_config_files=[])
    parser.prog = "locust"
    add_arguments(parser)
    group = next(g for g in parser._action_groups if g.title == HELP_GROUP)  # argparse has no public accessor
    formatter = parser._get_formatter()
    formatter.add_usage("locust -f locustfile.py [LOCUST OPTIONS]", [], [])
    formatter.start_section(group.title)
    formatter.add_text(group.description)
    formatter.add_arguments(group._group_actions)
    formatter.end_section()
    return formatter.format_help()


if __name__ == "__main__":
    sys.exit(main())
