"""Values that start with a dash, kept with their flag: ``--sweep -1,2`` means the value ``-1,2``.

argparse takes a word that starts with ``-`` for an option unless it is a
plain negative number (``-5``, ``-0.5``): ``--sweep -1,2``,
``--fail-if-slower -5%`` and ``--audible-dbfs -inf`` all end in its "expected
one argument", and ``-inf`` even reads as ``-i nf``. :func:`join_dash_values`
rewrites such a pair into ``--flag=VALUE`` before argparse sees it, so the
value reaches bootbench's own check and its sentence ("--sweep levels must be
positive numbers of users, not '-1,2'"), or is accepted when valid
(``--audible-dbfs -4.5e1``). A word that does not look like a number
(``--sweep --turns 2``) is left alone: a missing value stays argparse's error.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Sequence

NUMBER_LIKE = re.compile(r"-(?:[0-9.]|inf|nan)", re.IGNORECASE)
"""A dash and then what can only start a value: a digit, a decimal point, ``inf`` or ``nan``."""


def join_dash_values(args: Sequence[str], flags: Iterable[str]) -> list[str]:
    """``args`` with each ``FLAG VALUE`` whose value looks like a negative number written ``FLAG=VALUE``.

    ``flags`` are the flags that take one value (never a switch).
    """
    flags = frozenset(flags)
    joined: list[str] = []
    index = 0
    while index < len(args):
        word = args[index]
        if word == "--":  # everything after it is positional
            joined.extend(args[index:])
            break
        following = args[index + 1] if index + 1 < len(args) else None
        if word in flags and following is not None and NUMBER_LIKE.match(following):
            joined.append(f"{word}={following}")
            index += 2
            continue
        joined.append(word)
        index += 1
    return joined


def keep_dash_values(parser: Any, flags: Iterable[str], command_line: Callable[[], list[str]]) -> None:
    """Make ``parser`` (Locust's, built for one parse) join the dash values of ``flags`` before it parses.

    Locust owns the command line and calls ``parser.parse_args`` itself; the
    one place bootbench can reach it is the parser it is given to add its
    options to, so this wraps that parser's ``parse_known_args`` (the method
    argparse's and configargparse's ``parse_args`` call). Variables and
    config files reach argparse as ``--flag=VALUE`` already. ``command_line``
    gives the arguments when the caller passes none (``sys.argv[1:]``).
    """
    flags = tuple(flags)
    parse_known_args = parser.parse_known_args

    def parse_known_args_keeping_dash_values(args: Any = None, *rest: Any, **kwargs: Any) -> Any:
        if args is None:
            args = command_line()
        elif isinstance(args, str):  # configargparse accepts one string, split on whitespace
            args = args.split()
        return parse_known_args(join_dash_values(list(args), flags), *rest, **kwargs)

    parser.parse_known_args = parse_known_args_keeping_dash_values
