"""The guard stage, pure: caps judged on the whole plan (every shard computes it), and
what the plan learned of the account that the user should hear about."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping

from .model import Action, Decision, Task
from .planner import group_of
from .policy import Policy


def judge_caps(
    whole: list[Decision], policy: Policy, account: dict[str, Task] | None
) -> tuple[str | None, str | None]:
    """(reason, message) when the plan exceeds a cap, else (None, None)."""
    limits = policy.limits
    acting = sum(d.action is not Action.SKIP for d in whole)
    if limits.max_deletions is not None and acting > limits.max_deletions:
        return "max_deletions", (
            f"the plan would delete {acting} tasks, more than limits.max_deletions "
            f"({limits.max_deletions}); nothing was deleted. Narrow the policy, raise the "
            "limit, or drain with limits.max_deletions_per_run"
        )
    percent = limits.max_deletions_percent
    if account and percent < 100 and acting * 100 > percent * len(account):
        return "max_deletions_percent", (
            f"the plan would delete {acting} of the account's {len(account)} tasks, more than "
            f"limits.max_deletions_percent ({percent:g}%); nothing was deleted. Narrow the "
            "policy, or set limits.max_deletions_percent: 100 to switch this off"
        )
    return None, None


def account_warnings(
    listed: Collection[Task], account: Mapping[str, Task] | None, policy: Policy
) -> list[str]:
    """keep_latest that keeps nothing (every group one task); protect.ids strangers."""
    warnings = []
    if policy.filters.keep_latest and listed:
        groups = Counter(group_of(t.task_name, policy) for t in listed if t.task_name)
        if groups and max(groups.values()) == 1 and len(groups) > 1:
            warnings.append(
                "filters.keep_latest keeps nothing: every group has a single task (names "
                "are versioned?); set filters.keep_latest_by"
            )
    protected = policy.protect.ids
    if account is not None and protected:
        # Casefolded one at a time: a set of every ID would double the listing's memory.
        known = {folded for t in account if (folded := t.casefold()) in protected}
        strangers = sorted(protected - known)
        if strangers:
            warnings.append(
                f"protect.ids names {len(strangers)} ID(s) this account does not have "
                f"(a typo, or another account's?): {', '.join(strangers[:5])}"
            )
    return warnings
