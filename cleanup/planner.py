"""Pure decisions: (tasks, policy, evidence, now) -> decisions. No network, no clock, no I/O.

The order of the rules is the order a person reads a policy in: protect first
(protect always wins), then the name and age filters, then ``keep_latest``, the
status, and last what holds the task, so that a busy or held task which matches
every other rule is deferred and judged again on the state it ends up in. When in
doubt, keep: an unreadable name, time or status keeps the task, with its own reason.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import overload

from .evidence import holding_map
from .model import BUSY_STATUSES, DELETABLE_STATUSES, Action, Decision, Holder, Task
from .policy import Policy

UNSELECTED_REASONS = frozenset({"name_glob", "name_regex", "older_than", "created_before"})
"""Skip reasons of tasks no name or age filter selects: counted, not written per task."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the holders listing says, and the ``keep_latest`` set, for ``judge``."""

    kept: frozenset[str] = frozenset()
    holding: Mapping[str, Holder] | None = None
    """task_id -> a run or profile that holds it now; None when not listed."""
    referenced: frozenset[str] = frozenset()
    """Tasks a shopping-intent profile references (any status)."""
    recently_used: frozenset[str] = frozenset()
    """Tasks with a run created within ``protect.used_within``."""


def evidence_from(
    holders: Iterable[Holder] | None, policy: Policy, now: datetime, kept: frozenset[str]
) -> Evidence:
    """Sort the runs and profiles into what ``judge`` asks of them."""
    if holders is None:
        return Evidence(kept=kept)
    holders = list(holders)
    referenced: set[str] = set()
    recent: set[str] = set()
    for holder in holders:
        if holder.task_id is None:
            continue
        if holder.kind == "profile":
            referenced.add(holder.task_id)
        if _recent_run(holder, policy, now):
            recent.add(holder.task_id)
    return Evidence(kept, holding_map(holders), frozenset(referenced), frozenset(recent))


@overload
def holders_that_count(holders: list[Holder], policy: Policy, now: datetime) -> list[Holder]: ...
@overload
def holders_that_count(holders: None, policy: Policy, now: datetime) -> None: ...
def holders_that_count(
    holders: list[Holder] | None, policy: Policy, now: datetime
) -> list[Holder] | None:
    """The runs and profiles ``evidence_from`` can use at ``now`` or later: profiles,
    runs that hold their task, runs within ``protect.used_within``. A finished run
    older than the window says nothing about any task now or later, and on a large
    account most runs are that: they are not kept for the rest of the run."""
    if holders is None:
        return None
    return [
        h
        for h in holders
        if h.task_id is not None
        and (h.kind == "profile" or h.holding or _recent_run(h, policy, now))
    ]


def _recent_run(holder: Holder, policy: Policy, now: datetime) -> bool:
    """A run within ``protect.used_within`` of ``now`` (an undated run might be: yes)."""
    window = policy.protect.used_within_s
    return (
        window is not None
        and holder.kind == "run"
        and (holder.created_at is None or holder.created_at > now - timedelta(seconds=window))
    )


def newest_per_group(tasks: Iterable[Task], policy: Policy) -> frozenset[str]:
    """The IDs ``keep_latest`` keeps: the newest N of each group, ties included.

    The group is ``keep_latest_by``'s group ``family`` (or its first group) of the
    name, else the whole name. Every task created at the same moment as the N-th
    newest is kept too (when in doubt, keep). Undated tasks take no place: they are
    kept by ``judge`` with their own reason.
    """
    keep = policy.filters.keep_latest
    if not keep:
        return frozenset()
    groups: dict[str, list[Task]] = defaultdict(list)
    for task in tasks:
        if task.created_at is not None and task.task_name is not None:
            groups[group_of(task.task_name, policy)].append(task)
    kept: set[str] = set()
    for members in groups.values():
        members.sort(key=_created, reverse=True)
        if len(members) > keep:
            cutoff = _created(members[keep - 1])
            kept.update(t.task_id for t in members if _created(t) >= cutoff)
        else:
            kept.update(t.task_id for t in members)
    return frozenset(kept)


def group_of(name: str, policy: Policy) -> str:
    """The ``keep_latest`` group of a task name."""
    by = policy.filters.keep_latest_by
    if by is None:
        return name
    match = by.fullmatch(name)
    if match is None:
        return name
    family = match.groupdict().get("family")
    return family if family is not None else match.group(1)


def _created(task: Task) -> float:
    assert task.created_at is not None
    return task.created_at.timestamp()


