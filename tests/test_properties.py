"""Property tests: the planner's safety rules on random accounts and policies, then the whole
pipeline against the simulator on random accounts, faults and policies."""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cleanup import Settings, run_policy
from cleanup.auditview import verify
from cleanup.model import BUSY_STATUSES, DELETABLE_STATUSES, Action, Decision, Task
from cleanup.planner import UNSELECTED_REASONS, plan
from cleanup.policy import Policy, policy_from_mapping
from cleanup.simulator import SimConfig, SimState, Simulator

from .conftest import CREDS, read_audit, terminal_by_task

UTC = UTC
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
NAMES = ["exp-a", "exp-b", "prod-x", "train-1", "train-2"]
GLOBS = ["exp-*", "*-a", "train-?", "*", "prod-*", "exp-b", "*-1", "[et]*"]
REGEXES = ["exp-.", "(exp|train)-.*", "t.*", "x", "prod-x|exp-a", ".*-[0-9]"]
KNOWN_REASONS = {
    "created_at_unknown",
    "protect",
    "name_glob",
    "name_regex",
    "older_than",
    "created_before",
    "keep_latest",
    "status",
    "unknown_status",
    "unknown_name",
    "busy",
    "selected",
}

# -- independent oracles (written from the README, not from planner.py) ---------------------


def is_protected(task: Task, policy: Policy) -> bool:
    if task.task_id in policy.protect.ids:
        return True
    name = task.task_name
    return name is not None and any(fnmatchcase(name, g) for g in policy.protect.name_globs)


def passes_filters(task: Task, policy: Policy, now: datetime) -> bool:
    """Every name and age filter matches (statuses and keep_latest aside)."""
    f, name, created = policy.filters, task.task_name, task.created_at
    if f.name_glob is not None and (name is None or not fnmatchcase(name, f.name_glob)):
        return False
    if f.name_regex is not None and (name is None or f.name_regex.fullmatch(name) is None):
        return False
    if f.older_than_s is not None and (
        created is None or created > now - timedelta(seconds=f.older_than_s)
    ):
        return False
    return f.created_before is None or (created is not None and created < f.created_before)


def newness(task: Task) -> float:
    """Rank for keep_latest among dated tasks (undated ones are kept and take no place)."""
    return float("inf") if task.created_at is None else task.created_at.timestamp()


def newer_or_equal(task: Task, account: list[Task]) -> list[Task]:
    """The other dated tasks of the same name at least as new as ``task`` (ties count)."""
    return [
        u
        for u in account
        if u.task_id != task.task_id
        and u.created_at is not None
        and u.task_name == task.task_name
        and newness(u) >= newness(task)
    ]


def keep_in_doubt(task: Task, policy: Policy) -> bool:
    """keep_latest or protect.name_globs cannot be checked: no name, or (keep_latest) no date."""
    keep, globs = policy.filters.keep_latest, policy.protect.name_globs
    return (task.task_name is None and bool(keep or globs)) or (
        bool(keep) and task.created_at is None
    )


def strictly_newer(task: Task, account: list[Task]) -> list[Task]:
    return [u for u in newer_or_equal(task, account) if newness(u) > newness(task)]


# -- (a) the planner ------------------------------------------------------------------------

INSTANTS = [NOW - timedelta(days=d) for d in (0, 1, 7, 30, 31, 90)]


@st.composite
def accounts(draw: st.DrawFn) -> list[Task]:
    count = draw(st.integers(0, 30))
    created = (
        st.none()
        | st.sampled_from(INSTANTS)
        | st.integers(-3600, 120 * 86400).map(lambda s: NOW - timedelta(seconds=s))
    )
    statuses = st.sampled_from(
        [*sorted(DELETABLE_STATUSES), *sorted(BUSY_STATUSES), "archived", None]
    )
    return [
        Task(
            task_id=f"t{i}",
            task_name=draw(st.sampled_from([*NAMES, None])),
            status=draw(statuses),
            created_at=draw(created),
        )
        for i in range(count)
    ]


