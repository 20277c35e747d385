"""Fidelity to the ambiguous NCLUE API (issue 13): key scenarios under every reading.

Each test runs the real pipeline against the bundled simulator with one of its
readings switched on (status spelling, refusal shape, ``total``, order, ``index``,
timestamps, holders, the gateway's 404) and pins what SPEC.md says the tool does
whichever way the real service turns out. Readings are combined pairwise, not as a
full product, to keep the file fast.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cleanup import Settings, run_policy
from cleanup.simulator import SimState, generate_account
from cleanup.simulator.answers import REFUSAL_MESSAGE

from .conftest import CREDS, OLD, policy, read_audit, terminal_by_task

KEEP_VERSIONS = r"^(.+)-v[0-9]+$"


def _events(tmp_path: Path, event: str) -> list[dict[str, Any]]:
    return [r for r in read_audit(tmp_path / "audit.jsonl") if r["event"] == event]


def _one_terminal_each(tmp_path: Path) -> dict[str, list[str]]:
    terminal = terminal_by_task(read_audit(tmp_path / "audit.jsonl"))
    assert all(len(v) == 1 for v in terminal.values()), terminal
    return terminal


# -- (a) a retention run under every listing and time reading ----------------------------

# Every binary listing switch combination once, each with a timestamp format (8 x 8 pairs
# would cover nothing more: the lister never reads a time, the parser never a page).
LISTING_READINGS = [
    ("account", "newest_first", "offset", "iso_z", "UTC"),
    ("page", "oldest_first", "offset", "naive", "UTC"),
    ("account", "oldest_first", "page", "naive_kst", "Asia/Seoul"),
    ("page", "newest_first", "page", "kst_offset", "UTC"),
    ("account", "newest_first", "page", "kst_offset_nocolon", "Asia/Seoul"),
    ("page", "oldest_first", "page", "epoch_s", "Asia/Seoul"),
    ("account", "oldest_first", "offset", "epoch_ms", "UTC"),
    ("page", "newest_first", "offset", "fraction_7", "Asia/Seoul"),
]


def _retention_account(now: datetime) -> tuple[SimState, set[str]]:
    """An account where reading a time 9 hours off, or skipping a page, changes the set.

    Returns the state and the IDs a policy of ``older_than: 1d, keep_latest: 5`` must
    delete. Groups ``ctr`` and ``churn`` have a task every hour (the 24 h boundary
    falls inside them, so a zone misread moves tasks across it); group ``ltv`` is
    spread over days (only ``keep_latest`` decides it).
    """
    state = SimState()
    created: dict[str, tuple[str, datetime]] = {}
    for name, count, step_min, first_min in (
        ("ctr", 110, 60, 30),
        ("churn", 90, 60, 50),
        ("ltv", 40, 600, 1500),
    ):
        for i in range(count):
            moment = (now - timedelta(minutes=first_min + i * step_min)).replace(microsecond=0)
            task_id = f"{name}-{i:03d}"
            status = "failed" if i % 7 == 3 else "completed"
            state.add_task(task_id, name, status, moment)
            created[task_id] = (name, moment)
    expected = set()
    for name in ("ctr", "churn", "ltv"):
        members = sorted((m, i) for i, (n, m) in created.items() if n == name)
        newest = {i for _, i in members[-5:]}
        expected |= {i for m, i in members if i not in newest and m < now - timedelta(days=1)}
    return state, expected


@pytest.mark.parametrize(("total", "order", "index", "stamps", "zone"), LISTING_READINGS)
async def test_retention_deletes_exactly_the_right_set_under_every_reading(
    make_sim, run, tmp_path, total, order, index, stamps, zone
):
    """select all + older_than + keep_latest deletes exactly the expected IDs, exit 0."""
    state, expected = _retention_account(datetime.now(UTC))
    sim = await make_sim(
        state, total_meaning=total, order=order, index_mode=index, timestamp_format=stamps
    )
    doc = policy(
        {"all": True},
        filters={"older_than": "1d", "keep_latest": 5},
        api={"timezone": zone},
    )
    summary = await run(sim, doc)
    assert summary.exit_code == 0, summary.error
    assert set(summary.deleted) == expected
    everything = {
        f"{n}-{i:03d}" for n, c in (("ctr", 110), ("churn", 90), ("ltv", 40)) for i in range(c)
    }
    assert sim.state.remaining_ids() == everything - expected
    assert summary.skip_reasons.get("keep_latest") == 5  # ltv: old, but the newest five
    assert summary.counts["failed"] == 0
    assert sim.state.faults["timestamp_format"] > 0 or stamps == "iso_z"
    _one_terminal_each(tmp_path)


# -- (b) refused deletes: any status, any body, deferred with evidence ------------------

REFUSALS = [  # every status x body; registered_holds alternates
    (status, body, number % 2 == 1)
    for number, (status, body) in enumerate(
        (s, b) for s in (400, 403, 409, 500) for b in ("nclue", "gateway", "text")
    )
]


def _refusal_shape(status: int, body: str) -> tuple[str | None, str]:
    """The errorCode and message the simulator's refusal carries."""
    if body == "text":
        return None, REFUSAL_MESSAGE
    if body == "gateway":
        return ("900", "Unexpected Error") if status == 500 else ("100", "Bad Request Exception")
    return "10107", REFUSAL_MESSAGE


