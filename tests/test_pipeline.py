"""The whole pipeline, end to end, against the simulator: outcomes, audit and exit codes."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from cleanup import Credentials
from cleanup.auditview import verify
from cleanup.simulator import SimState, generate_account

from .conftest import OLD, account, policy, read_audit, terminal_by_task


async def test_explicit_ids_deleted_and_unknown_already_absent(make_sim, run, tmp_path: Path):
    """Explicit IDs are deleted; an ID the server does not know is already_absent; exit 0."""
    sim = await make_sim(account(3))
    summary = await run(sim, policy({"ids": ["t0000", "t0001", "nope-1"]}))
    assert summary.exit_code == 0
    assert set(summary.task_ids["deleted"]) == {"t0000", "t0001"}
    assert summary.task_ids["already_absent"] == ("nope-1",)
    assert sim.state.remaining_ids() == {"t0002"}
    records = read_audit(tmp_path / "audit.jsonl")
    assert records[0]["event"] == "run_started"
    assert records[-1]["event"] == "run_finished"
    assert all(len(v) == 1 for v in terminal_by_task(records).values())
    assert verify(tmp_path / "audit.jsonl").ok


async def test_dry_run_sends_no_delete(make_sim, run, tmp_path: Path):
    """Without apply, nothing is deleted and the plan is recorded as would_delete."""
    sim = await make_sim(account(5))
    summary = await run(sim, policy({"all": True}), apply=False)
    assert summary.exit_code == 0
    assert sim.state.count(method="DELETE") == 0
    assert len(sim.state.remaining_ids()) == 5
    assert summary.counts["would_delete"] == 5
    events = Counter(r["event"] for r in read_audit(tmp_path / "audit.jsonl"))
    assert events["would_delete"] == 5 and events["deleting"] == 0


async def test_wrong_secret_stops_with_exit_3_after_few_calls(make_sim, run):
    """A rejected signature stops the run at once (exit 3), not one failure per task."""
    sim = await make_sim(account(50))
    summary = await run(sim, policy({"all": True}), creds=Credentials("sim-access-key", "wrong"))
    assert summary.exit_code == 3
    assert sim.state.total_requests() <= 3
    assert len(sim.state.remaining_ids()) == 50
    assert summary.counts["failed"] == 0


async def test_wrong_secret_during_deletes_stops_everything(make_sim, run):
    """A 401 in the middle of deletes stops all workers: no per-task hammering."""
    sim = await make_sim(account(200))
    doc = policy({"ids": [f"t{i:04d}" for i in range(200)]}, limits={"concurrency": 4})
    # The key is revoked once the listing is done: every DELETE would now be a 401.
    sim.config.secret_key = "rotated"
    summary = await run(sim, doc)
    assert summary.exit_code == 3
    assert sim.state.count(method="DELETE") <= 8
    assert summary.counts["deleted"] == 0
    assert summary.counts["failed"] == 0


async def test_refused_delete_held_by_run_is_deferred_then_deleted(make_sim, run, tmp_path):
    """A delete refused because a run holds the task is deferred and deleted once free."""
    state = account(2)
    state.add_run("run-1", "t0000", "in_progress", busy_for_s=0.3)
    sim = await make_sim(state, refusal_status=409)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0
    assert set(summary.task_ids["deleted"]) == {"t0000", "t0001"}
    deferred = [r for r in read_audit(tmp_path / "audit.jsonl") if r["event"] == "deferred"]
    assert deferred and deferred[0]["held_by_run"] == "run-1"
    assert "held by run run-1" in deferred[0]["reason"]


async def test_busy_task_waits_and_is_judged_on_final_status(make_sim, run):
    """Busy tasks are deferred; when they finish the statuses filter applies to the result."""
    state = SimState()
    state.add_task("ok", "exp", "in_progress", OLD, busy_for_s=0.2, final_status="failed")
    state.add_task("keep", "exp", "pending", OLD, busy_for_s=0.2, final_status="completed")
    sim = await make_sim(state)
    summary = await run(sim, policy({"all": True}, filters={"statuses": ["failed"]}))
    assert summary.exit_code == 0
    assert summary.task_ids["deleted"] == ("ok",)
    assert summary.task_ids["skipped"] == ("keep",)
    assert summary.progress_events["deferred"] >= 2  # both were waited for


async def test_still_busy_at_deadline_exits_4(make_sim, run):
    """A task still busy at busy_deadline ends as still_busy and the run exits 4."""
    state = account(1)
    state.add_task("slow", "exp", "in_progress", OLD, busy_for_s=3600)
    sim = await make_sim(state)
    doc = policy({"all": True}, retry={"busy_deadline": "200ms"})
    summary = await run(sim, doc)
    assert summary.exit_code == 4
    assert summary.task_ids["still_busy"] == ("slow",)
    assert summary.task_ids["deleted"] == ("t0000",)


async def test_refused_without_cause_fails_with_server_message(make_sim, run, tmp_path):
    """A task refused while neither busy nor held, twice, is failed with the server's words."""
    state = account(1)
    # A registered run holds the task, but the API's older revision (which this
    # client also reads) would not call it busy: make the run invisible in listings.
    state.add_run("ghost", "t0000", "in_progress", busy_for_s=3600)
    sim = await make_sim(state)
    sim.state.runs.clear()  # the run still blocks (runs_by_task) but is not listed
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    failed = [r for r in read_audit(tmp_path / "audit.jsonl") if r["event"] == "failed"]
    assert failed[0]["task_id"] == "t0000"
    assert "cannot be deleted" in failed[0]["server_message"]