@st.composite
def policies(draw: st.DrawFn, task_ids: list[str]) -> Policy:
    filters: dict[str, Any] = {}
    if draw(st.booleans()):
        filters["statuses"] = sorted(
            draw(st.sets(st.sampled_from(sorted(DELETABLE_STATUSES)), min_size=1))
        )
    if draw(st.booleans()):
        filters["name_glob"] = draw(st.sampled_from(GLOBS))
    if draw(st.integers(0, 3)) == 0:
        filters["name_regex"] = draw(st.sampled_from(REGEXES))
    if draw(st.booleans()):
        filters["older_than"] = draw(
            st.sampled_from(["0s", "1h", "1d", "7d", "30d"])
            | st.integers(0, 100 * 86400).map(lambda n: f"{n}s")
        )
    if draw(st.integers(0, 3)) == 0:
        filters["created_before"] = draw(st.sampled_from(INSTANTS)).isoformat()
    if draw(st.booleans()):
        filters["keep_latest"] = draw(st.integers(0, 4))
    protect: dict[str, Any] = {}
    if task_ids and draw(st.booleans()):
        protect["ids"] = draw(st.lists(st.sampled_from(task_ids), max_size=4))
    if draw(st.booleans()):
        protect["name_globs"] = draw(st.lists(st.sampled_from(GLOBS), max_size=2))
    return policy_from_mapping(
        {"version": 1, "select": {"all": True}, "filters": filters, "protect": protect}
    )


@st.composite
def planner_cases(draw: st.DrawFn) -> tuple[list[Task], list[Task], Policy, datetime]:
    account = draw(accounts())
    candidates = [t for t in account if draw(st.integers(0, 3))]
    policy = draw(policies([t.task_id for t in account]))
    now = NOW + draw(st.sampled_from([timedelta(0), timedelta(days=1), timedelta(seconds=-1)]))
    return account, candidates, policy, now


@settings(max_examples=300, deadline=None)
@given(planner_cases())
def test_planner_safety_rules(case: tuple[list[Task], list[Task], Policy, datetime]):
    """Protect wins, keep_latest keeps the newest N, DELETE needs every rule, busy never deleted."""
    account, candidates, policy, now = case
    decisions = plan(candidates, policy, now, account=account)
    assert [d.task for d in decisions] == candidates
    keep = policy.filters.keep_latest or 0
    for d in decisions:
        t = d.task
        assert d.reason in KNOWN_REASONS
        if is_protected(t, policy):
            assert (d.action, d.reason) == (Action.SKIP, "protect")
        if t.status in BUSY_STATUSES:
            assert d.action is not Action.DELETE
        if d.action is Action.DEFER:
            assert t.status in BUSY_STATUSES and d.reason == "busy"
        if d.action is Action.DELETE:
            assert t.status in policy.filters.statuses
            assert not is_protected(t, policy)
            assert not keep_in_doubt(t, policy)
            assert passes_filters(t, policy, now)
            # Never one of the newest N of its name in the whole account, however ties fall.
            assert len(newer_or_equal(t, account)) >= keep
            assert d.reason == "selected"


@settings(max_examples=300, deadline=None)
@given(planner_cases())
def test_planner_deletes_everything_the_rules_allow(
    case: tuple[list[Task], list[Task], Policy, datetime],
):
    """A task every rule allows is deleted (or deferred when busy): the rules are not stricter."""
    account, candidates, policy, now = case
    keep = policy.filters.keep_latest or 0
    for d in plan(candidates, policy, now, account=account):
        t = d.task
        if is_protected(t, policy) or not passes_filters(t, policy, now):
            assert d.action is Action.SKIP
            continue
        if keep_in_doubt(t, policy):
            assert d.action is Action.SKIP
            assert d.reason in ("unknown_name", "keep_latest", "created_at_unknown")
            continue
        if len(strictly_newer(t, account)) < keep and len(newer_or_equal(t, account)) >= keep:
            continue  # ties at the Nth place: which one is kept is the planner's choice
        if len(newer_or_equal(t, account)) < keep:
            assert (d.action, d.reason) == (Action.SKIP, "keep_latest")
        elif t.status in BUSY_STATUSES:
            assert d.action is Action.DEFER
        elif t.status in policy.filters.statuses:
            assert d.action is Action.DELETE
        else:
            assert d.action is Action.SKIP
            assert d.reason in ("status", "unknown_status")