def _after_the_plan(
    hold_s: float,
    *,
    busy: tuple[str, ...] = (),
    runs: tuple[str, ...] = (),
    profiles: tuple[str, ...] = (),
) -> Callable[[SimState, str, int], None]:
    """A listing hook: once the plan's holders are listed, the ``busy`` tasks start
    training, and a run ``r-<id>`` (a profile ``p-<id>``) starts on each of ``runs``
    (``profiles``), each for ``hold_s``; the plan saw none of it."""
    fired = False
    listed: set[str] = set()

    def hook(state: SimState, route: str, index: int) -> None:
        nonlocal fired
        listed.add(route)  # tasks, runs and profiles are listed together: wait for all
        if not {"list_tasks", "list_runs", "list_profiles"} <= listed or fired:
            return
        fired = True
        for task_id in busy:
            task = state.tasks[task_id]
            task.status, task.busy_until = "in_progress", time.monotonic() + hold_s
        for task_id in runs:
            state.add_run(f"r-{task_id}", task_id, "in_progress", busy_for_s=hold_s)
        for task_id in profiles:
            state.add_profile(f"p-{task_id}", task_id, "pending", busy_for_s=hold_s)

    return hook


LATE = {"busy": ("late-busy",), "runs": ("late-run",), "profiles": ("late-profile",)}


@pytest.mark.parametrize(("status", "body", "registered_holds"), REFUSALS)
async def test_refusal_of_any_shape_is_deferred_with_evidence_then_deleted(
    make_sim, run, tmp_path, status, body, registered_holds
):
    """Busy and held tasks refused with any status and body are deferred (the holder
    named), deleted once free, never failed nor exit 3; refusal_seen is recorded once."""
    state = SimState()
    for task_id in ("free-1", "free-2", "late-busy", "late-run", "late-profile", "reg-held"):
        state.add_task(task_id, "exp", "completed", OLD)
    state.add_run("run-reg", "reg-held", "registered", busy_for_s=0.3)
    sim = await make_sim(
        state,
        refusal_status=status,
        refusal_body=body,
        registered_holds=registered_holds,
        on_list_page=_after_the_plan(0.3, **LATE),
    )
    doc = policy({"all": True}, protect={"referenced": False})
    summary = await run(sim, doc)
    assert summary.exit_code == 0, summary.error
    assert summary.counts["failed"] == 0 and summary.counts["still_busy"] == 0
    assert sim.state.remaining_ids() == set()
    assert sim.state.refusals["busy"] >= 1 and sim.state.refusals["run"] >= 1
    assert sim.state.refusals["profile"] >= 1
    deferred = {r["task_id"]: r for r in _events(tmp_path, "deferred")}
    assert deferred["late-busy"]["reason"] == "task is in_progress"
    assert deferred["late-run"]["held_by_run"] == "r-late-run"
    assert deferred["late-profile"]["held_by_profile"] == "p-late-profile"
    assert deferred["reg-held"]["held_by_run"] == "run-reg"
    code, message = _refusal_shape(status, body)
    shape = {"http_status": status, "error_code": code, "message": message}
    seen = _events(tmp_path, "refusal_seen")
    assert len(seen) == 1
    assert {k: seen[0].get(k) for k in shape} == shape
    assert summary.refusal == shape
    finished = read_audit(tmp_path / "audit.jsonl")[-1]
    assert finished["refusal"] == shape
    late = {"late-busy", "late-run", "late-profile"}
    assert not [r for r in _events(tmp_path, "retrying") if r["task_id"] in late]
    sends = Counter(r["task_id"] for r in _events(tmp_path, "deleting"))
    assert sends["reg-held"] == 1  # held at plan time: no blind DELETE
    assert all(sends[t] == 2 for t in late), sends  # refused once, deleted once
    _one_terminal_each(tmp_path)


