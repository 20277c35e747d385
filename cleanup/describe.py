"""A validated policy in words, an estimate of a run's calls and time, and its warnings.

What ``nclue-cleanup validate`` prints; pure functions of the policy (no I/O, no clock).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta

from .policy import Policy
from .times import format_age, format_duration, iso_z

PAGE_SIZE = 100  # tasks, runs or profiles per listing call (the API's largest limit)
GUIDANCE_RATE = 1.0  # requests per second: the NCLUE guidance
DEADLINE_FACTOR = 1.25
DEADLINE_SLACK_S = 120  # pod start, the 20 s shutdown grace, backoff on a bad night


@dataclass(frozen=True, slots=True)
class Estimate:
    """Calls and time of one run over an account of ``tasks`` tasks, at most.

    ``deadline_s`` is a Kubernetes ``activeDeadlineSeconds`` for the Job:
    ``DEADLINE_FACTOR`` x ``duration_s`` + ``DEADLINE_SLACK_S``, rounded up to a minute.
    """

    tasks: int
    task_pages: int
    listing_calls: int
    delete_calls: int
    verify_calls: int
    busy_wait_s: float
    duration_s: float
    deadline_s: int


def lists_account(policy: Policy) -> bool:
    """Whether a run lists the whole account (``select.all``, or ``keep_latest`` needs it)."""
    return policy.selection.all or policy.filters.keep_latest is not None


def estimate(policy: Policy, tasks: int) -> Estimate:
    """The most calls and time a run that is not refused makes, at the policy's rate.

    Listing: ``ceil(tasks / 100)`` pages of tasks, and as many again for runs and for
    shopping-intent profiles (assumed: an account has about as many of each as tasks);
    without a listed account, one GET per task instead of the task pages. Deletes: at
    most ``tasks``, ``max_deletions_per_run`` and ``max_deletions`` (a larger plan is
    refused). Verification (``api.verify``): one more listing pass (or a GET per delete).
    Then up to ``busy_deadline`` waiting for busy tasks.
    """
    limits = policy.limits
    pages = max(1, math.ceil(tasks / PAGE_SIZE))
    caps = [c for c in (limits.max_deletions_per_run, limits.max_deletions) if c is not None]
    deletes = min([tasks, *caps])
    listed = lists_account(policy)
    task_calls = pages if listed else tasks
    listing = task_calls + 2 * pages
    verify = (pages if listed else deletes) if policy.api.verify and deletes else 0
    busy = policy.retry.busy_deadline_s
    duration = (listing + deletes + verify) / limits.rate + busy
    deadline = math.ceil((DEADLINE_FACTOR * duration + DEADLINE_SLACK_S) / 60) * 60
    return Estimate(tasks, pages, listing, deletes, verify, busy, duration, deadline)


def describe(policy: Policy, *, estimate_tasks: int | None = None) -> str:
    """The normalized policy, and what it selects, in words (with an estimate if asked)."""
    lines = [
        f"policy {policy.source} (sha256 {policy.sha256}) is valid.",
        f"selects: {_selection(policy)}",
        f"account: {_account(policy)}",
        f"deletes those where: {' and '.join(_rules(policy))}",
        "busy tasks (pending, in_progress) that match: deferred and judged again when done",
    ]
    keep = _keep(policy)
    if keep:
        lines.append(f"keeps: {keep}")
    lines += [
        f"never deletes: {'; '.join(_protect(policy))}",
        f"limits: {_limits(policy)}",
        f"retry: {_retry(policy)}",
        f"review: {_review(policy)}",
        f"api: {_api(policy)}",
        f"endpoint: {policy.endpoint or '(from --endpoint, NCLUE_ENDPOINT or the default)'}",
    ]
    if estimate_tasks is not None:
        lines += _estimate_lines(policy, estimate(policy, estimate_tasks))
    return "\n".join(lines)


def _selection(policy: Policy) -> str:
    s = policy.selection
    sources = []
    if s.all:
        sources.append("every task in the account (full listing)")
    if s.ids:
        sources.append(f"{len(s.ids)} explicit task IDs")
    if s.ids_file:
        sources.append(f"the IDs listed in {s.ids_file}")
    if not sources:
        sources.append("nothing by itself: give task IDs with run --ids-from FILE|- or --plan")
    return "; ".join(sources)


def _account(policy: Policy) -> str:
    keys = policy.account.access_key_ids
    if keys is None:
        return "any credentials (no account.access_key_ids)"
    return f"only with access key ID {', '.join(sorted(keys))} (any other: exit 2)"


def _rules(policy: Policy) -> list[str]:
    f = policy.filters
    rules = [f"status is one of {', '.join(sorted(f.statuses))}"]
    if f.name_glob:
        rules.append(f"name matches {f.name_glob!r}")
    if f.name_regex:
        rules.append(f"name fully matches /{f.name_regex.pattern}/")
    if f.older_than_s is not None:
        rules.append(f"created more than {format_duration(f.older_than_s)} ago")
    if f.created_before:
        rules.append(f"created before {iso_z(f.created_before)}")
    return rules


def _keep(policy: Policy) -> str | None:
    f = policy.filters
    if f.keep_latest is None:
        return None
    if f.keep_latest_by is None:
        group = "task_name"
    else:
        which = "group 'family'" if "family" in f.keep_latest_by.groupindex else "group 1"
        group = f"family ({which} of /{f.keep_latest_by.pattern}/ on task_name)"
    return f"the newest {f.keep_latest} tasks of each {group}; ties with the last kept are kept"


def _protect(policy: Policy) -> list[str]:
    p = policy.protect
    rules = []
    if p.ids:
        rules.append(f"{len(p.ids)} protected ID{'' if len(p.ids) == 1 else 's'}")
    if p.name_globs:
        rules.append(f"names matching {', '.join(p.name_globs)}")
    if p.referenced:
        rules.append("tasks a shopping-intent profile references")
    if p.used_within_s is not None:
        rules.append(f"tasks with a run created in the last {format_duration(p.used_within_s)}")
    return rules or ["no protect rules"]


def _limits(policy: Policy) -> str:
    lim = policy.limits
    percent = "off" if lim.max_deletions_percent >= 100 else f"{lim.max_deletions_percent:g}%"
    per_run = lim.max_deletions_per_run
    drain = "none" if per_run is None else f"{per_run} (drain: oldest first, rest next run)"
    return (
        f"rate {lim.rate:g} requests/s, concurrency {lim.concurrency}, "
        f"max_deletions {_or_none(lim.max_deletions)}, "
        f"max_deletions_percent {percent} of the listed account, "
        f"max_deletions_per_run {drain}, max_failure_percent {lim.max_failure_percent:g}%"
    )


def _retry(policy: Policy) -> str:
    r = policy.retry
    return (
        f"max_attempts {r.max_attempts}, busy_interval {format_duration(r.busy_interval_s)}, "
        f"busy_deadline {format_duration(r.busy_deadline_s)}, backoff "
        f"{format_duration(r.backoff_base_s)}..{format_duration(r.backoff_max_s)}, "
        f"request_timeout {format_duration(r.request_timeout_s)}"
    )


def _review(policy: Policy) -> str:
    low, high = policy.review.min_plan_age_s, policy.review.max_plan_age_s
    if low is None and high is None:
        return "any plan age for --apply --plan"
    parts = []
    if low is not None:
        parts.append(f"at least {format_duration(low)}")
    if high is not None:
        parts.append(f"at most {format_duration(high)}")
    return f"a plan for --apply --plan must be {' and '.join(parts)} old"


def _api(policy: Policy) -> str:
    verify = "deletes confirmed by a listing or GET" if policy.api.verify else "not verified"
    return f"zone-less API times read in {policy.api.timezone}; {verify}"


def _estimate_lines(policy: Policy, e: Estimate) -> list[str]:
    lim = policy.limits
    tasks = (
        f"{e.task_pages:,} pages of {PAGE_SIZE} tasks"
        if lists_account(policy)
        else (f"{e.tasks:,} GETs for the explicit tasks")
    )
    caps = []
    if lim.max_deletions_per_run is not None:
        caps.append(f"max_deletions_per_run {lim.max_deletions_per_run}")
    if lim.max_deletions is not None:
        caps.append(f"max_deletions {lim.max_deletions}")
    return [
        f"estimate for {e.tasks:,} tasks at {lim.rate:g} requests/s:",
        f"  listing: {e.listing_calls:,} calls ({tasks}, runs and profiles assumed to take "
        "as many pages as tasks)",
        f"  deletes: at most {e.delete_calls:,} calls" + (f" ({', '.join(caps)})" if caps else ""),
        f"  verification: ~{e.verify_calls:,} calls"
        + (" (one more listing pass)" if e.verify_calls else ""),
        f"  busy tasks: up to {format_duration(e.busy_wait_s)} (busy_deadline)",
        f"  expected duration: up to {math.ceil(e.duration_s):,} s "
        f"(about {format_age(timedelta(seconds=e.duration_s))})",
        f"  suggested Kubernetes activeDeadlineSeconds: {e.deadline_s} "
        f"({DEADLINE_FACTOR:g} x duration + {DEADLINE_SLACK_S} s, rounded up to a minute)",
    ]


def _or_none(value: int | None) -> str:
    return "none" if value is None else str(value)


def policy_warnings(policy: Policy) -> list[str]:
    """What ``validate`` and every dry run should warn about, one sentence each."""
    f, lim = policy.filters, policy.limits
    warnings = []
    if policy.selection.all and not (
        f.name_glob or f.name_regex or f.older_than_s is not None or f.created_before
    ):
        warnings.append(
            "select.all with no name or age filter: every task of the selected statuses "
            "in the account is a candidate"
        )
    percent_off = lim.max_deletions_percent >= 100 or not lists_account(policy)
    if lim.max_deletions is None and lim.max_deletions_per_run is None and percent_off:
        warnings.append(
            "no deletion cap: limits.max_deletions is unset and max_deletions_percent "
            + ("is 100" if lists_account(policy) else "does not apply without a listing")
            + ", so nothing bounds what one run deletes"
        )
    per_run = lim.max_deletions_per_run
    if per_run is not None and lim.max_deletions is not None and per_run > lim.max_deletions:
        warnings.append(
            f"limits.max_deletions_per_run {per_run} is above max_deletions "
            f"{lim.max_deletions}: a backlog is refused (exit 5) instead of drained"
        )
    if lim.rate > GUIDANCE_RATE:
        warnings.append(
            f"limits.rate {lim.rate:g} requests/s is above the NCLUE guidance of "
            f"{GUIDANCE_RATE:g} request/s"
        )
    if "registered" in f.statuses:
        warnings.append(
            "filters.statuses selects registered: deleting a registered task cancels the "
            "training job just submitted for it"
        )
    if f.keep_latest and f.keep_latest_by is None:
        warnings.append(
            f"filters.keep_latest {f.keep_latest} groups by the exact task_name: with "
            "versioned names (ctr-v7, exp-2026-11-30) every group has one task, keep_latest "
            "keeps every task and nothing is deleted; set keep_latest_by, e.g. "
            "'^(?P<family>.+)-v[0-9]+$'"
        )
    return warnings
