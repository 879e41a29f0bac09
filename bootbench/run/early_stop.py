"""The early-stop policy: a run whose first iterations all fail to connect or to authenticate ends early.

Without it, a dead target or a rejected key would spend the whole budget
(and, for a paid service, time) on failures that say nothing new. One
success disarms the policy for the rest of the run. Streaks are kept per
worker: a worker that cannot reach the target while the others can does
not end the run (its iterations fail, the others' succeed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from bootbench.samples import ErrorKind, Sample

FATAL_STREAK = 3
"""How many failures of one fatal kind in a row, before any success, end the run."""
FATAL_KINDS: dict[str, str] = {
    ErrorKind.CONNECT_FAILED: "{message}",
    ErrorKind.AUTH_FAILED: "authentication failed: {message}",
}
"""The error kinds that end a run early, with the sentence each ends it with."""


@dataclass
class EarlyStop:
    """Watches finished samples in order; says why to stop once the first ones all failed the same fatal way."""

    streak_needed: int = FATAL_STREAK
    any_success: bool = False
    streaks: dict[str, list[str]] = field(default_factory=dict)
    """Per worker (a sample's ``worker``: a Locust client id, or ``local``), its current streak of fatal kinds."""

    def reason_to_stop(self, sample: Sample, workers: Iterable[str] | None = None) -> str | None:
        """Take ``sample`` into account; the sentence that ends the run, or None to go on.

        A streak counts one worker's consecutive failures of the *same* fatal
        kind; any other outcome (another kind, another fatal kind) starts it
        over. The run ends once every worker of ``workers`` (the live ones;
        default: the sample's own) and the sample's worker has a full streak.
        """
        if sample.ok or self.any_success:
            self.any_success = True
            return None
        streak = self.streaks.setdefault(sample.worker, [])
        if sample.error_kind not in FATAL_KINDS or (streak and streak[-1] != sample.error_kind):
            streak.clear()
        if sample.error_kind in FATAL_KINDS:
            streak.append(sample.error_kind)
        counted = {sample.worker, *(workers or ())}
        if all(len(self.streaks.get(worker, ())) >= self.streak_needed for worker in counted):
            return FATAL_KINDS[sample.error_kind].format(message=sample.error)
        return None
