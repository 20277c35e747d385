"""The guard stage: caps judged on the whole plan (every shard computes it), pure."""

from __future__ import annotations

from .model import Action, Decision, Task
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