async def test_transient_faults_all_end_deleted(make_sim, run, tmp_path):
    """503 before and after the delete and dropped connections still end in deleted."""
    state = generate_account(600, seed=3, status_weights={"completed": 1.0})
    sim = await make_sim(
        state, fail_before_delete=0.05, fail_after_delete=0.05, drop_connection=0.03, seed=3
    )
    doc = policy({"all": True}, retry={"max_attempts": 8})
    summary = await run(sim, doc)
    assert summary.exit_code == 0, summary.error
    assert summary.counts["failed"] == 0
    assert sim.state.remaining_ids() == set()
    assert summary.counts["deleted"] + summary.counts["already_absent"] == 600
    assert max(sim.state.deleted.values()) == 1
    records = read_audit(tmp_path / "audit.jsonl")
    assert all(len(v) == 1 for v in terminal_by_task(records).values())
    # Every DELETE the server saw was announced by a write-ahead `deleting` line.
    deleting = sum(r["event"] == "deleting" for r in records)
    assert deleting == sim.state.count(method="DELETE") == summary.progress_events["deleting"]


async def test_server_rate_limit_below_configured_rate(make_sim, run):
    """429s from a stricter server slow everyone down and every task still gets deleted."""
    sim = await make_sim(account(120), rate_limit=60)
    summary = await run(sim, policy({"all": True}, limits={"rate": 200}))
    assert summary.exit_code == 0
    assert sim.state.remaining_ids() == set()
    assert summary.counts["failed"] == 0


async def test_clock_skew_is_corrected_once(make_sim, run):
    """A server clock 7 minutes ahead gets one corrected retry, then the run succeeds."""
    sim = await make_sim(account(5), clock_offset_s=420)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0
    assert sim.state.remaining_ids() == set()
    assert sim.state.count(status=401) <= 8  # the first calls in flight, then no more


async def test_quota_exceeded_stops_with_exit_1(make_sim, run):
    """Quota Exceeded stops starting new work and exits 1 with a clear message."""
    sim = await make_sim(account(30), quota=10)
    summary = await run(sim, policy({"all": True}, limits={"concurrency": 1}))
    assert summary.exit_code == 1
    assert "Quota" in (summary.error or "")
    assert sim.state.count(status=429) <= 2
    assert summary.counts["skipped"] >= 1


async def test_max_deletions_guard_exits_5_and_deletes_nothing(make_sim, run):
    """A plan larger than max_deletions deletes nothing and exits 5."""
    sim = await make_sim(account(10))
    summary = await run(sim, policy({"all": True}, limits={"max_deletions": 9}))
    assert summary.exit_code == 5
    assert sim.state.count(method="DELETE") == 0
    assert "max_deletions" in (summary.error or "")


async def test_listing_failure_fails_closed(make_sim, run):
    """A listing page that keeps failing deletes nothing and does not exit 0."""
    sim = await make_sim(account(250), fail_list_pages=frozenset(range(1, 300)))
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert sim.state.count(method="DELETE") == 0
    assert len(sim.state.remaining_ids()) == 250
    assert "nothing was deleted" in (summary.error or "")