@settings(max_examples=200, deadline=None)
@given(planner_cases())
def test_keep_latest_over_candidates_subset_is_monotone(
    case: tuple[list[Task], list[Task], Policy, datetime],
):
    """Judging a subset of the account never deletes a task judging the whole account keeps."""
    account, candidates, policy, now = case
    whole = {d.task.task_id: d.action for d in plan(account, policy, now, account=account)}
    for d in plan(candidates, policy, now, account=account):
        assert d.action is whole[d.task.task_id]


# -- (b) the pipeline against the simulator -------------------------------------------------

FAST_RETRY = {
    "max_attempts": 8,
    "busy_interval": "20ms",
    "busy_deadline": "3s",
    "backoff_base": "1ms",
    "backoff_max": "10ms",
    "request_timeout": "5s",
}


@dataclass(frozen=True)
class SimTaskSpec:
    task_id: str
    name: str
    status: str
    age_days: int
    minutes: int
    final_status: str
    busy_for_s: float


@dataclass(frozen=True)
class Scenario:
    tasks: list[SimTaskSpec]
    runs: list[tuple[str, float]]  # (task_id held, busy_for_s)
    doc: dict[str, Any]
    ghosts: list[str]
    faults: dict[str, Any]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    count = draw(st.integers(10, 60))
    specs = []
    for i in range(count):
        status = draw(
            st.sampled_from(["registered", "completed", "failed", "pending", "in_progress"])
        )
        specs.append(
            SimTaskSpec(
                task_id=f"t{i:03d}",
                name=draw(st.sampled_from(NAMES)),
                status=status,
                age_days=draw(st.integers(0, 60)),
                minutes=draw(st.integers(0, 600)),
                final_status=draw(st.sampled_from(sorted(DELETABLE_STATUSES))),
                busy_for_s=draw(st.sampled_from([0.0, 0.02, 0.05, 0.1])),
            )
        )
    ids = [s.task_id for s in specs]
    runs = draw(
        st.lists(st.tuples(st.sampled_from(ids), st.sampled_from([0.02, 0.05, 0.1])), max_size=3)
    )
    select: dict[str, Any] = {}
    ghosts: list[str] = []
    if draw(st.integers(0, 3)):
        select["all"] = True
    if not select or draw(st.integers(0, 3)) == 0:
        ghosts = draw(st.lists(st.sampled_from(["ghost-1", "ghost-2", "gone.3"]), unique=True))
        chosen = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=count, unique=True))
        select["ids"] = chosen + ghosts
    filters: dict[str, Any] = {}
    if draw(st.booleans()):
        filters["statuses"] = sorted(
            draw(st.sets(st.sampled_from(sorted(DELETABLE_STATUSES)), min_size=1))
        )
    if draw(st.booleans()):
        filters["name_glob"] = draw(st.sampled_from(GLOBS))
    if draw(st.booleans()):
        filters["keep_latest"] = draw(st.integers(0, 3))
    if draw(st.booleans()):
        filters["older_than"] = draw(st.sampled_from(["0s", "3d", "10d", "30d"]))
    if draw(st.integers(0, 3)) == 0:
        filters["created_before_days"] = draw(st.integers(0, 60))  # resolved at run time
    protect: dict[str, Any] = {}
    if draw(st.booleans()):
        protect["name_globs"] = draw(
            st.lists(st.sampled_from(["prod-*", "exp-b", "*-1"]), max_size=2)
        )
    if draw(st.booleans()):
        protect["ids"] = draw(st.lists(st.sampled_from(ids), max_size=5))
    doc = {
        "version": 1,
        "select": select,
        "filters": filters,
        "protect": protect,
        "limits": {
            "rate": 2000,
            "concurrency": draw(st.sampled_from([1, 4, 8])),
            "max_deletions_percent": 100,
        },
        "retry": dict(FAST_RETRY),
    }
    faults = {
        "fail_before_delete": draw(st.sampled_from([0.0, 0.05])),
        "fail_after_delete": draw(st.sampled_from([0.0, 0.05])),
        "drop_connection": draw(st.sampled_from([0.0, 0.03])),
        "refusal_status": draw(st.sampled_from([400, 409])),
        "seed": draw(st.integers(0, 1000)),
    }
    return Scenario(specs, runs, doc, ghosts, faults)


