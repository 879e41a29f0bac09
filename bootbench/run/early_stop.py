"""The early-stop policy: a run whose first iterations all fail to connect or to authenticate ends early.

Without it, a dead target or a rejected key would spend the whole budget
(and, for a paid service, time) on failures that say nothing new. One
success disarms the policy for the rest of the run.
"""

from __future__ import annotations

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
    streak: list[str] = field(default_factory=list)

    def reason_to_stop(self, sample: Sample) -> str | None:
        """Take ``sample`` into account; the sentence that ends the run, or None to go on.

        A streak counts consecutive failures of the *same* fatal kind; any
        other outcome (another kind, another fatal kind) starts it over.
        """
        if sample.ok or self.any_success:
            self.any_success = True
            return None
        if sample.error_kind not in FATAL_KINDS or (self.streak and self.streak[-1] != sample.error_kind):
            self.streak.clear()
        if sample.error_kind in FATAL_KINDS:
            self.streak.append(sample.error_kind)
        if len(self.streak) >= self.streak_needed:
            return FATAL_KINDS[sample.error_kind].format(message=sample.error)
        return None
