"""The planner: each rule's verdict and reason, the order of the rules, and the injected now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanup.model import Action, Decision, Holder, Task
from cleanup.planner import (
    Evidence,
    evidence_from,
    holders_that_count,
    judge,
    newest_per_group,
    plan,
)
from cleanup.policy import Policy, policy_from_mapping

UTC = UTC
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
JAN1 = datetime(2026, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def pol(**sections: Any) -> Policy:
    """A policy selecting everything, with the given sections."""
    return policy_from_mapping({"version": 1, "select": {"all": True}, **sections})


def task(
    task_id: str = "t1",
    name: str | None = "exp-1",
    status: str | None = "completed",
    created: datetime | None = NOW - timedelta(days=100),
) -> Task:
    return Task(task_id=task_id, task_name=name, status=status, created_at=created)


DELETE, SKIP, DEFER = Action.DELETE, Action.SKIP, Action.DEFER

DECISIONS = [
    # the default policy deletes every deletable status
    ("plain-completed", {}, task(), DELETE, "selected", "status completed"),
    # registered is opt-in: deleting it cancels a training job that was just submitted
    ("plain-registered", {}, task(status="registered"), SKIP, "status", None),
    (
        "registered-opted-in",
        {"filters": {"statuses": ["registered"]}},
        task(status="registered"),
        DELETE,
        "selected",
        None,
    ),
    ("plain-failed", {}, task(status="failed"), DELETE, "selected", None),
    # protect
    ("protect-id", {"protect": {"ids": ["t1"]}}, task(), SKIP, "protect", "protect.ids"),
    ("protect-other-id", {"protect": {"ids": ["t2"]}}, task(), DELETE, "selected", None),
    (
        "protect-glob",
        {"protect": {"name_globs": ["prod-*"]}},
        task(name="prod-7"),
        SKIP,
        "protect",
        "protect.name_globs 'prod-*'",
    ),
    (
        "protect-glob-second",
        {"protect": {"name_globs": ["live", "prod-?"]}},
        task(name="prod-7"),
        SKIP,
        "protect",
        "protect.name_globs 'prod-?'",
    ),
    (
        "protect-glob-case-sensitive",
        {"protect": {"name_globs": ["prod-*"]}},
        task(name="PROD-7"),
        DELETE,
        "selected",
        None,
    ),
    (
        "protect-glob-no-partial",
        {"protect": {"name_globs": ["prod"]}},
        task(name="prod-7"),
        DELETE,
        "selected",
        None,
    ),
    # name_glob (fnmatch, case-sensitive, whole name)
    (
        "glob-match",
        {"filters": {"name_glob": "exp-*"}},
        task(name="exp-9"),
        DELETE,
        "selected",
        None,
    ),
    (
        "glob-miss",
        {"filters": {"name_glob": "exp-*"}},
        task(name="prod-9"),
        SKIP,
        "name_glob",
        "name does not match 'exp-*'",
    ),
    ("glob-case", {"filters": {"name_glob": "exp-*"}}, task(name="EXP-9"), SKIP, "name_glob", None),
    (
        "glob-inner",
        {"filters": {"name_glob": "exp"}},
        task(name="my-exp-1"),
        SKIP,
        "name_glob",
        None,
    ),
    ("glob-nameless", {"filters": {"name_glob": "*"}}, task(name=None), SKIP, "name_glob", None),
    (
        "glob-set",
        {"filters": {"name_glob": "exp-[0-3]"}},
        task(name="exp-2"),
        DELETE,
        "selected",
        None,
    ),
    # name_regex: re.fullmatch, not re.search
    (
        "regex-full",
        {"filters": {"name_regex": "exp-[0-9]+"}},
        task(name="exp-12"),
        DELETE,
        "selected",
        None,
    ),
    (
        "regex-suffix",
        {"filters": {"name_regex": "exp-[0-9]+"}},
        task(name="exp-12-old"),
        SKIP,
        "name_regex",
        "name does not match 'exp-[0-9]+'",
    ),
    (
        "regex-prefix",
        {"filters": {"name_regex": "exp-[0-9]+"}},
        task(name="my-exp-12"),
        SKIP,
        "name_regex",
        None,
    ),
    (
        "regex-substring",
        {"filters": {"name_regex": "exp"}},
        task(name="exp-1"),
        SKIP,
        "name_regex",
        None,
    ),
    ("regex-anchored", {"filters": {"name_regex": "^exp-1$"}}, task(), DELETE, "selected", None),
    (
        "regex-nameless",
        {"filters": {"name_regex": ".*"}},
        task(name=None),
        SKIP,
        "name_regex",
        None,
    ),
    # older_than: an age of exactly the duration is old enough, a microsecond less is not
    (
        "older-exact",
        {"filters": {"older_than": "30d"}},
        task(created=NOW - timedelta(days=30)),
        DELETE,
        "selected",
        None,
    ),
    (
        "older-just-short",
        {"filters": {"older_than": "30d"}},
        task(created=NOW - timedelta(days=30) + MICRO),
        SKIP,
        "older_than",
        "created too recently",
    ),
    (
        "older-well-past",
        {"filters": {"older_than": "30d"}},
        task(created=NOW - timedelta(days=31)),
        DELETE,
        "selected",
        None,
    ),
    (
        "older-future",
        {"filters": {"older_than": "0s"}},
        task(created=NOW + timedelta(minutes=1)),
        SKIP,
        "older_than",
        None,
    ),
    (
        "older-ms",
        {"filters": {"older_than": "1500ms"}},
        task(created=NOW - timedelta(seconds=1.5)),
        DELETE,
        "selected",
        None,
    ),
    (
        "older-other-offset",
        {"filters": {"older_than": "1h"}},
        task(created=(NOW - timedelta(hours=1)).astimezone(timezone(timedelta(hours=9)))),
        DELETE,
        "selected",
        None,
    ),
    # created_before: strictly before
    (
        "before-exact",
        {"filters": {"created_before": "2026-01-01T00:00:00Z"}},
        task(created=JAN1),
        SKIP,
        "created_before",
        "created at or after 2026-01-01T00:00:00+00:00",
    ),
    (
        "before-just",
        {"filters": {"created_before": "2026-01-01T00:00:00Z"}},
        task(created=JAN1 - MICRO),
        DELETE,
        "selected",
        None,
    ),
    (
        "before-offset",
        {"filters": {"created_before": "2026-01-01T09:00:00+09:00"}},
        task(created=JAN1 - MICRO),
        DELETE,
        "selected",
        None,
    ),
    (
        "before-after",
        {"filters": {"created_before": "2026-01-01T00:00:00Z"}},
        task(created=JAN1 + timedelta(days=1)),
        SKIP,
        "created_before",
        None,
    ),
    (
        "before-and-older-both",
        {"filters": {"created_before": "2026-01-01T00:00:00Z", "older_than": "30d"}},
        task(created=JAN1 + timedelta(days=1)),
        SKIP,
        "created_before",
        None,
    ),
    (
        "older-checked-first",
        {"filters": {"created_before": "2026-01-01T00:00:00Z", "older_than": "30d"}},
        task(created=NOW),
        SKIP,
        "older_than",
        None,
    ),
    # a task without created_at never passes an age filter (kept with its own reason),
    # and passes when there is none
    (
        "no-created-older",
        {"filters": {"older_than": "1s"}},
        task(created=None),
        SKIP,
        "created_at_unknown",
        "created_at missing or unreadable",
    ),
    (
        "no-created-before",
        {"filters": {"created_before": "2030-01-01T00:00:00Z"}},
        task(created=None),
        SKIP,
        "created_at_unknown",
        "created_at missing or unreadable",
    ),
    ("no-created-no-age-rule", {}, task(created=None), DELETE, "selected", None),
    # status filter
    (
        "status-not-selected",
        {"filters": {"statuses": ["failed"]}},
        task(status="completed"),
        SKIP,
        "status",
        "status completed is not selected",
    ),
    (
        "status-selected",
        {"filters": {"statuses": ["failed"]}},
        task(status="failed"),
        DELETE,
        "selected",
        None,
    ),
    # busy: deferred, whatever the statuses filter says
    ("busy-pending", {}, task(status="pending"), DEFER, "busy", "task is pending"),
    ("busy-in-progress", {}, task(status="in_progress"), DEFER, "busy", "task is in_progress"),
    (
        "busy-status-filter",
        {"filters": {"statuses": ["failed"]}},
        task(status="in_progress"),
        DEFER,
        "busy",
        None,
    ),
    # unknown statuses are never deleted
    (
        "unknown-status",
        {},
        task(status="archived"),
        SKIP,
        "unknown_status",
        "status 'archived' is not known",
    ),
    ("no-status", {}, task(status=None), SKIP, "unknown_status", "status missing is not known"),
    # statuses compare case-insensitively, and `complete` means `completed`
    ("status-case", {}, task(status="Completed"), DELETE, "selected", None),
    ("status-complete", {}, task(status="complete"), DELETE, "selected", None),
    ("status-odd", {}, task(status="archived"), SKIP, "unknown_status", None),
    # rule order: protect first, then names, then age, then status
    (
        "protect-beats-busy",
        {"protect": {"ids": ["t1"]}},
        task(status="in_progress"),
        SKIP,
        "protect",
        None,
    ),
    (
        "protect-beats-unknown",
        {"protect": {"name_globs": ["*"]}},
        task(status="archived"),
        SKIP,
        "protect",
        None,
    ),
    (
        "protect-beats-filters",
        {"protect": {"ids": ["t1"]}, "filters": {"name_glob": "zzz", "older_than": "999w"}},
        task(),
        SKIP,
        "protect",
        None,
    ),
    (
        "id-before-glob",
        {"protect": {"ids": ["t1"], "name_globs": ["exp-*"]}},
        task(),
        SKIP,
        "protect",
        "protect.ids",
    ),
    (
        "glob-before-regex",
        {"filters": {"name_glob": "zzz", "name_regex": "yyy"}},
        task(),
        SKIP,
        "name_glob",
        None,
    ),
    (
        "regex-before-age",
        {"filters": {"name_regex": "yyy", "older_than": "999w"}},
        task(),
        SKIP,
        "name_regex",
        None,
    ),
    (
        "name-before-busy",
        {"filters": {"name_glob": "zzz"}},
        task(status="pending"),
        SKIP,
        "name_glob",
        None,
    ),
    (
        "age-before-busy",
        {"filters": {"older_than": "999w"}},
        task(status="in_progress"),
        SKIP,
        "older_than",
        None,
    ),
    (
        "age-before-unknown",
        {"filters": {"older_than": "999w"}},
        task(status="archived"),
        SKIP,
        "older_than",
        None,
    ),
    (
        "unknown-before-status-filter",
        {"filters": {"statuses": ["failed"]}},
        task(status="archived"),
        SKIP,
        "unknown_status",
        None,
    ),
    (
        "all-filters-pass",
        {
            "filters": {
                "statuses": ["completed"],
                "name_glob": "exp-*",
                "name_regex": "exp-[0-9]",
                "older_than": "30d",
                "created_before": "2026-05-01T00:00:00Z",
            },
            "protect": {"ids": ["t9"], "name_globs": ["prod-*"]},
        },
        task(),
        DELETE,
        "selected",
        "status completed",
    ),
]


@pytest.mark.parametrize(
    ("sections", "the_task", "action", "reason", "detail"),
    [pytest.param(*row[1:], id=row[0]) for row in DECISIONS],
)
def test_decision_per_rule(sections, the_task: Task, action: Action, reason: str, detail):
    """Each rule yields its action and reason (and readable detail) for one task on its own."""
    [decision] = plan([the_task], pol(**sections), NOW)
    assert decision.task is the_task
    assert (decision.action, decision.reason) == (action, reason)
    if detail is not None:
        assert decision.detail == detail


# -- keep_latest -----------------------------------------------------------------------------


def family(name: str, days: list[int], prefix: str | None = None, **kw: Any) -> list[Task]:
    """Tasks of one name, ``days`` old each; IDs ``<prefix><days>``."""
    prefix = prefix if prefix is not None else name + "-"
    return [task(f"{prefix}{d}", name, created=NOW - timedelta(days=d), **kw) for d in days]


def actions(decisions: list[Decision]) -> dict[str, tuple[Action, str]]:
    return {d.task.task_id: (d.action, d.reason) for d in decisions}


def test_keep_latest_keeps_newest_n_of_each_name():
    """keep_latest skips the newest N of every task_name and lets the older ones through."""
    tasks = family("a", [1, 2, 3, 4, 5]) + family("b", [10, 30]) + family("c", [7])
    got = actions(plan(tasks, pol(filters={"keep_latest": 2}), NOW))
    kept = ("skip", "keep_latest")
    assert {k for k, (a, r) in got.items() if (a.value, r) == kept} == {
        "a-1",
        "a-2",
        "b-10",
        "b-30",
        "c-7",
    }
    assert {k for k, (a, _) in got.items() if a is DELETE} == {"a-3", "a-4", "a-5"}


def test_keep_latest_detail_says_how_many():
    """A keep_latest skip says which rule and how many of the name are kept."""
    [decision] = plan(family("a", [1]), pol(filters={"keep_latest": 3}), NOW)
    assert decision.detail == "one of the newest 3 of its name"


def test_keep_latest_counts_over_the_account_not_the_candidates():
    """keep_latest ranks over the account argument: old candidates are not 'newest' alone."""
    account = family("a", [1, 2, 3, 4])
    candidates = [t for t in account if t.task_id in ("a-3", "a-4")]
    policy = pol(filters={"keep_latest": 2})
    with_account = actions(plan(candidates, policy, NOW, account=account))
    alone = actions(plan(candidates, policy, NOW))
    assert with_account == {"a-3": (DELETE, "selected"), "a-4": (DELETE, "selected")}
    assert alone == {"a-3": (SKIP, "keep_latest"), "a-4": (SKIP, "keep_latest")}


def test_keep_latest_candidate_among_newest_of_account_is_kept():
    """A candidate that is among the account's newest N is kept even if others are not listed."""
    account = family("a", [1, 2, 3])
    decisions = plan([account[1]], pol(filters={"keep_latest": 2}), NOW, account=account)
    assert actions(decisions) == {"a-2": (SKIP, "keep_latest")}


