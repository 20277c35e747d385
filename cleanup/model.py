"""The values that flow through the pipeline: tasks, decisions and outcomes."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

DELETABLE_STATUSES = frozenset({"registered", "completed", "failed"})
BUSY_STATUSES = frozenset({"pending", "in_progress"})
# A dependent run in one of these holds its task (the newest API revision adds registered).
HOLDING_RUN_STATUSES = frozenset({"registered", "pending", "in_progress"})


_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def valid_task_id(text: str) -> bool:
    """Whether ``text`` can be a task ID: safe to put in a URL path as it is."""
    return bool(_TASK_ID.fullmatch(text))


@dataclass(frozen=True, slots=True)
class Task:
    """One task model as the API last reported it (only the fields decisions need)."""

    task_id: str
    task_name: str | None = None
    status: str | None = None
    created_at: datetime | None = None

    @property
    def busy(self) -> bool:
        return self.status in BUSY_STATUSES

    @classmethod
    def from_api(cls, data: Mapping[str, object]) -> Task:
        """Build a task from an API object; raises ``ValueError`` on a malformed one."""
        task_id = data.get("task_id")
        if not isinstance(task_id, str) or not task_id:
            raise ValueError("task without a string task_id")
        if not valid_task_id(task_id):
            raise ValueError(f"task_id {task_id[:60]!r} is not a plain ID (unsafe in a URL path)")
        name = data.get("task_name")
        status = data.get("status")
        return cls(
            task_id=task_id,
            task_name=name if isinstance(name, str) else None,
            status=status if isinstance(status, str) else None,
            created_at=parse_time(data.get("created_at")),
        )


def parse_time(value: object) -> datetime | None:
    """Parse an ISO 8601 API timestamp leniently; ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


class Action(enum.Enum):
    """What the planner decided for one task."""

    DELETE = "delete"
    SKIP = "skip"
    DEFER = "defer"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Decision:
    """The planner's verdict on one task, with the reason a person can read."""

    task: Task
    action: Action
    reason: str
    detail: str | None = None


class Outcome(str, enum.Enum):
    """Terminal audit events: every task that entered the pipeline ends in exactly one."""

    WOULD_DELETE = "would_delete"
    DELETED = "deleted"
    ALREADY_ABSENT = "already_absent"
    SKIPPED = "skipped"
    FAILED = "failed"
    STILL_BUSY = "still_busy"