def build_state(scenario: Scenario, base: datetime) -> SimState:
    state = SimState()
    for s in scenario.tasks:
        created = base - timedelta(days=s.age_days, hours=12) + timedelta(minutes=s.minutes)
        busy = s.status in BUSY_STATUSES
        state.add_task(
            s.task_id,
            s.name,
            s.status,
            created,
            busy_for_s=s.busy_for_s if busy else None,
            final_status=s.final_status if busy else s.status,
        )
    for n, (task_id, busy_for_s) in enumerate(scenario.runs):
        state.add_run(f"run-{n}", task_id, "in_progress", busy_for_s=busy_for_s)
    return state


def final_tasks(state: SimState) -> list[Task]:
    """The account as it will be once every busy task has finished."""
    return [
        Task(t.task_id, t.task_name, t.final_status if t.busy_until else t.status, t.created_at)
        for t in state.tasks.values()
    ]


def resolve(doc: dict[str, Any], base: datetime) -> dict[str, Any]:
    """Turn the relative created_before into a time (2 h clear of any task's created_at)."""
    doc = {**doc, "filters": dict(doc["filters"])}
    days = doc["filters"].pop("created_before_days", None)
    if days is not None:
        doc["filters"]["created_before"] = (base - timedelta(days=days)).isoformat()
    return doc


async def run_against_sim(
    scenario: Scenario, apply: bool, audit: Path
) -> tuple[Any, SimState, list[Task], dict[str, Any], datetime]:
    base = datetime.now(UTC)
    state = build_state(scenario, base)
    expected_account = final_tasks(state)
    doc = resolve(scenario.doc, base)
    async with Simulator(SimConfig(**scenario.faults), state) as sim:
        summary = await run_policy(
            doc,
            apply=apply,
            settings=Settings(endpoint=sim.url, audit_log=str(audit)),
            credentials=CREDS,
        )
    return summary, state, expected_account, doc, base


def expected_plan(
    doc: dict[str, Any], account: list[Task], base: datetime
) -> tuple[Policy, list[Decision], set[str]]:
    policy = policy_from_mapping(doc)
    explicit = set(policy.selection.ids)
    candidates = [t for t in account if policy.selection.all or t.task_id in explicit]
    decisions = plan(candidates, policy, base, account=account)
    entered = {t.task_id for t in candidates} | explicit
    return policy, decisions, entered


def quiet_ids(decisions: list[Decision], explicit: set[str]) -> set[str]:
    """Listed tasks no name or age filter selected: counted in run_finished, no line each."""
    return {
        d.task.task_id
        for d in decisions
        if d.reason in UNSELECTED_REASONS and d.task.task_id not in explicit
    }


