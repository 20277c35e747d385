"""The executor's branches: refusal evidence, its error paths, the busy re-check,
permanent failures after retries, 5xx on held tasks, verification, and the grace."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cleanup import Settings, run_policy
from cleanup.stopping import Stopping

from .conftest import CREDS, OLD, account, policy, read_audit


def events(path: Path, task_id: str) -> list[str]:
    return [r["event"] for r in read_audit(path) if r.get("task_id") == task_id]


async def test_refusal_with_no_visible_cause_is_tried_again_then_failed(make_sim, run, tmp_path):
    """Refused while neither busy nor held: deferred once ('trying again'), then failed
    with the evidence, when refused again."""
    sim = await make_sim(account(1))
    sim.state.refusal_reason = lambda *_, **__: "busy"  # the server refuses, evidence is clean
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert summary.task_ids["failed"] == ("t0000",)
    audit = read_audit(tmp_path / "audit.jsonl")
    [failed] = [r for r in audit if r["event"] == "failed"]
    assert "no unfinished run or profile holds it" in failed["evidence"]
    assert events(tmp_path / "audit.jsonl", "t0000").count("deleting") == 2
    assert [r["event"] for r in audit].count("refusal_seen") == 1


async def test_refusal_whose_evidence_cannot_be_read_waits_until_the_deadline(
    make_sim, run, tmp_path
):
    """When the task cannot be read after a refusal, it is deferred (never failed or
    deleted blind) and reported still_busy at the deadline: exit 4."""
    state = account(1)
    state.add_run("run-1", "t0000", "in_progress", busy_for_s=60)
    sim = await make_sim(state, html_error=1.0, hostile_routes=frozenset({"get_task"}))
    doc = policy({"all": True}, retry={"busy_deadline": "300ms"})
    summary = await run(sim, doc)
    assert summary.exit_code == 4
    assert summary.task_ids["still_busy"] == ("t0000",)
    assert "t0000" in sim.state.remaining_ids()


async def test_delete_that_fails_permanently_after_retries(make_sim, run, tmp_path):
    """503 on every DELETE of a free task: retried max_attempts times, then failed with
    the status and the server's message."""
    sim = await make_sim(account(1), fail_before_delete=1.0)
    summary = await run(sim, policy({"all": True}, retry={"max_attempts": 3}))
    assert summary.exit_code == 1
    [failed] = [r for r in read_audit(tmp_path / "audit.jsonl") if r["event"] == "failed"]
    assert failed["http_status"] == 503 and failed["server_message"] == "Endpoint Error"
    assert sim.state.count(method="DELETE") == 3


async def test_a_5xx_refusal_of_a_held_task_is_deferred_not_retried(make_sim, run, tmp_path):
    """A held task refused with a 500 looks at the evidence first: deferred without a
    retry storm, deleted once its run ends."""
    state = account(1)
    state.add_run("run-1", "t0000", "in_progress", busy_for_s=0.2)
    sim = await make_sim(state, refusal_status=500)
    summary = await run(sim, policy({"all": True}, retry={"max_attempts": 6}))
    assert summary.exit_code == 0, summary.error
    assert summary.task_ids["deleted"] == ("t0000",)
    assert "retrying" not in events(tmp_path / "audit.jsonl", "t0000")[:3]


async def test_busy_task_is_judged_again_on_the_status_it_ends_with(make_sim, run, tmp_path):
    """A busy task that ends failed, under a policy that deletes only completed ones, is
    skipped with reason status, not deleted."""
    state = account(1)
    state.add_task("busy", "exp", "in_progress", OLD, busy_for_s=0.1, final_status="failed")
    sim = await make_sim(state)
    summary = await run(sim, policy({"all": True}, filters={"statuses": ["completed"]}))
    assert summary.exit_code == 0
    assert "busy" in summary.task_ids["skipped"] and "busy" in sim.state.remaining_ids()
    assert summary.skip_reasons.get("status") == 1


async def test_accepted_delete_that_did_not_happen_is_tried_once_more_then_failed(
    make_sim, run, tmp_path
):
    """api.verify: a 200 after which the task is still there is tried once more, then
    failed; it is never reported deleted."""
    sim = await make_sim(account(2), delete_lies=1.0)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert summary.counts["deleted"] == 0 and summary.counts["failed"] == 2
    assert sim.state.count(method="DELETE") == 4
    assert sim.state.remaining_ids() == {"t0000", "t0001"}


async def test_without_verify_an_accepted_delete_is_deleted_at_once(make_sim, run):
    """api.verify false: the 2xx is the evidence; no listing or GET after the deletes."""
    sim = await make_sim(account(3))
    summary = await run(sim, policy({"all": True}, api={"verify": False}))
    assert summary.counts["deleted"] == 3
    assert sim.state.count(route="get_task") == 0
    assert sim.state.count(route="list_tasks") == 1  # the selection's listing only


async def test_calls_in_flight_past_the_grace_are_cancelled_and_recorded(make_sim, tmp_path):
    """A stop whose grace runs out cancels the hung DELETEs: each is failed ('may have
    happened'), the rest interrupted, and run_finished is written."""
    sim = await make_sim(account(6), hang_s=30.0)

    listed: set[str] = set()

    def hang_from_now_on(state: object, route: str, index: int) -> None:
        listed.add(route)  # tasks, runs and profiles are listed before the DELETEs
        if {"list_tasks", "list_runs", "list_profiles"} <= listed:
            sim.config.hang = 1.0

    sim.config.on_list_page = hang_from_now_on
    stopping = Stopping()
    audit = tmp_path / "audit.jsonl"
    task = asyncio.ensure_future(
        run_policy(
            policy({"all": True}, limits={"concurrency": 2}),
            apply=True,
            settings=Settings(endpoint=sim.url, audit_log=str(audit)),
            credentials=CREDS,
            stopping=stopping,
        )
    )
    for _ in range(500):
        if audit.exists() and b'"deleting"' in audit.read_bytes():
            break
        await asyncio.sleep(0.01)
    stopping.request("SIGTERM", 0.05)
    summary = await asyncio.wait_for(task, 20)
    assert summary.exit_code == 143
    records = read_audit(audit)
    assert records[-1]["event"] == "run_finished"
    failed = [r for r in records if r["event"] == "failed"]
    assert failed and all("may have happened" in r["error"] for r in failed)
    assert summary.skip_reasons.get("interrupted", 0) + len(failed) == 6
