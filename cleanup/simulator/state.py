"""The simulated NCLUE account: task models, task runs and what happened to them.

Everything here is plain data plus bookkeeping; the HTTP side lives in ``app.py``.

Busy tasks and runs carry a ``busy_until`` deadline on the ``time.monotonic()`` clock.
Nothing runs in the background: a deadline is applied lazily whenever the task or run
is read (listing, GET, DELETE), so the account behaves as if time moved on its own.

Listing order is newest first by ``created_at``, ties by ``task_id``. The sorted order
is kept in a list that is re-sorted only after additions and compacted only after
deletes, so serving a page costs O(limit), not O(total).
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

BUSY_TASK_STATUSES = frozenset({"pending", "in_progress"})
"""Task statuses that make a task undeletable by themselves."""

BLOCKING_RUN_STATUSES = frozenset({"registered", "pending", "in_progress"})
"""Run statuses that hold the run's task (the newest revision of the API page)."""

ROUTES = ("list_tasks", "get_task", "delete_task", "list_runs", "other")
"""Route names used as the second element of ``SimState.requests`` keys."""


def iso_z(moment: datetime | None) -> str | None:
    """Format an aware datetime as ISO 8601 UTC with a ``Z`` suffix (None stays None)."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def as_utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware datetime, reading a naive one as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
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
            self.completed_at = datetime.now(timezone.utc)

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


def _newest_first(task: SimTask) -> tuple[float, str]:
    """Sort key: newest ``created_at`` first, ties by ``task_id``."""
    return (-task.created_at.timestamp(), task.task_id)


def _run_newest_first(run: SimRun) -> tuple[float, str]:
    """Sort key: newest ``created_at`` first (undated runs last), ties by ``run_id``."""
    stamp = run.created_at.timestamp() if run.created_at is not None else float("-inf")
    return (-stamp, run.run_id)


class SimState:
    """Tasks, runs and request counters of one simulated account.

    Attributes a test or benchmark reads directly:

    - ``tasks``: task_id -> SimTask, in creation order;
    - ``runs``: run_id -> SimRun;
    - ``requests``: (method, route, status) -> count of every API request that reached
      a handler, rejected ones included (status 0 = connection dropped on purpose);
    - ``deleted``: task_id -> how many times a DELETE actually removed it;
    - ``delete_log``: (monotonic time, task_id) of every actual removal;
    - ``faults``: fault kind -> how many times the simulator injected it (``rate_limited``,
      ``quota_exceeded``, ``hang``, ``fail_before_delete``, ``html_error``, ...);
    - ``accepted`` / ``accepted_times``: requests let through by quota and rate limit.
    """

    def __init__(self) -> None:
        """Create an empty account."""
        self.tasks: dict[str, SimTask] = {}
        self.runs: dict[str, SimRun] = {}
        self.runs_by_task: dict[str, list[SimRun]] = {}
        self.requests: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.deleted: collections.Counter[str] = collections.Counter()
        self.delete_log: list[tuple[float, str]] = []
        self.faults: collections.Counter[str] = collections.Counter()
        self.accepted = 0
        self.accepted_times: collections.deque[float] = collections.deque()
        self._order: list[str] = []
        self._order_unsorted = False
        self._order_has_gaps = False
        self._run_order: list[str] = []
        self._run_order_unsorted = False

    # -- building the account ------------------------------------------------------

    def add_task(
        self,
        task_id: str,
        task_name: str,
        status: str = "completed",
        created_at: datetime | None = None,
        *,
        completed_at: datetime | None = None,
        busy_for_s: float | None = None,
        busy_until: float | None = None,
        final_status: str = "completed",
        extra: dict[str, Any] | None = None,
    ) -> SimTask:
        """Add a task; ``busy_for_s`` makes it finish (to ``final_status``) that much later.

        ``completed_at`` defaults to ``created_at`` for a completed or failed task.
        """
        if task_id in self.tasks:
            raise ValueError(f"duplicate task_id {task_id!r}")
        created = as_utc(created_at) if created_at is not None else datetime.now(timezone.utc)
        if completed_at is None and status in ("completed", "failed"):
            completed_at = created
        if busy_for_s is not None:
            busy_until = time.monotonic() + busy_for_s
        task = SimTask(
            task_id=task_id,
            task_name=task_name,
            status=status,
            created_at=created,
            completed_at=as_utc(completed_at) if completed_at is not None else None,
            busy_until=busy_until,
            final_status=final_status,
            extra=dict(extra or {}),
        )
        self.tasks[task_id] = task
        self._order.append(task_id)
        self._order_unsorted = True
        return task

    def add_run(
        self,
        run_id: str,
        task_id: str,
        status: str = "completed",
        *,
        busy_for_s: float | None = None,
        busy_until: float | None = None,
        created_at: datetime | None = None,
        final_status: str = "completed",
    ) -> SimRun:
        """Add a run of ``task_id``; ``busy_for_s`` makes it finish that much later."""
        if run_id in self.runs:
            raise ValueError(f"duplicate run_id {run_id!r}")
        if busy_for_s is not None:
            busy_until = time.monotonic() + busy_for_s
        created = as_utc(created_at) if created_at is not None else datetime.now(timezone.utc)
        run = SimRun(run_id, task_id, status, busy_until, created, final_status)
        self.runs[run_id] = run
        self.runs_by_task.setdefault(task_id, []).append(run)
        self._run_order.append(run_id)
        self._run_order_unsorted = True
        return run

    # -- reading -------------------------------------------------------------------

    def task_status(self, task_id: str) -> str | None:
        """Return the task's current status (busy deadlines applied), None if absent."""
        task = self.tasks.get(task_id)
        if task is None:
            return None
        task.refresh(time.monotonic())
        return task.status

    def blocking_runs(self, task_id: str, now: float | None = None) -> list[SimRun]:
        """Return the runs that currently hold ``task_id`` (deadlines applied)."""
        moment = time.monotonic() if now is None else now
        held = []
        for run in self.runs_by_task.get(task_id, ()):
            run.refresh(moment)
            if run.status in BLOCKING_RUN_STATUSES:
                held.append(run)
        return held

    def remaining_ids(self) -> set[str]:
        """Return the ids of every task still in the account."""
        return set(self.tasks)

    def _ordered_ids(self) -> list[str]:
        """Return task ids in listing order, compacting or re-sorting only when needed.

        Tolerates tasks put into or removed from ``tasks`` directly (not via the
        helpers): a length mismatch triggers a full re-sort.
        """
        if self._order_has_gaps:
            self._order = [task_id for task_id in self._order if task_id in self.tasks]
            self._order_has_gaps = False
        if self._order_unsorted or len(self._order) != len(self.tasks):
            self._order = [task.task_id for task in sorted(self.tasks.values(), key=_newest_first)]
            self._order_unsorted = False
        return self._order

    def task_page(self, start: int, count: int) -> list[SimTask]:
        """Return ``count`` tasks from position ``start`` in listing order, refreshed."""
        page_ids = self._ordered_ids()[start : start + count]
        if any(task_id not in self.tasks for task_id in page_ids):
            self._order_has_gaps = True
            page_ids = self._ordered_ids()[start : start + count]
        now = time.monotonic()
        page = [self.tasks[task_id] for task_id in page_ids]
        for task in page:
            task.refresh(now)
        return page

    def run_page(self, start: int, count: int) -> list[SimRun]:
        """Return ``count`` runs from position ``start`` (newest first), refreshed."""
        if self._run_order_unsorted or len(self._run_order) != len(self.runs):
            ordered = sorted(self.runs.values(), key=_run_newest_first)
            self._run_order = [run.run_id for run in ordered]
            self._run_order_unsorted = False
        now = time.monotonic()
        page = [self.runs[run_id] for run_id in self._run_order[start : start + count]]
        for run in page:
            run.refresh(now)
        return page

    # -- changing ------------------------------------------------------------------

    def remove_task(self, task_id: str) -> bool:
        """Delete a task for real, recording it in ``deleted`` and ``delete_log``."""
        if self.tasks.pop(task_id, None) is None:
            return False
        self._order_has_gaps = True
        self.deleted[task_id] += 1
        self.delete_log.append((time.monotonic(), task_id))
        return True

    # -- counters ------------------------------------------------------------------

    def total_requests(self) -> int:
        """Return how many API requests reached a handler, whatever their outcome."""
        return sum(self.requests.values())

    def count(
        self, method: str | None = None, route: str | None = None, status: int | None = None
    ) -> int:
        """Return how many requests match every given part of (method, route, status)."""
        return sum(
            number
            for (req_method, req_route, req_status), number in self.requests.items()
            if (method is None or req_method == method)
            and (route is None or req_route == route)
            and (status is None or req_status == status)
        )

    def snapshot(self) -> dict[str, Any]:
        """Return the counters as JSON-able data (served by ``GET /_sim/stats``)."""
        by_status: collections.Counter[str] = collections.Counter()
        by_route: collections.Counter[str] = collections.Counter()
        for (_method, route, status), number in self.requests.items():
            by_status[str(status)] += number
            by_route[route] += number
        span = self.delete_log[-1][0] - self.delete_log[0][0] if self.delete_log else None
        return {
            "total_requests": self.total_requests(),
            "accepted": self.accepted,
            "requests": [
                {"method": method, "route": route, "status": status, "count": number}
                for (method, route, status), number in sorted(self.requests.items())
            ],
            "by_status": dict(sorted(by_status.items())),
            "by_route": dict(sorted(by_route.items())),
            "faults": dict(sorted(self.faults.items())),
            "remaining": len(self.tasks),
            "runs": len(self.runs),
            "deleted": sum(self.deleted.values()),
            "deleted_ids": len(self.deleted),
            "max_deletes_per_id": max(self.deleted.values(), default=0),
            "delete_span_s": span,
        }