@pytest.mark.parametrize("body", ["nclue", "gateway", "text"])
async def test_500_refusal_of_a_task_that_became_busy_is_deferred_not_retried(
    make_sim, run, tmp_path, body
):
    """A 500 on a DELETE first looks at the evidence: a task now busy is deferred, not
    retried, and deleted once it finishes."""
    state = SimState()
    for task_id in ("free-1", "late-busy"):
        state.add_task(task_id, "exp", "completed", OLD)
    hook = _after_the_plan(0.3, busy=("late-busy",))
    sim = await make_sim(state, refusal_status=500, refusal_body=body, on_list_page=hook)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0, summary.error
    assert set(summary.deleted) == {"free-1", "late-busy"}
    assert not [r for r in _events(tmp_path, "retrying") if r["task_id"] == "late-busy"]
    assert summary.refusal is not None and summary.refusal["http_status"] == 500
    _one_terminal_each(tmp_path)


# -- (c, d) status spellings, unknown statuses, registered ------------------------------


def _status_account() -> SimState:
    state = SimState()
    state.add_task("done-1", "exp", "completed", OLD)
    state.add_task("done-2", "exp", "completed", OLD + timedelta(minutes=1))
    state.add_task("broke-1", "exp", "failed", OLD + timedelta(minutes=2))
    state.add_task("reg-1", "exp", "registered", OLD + timedelta(minutes=3))
    state.add_task("train-1", "exp", "in_progress", OLD + timedelta(minutes=4), busy_for_s=0.2)
    state.add_task(
        "wait-1",
        "exp",
        "pending",
        OLD + timedelta(minutes=5),
        busy_for_s=0.2,
        final_status="failed",
    )
    return state


@pytest.mark.parametrize("spelling", ["completed", "complete", "mixed_case"])
async def test_every_spelling_deletes_finished_tasks_and_keeps_registered(
    make_sim, run, tmp_path, spelling
):
    """completed, complete and mixed-case statuses are all read: finished tasks are
    deleted, busy ones after they finish, and registered is kept by default."""
    sim = await make_sim(_status_account(), status_spelling=spelling)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0, summary.error
    assert set(summary.deleted) == {"done-1", "done-2", "broke-1", "train-1", "wait-1"}
    assert summary.task_ids["skipped"] == ("reg-1",)
    assert summary.skip_reasons == {"status": 1}
    assert summary.unknown_statuses == {}
    assert sim.state.remaining_ids() == {"reg-1"}
    if spelling != "completed":
        assert sim.state.faults["status_spelling"] > 0
    _one_terminal_each(tmp_path)


