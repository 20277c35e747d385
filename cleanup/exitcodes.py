"""Exit codes, decided in one place from what the run found (SPEC.md's table)."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CleanupError
from .stopping import SIGNAL_EXIT

MEANING = {
    0: "done",
    1: "some tasks failed, or the run could not complete",
    2: "usage, policy, credential or plan error",
    3: "authentication or permission failure: stopped",
    4: "finished, but some tasks were still busy at the deadline",
    5: "refused by a safety guard",
    129: "interrupted (SIGHUP)",
    130: "interrupted (SIGINT)",
    143: "interrupted (SIGTERM)",
}


@dataclass(frozen=True, slots=True)
class Facts:
    """What decides a run's exit code."""

    error: CleanupError | None = None
    crashed: bool = False
    signal: str | None = None
    failed: int = 0
    still_busy: int = 0
    apply: bool = False
    unknown_status_kept: bool = False
    """A task that matched every other rule was kept only for an unknown status."""
    would_refuse: bool = False
    """A dry run whose --apply would be refused by a safety guard."""


def exit_code(facts: Facts) -> int:
    """The first row that applies, in SPEC.md's order of severity."""
    error = facts.error
    if error is not None and error.exit_code in (2, 3, 5):
        return error.exit_code
    if facts.signal in SIGNAL_EXIT:
        return SIGNAL_EXIT[facts.signal]
    if facts.crashed or error is not None or facts.failed or facts.unknown_status_kept:
        return 1
    if facts.would_refuse:
        return 5
    if facts.still_busy and facts.apply:
        return 4
    return 0
