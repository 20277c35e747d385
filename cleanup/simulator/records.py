"""The records of a simulated account: task models, task runs, shopping-intent profiles.

Busy records carry a ``busy_until`` deadline on the ``time.monotonic()`` clock and are
finished lazily by ``refresh`` whenever they are read. ``to_json`` gives the canonical
body (ISO 8601 ``Z`` times, canonical status spelling); ``wire.py`` reshapes it when a
``SimConfig`` knob asks for another reading of the API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

BUSY_TASK_STATUSES = frozenset({"pending", "in_progress"})
"""Task statuses that make a task undeletable by themselves."""

BLOCKING_RUN_STATUSES = frozenset({"registered", "pending", "in_progress"})
"""Run and profile statuses that hold the task they use (the newest revision of the API
page; ``SimConfig.registered_holds`` drops ``registered``)."""


def iso_z(moment: datetime | None) -> str | None:
    """Format an aware datetime as ISO 8601 UTC with a ``Z`` suffix (None stays None)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware datetime, reading a naive one as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


@dataclass(slots=True)
class SimTask:
    """One task model in the simulated account."""

    task_id: str
    task_name: str
    status: str
    created_at: datetime
    completed_at: datetime | None = None
    busy_until: float | None = None
    final_status: str = "completed"
    extra: dict[str, Any] = field(default_factory=dict)

    def refresh(self, now: float) -> None:
        """Finish the task if its busy deadline (monotonic ``now``) has passed."""
        if self.busy_until is not None and now >= self.busy_until:
            self.busy_until = None
            self.status = self.final_status
            self.completed_at = datetime.now(UTC)

    def to_json(self) -> dict[str, Any]:
        """Return the task as the API shows it (extra fields carried through)."""
        body: dict[str, Any] = {
            "task_id": self.task_id,
            "task_name": self.task_name,
            "status": self.status,
            "created_at": iso_z(self.created_at),
            "completed_at": iso_z(self.completed_at),
        }
        for key, value in self.extra.items():
            body.setdefault(key, value)
        return body


@dataclass(slots=True)
class SimRun:
    """One task model run; a run in a blocking status holds its task."""

    run_id: str
    task_id: str
    status: str
    busy_until: float | None = None
    created_at: datetime | None = None
    final_status: str = "completed"

    def refresh(self, now: float) -> None:
        """Finish the run if its busy deadline (monotonic ``now``) has passed."""
        if self.busy_until is not None and now >= self.busy_until:
            self.busy_until = None
            self.status = self.final_status

    def to_json(self) -> dict[str, Any]:
        """Return the run as the API shows it."""
        return {
            "run_id": self.run_id,
            "task_id": self.task_id,
            "status": self.status,
            "created_at": iso_z(self.created_at),
        }


@dataclass(slots=True)
class SimProfile:
    """One shopping-intent profile built from a task; a busy one holds that task."""

    profile_id: str
    profile_name: str
    task_id: str
    task_name: str
    status: str
    created_at: datetime
    disk_usage: int = 0
    busy_until: float | None = None
    final_status: str = "completed"

    def refresh(self, now: float) -> None:
        """Finish the profile if its busy deadline (monotonic ``now``) has passed."""
        if self.busy_until is not None and now >= self.busy_until:
            self.busy_until = None
            self.status = self.final_status

    def to_json(self) -> dict[str, Any]:
        """Return the profile as ``GET /profile/shopping-intents`` shows it."""
        return {
            "profile_id": self.profile_id,
            "profile_name": self.profile_name,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "status": self.status,
            "created_at": iso_z(self.created_at),
            "disk_usage": self.disk_usage,
        }


def newest_first(created_at: datetime | None, ident: str) -> tuple[float, str]:
    """Sort key of every listing: newest ``created_at`` first (undated last), ties by id."""
    stamp = created_at.timestamp() if created_at is not None else float("-inf")
    return (-stamp, ident)