@pytest.mark.parametrize("spelling", ["complete", "mixed_case"])
async def test_policy_may_select_complete_and_registered_in_any_case(make_sim, run, spelling):
    """filters.statuses accepts the API's spellings: [Complete, REGISTERED] deletes the
    completed and registered tasks, and keeps failed ones."""
    sim = await make_sim(_status_account(), status_spelling=spelling)
    doc = policy({"all": True}, filters={"statuses": ["Complete", "REGISTERED"]})
    summary = await run(sim, doc)
    assert summary.exit_code == 0, summary.error
    assert set(summary.deleted) == {"done-1", "done-2", "reg-1", "train-1"}
    assert sim.state.remaining_ids() == {"broke-1", "wait-1"}


@pytest.mark.parametrize("spelling", ["completed", "complete", "mixed_case"])
async def test_unknown_status_is_kept_warned_and_exits_1(make_sim, run, tmp_path, spelling):
    """A status the tool does not know keeps the task (unknown_status), warns with a
    count per value, and makes the run exit 1; the rest is still cleaned up."""
    state = _status_account()
    state.add_task("odd-1", "exp", "archived", OLD)
    state.add_task("odd-2", "exp", "archived", OLD)
    state.add_task("odd-3", "exp", "Deleting", OLD)
    sim = await make_sim(state, status_spelling=spelling)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert {"done-1", "broke-1", "train-1"} <= set(summary.deleted)
    assert summary.unknown_statuses == {"archived": 2, "Deleting": 1}
    assert summary.skip_reasons["unknown_status"] == 3
    assert any("'archived' x2" in w for w in summary.warnings), summary.warnings
    assert {"odd-1", "odd-2", "odd-3", "reg-1"} == sim.state.remaining_ids()
    skipped = {r["task_id"]: r["reason"] for r in _events(tmp_path, "skipped")}
    assert skipped["odd-1"] == skipped["odd-3"] == "unknown_status"


# -- (e) keep_latest over versioned names -----------------------------------------------


def _versioned_account() -> SimState:
    """ctr-v1..v6 and exp-2026-11-01..04: every name unique, two families."""
    state = SimState()
    for v in range(1, 7):
        state.add_task(f"ctr{v}", f"ctr-v{v}", "completed", OLD + timedelta(hours=v))
    for d in range(1, 5):
        state.add_task(f"exp{d}", f"exp-2026-11-0{d}", "completed", OLD + timedelta(hours=d))
    return state


@pytest.mark.parametrize(
    ("order", "total"), [("newest_first", "page"), ("oldest_first", "account")]
)
@pytest.mark.parametrize("by", [KEEP_VERSIONS, r"^((?P<family>[a-z]+)-(v[0-9]+|[0-9-]+))$"])
async def test_keep_latest_by_groups_versioned_names(make_sim, run, order, total, by):
    """keep_latest_by groups ctr-v7-style names by family: the newest N of each family
    are kept, the rest deleted (a group named family wins over the first group)."""
    sim = await make_sim(_versioned_account(), order=order, total_meaning=total)
    doc = policy({"all": True}, filters={"keep_latest": 2, "keep_latest_by": by})
    summary = await run(sim, doc)
    assert summary.exit_code == 0, summary.error
    if "family" in by:  # ctr and exp families
        kept = {"ctr5", "ctr6", "exp3", "exp4"}
    else:  # only ctr-vN names match; each exp name is its own group
        kept = {"ctr5", "ctr6", "exp1", "exp2", "exp3", "exp4"}
    assert sim.state.remaining_ids() == kept
    assert summary.skip_reasons == {"keep_latest": len(kept)}


async def test_dry_run_warns_when_keep_latest_keeps_nothing(make_sim, run, tmp_path):
    """Without keep_latest_by every versioned name is a group of one: the dry run warns
    that keep_latest keeps nothing, and names keep_latest_by."""
    sim = await make_sim(_versioned_account())
    summary = await run(sim, policy({"all": True}, filters={"keep_latest": 2}), apply=False)
    assert summary.exit_code == 0
    assert any("keeps nothing" in w and "keep_latest_by" in w for w in summary.warnings)
    assert sim.state.count(method="DELETE") == 0
    grouped = await run(
        sim,
        policy({"all": True}, filters={"keep_latest": 2, "keep_latest_by": KEEP_VERSIONS}),
        apply=False,
        audit_log=str(tmp_path / "second.jsonl"),
    )
    assert not any("keeps nothing" in w for w in grouped.warnings)