def check_audit(
    audit: Path, summary: Any, entered: set[str], quiet: set[str] = frozenset()
) -> list[dict[str, Any]]:
    records = read_audit(audit)
    terminal = terminal_by_task(records)
    assert set(terminal) == entered - quiet
    assert all(len(events) == 1 for events in terminal.values()), terminal
    counted = Counter(events[0] for events in terminal.values())
    counted["skipped"] += len(quiet)
    assert {k: v for k, v in summary.counts.items() if v} == {k: v for k, v in counted.items() if v}
    for outcome, ids in summary.task_ids.items():
        if outcome == "skipped":
            assert len(ids) + len(quiet) == summary.counts[outcome]
            continue
        assert len(ids) == summary.counts[outcome]
        assert all(terminal[i] == [outcome] for i in ids)
    assert verify(audit).ok
    return records


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_pipeline_deletes_exactly_what_the_policy_selects(scenario: Scenario):
    """Against the simulator, apply deletes exactly the planned tasks on their final status."""
    with tempfile.TemporaryDirectory() as directory:
        audit = Path(directory) / "audit.jsonl"
        summary, state, account, doc, base = asyncio.run(run_against_sim(scenario, True, audit))
        policy, decisions, entered = expected_plan(doc, account, base)

        assert summary.exit_code == 0, (summary.error, summary.counts, summary.notes)
        quiet = quiet_ids(decisions, set(policy.selection.ids))
        records = check_audit(audit, summary, entered, quiet)

        expected_delete = {d.task.task_id for d in decisions if d.action is Action.DELETE}
        deleted = set(summary.task_ids.get("deleted", ()))
        absent = set(summary.task_ids.get("already_absent", ()))
        initial = {t.task_id for t in account}
        gone = initial - state.remaining_ids()

        # What is gone is exactly what the summary says was deleted or already absent.
        assert gone == deleted | (absent & initial)
        assert absent - initial == set(scenario.ghosts) & entered
        # Exactly what the policy selects on the final statuses.
        assert deleted == expected_delete
        by_id = {t.task_id: t for t in account}
        for task_id in deleted:
            t = by_id[task_id]
            assert t.status in policy.filters.statuses
            assert passes_filters(t, policy, base)
            assert not is_protected(t, policy)
        # keep_latest: the N newest of each name are still on the server.
        keep = policy.filters.keep_latest or 0
        remaining = [t for t in account if t.task_id not in gone]
        for task_id in deleted:
            assert len(newer_or_equal(by_id[task_id], remaining)) >= keep
        # Skips carry the planner's reason (busy tasks judged again on their final status).
        skipped = {r["task_id"]: r["reason"] for r in records if r["event"] == "skipped"}
        expected_skips = {
            d.task.task_id: d.reason
            for d in decisions
            if d.action is Action.SKIP and d.task.task_id not in quiet
        }
        assert skipped == expected_skips
        # Every DELETE the server saw was announced first; nothing deleted twice.
        deleting = sum(r["event"] == "deleting" for r in records)
        assert deleting == state.count(method="DELETE")
        assert max(state.deleted.values(), default=0) <= 1
        for kind in ("deleted", "deferred", "retrying", "skipped", "already_absent"):
            event(f"{kind}: {'some' if any(r['event'] == kind for r in records) else 'none'}")


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_dry_run_sends_no_delete_and_previews_the_plan(scenario: Scenario):
    """A dry run sends zero DELETEs, changes nothing and previews what apply would delete."""
    with tempfile.TemporaryDirectory() as directory:
        audit = Path(directory) / "audit.jsonl"
        summary, state, account, doc, base = asyncio.run(run_against_sim(scenario, False, audit))
        policy, decisions, entered = expected_plan(doc, account, base)

        assert summary.exit_code == 0, (summary.error, summary.counts)
        assert state.count(method="DELETE") == 0
        assert state.remaining_ids() == {t.task_id for t in account}
        check_audit(audit, summary, entered, quiet_ids(decisions, set(policy.selection.ids)))

        expected_delete = {d.task.task_id for d in decisions if d.action is Action.DELETE}
        busy_at_start = {s.task_id for s in scenario.tasks if s.status in BUSY_STATUSES}
        held_at_start = {task_id for task_id, _ in scenario.runs}  # the dry run lists runs
        would = set(summary.task_ids.get("would_delete", ()))
        assert would <= expected_delete
        assert expected_delete - busy_at_start - held_at_start <= would
        assert not summary.task_ids.get("deleted")
