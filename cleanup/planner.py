"""Pure decisions: (tasks, policy, now) -> decisions. No network, no clock, no I/O.

The order of the rules is the order a person reads a policy in: protect first
(protect always wins), then the name and age filters, then ``keep_latest``, and
the status last, so that a busy task which matches every other rule is deferred
and judged again on the status it finishes with.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from .model import BUSY_STATUSES, DELETABLE_STATUSES, Action, Decision, Task
from .policy import Policy


def newest_per_name(tasks: Iterable[Task], keep: int | None) -> frozenset[str]:
    """Return the IDs ``keep_latest`` protects: the newest ``keep`` of each ``task_name``.

    When in doubt, keep: a task whose ``created_at`` is unknown is kept, and does not
    take one of the ``keep`` places of the dated tasks (it may be older or newer than
    them). Tasks without a readable name are skipped by ``judge`` before this matters.
    """
    if not keep:
        return frozenset()
    groups: dict[str | None, list[Task]] = defaultdict(list)
    kept: set[str] = set()
    for task in tasks:
        if task.created_at is None:
            kept.add(task.task_id)
        else:
            groups[task.task_name].append(task)
    for members in groups.values():
        members.sort(key=_newest_first)
        kept.update(t.task_id for t in members[:keep])
    return frozenset(kept)


def _newest_first(task: Task) -> tuple[float, str]:
    assert task.created_at is not None
    return (-task.created_at.timestamp(), task.task_id)


def judge(task: Task, policy: Policy, now: datetime, kept: frozenset[str]) -> Decision:
    """Decide one task. ``kept`` is ``newest_per_name`` over the complete listing."""
    protect, filters = policy.protect, policy.filters
    if task.task_id in protect.ids:
        return Decision(task, Action.SKIP, "protect", "protect.ids")
    name = task.task_name
    if name is None and (protect.name_globs or filters.keep_latest):
        # Without a readable name neither protect.name_globs nor keep_latest can be
        # checked, and both exist to keep tasks: keep it.
        return Decision(task, Action.SKIP, "unknown_name", "task_name missing or unreadable")
    for pattern in protect.name_globs:
        if name is not None and fnmatchcase(name, pattern):
            return Decision(task, Action.SKIP, "protect", f"protect.name_globs {pattern!r}")
    glob = filters.name_glob
    if glob is not None and (name is None or not fnmatchcase(name, glob)):
        return Decision(task, Action.SKIP, "name_glob", f"name does not match {glob!r}")
    regex = filters.name_regex
    if regex is not None and (name is None or not regex.fullmatch(name)):
        return Decision(task, Action.SKIP, "name_regex", f"name does not match {regex.pattern!r}")
    age_rule = _age_rule(task, policy, now)
    if age_rule:
        return Decision(task, Action.SKIP, *age_rule)
    if task.task_id in kept:
        return Decision(
            task, Action.SKIP, "keep_latest", f"one of the newest {filters.keep_latest} of its name"
        )
    return _by_status(task, policy)


def _age_rule(task: Task, policy: Policy, now: datetime) -> tuple[str, str] | None:
    filters = policy.filters
    if filters.older_than_s is None and filters.created_before is None:
        return None
    if task.created_at is None:
        rule = "older_than" if filters.older_than_s is not None else "created_before"
        return (rule, "created_at unknown")
    if filters.older_than_s is not None and task.created_at > now - timedelta(
        seconds=filters.older_than_s
    ):
        return ("older_than", "created too recently")
    if filters.created_before is not None and task.created_at >= filters.created_before:
        return ("created_before", f"created at or after {filters.created_before.isoformat()}")
    return None


def _by_status(task: Task, policy: Policy) -> Decision:
    status = task.status
    if status in BUSY_STATUSES:
        return Decision(task, Action.DEFER, "busy", f"task is {status}")
    if status not in DELETABLE_STATUSES:
        return Decision(task, Action.SKIP, "unknown_status", f"status {status!r} is not known")
    if status not in policy.filters.statuses:
        return Decision(task, Action.SKIP, "status", f"status {status} is not selected")
    return Decision(task, Action.DELETE, "selected", f"status {status}")


def plan(
    candidates: Iterable[Task],
    policy: Policy,
    now: datetime,
    *,
    account: Iterable[Task] | None = None,
    kept: frozenset[str] | None = None,
) -> list[Decision]:
    """Decide every candidate.

    ``account`` is the complete listing keep_latest is counted over (default: the
    candidates); ``kept`` is ``newest_per_name`` of it, when the caller has it already.
    """
    candidates = list(candidates)
    if kept is None:
        group = candidates if account is None else account
        kept = newest_per_name(group, policy.filters.keep_latest)
    return [judge(task, policy, now, kept) for task in candidates]