# -- (f) unreadable created_at ----------------------------------------------------------


@pytest.mark.parametrize(
    ("stamps", "zone", "filters"),
    [
        ("iso_z", "UTC", {"older_than": "30d"}),
        ("epoch_ms", "Asia/Seoul", {"keep_latest": 1}),
        ("naive_kst", "Asia/Seoul", {"older_than": "30d", "keep_latest": 1}),
        ("kst_offset_nocolon", "UTC", {"created_before": "yesterday"}),
    ],
)
async def test_unreadable_created_at_is_kept_with_its_reason_and_counted(
    make_sim, run, tmp_path, stamps, zone, filters
):
    """A task whose created_at cannot be read is kept with reason created_at_unknown
    (also under keep_latest), counted in the summary; dated tasks are judged as usual."""
    state = SimState()
    for i in range(4):
        state.add_task(f"dated-{i}", "exp", "completed", OLD - timedelta(days=i))
    for i in range(3):
        state.add_task(f"undated-{i}", "exp", "completed", OLD).created_at = None  # type: ignore[assignment]
    sim = await make_sim(state, timestamp_format=stamps)
    if filters.get("created_before") == "yesterday":
        filters = {"created_before": (datetime.now(UTC) - timedelta(days=1)).isoformat()}
    summary = await run(sim, policy({"all": True}, filters=filters, api={"timezone": zone}))
    assert summary.exit_code == 0, summary.error
    assert summary.skip_reasons["created_at_unknown"] == 3
    skipped = {r["task_id"]: r["reason"] for r in _events(tmp_path, "skipped")}
    assert all(skipped[f"undated-{i}"] == "created_at_unknown" for i in range(3))
    kept = {"dated-0"} if "keep_latest" in filters else set()
    assert sim.state.remaining_ids() == {f"undated-{i}" for i in range(3)} | kept
    _one_terminal_each(tmp_path)


async def test_garbage_created_at_keeps_every_task(make_sim, run):
    """created_at that is not a time at all (a spoiled field) keeps every task."""
    state = SimState()
    for i in range(5):
        state.add_task(f"t{i}", "exp", "completed", OLD)
    sim = await make_sim(state, wrong_types=1.0, wrong_type_fields=frozenset({"created_at"}))
    summary = await run(sim, policy({"all": True}, filters={"older_than": "1d"}))
    assert summary.exit_code == 0
    assert summary.skip_reasons == {"created_at_unknown": 5}
    assert len(sim.state.remaining_ids()) == 5


# -- (g) protect.referenced and protect.used_within ------------------------------------

HOLDER_READINGS = [
    ("offset", "newest_first", "page", "naive_kst", "Asia/Seoul"),
    ("page", "oldest_first", "account", "epoch_s", "UTC"),
    ("page", "newest_first", "page", "kst_offset", "Asia/Seoul"),
    ("offset", "oldest_first", "account", "naive", "UTC"),
]


