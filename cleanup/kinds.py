"""Resource kinds as data: what to list, where, under which key, and how to read it.

A kind is a descriptor (kube-janitor's way with Kubernetes kinds): the listing, the
client and the evidence code take one and never switch on a resource name. Parsing
is strict where a wrong value could steer a delete (IDs must be plain IDs, safe in a
URL path) and lenient elsewhere (an unreadable time is ``None``, a non-string name is
unknown), so a broken field keeps a task rather than deleting it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Generic, TypeVar

from .model import Holder, Task, normalize_status, valid_task_id
from .times import parse_api_time

T = TypeVar("T")


class RecordError(ValueError):
    """A listed or fetched object that cannot be used (no plain ID)."""


@dataclass(frozen=True, slots=True)
class ResourceKind(Generic[T]):
    """One listable resource of the API."""

    name: str
    path: str
    list_key: str
    id_field: str
    route: str
    parse: Callable[[Mapping[str, object], tzinfo], T]
    ident: Callable[[T], str]
    fingerprint: Callable[[T], object]
    """What two records of one ID must agree on (else the records conflict)."""


def _text(value: object) -> str | None:
    # Interned: a 300,000-task account repeats a few statuses and its group names many
    # times; one copy each keeps the listing's memory per task small.
    return sys.intern(value) if isinstance(value, str) else None


def _plain_id(data: Mapping[str, object], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise RecordError(f"an object without a string {field}")
    if not valid_task_id(value):
        raise RecordError(f"{field} {value[:60]!r} is not a plain ID (unsafe in a URL path)")
    return value


def parse_task(data: Mapping[str, object], tz: tzinfo) -> Task:
    return Task(
        task_id=_plain_id(data, "task_id"),
        task_name=_text(data.get("task_name")),
        status=_text(data.get("status")),
        created_at=parse_api_time(data.get("created_at"), tz),
    )


def _holder(kind: str, id_field: str) -> Callable[[Mapping[str, object], tzinfo], Holder]:
    def parse(data: Mapping[str, object], tz: tzinfo) -> Holder:
        task_id = data.get("task_id")
        return Holder(
            kind=kind,
            holder_id=_plain_id(data, id_field),
            task_id=task_id if isinstance(task_id, str) and task_id else None,
            status=_text(data.get("status")),
            created_at=parse_api_time(data.get("created_at"), tz),
        )

    return parse


def _task_fingerprint(task: Task) -> object:
    return (task.task_name, task.state, task.created_at)


def _holder_fingerprint(holder: Holder) -> object:
    return (holder.task_id, normalize_status(holder.status))


TASKS: ResourceKind[Task] = ResourceKind(
    name="tasks",
    path="/tasks",
    list_key="tasks",
    id_field="task_id",
    route="list_tasks",
    parse=parse_task,
    ident=lambda task: task.task_id,
    fingerprint=_task_fingerprint,
)
RUNS: ResourceKind[Holder] = ResourceKind(
    name="task runs",
    path="/task-runs",
    list_key="runs",
    id_field="run_id",
    route="list_runs",
    parse=_holder("run", "run_id"),
    ident=lambda holder: holder.holder_id,
    fingerprint=_holder_fingerprint,
)
PROFILES: ResourceKind[Holder] = ResourceKind(
    name="shopping-intent profiles",
    path="/profile/shopping-intents",
    list_key="profiles",
    id_field="profile_id",
    route="list_profiles",
    parse=_holder("profile", "profile_id"),
    ident=lambda holder: holder.holder_id,
    fingerprint=_holder_fingerprint,
)
