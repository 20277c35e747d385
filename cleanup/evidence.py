"""Evidence for refused or busy deletes: the task's state now and what holds it.

A refusal's status code and body are undocumented, so a refused DELETE is never
classified from its message: the task is read again and the runs and profiles that
hold it are looked up. ``Verdict`` is what that evidence says.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .model import Holder, Task


class Why(enum.Enum):
    """What the evidence says about a task that could not be deleted just now."""

    ABSENT = "absent"
    BUSY = "busy"
    HELD = "held"
    FREE = "free"  # neither busy nor held: the refusal is unexplained
    UNKNOWN = "unknown"  # the evidence could not be read


@dataclass(frozen=True, slots=True)
class Verdict:
    why: Why
    task: Task | None = None
    holder: Holder | None = None

    def reason(self) -> str:
        if self.why is Why.BUSY and self.task is not None:
            return f"task is {self.task.state}"
        if self.why is Why.HELD and self.holder is not None:
            return f"held by {self.holder.describe()}"
        if self.why is Why.FREE:
            return "refused, but neither busy nor held now"
        return "refused; its state could not be read"


def verdict(task: Task | None, holding: dict[str, Holder] | None, task_id: str) -> Verdict:
    """Judge from a fresh read of the task (None: absent) and the holders listed."""
    if task is None:
        return Verdict(Why.ABSENT)
    if task.busy:
        return Verdict(Why.BUSY, task)
    holder = None if holding is None else holding.get(task_id)
    if holder is not None:
        return Verdict(Why.HELD, task, holder)
    if holding is None:
        return Verdict(Why.UNKNOWN, task)
    return Verdict(Why.FREE, task)


def holding_map(holders: list[Holder] | None) -> dict[str, Holder] | None:
    """task_id -> the first run or profile that holds it now (None: not listed)."""
    if holders is None:
        return None
    holding: dict[str, Holder] = {}
    for holder in holders:
        if holder.task_id is not None and holder.holding:
            holding.setdefault(holder.task_id, holder)
    return holding