@pytest.mark.parametrize(("index", "order", "total", "stamps", "zone"), HOLDER_READINGS)
async def test_referenced_and_recently_used_tasks_are_kept(
    make_sim, run, tmp_path, index, order, total, stamps, zone
):
    """A task a shopping-intent profile references (any status) is kept by default, and
    one with a run created within protect.used_within is kept; both holder listings are
    read completely (more than a page each) under every listing and time reading."""
    now = datetime.now(UTC)
    state = SimState()
    for i in range(130):
        state.add_task(f"t{i:03d}", "exp", "completed", OLD - timedelta(minutes=i))
    statuses = ("completed", "failed", "registered", "pending", "in_progress")
    referenced = {f"t{i:03d}" for i in range(0, 130, 12)}
    for number, task_id in enumerate(sorted(referenced)):
        status = statuses[number % len(statuses)]
        busy = 3600.0 if status in ("pending", "in_progress") else None
        state.add_profile(f"p-{task_id}", task_id, status, busy_for_s=busy)
    for i in range(120):  # filler profiles of tasks that do not exist, to fill pages
        state.add_profile(
            f"pf{i:03d}", f"gone-{i}", "completed", created_at=now - timedelta(days=i)
        )
    recent = {"t005", "t077"}
    for task_id in recent:
        state.add_run(f"r-{task_id}", task_id, "completed", created_at=now - timedelta(hours=2))
    for i in range(110):  # old runs: they protect nothing
        state.add_run(f"old{i:03d}", f"t{(i * 7) % 130:03d}", "completed", created_at=OLD)
    sim = await make_sim(
        state, index_mode=index, order=order, total_meaning=total, timestamp_format=stamps
    )
    doc = policy({"all": True}, protect={"used_within": "14d"}, api={"timezone": zone})
    summary = await run(sim, doc)
    assert summary.exit_code == 0, summary.error
    assert summary.counts["still_busy"] == 0
    assert sim.state.remaining_ids() == referenced | recent
    assert summary.skip_reasons == {"referenced": len(referenced), "used_within": len(recent)}
    _one_terminal_each(tmp_path)


async def test_profile_found_only_by_the_busy_loop_still_protects_its_task(make_sim, run, tmp_path):
    """A profile that appears after the plan (found when its task's DELETE is refused)
    references the task: with protect.referenced on, the task is kept, not deleted
    once the profile finishes."""
    state = SimState()
    for task_id in ("free-1", "late-profile"):
        state.add_task(task_id, "exp", "completed", OLD)
    hook = _after_the_plan(0.2, profiles=("late-profile",))
    sim = await make_sim(state, refusal_status=409, on_list_page=hook)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0, summary.error
    assert sim.state.remaining_ids() == {"late-profile"}
    assert summary.skip_reasons == {"referenced": 1}


# -- the gateway's route 404 -------------------------------------------------------------


ROUTE_404 = [
    (select, body)
    for select in (None, ["t1"], ["t1", "t2", "t3"])
    for body in ("json", "html", "text")
]


@pytest.mark.parametrize(("select", "body"), ROUTE_404)
async def test_wrong_base_path_is_a_configuration_error(make_sim, tmp_path, body, select):
    """A wrong base path answers the gateway's 404 (JSON, HTML or text): exit 2,
    "endpoint or route not found", and no DELETE is sent."""
    state = SimState()
    for task_id in ("t1", "t2", "t3"):
        state.add_task(task_id, "exp", "completed", OLD)
    sim = await make_sim(state, route_404_body=body)
    summary = await run_policy(
        policy({"all": True} if select is None else {"ids": select}),
        apply=True,
        settings=Settings(
            endpoint=sim.base_url + "/api/v2", audit_log=str(tmp_path / "audit.jsonl")
        ),
        credentials=CREDS,
    )
    assert summary.exit_code == 2, summary.error
    assert summary.error is not None and "endpoint or route not found" in summary.error
    assert sim.state.count(method="DELETE") == 0
    assert sim.state.remaining_ids() == {"t1", "t2", "t3"}


# -- the busy loop's economy (issue 13, point 8) ----------------------------------------

SCALE = 500
"""Production time / test time: 60 s : 30 m becomes 120 ms : 3.6 s, 1 request/s 500."""


def _scaled(seconds: float) -> str:
    return f"{seconds * 1000 / SCALE:.0f}ms"


