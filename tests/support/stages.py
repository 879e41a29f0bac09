"""What the service stage tests (tests/test_stages_*.py) assert of a sample or a turn against its ground truth."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from bootbench.samples import STAGE_PHASES

TRUTH_BOUND_MS = 10.0
"""The bound every stage phase is held to against the truth: the one first_response_ms is held to."""


def check_stages(mine: dict, truth: dict, where: str, has: Iterable[str] = STAGE_PHASES) -> None:
    """The stage phases of a sample (or a turn's ``stages_ms``) against its truth: those in ``has`` within
    :data:`TRUTH_BOUND_MS`, the others empty on both sides."""
    has = set(has)
    for phase in STAGE_PHASES:
        if phase in has:
            assert mine.get(phase) is not None and truth[phase] is not None, (where, phase)
            assert mine[phase] == pytest.approx(truth[phase], abs=TRUTH_BOUND_MS), (where, phase, mine, truth)
        else:
            assert mine.get(phase) is None and truth[phase] is None, (where, phase)
