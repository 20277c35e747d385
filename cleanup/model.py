"""The values that flow through the pipeline: tasks, holders, decisions and outcomes."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, datetime

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


def _compact(moment: datetime | None) -> float | datetime | None:
    """``moment`` as epoch seconds when those give back the very same UTC time."""
    if moment is None or moment.tzinfo is not UTC:
        return moment
    try:
        seconds = moment.timestamp()
        if datetime.fromtimestamp(seconds, UTC) == moment:
            return seconds
    except (OverflowError, ValueError, OSError):  # the edges of year 1 and 9999
        pass
    return moment


def normalize_status(status: str | None) -> str | None:
    """Statuses compare case-insensitively, and ``complete`` means ``completed``."""
    if status is None:
        return None
    folded = status.strip().lower()
    return _SPELLINGS.get(folded, folded)


@dataclass(frozen=True, slots=True, init=False, repr=False)
class Task:
    """One task model as the API last reported it (only the fields decisions need).

    ``status`` is as the API spelled it; ``state`` is the normalized form decisions
    use. ``created_at`` is None when the API's value could not be read. A UTC time is
    kept as epoch seconds when that gives it back exactly (a float is half a
    ``datetime``'s memory, and a large account lists 300,000 tasks); any other time
    is kept as it is.
    """

    task_id: str
    task_name: str | None
    status: str | None
    _created: float | datetime | None

    def __init__(
        self,
        task_id: str,
        task_name: str | None = None,
        status: str | None = None,
        created_at: datetime | None = None,
    ) -> None:
        object.__setattr__(self, "task_id", task_id)
        object.__setattr__(self, "task_name", task_name)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "_created", _compact(created_at))

    @property
    def created_at(self) -> datetime | None:
        created = self._created
        if isinstance(created, float):
            return datetime.fromtimestamp(created, UTC)
        return created

    def __repr__(self) -> str:
        return (
            f"Task(task_id={self.task_id!r}, task_name={self.task_name!r}, "
            f"status={self.status!r}, created_at={self.created_at!r})"
        )

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