async def test_busy_and_held_tasks_cost_at_most_1_10_requests_per_deleted_task(
    make_sim, run, tmp_path
):
    """1,000 tasks, 30 % busy and 5 % held, at production interval/deadline ratios:
    at most 1.10 server requests per deleted task, and no held task is sent a second
    DELETE while its holder is still busy."""
    state = generate_account(
        1000,
        seed=7,
        busy_fraction=0.3,
        held_fraction=0.05 / 0.7,
        busy_duration_s=1500 / SCALE,  # busy up to 25 minutes, in production time
        status_weights={"completed": 1.0},
    )
    held_at_plan = {
        r.task_id for r in state.runs.values() if r.status in ("pending", "in_progress")
    }
    free = [
        t
        for t in state.tasks.values()
        if t.status == "completed" and t.task_id not in state.runs_by_task
    ]
    newest = sorted(free, key=lambda t: t.created_at, reverse=True)[:10]
    late = [t.task_id for t in newest]  # the first DELETEs sent: refused while held
    sim = await make_sim(
        state, refusal_status=409, on_list_page=_after_the_plan(1200 / SCALE, runs=tuple(late))
    )
    doc = policy(
        {"all": True},
        limits={"rate": SCALE, "concurrency": 8},
        retry={"busy_interval": _scaled(60), "busy_deadline": _scaled(1800)},
    )
    summary = await run(sim, doc)
    assert summary.exit_code == 0, summary.error
    deleted = summary.counts["deleted"]
    assert deleted == 1000 and sim.state.remaining_ids() == set()
    assert len(held_at_plan) >= 45 and summary.progress_events["deferred"] >= 300
    per_deleted = sim.state.total_requests() / deleted
    assert per_deleted <= 1.10, (per_deleted, sim.state.snapshot()["by_route"])
    sends = Counter(r["task_id"] for r in _events(tmp_path, "deleting"))
    assert all(sends[t] == 1 for t in held_at_plan), "a held task got a blind DELETE"
    assert all(sends[t] == 2 for t in late), {t: sends[t] for t in late}
    assert max(sends.values()) == 2
    assert sim.state.refusals == {"run": len(late)}
    assert {r["held_by_run"] for r in _events(tmp_path, "deferred") if r["task_id"] in late} == {
        f"r-{t}" for t in late
    }


class _TrainsWhenDeleted(SimState):
    """An account where some tasks start training the moment their first DELETE
    arrives (so they are deferred as late as the plan reaches them)."""

    def __init__(self, late: set[str], busy_s: float) -> None:
        super().__init__()
        self.late = set(late)
        self.busy_s = busy_s

    def refusal_reason(
        self, task_id: str, now: float | None = None, *, registered_holds: bool = True
    ) -> str | None:
        if task_id in self.late:
            self.late.discard(task_id)
            task = self.tasks[task_id]
            task.status, task.busy_until = "in_progress", time.monotonic() + self.busy_s
        return super().refusal_reason(task_id, now, registered_holds=registered_holds)


async def test_plan_longer_than_the_busy_deadline_still_rechecks_late_deferrals(
    make_sim, run, tmp_path
):
    """A delete phase longer than busy_deadline: tasks deferred late get their own full
    deadline (deleted, not still_busy), and busy tasks that finished meanwhile are
    rechecked and deleted; exit 0."""
    rate, deadline_s = 200, 0.5
    late = {f"t{i:03d}" for i in range(5)}  # the oldest: last in the newest-first plan
    state = _TrainsWhenDeleted(late, busy_s=0.3)
    for i in range(500):
        state.add_task(f"t{i:03d}", "exp", "completed", OLD + timedelta(minutes=i))
    for i in range(5):
        state.add_task(f"b{i}", "exp", "in_progress", OLD, busy_for_s=0.3)
    sim = await make_sim(state)
    doc = policy(
        {"all": True},
        limits={"rate": rate},
        retry={"busy_interval": "50ms", "busy_deadline": f"{deadline_s * 1000:.0f}ms"},
    )
    summary = await run(sim, doc)
    assert summary.exit_code == 0, summary.error
    # The limiter spaces requests 1/rate apart, so 400 DELETEs before the first late one
    # put it at least 2 s (four deadlines) after the start of deleting.
    order = [r["task_id"] for r in _events(tmp_path, "deleting")]
    assert min(order.index(t) for t in late) >= 400
    assert summary.counts["still_busy"] == 0
    assert sim.state.remaining_ids() == set()
    assert sim.state.refusals == {"busy": len(late)}
    deferred = {r["task_id"] for r in _events(tmp_path, "deferred")}
    assert late | {f"b{i}" for i in range(5)} <= deferred
    _one_terminal_each(tmp_path)
