"""How bootbench reads a share (a success rate, an allowed slowdown): one convention for every option.

A share is a percentage written with ``%`` (``95%``, ``10 %``) or a bare
fraction from 0 to 1 (``0.95``, ``0.1``). A bare number above 1 is refused:
``10`` could mean 10 % or 1000 %, and a CI gate that silently read the other
one would pass or fail for the wrong reason. ``--check success_rate OP VALUE``
and ``bootbench compare --fail-if-slower VALUE`` both read their value here.
"""

from __future__ import annotations


class ShareError(ValueError):
    """A share written against the convention; ``str()`` is the reason, for the caller's sentence."""


def convention(example: float) -> str:
    """The convention in words, with ``example`` (a fraction) written both ways."""
    return f"a percentage with % ({example * 100:g}%) or a fraction from 0 to 1 ({example:g})"


def fraction(number: float, percent: bool) -> float:
    """The share ``number`` (followed by ``%`` when ``percent``) as a fraction; raises :class:`ShareError`."""
    if percent:
        return number / 100
    if number > 1:
        raise ShareError(f"{number:g} is ambiguous ({number:g}% or {number * 100:g}%?); write a share as "
                         f"{convention(number / 100)}")
    return number