def test_keep_latest_slots_taken_by_protected_busy_and_filtered_tasks():
    """Protected, busy and status-filtered tasks still count among the newest N of their name."""
    account = [
        task("p", "a", created=NOW - timedelta(days=1)),
        task("busy", "a", status="in_progress", created=NOW - timedelta(days=2)),
        task("filtered", "a", status="registered", created=NOW - timedelta(days=3)),
        task("old", "a", status="failed", created=NOW - timedelta(days=4)),
    ]
    policy = pol(filters={"keep_latest": 3, "statuses": ["failed"]}, protect={"ids": ["p"]})
    got = actions(plan(account, policy, NOW, account=account))
    assert got == {
        "p": (SKIP, "protect"),
        "busy": (SKIP, "keep_latest"),
        "filtered": (SKIP, "keep_latest"),
        "old": (DELETE, "selected"),
    }


def test_keep_latest_task_without_created_at_is_kept_without_taking_a_place():
    """An undated task is kept (reason created_at_unknown), and the newest dated task
    still keeps its place."""
    account = [task("undated", "a", created=None), *family("a", [1, 2])]
    got = actions(plan(account, pol(filters={"keep_latest": 1}), NOW))
    assert got == {
        "undated": (SKIP, "created_at_unknown"),
        "a-1": (SKIP, "keep_latest"),
        "a-2": (DELETE, "selected"),
    }


