"""The values that flow through the pipeline: tasks, holders, decisions and outcomes."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime

DELETABLE_STATUSES = frozenset({"registered", "completed", "failed"})
BUSY_STATUSES = frozenset({"pending", "in_progress"})
# A dependent run or profile in one of these holds its task (the Korean master page,
# revised 2026-07, adds registered to pending and in_progress).
HOLDING_STATUSES = frozenset({"registered", "pending", "in_progress"})
HOLDING_RUN_STATUSES = HOLDING_STATUSES
_SPELLINGS = {"complete": "completed"}

_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def valid_task_id(text: str) -> bool:
    """Whether ``text`` can be a task ID: safe to put in a URL path as it is."""
    return bool(_TASK_ID.fullmatch(text))


def normalize_status(status: str | None) -> str | None:
    """Statuses compare case-insensitively, and ``complete`` means ``completed``."""
    if status is None:
        return None
    folded = status.strip().lower()
    return _SPELLINGS.get(folded, folded)


@dataclass(frozen=True, slots=True)
class Task:
    """One task model as the API last reported it (only the fields decisions need).

    ``status`` is as the API spelled it; ``state`` is the normalized form decisions
    use. ``created_at`` is None when the API's value could not be read.
    """

    task_id: str
    task_name: str | None = None
    status: str | None = None
    created_at: datetime | None = None

    @property
    def state(self) -> str | None:
        return normalize_status(self.status)

    @property
    def busy(self) -> bool:
        return self.state in BUSY_STATUSES


@dataclass(frozen=True, slots=True)
class Holder:
    """A task run or shopping-intent profile that references a task."""

    kind: str  # "run" or "profile"
    holder_id: str
    task_id: str | None
    status: str | None
    created_at: datetime | None = None

    @property
    def holding(self) -> bool:
        """Whether it holds its task now (the API refuses to delete the task)."""
        return normalize_status(self.status) in HOLDING_STATUSES

    def describe(self) -> str:
        return f"{self.kind} {self.holder_id} ({self.status})"


class Action(enum.Enum):
    """What the planner decided for one task."""

    DELETE = "delete"
    SKIP = "skip"
    DEFER = "defer"


@dataclass(frozen=True, slots=True)
class Decision:
    """The planner's verdict on one task, with the reason a person can read."""

    task: Task
    action: Action
    reason: str
    detail: str | None = None
    held_by: Holder | None = None


class Outcome(enum.StrEnum):
    """Terminal audit events: every task that entered the pipeline ends in exactly one."""

    WOULD_DELETE = "would_delete"
    DELETED = "deleted"
    ALREADY_ABSENT = "already_absent"
    SKIPPED = "skipped"
    FAILED = "failed"
    STILL_BUSY = "still_busy"
