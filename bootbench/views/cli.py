"""The ``bootbench`` command: work with result folders after a run.

    bootbench report results/20250101-120000-aivoco        # re-render report.html from metrics.json
                                                          # (rebuilt first if the run was killed)
    bootbench compare results/a results/b --markdown      # a results table (--html FILE: a page too)
    bootbench compare --baseline results/a results/b --fail-if-slower 10%   # per-phase differences; exit 3 if slower
    bootbench options                                     # the options locust takes for a bootbench run
    bootbench providers [NAME...]                         # every provider: source, key, turn modes, options
    bootbench verify results/20250101-120000-aivoco        # recompute first audible from the recorded replies

Runs themselves are started with ``locust`` (see locustfile.py). Every
mistake a user can make ends with one sentence on stderr and exit code 2;
``compare --fail-if-slower`` exits with 3 when a run is significantly slower
than its baseline by more than the allowed share, ``verify`` when a recorded
reply disagrees with the live figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn, Sequence

from bootbench.argv import join_dash_values
from bootbench.checks import CHECK_FAILED_EXIT
from bootbench.errors import EXIT_CODE, UserError
from bootbench.samples import HEADLINE, PHASES, TURN_PHASES
from bootbench.views import compare, regression
from bootbench.views.load import METRICS_FILE, load_metrics
from bootbench.views.report import write_report

USER_ERROR = EXIT_CODE
VALUE_FLAGS = ("--fail-if-slower",)
"""The flags whose value may start with a dash (a number): kept with the flag, so its own check refuses it."""
__all__ = ["USER_ERROR", "UserError", "build_parser", "main", "options_help"]  # UserError: bootbench.errors'


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as a :class:`UserError` (one sentence, exit code 2 from :func:`main`)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see: {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    """The ``bootbench`` argument parser with one sub-command per job."""
    parser = _Parser(prog="bootbench", description="Work with bootbench result folders. Runs are started with "
                     "locust (locust --headless -u 1 -i 100); 'bootbench options' lists the options it takes for them.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    report_command = commands.add_parser(
        "report", help="re-render report.html of a result folder from its metrics.json",
        description="Re-render FOLDER/report.html from FOLDER/metrics.json. A run killed before it wrote "
                    "metrics.json gets one first, rebuilt from run.json and samples.jsonl and marked incomplete.")
    report_command.add_argument("folder", help="a result folder (the last line a run prints)")
    report_command.set_defaults(handler=_report_command)

    compare_command = commands.add_parser(
        "compare", help="compare runs in a results table (and an HTML page with --html)",
        description="Print one row per run (first response, ms; a sweep one row per level) with its users; with "
                    "--html also write a page with their CDFs overlaid. Runs measured differently are refused "
                    "(--force compares them anyway, labelled); runs of different providers may differ in how a "
                    "turn ends, and runs of different users in concurrency (said below the table); incomplete "
                    "runs are flagged. --baseline pairs rows of equal users.")
    compare_command.add_argument("folders", nargs="+", metavar="FOLDER", help="result folders to compare")
    compare_command.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    compare_command.add_argument("--html", default=None, metavar="FILE",
                                 help="also write the comparison page (overlaid CDFs) to FILE")
    compare_command.add_argument("--force", action="store_true",
                                 help="compare even when the runs were measured differently")
    compare_command.add_argument("--baseline", metavar="FOLDER",
                                 help="compare every FOLDER with this run, phase by phase (the service stages "
                                      "and, with --turns, the turn phases too): differences of the median and p95 "
                                      "with bootstrap 95%% intervals, Mann-Whitney p, a verdict")
    compare_command.add_argument("--fail-if-slower", metavar="PCT",
                                 help="with --baseline: exit 3 when a run's median is significantly slower than the "
                                      "baseline's by more than PCT (10%% or 0.1; a bare number above 1 is refused)")
    compare_command.add_argument("--phase", metavar="PHASE",
                                 help=f"the phase --fail-if-slower looks at (default {HEADLINE}; one of "
                                      f"{', '.join((*PHASES, *TURN_PHASES))})")
    compare_command.set_defaults(handler=_compare_command)

    options_command = commands.add_parser(
        "options", help="list the options locust takes for a bootbench run, with their defaults",
        description="List bootbench's options of locust (locust --help cannot: it prints before it loads the "
                    "locustfile). Locust's own options: locust --help.")
    options_command.set_defaults(handler=_options_command)

    providers_command = commands.add_parser(
        "providers", help="list every provider (built in, installed, or from a locustfile given with -f)",
        description="List every provider --provider takes on this machine: where it comes from (bootbench or an "
                    "installed package), its key variables, turn modes, default model and voice, whether the "
                    "reference server emulates it, and its --provider-option keys with their help.")
    providers_command.add_argument("names", nargs="*", metavar="NAME", help="only these providers")
    providers_command.add_argument("-f", "--locustfile", metavar="FILE",
                                   help="also the providers this locustfile registers (@providers.register)")
    providers_command.set_defaults(handler=_providers_command)
    verify_command = commands.add_parser(
        "verify", help="recompute first audible and leading silence from a run's recorded replies",
        description="Check a run recorded with --record-replies: decode every reply in FOLDER/replies and recompute "
                    "first_audible_ms and leading_silence_ms from the audio (an energy envelope over the whole file, "
                    "and the recorded arrival of each chunk for the playback model), independently of the live "
                    "detector. Prints each iteration's difference; exit 3 when one differs by more than "
                    "--tolerance-ms or a reply is empty or does not decode, 2 when FOLDER has no recorded replies.")
    verify_command.add_argument("folder", help="a result folder of a run with --record-replies")
    verify_command.add_argument("--tolerance-ms", default=None, metavar="MS",
                                help="the largest difference that agrees (default 2)")
    verify_command.set_defaults(handler=_verify_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 user error, 3 slower than allowed), never exits.

    The ``bootbench`` console script (and ``python -m bootbench.views.cli``) exits with it.
    """
    try:
        try:  # "--fail-if-slower -5%": the value, not an unknown option (bootbench.argv)
            args = build_parser().parse_args(join_dash_values(sys.argv[1:] if argv is None else argv,
                                                              VALUE_FLAGS))
        except SystemExit as done:  # argparse exits after printing --help
            return int(done.code or 0)
        return args.handler(args)
    except UserError as exc:  # every user-caused error: options, result folders, regression options
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
    allowed = _regression_options(args)
    runs = compare.load_runs([args.baseline, *args.folders] if args.baseline else args.folders)
    differences = compare.definition_differences(runs)
    if differences and not args.force:
        raise UserError(f"these runs were measured differently ({'; '.join(differences)}), so their numbers do not "
                        f"compare; pass --force to compare them anyway")
    paired = [(run, *compare.pairs(runs[0], run)) for run in runs[1:]] if args.baseline else []
    if allowed is not None:  # a gate compares like with like, --force or not
        for run, pairs, _alone in paired:
            for base, row, unlike in pairs:
                if unlike:
                    raise UserError(f"--fail-if-slower compares like with like, and {row.name} differs from the "
                                    f"baseline {base.name} ({'; '.join(unlike)}); leave --fail-if-slower out to "
                                    f"see the comparison")
    forced = differences if args.force else []
    print(compare.markdown_table(runs, forced) if args.markdown else compare.text_table(runs, forced))
    regression_html, too_slow = "", []
    if args.baseline:
        compared = []
        for run, pairs, alone in paired:
            for base, row, unlike in pairs:
                label = f" (unlike: {'; '.join(unlike)})" if unlike else ""
                comparisons = regression.compare_metrics(base.metrics, row.metrics)
                shown = regression.measured(comparisons.values())
                compared.append((row.name + label, base.name, shown))
                render = regression.markdown_table if args.markdown else regression.text_table
                print(f"\n{regression.heading(row.name, base.name)}{label}\n{render(shown)}")
                if allowed is not None:
                    judged = comparisons[args.phase or HEADLINE]
                    sentence = regression.slower_than_allowed(judged, allowed, run=row.name, baseline=base.name)
                    too_slow += [sentence] if sentence else []
                    undecided = regression.undecided(judged)
                    if undecided:
                        sys.stderr.write(f"bootbench: {row.name}: {undecided}\n")
            for phrase in alone:
                print(f"\n{phrase}")
        print(f"\n{regression.NOTE}")
        regression_html = regression.html_section(runs[0].name, compared)
    if args.html is not None:
        html_path = Path(args.html)
        try:
            html_path.write_text(compare.render_html(runs, differences, extra=regression_html), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {html_path} ({exc.strerror or exc})") from None
        sys.stderr.write(f"bootbench: comparison page written to {html_path}\n")
    for sentence in too_slow:
        sys.stderr.write(f"bootbench: {sentence}\n")
    return CHECK_FAILED_EXIT if too_slow else 0


def _regression_options(args: argparse.Namespace) -> float | None:
    """The checked ``--baseline`` options: the ``--fail-if-slower`` percentage, or None without it."""
    if not args.baseline:
        for flag, value in (("--fail-if-slower", args.fail_if_slower), ("--phase", args.phase)):
            if value is not None:
                raise UserError(f"{flag} needs --baseline FOLDER (the run to compare with)")
        return None
    if args.phase is not None and args.phase not in (*PHASES, *TURN_PHASES):
        raise UserError(f"--phase {args.phase!r} is not a phase; use one of {', '.join((*PHASES, *TURN_PHASES))}")
    if args.phase is not None and args.fail_if_slower is None:
        raise UserError("--phase names the phase --fail-if-slower looks at; give --fail-if-slower PCT too")
    if args.fail_if_slower is None:
        return None
    try:
        return regression.parse_percent(args.fail_if_slower)
    except regression.RegressionError as exc:
        raise UserError(str(exc).rstrip(".")) from None


def _verify_command(args: argparse.Namespace) -> int:
    from bootbench.views import verify

    allowed = verify.DEFAULT_TOLERANCE_MS if args.tolerance_ms is None else verify.tolerance(args.tolerance_ms)
    return verify.run(args.folder, allowed)


def _options_command(args: argparse.Namespace) -> int:
    print(options_help(), end="")
    return 0


def _providers_command(args: argparse.Namespace) -> int:
    from bootbench.views.providers import providers_text

    if args.locustfile:
        _import_locustfile(Path(args.locustfile))
    print(providers_text(args.names), end="")
    return 0


def _import_locustfile(path: Path) -> None:
    """Import a locustfile as Locust does (its folder on sys.path), so its ``@providers.register`` classes count."""
    import importlib.util

    if not path.is_file():
        raise UserError(f"no locustfile at {path}")
    sys.path.insert(0, str(path.resolve().parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


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