def test_keep_latest_keeps_every_task_tied_with_the_nth_newest():
    """Tasks created in the same instant as the N-th newest are all kept: when in doubt,
    keep (task_id order says nothing about which was registered last)."""
    same = NOW - timedelta(days=5)
    account = [
        task("b", "a", created=same),
        task("a", "a", created=same),
        task("c", "a", created=same),
        task("old", "a", created=same - timedelta(days=1)),
    ]
    got = actions(plan(account, pol(filters={"keep_latest": 1}), NOW))
    assert got == {
        "a": (SKIP, "keep_latest"),
        "b": (SKIP, "keep_latest"),
        "c": (SKIP, "keep_latest"),
        "old": (DELETE, "selected"),
    }


def test_keep_latest_keeps_nameless_tasks():
    """Tasks without a task_name cannot be ranked within a name: keep_latest keeps them."""
    account = [
        *family("a", [1]),
        task("n1", None, created=NOW - timedelta(days=1)),
        task("n2", None, created=NOW - timedelta(days=2)),
    ]
    got = actions(plan(account, pol(filters={"keep_latest": 1}), NOW))
    assert got == {
        "a-1": (SKIP, "keep_latest"),
        "n1": (SKIP, "unknown_name"),
        "n2": (SKIP, "unknown_name"),
    }


