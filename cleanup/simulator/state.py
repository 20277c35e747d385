"""The simulated NCLUE account: task models, runs, profiles and what happened to them.

Everything here is plain data plus bookkeeping; the HTTP side lives in ``app.py`` and
``listings.py``, the records themselves in ``records.py``.

Nothing runs in the background: a busy deadline is applied lazily whenever a record is
read (listing, GET, DELETE), so the account behaves as if time moved on its own.

Listing order is newest first by ``created_at``, ties by id (``SimConfig.order`` turns
it around on the wire). The sorted order is kept in a list that is re-sorted only after
additions and compacted only after deletes, so serving a page costs O(limit), not O(total).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

from cleanup.simulator.records import (
    BLOCKING_RUN_STATUSES,
    BUSY_TASK_STATUSES,
    SimProfile,
    SimRun,
    SimTask,
    as_utc,
    iso_z,
    newest_first,
)

__all__ = [
    "BLOCKING_RUN_STATUSES",
    "BUSY_TASK_STATUSES",
    "ROUTES",
    "SimProfile",
    "SimRun",
    "SimState",
    "SimTask",
    "as_utc",
    "iso_z",
]

ROUTES = ("list_tasks", "get_task", "delete_task", "list_runs", "list_profiles", "other")
"""Route names used as the second element of ``SimState.requests`` keys."""


class _Record(Protocol):
    def refresh(self, now: float) -> None: ...


R = TypeVar("R", bound=_Record)


class _Order(Generic[R]):
    """The listing order of one kind of record, sorted lazily and compacted lazily."""

    def __init__(self, key: Callable[[R], tuple[float, str]]) -> None:
        self.key = key
        self.ids: list[str] = []
        self.unsorted = False
        self.has_gaps = False

    def added(self, ident: str) -> None:
        self.ids.append(ident)
        self.unsorted = True

    def ordered(self, records: dict[str, R]) -> list[str]:
        """Return the ids in listing order; tolerates ``records`` changed directly."""
        if self.has_gaps:
            self.ids = [ident for ident in self.ids if ident in records]
            self.has_gaps = False
        if self.unsorted or len(self.ids) != len(records):
            ordered = sorted(records.items(), key=lambda item: self.key(item[1]))
            self.ids = [ident for ident, _ in ordered]
            self.unsorted = False
        return self.ids

    def page(self, records: dict[str, R], start: int, count: int) -> list[R]:
        """Return ``count`` records from position ``start``, refreshed."""
        page_ids = self.ordered(records)[start : start + count]
        if any(ident not in records for ident in page_ids):
            self.has_gaps = True
            page_ids = self.ordered(records)[start : start + count]
        now = time.monotonic()
        page = [records[ident] for ident in page_ids]
        for record in page:
            record.refresh(now)
        return page


def _holding(statuses: Iterable[str], registered_holds: bool) -> frozenset[str]:
    held = frozenset(statuses)
    return held if registered_holds else held - {"registered"}


class SimState:
    """Tasks, runs, profiles and request counters of one simulated account.

    Attributes a test or benchmark reads directly:

    - ``tasks``: task_id -> SimTask, in creation order;
    - ``runs``: run_id -> SimRun; ``profiles``: profile_id -> SimProfile;
    - ``requests``: (method, route, status) -> count of every API request that reached
      a handler, rejected ones included (status 0 = connection dropped on purpose);
    - ``deleted``: task_id -> how many times a DELETE actually removed it;
    - ``delete_log``: (monotonic time, task_id) of every actual removal by a DELETE;
    - ``vanished``: task ids removed by the simulator itself (``delete_per_list_page``);
    - ``refusals``: why DELETEs were refused: ``busy``, ``run`` or ``profile``;
    - ``faults``: fault kind -> how many times the simulator injected it (``rate_limited``,
      ``quota_exceeded``, ``hang``, ``fail_before_delete``, ``html_error``, ...);
    - ``accepted`` / ``accepted_times``: requests let through by quota and rate limit.
    """

    def __init__(self) -> None:
        """Create an empty account."""
        self.tasks: dict[str, SimTask] = {}
        self.runs: dict[str, SimRun] = {}
        self.runs_by_task: dict[str, list[SimRun]] = {}
        self.profiles: dict[str, SimProfile] = {}
        self.profiles_by_task: dict[str, list[SimProfile]] = {}
        self.requests: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.deleted: collections.Counter[str] = collections.Counter()
        self.delete_log: list[tuple[float, str]] = []
        self.vanished: list[str] = []
        self.refusals: collections.Counter[str] = collections.Counter()
        self.faults: collections.Counter[str] = collections.Counter()
        self.accepted = 0
        self.accepted_times: collections.deque[float] = collections.deque()
        self._tasks = _Order[SimTask](lambda t: newest_first(t.created_at, t.task_id))
        self._runs = _Order[SimRun](lambda r: newest_first(r.created_at, r.run_id))
        self._profiles = _Order[SimProfile](lambda p: newest_first(p.created_at, p.profile_id))

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
        created = as_utc(created_at) if created_at is not None else datetime.now(UTC)
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
        self._tasks.added(task_id)
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
        created = as_utc(created_at) if created_at is not None else datetime.now(UTC)
        run = SimRun(run_id, task_id, status, busy_until, created, final_status)
        self.runs[run_id] = run
        self.runs_by_task.setdefault(task_id, []).append(run)
        self._runs.added(run_id)
        return run

    def add_profile(
        self,
        profile_id: str,
        task_id: str,
        status: str = "completed",
        *,
        busy_for_s: float | None = None,
        busy_until: float | None = None,
        created_at: datetime | None = None,
        final_status: str = "completed",
        profile_name: str | None = None,
        task_name: str | None = None,
        disk_usage: int = 0,
    ) -> SimProfile:
        """Add a shopping-intent profile built from ``task_id``.

        ``busy_for_s`` makes it finish (to ``final_status``) that much later;
        ``task_name`` defaults to the task's name, when the task exists.
        """
        if profile_id in self.profiles:
            raise ValueError(f"duplicate profile_id {profile_id!r}")
        if busy_for_s is not None:
            busy_until = time.monotonic() + busy_for_s
        if task_name is None:
            task = self.tasks.get(task_id)
            task_name = task.task_name if task is not None else ""
        profile = SimProfile(
            profile_id=profile_id,
            profile_name=profile_name or f"intent-{profile_id[:8]}",
            task_id=task_id,
            task_name=task_name,
            status=status,
            created_at=as_utc(created_at) if created_at is not None else datetime.now(UTC),
            disk_usage=disk_usage,
            busy_until=busy_until,
            final_status=final_status,
        )
        self.profiles[profile_id] = profile
        self.profiles_by_task.setdefault(task_id, []).append(profile)
        self._profiles.added(profile_id)
        return profile

    # -- reading -------------------------------------------------------------------

    def task_status(self, task_id: str) -> str | None:
        """Return the task's current status (busy deadlines applied), None if absent."""
        task = self.tasks.get(task_id)
        if task is None:
            return None
        task.refresh(time.monotonic())
        return task.status

    def blocking_runs(
        self, task_id: str, now: float | None = None, *, registered_holds: bool = True
    ) -> list[SimRun]:
        """Return the runs that currently hold ``task_id`` (deadlines applied)."""
        return _holding_now(self.runs_by_task.get(task_id, ()), now, registered_holds)

    def blocking_profiles(
        self, task_id: str, now: float | None = None, *, registered_holds: bool = True
    ) -> list[SimProfile]:
        """Return the profiles that currently hold ``task_id`` (deadlines applied)."""
        return _holding_now(self.profiles_by_task.get(task_id, ()), now, registered_holds)

    def refusal_reason(
        self, task_id: str, now: float | None = None, *, registered_holds: bool = True
    ) -> str | None:
        """Why a DELETE of ``task_id`` is refused now (``busy``, ``run``, ``profile``)."""
        moment = time.monotonic() if now is None else now
        task = self.tasks.get(task_id)
        if task is None:
            return None
        task.refresh(moment)
        if task.status in BUSY_TASK_STATUSES:
            return "busy"
        if self.blocking_runs(task_id, moment, registered_holds=registered_holds):
            return "run"
        if self.blocking_profiles(task_id, moment, registered_holds=registered_holds):
            return "profile"
        return None

    def remaining_ids(self) -> set[str]:
        """Return the ids of every task still in the account."""
        return set(self.tasks)

    def task_page(self, start: int, count: int) -> list[SimTask]:
        """Return ``count`` tasks from position ``start`` in listing order, refreshed."""
        return self._tasks.page(self.tasks, start, count)

    def run_page(self, start: int, count: int) -> list[SimRun]:
        """Return ``count`` runs from position ``start`` (newest first), refreshed."""
        return self._runs.page(self.runs, start, count)

    def profile_page(self, start: int, count: int) -> list[SimProfile]:
        """Return ``count`` profiles from position ``start`` (newest first), refreshed."""
        return self._profiles.page(self.profiles, start, count)

    # -- changing ------------------------------------------------------------------

    def remove_task(self, task_id: str) -> bool:
        """Delete a task for real, recording it in ``deleted`` and ``delete_log``."""
        if self.tasks.pop(task_id, None) is None:
            return False
        self._tasks.has_gaps = True
        self.deleted[task_id] += 1
        self.delete_log.append((time.monotonic(), task_id))
        return True

    def vanish_task(self, task_id: str) -> bool:
        """Remove a task the way another client would: recorded in ``vanished`` only."""
        if self.tasks.pop(task_id, None) is None:
            return False
        self._tasks.has_gaps = True
        self.vanished.append(task_id)
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
            "refusals": dict(sorted(self.refusals.items())),
            "remaining": len(self.tasks),
            "runs": len(self.runs),
            "profiles": len(self.profiles),
            "deleted": sum(self.deleted.values()),
            "deleted_ids": len(self.deleted),
            "vanished": len(self.vanished),
            "max_deletes_per_id": max(self.deleted.values(), default=0),
            "delete_span_s": span,
        }


_Dependent = TypeVar("_Dependent", SimRun, SimProfile)


def _holding_now(
    dependents: Iterable[_Dependent], now: float | None, registered_holds: bool
) -> list[_Dependent]:
    """The runs or profiles in a holding status at ``now`` (deadlines applied first)."""
    moment = time.monotonic() if now is None else now
    holding = _holding(BLOCKING_RUN_STATUSES, registered_holds)
    held = []
    for dependent in dependents:
        dependent.refresh(moment)
        if dependent.status in holding:
            held.append(dependent)
    return held
