"""How bootbench shows numbers to people, in one place.

The report, the comparison table, the web UI tab and the headless progress
line all format through these functions, so the same value always reads the
same wherever it appears (and tests can format metrics.json the same way).

    >>> format_ms(151.2349), format_rate(0.975), format_count(1234)
    ('151.2', '97.5 %', '1234')
"""

from __future__ import annotations

import math

MISSING = "–"


def format_ms(value: float | None) -> str:
    """A duration in milliseconds with one decimal, without the unit ("151.2"); "–" when absent."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.1f}"


def format_rate(value: float | None) -> str:
    """A share (0..1) as a percentage with one decimal ("97.5 %"); "–" when absent."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value * 100:.1f} %"


def format_count(value: int | None) -> str:
    """A count as plain digits; "–" when absent."""
    return MISSING if value is None else str(int(value))