@pytest.mark.parametrize("keep", [None, 0])
def test_newest_per_name_without_keep_is_empty(keep):
    """newest_per_group keeps nothing when keep_latest is absent or 0."""
    assert newest_per_group(family("a", [1, 2]), pol(filters={"keep_latest": keep})) == frozenset()


def test_newest_per_name_more_than_group():
    """keep_latest above a group's size keeps the whole group."""
    assert newest_per_group(family("a", [1, 2]), pol(filters={"keep_latest": 5})) == {"a-1", "a-2"}


@pytest.mark.parametrize(
    ("sections", "the_task", "reason"),
    [
        ({"protect": {"ids": ["a-1"]}}, "protect", "protect"),
        ({"protect": {"name_globs": ["a"]}}, "protect", "protect"),
        ({"filters": {"name_glob": "b"}}, "name", "name_glob"),
        ({"filters": {"name_regex": "b"}}, "name", "name_regex"),
        ({"filters": {"older_than": "2d"}}, "age", "older_than"),
        ({"filters": {"created_before": "2020-01-01T00:00:00Z"}}, "age", "created_before"),
        ({}, "busy", "keep_latest"),
        ({}, "unknown", "keep_latest"),
        ({"filters": {"statuses": ["failed"]}}, "status", "keep_latest"),
    ],
)
def test_keep_latest_rule_order(sections, the_task: str, reason: str):
    """For a kept task, protect, names and age report first; keep_latest beats busy and status."""
    status = {"busy": "pending", "unknown": "archived"}.get(the_task, "completed")
    newest = task("a-1", "a", status=status, created=NOW - timedelta(days=1))
    filters = {"keep_latest": 1, **sections.get("filters", {})}
    policy = pol(**{**sections, "filters": filters})
    [decision] = plan([newest], policy, NOW, account=[newest, *family("a", [5, 6])])
    assert (decision.action, decision.reason) == (SKIP, reason)


