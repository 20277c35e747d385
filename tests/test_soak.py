"""The chaos soak at a reduced size: faults, SIGTERMs and a kill -9, then the exact end state.

``benchmarks.soak`` runs the real CLI in worker processes against an in-process
simulator; the full size (10,000 tasks) is ``python -m benchmarks.soak``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from asyncio.subprocess import DEVNULL
from pathlib import Path

import pytest
import yaml

from benchmarks.soak import CONCURRENCY, soak

from .conftest import AK, SK, account, policy, read_audit


@pytest.mark.soak
@pytest.mark.timeout(300)
async def test_chaos_soak_converges_to_exactly_what_the_policy_keeps(tmp_path: Path) -> None:
    """Faulty, interrupted runs then a clean one leave exactly the policy's keep set, audited."""
    result = await soak(tasks=1500, seed=7, sigterms=2, workdir=tmp_path)
    runs = result.runs
    assert sorted(r.kind for r in runs[:-1]) == ["kill9", "sigterm", "sigterm"]
    assert runs[-1].kind == "final" and runs[-1].exit_code == 0
    killed = [r for r in runs if r.kind == "kill9" and r.signalled_after is not None]
    assert len(killed) == 1, "the kill -9 landed before its run ended"
    assert any(r.kind == "sigterm" and r.exit_code == 143 for r in runs)
    assert len(result.faults) >= 3, result.faults  # the faults were really injected

    # The server holds exactly what the policy keeps, judged on the final statuses.
    assert result.still_busy_on_server == 0
    assert result.remaining == result.expected_remaining
    assert result.protected <= result.remaining
    assert not result.protected & set(result.deleted_counts)
    assert set(result.deleted_counts.values()) == {1}

    for run in runs:
        assert not run.traceback, f"run {run.number} printed a traceback"
        assert run.drained
        if run in killed:
            # Only the killed run may lack run_finished (or end in a torn line); verify
            # says so and finds nothing else wrong: everything before it chains.
            assert run.verify_ok or run.unfinished_only
            # Each deleting line is flushed before its DELETE is sent: a kill can strand
            # lines for calls still in this process, never a DELETE without a line.
            assert 0 <= run.events["deleting"] - run.server_deletes <= CONCURRENCY
        else:
            assert run.exit_code in (0, 1, 4, 143) and run.finished
            assert run.verify_ok and not run.torn_last_line
            assert run.bad_terminals == [], f"run {run.number}: not one terminal event each"
            assert run.events["deleting"] == run.server_deletes

    # Every removal was announced by a deleting line; nothing reported gone still exists.
    announced = set().union(*(r.deleting_ids for r in runs))
    assert set(result.deleted_counts) <= announced
    assert set().union(*(r.reported_gone for r in runs)) <= set(result.deleted_counts)
    assert sum(r.events["deleting"] for r in runs) >= result.delete_requests
    assert result.problems() == []


async def test_no_delete_is_started_after_sigterm(make_sim, tmp_path: Path) -> None:
    """After SIGTERM no task gets its first DELETE: only calls already in flight finish."""
    sim = await make_sim(account(400), latency_s=0.02)
    path = tmp_path / "policy.yaml"
    doc = policy({"all": True}, limits={"rate": 50, "concurrency": 4})
    path.write_text(yaml.safe_dump(doc))
    audit, err_path = tmp_path / "audit.jsonl", tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NCLOUD_", "NCLUE_"))}
    env |= {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": SK, "NCLUE_ENDPOINT": sim.url}
    args = ["run", "--policy", str(path), "--apply", "--audit-log", str(audit)]
    with err_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cleanup", *args, env=env, stdout=DEVNULL, stderr=err
        )
        for _ in range(3000):  # until the server has seen 20 DELETEs
            if sim.state.count(method="DELETE") >= 20:
                break
            await asyncio.sleep(0.005)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 143
    stopped_at = next(
        rec["timestamp"]
        for rec in map(json.loads, err_path.read_text().splitlines())
        if rec.get("event") == "stopping"
    )
    started_after = [
        r["task_id"]
        for r in read_audit(audit)
        if r["event"] == "deleting" and r["attempt"] == 1 and r["timestamp"] > stopped_at
    ]
    assert started_after == []