def judge(task: Task, policy: Policy, now: datetime, evidence: Evidence) -> Decision:
    """Decide one task against the whole policy and what holds it.

    Details are interned: a 300,000-task plan says "status completed" 300,000 times,
    and one copy of it is enough.
    """
    protect, filters = policy.protect, policy.filters
    if task.task_id.casefold() in protect.ids:
        return Decision(task, Action.SKIP, "protect", "protect.ids")
    name = task.task_name
    if name is None and (protect.name_globs or filters.keep_latest):
        # Without a readable name neither protect.name_globs nor keep_latest can be
        # checked, and both exist to keep tasks: keep it.
        return Decision(task, Action.SKIP, "unknown_name", "task_name missing or unreadable")
    for pattern in protect.name_globs:
        if name is not None and fnmatchcase(name, pattern):
            return Decision(
                task, Action.SKIP, "protect", sys.intern(f"protect.name_globs {pattern!r}")
            )
    if protect.referenced and task.task_id in evidence.referenced:
        return Decision(task, Action.SKIP, "referenced", "a shopping-intent profile uses it")
    rule = _filter_rule(task, policy, now)
    if rule is not None:
        return Decision(task, Action.SKIP, rule[0], sys.intern(rule[1]))
    if task.task_id in evidence.recently_used:
        return Decision(
            task, Action.SKIP, "used_within", "a run used it within protect.used_within"
        )
    if task.task_id in evidence.kept:
        of = "group" if filters.keep_latest_by is not None else "name"
        detail = f"one of the newest {filters.keep_latest} of its {of}"
        return Decision(task, Action.SKIP, "keep_latest", sys.intern(detail))
    return _by_state(task, policy, evidence)


def needs_created_at(policy: Policy) -> bool:
    f, limits = policy.filters, policy.limits
    return bool(
        f.older_than_s is not None
        or f.created_before is not None
        or f.keep_latest
        or limits.max_deletions_per_run is not None
    )


def _filter_rule(task: Task, policy: Policy, now: datetime) -> tuple[str, str] | None:
    filters, name = policy.filters, task.task_name
    if filters.name_glob is not None and (name is None or not fnmatchcase(name, filters.name_glob)):
        return ("name_glob", f"name does not match {filters.name_glob!r}")
    regex = filters.name_regex
    if regex is not None and (name is None or not regex.fullmatch(name)):
        return ("name_regex", f"name does not match {regex.pattern!r}")
    if not needs_created_at(policy):
        return None  # no rule reads the time
    created = task.created_at
    if created is None:
        return ("created_at_unknown", "created_at missing or unreadable")
    if filters.older_than_s is not None and created > now - timedelta(seconds=filters.older_than_s):
        return ("older_than", "created too recently")
    if filters.created_before is not None and created >= filters.created_before:
        return ("created_before", f"created at or after {filters.created_before.isoformat()}")
    return None


def _by_state(task: Task, policy: Policy, evidence: Evidence) -> Decision:
    state = task.state
    if state in BUSY_STATUSES:
        return Decision(task, Action.DEFER, "busy", sys.intern(f"task is {state}"))
    if state not in DELETABLE_STATUSES:
        shown = "missing" if task.status is None else repr(task.status[:40])
        return Decision(
            task, Action.SKIP, "unknown_status", sys.intern(f"status {shown} is not known")
        )
    if state not in policy.filters.statuses:
        return Decision(task, Action.SKIP, "status", sys.intern(f"status {state} is not selected"))
    holder = evidence.holding.get(task.task_id) if evidence.holding is not None else None
    if holder is not None:
        return Decision(task, Action.DEFER, "held", f"held by {holder.describe()}", holder)
    return Decision(task, Action.DELETE, "selected", sys.intern(f"status {state}"))


def plan(
    candidates: Iterable[Task],
    policy: Policy,
    now: datetime,
    *,
    account: Iterable[Task] | None = None,
    kept: frozenset[str] | None = None,
    evidence: Evidence | None = None,
) -> list[Decision]:
    """Decide every candidate.

    ``account`` is the complete listing keep_latest is counted over (default: the
    candidates); ``kept`` is ``newest_per_group`` of it, when the caller has it.
    """
    candidates = list(candidates)
    if evidence is None:
        if kept is None:
            kept = newest_per_group(candidates if account is None else account, policy)
        evidence = Evidence(kept=kept)
    return [judge(task, policy, now, evidence) for task in candidates]


def drain(decisions: list[Decision], limit: int | None) -> list[Decision]:
    """Drain mode: at most ``limit`` deletes (busy ones included), oldest first; the
    rest are kept with reason ``drain`` for a later run."""
    acting = [d for d in decisions if d.action is not Action.SKIP]
    if limit is None or len(acting) <= limit:
        return decisions
    acting.sort(key=lambda d: (_created(d.task), d.task.task_id))
    left = {d.task.task_id for d in acting[limit:]}
    return [
        Decision(d.task, Action.SKIP, "drain", "left for the next run (max_deletions_per_run)")
        if d.task.task_id in left
        else d
        for d in decisions
    ]