# -- now, judge, plan's shape -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "action"),
    [
        (datetime(1999, 1, 15, tzinfo=UTC), SKIP),
        (datetime(1999, 1, 31, tzinfo=UTC), DELETE),
        (datetime(2000, 1, 1, tzinfo=UTC), DELETE),
    ],
)
def test_now_is_injected(now: datetime, action: Action):
    """Age rules use the injected now, not the clock (a now in 1999 works)."""
    old = task(created=datetime(1999, 1, 1, tzinfo=UTC))
    [decision] = plan([old], pol(filters={"older_than": "30d"}), now)
    assert decision.action is action


def test_judge_uses_the_given_kept_set():
    """judge skips a task in the kept set given to it, and deletes it with an empty one."""
    policy = pol(filters={"keep_latest": 1})
    one = task()
    assert judge(one, policy, NOW, Evidence(kept=frozenset({"t1"}))).reason == "keep_latest"
    assert judge(one, policy, NOW, Evidence()).action is DELETE


def test_plan_one_decision_per_candidate_in_order():
    """plan returns one decision per candidate, in the candidates' order, from any iterable."""
    tasks = [
        task(f"t{i}", status=s)
        for i, s in enumerate(["failed", "pending", "archived", "completed"])
    ]
    decisions = plan(iter(tasks), pol(), NOW, account=iter(tasks))
    assert [d.task for d in decisions] == tasks
    assert [d.action for d in decisions] == [DELETE, DEFER, SKIP, DELETE]


def test_plan_of_nothing_is_empty():
    """An empty candidate list gives an empty plan."""
    assert plan([], pol(filters={"keep_latest": 2}), NOW, account=[]) == []


@pytest.mark.parametrize("older_than", ["1000000d", float("inf")])
def test_older_than_beyond_datetime_range_does_not_crash(older_than):
    """An older_than the policy accepts never crashes the planner (nothing is that old)."""
    try:
        policy = pol(filters={"older_than": older_than})
    except Exception as exc:  # rejecting it in the policy is a fix too
        assert type(exc).__name__ == "PolicyError"
        return
    [decision] = plan([task()], policy, NOW)
    assert (decision.action, decision.reason) == (SKIP, "older_than")


_HOLDERS = st.lists(
    st.builds(
        Holder,
        kind=st.sampled_from(["run", "profile"]),
        holder_id=st.sampled_from(["h1", "h2", "h3", "h4"]),
        task_id=st.sampled_from(["t1", "t2", "t3", None]),
        status=st.sampled_from(["completed", "in_progress", "Registered", "failed", None]),
        created_at=st.none() | st.integers(0, 10 * 86400).map(lambda s: NOW - timedelta(seconds=s)),
    ),
    max_size=12,
)


@settings(max_examples=300)
@given(
    holders=_HOLDERS,
    window=st.sampled_from([None, "1h", "2d", "7d"]),
    later=st.integers(0, 5 * 86400),
)
def test_the_holders_kept_give_the_same_evidence_now_and_later(holders, window, later):
    """``holders_that_count`` drops only holders ``evidence_from`` cannot use: the
    evidence from what it keeps equals the evidence from every holder, at the moment
    it was kept and at any later moment (the busy loop asks again later)."""
    p = pol(protect={"used_within": window} if window else {})
    kept = holders_that_count(holders, p, NOW)
    assert kept is not None
    for moment in (NOW, NOW + timedelta(seconds=later)):
        assert evidence_from(kept, p, moment, frozenset()) == evidence_from(
            holders, p, moment, frozenset()
        )
    assert holders_that_count(None, p, NOW) is None
