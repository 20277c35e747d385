"""The Python API (the README's example, run as written) and sharding across processes."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from datetime import timedelta
from pathlib import Path

import yaml

import cleanup
from cleanup.simulator import SimState, running_in_thread

from .conftest import AK, OLD, SK, account, policy, read_audit

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_python_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's Python API section has a python example"
    return match.group(1)


def test_readme_python_api_example_runs(tmp_path, monkeypatch):
    """The README's post-training hook deletes the superseded models and keeps the newest 3."""
    state = SimState()
    for i in range(6):
        state.add_task(f"ctr-{i}", "retrain-ctr", "completed", OLD + timedelta(days=i))
    state.add_task("other", "retrain-churn", "completed", OLD)
    with running_in_thread(state=state) as sim:
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("NCLUE_ENDPOINT", sim.url)
        monkeypatch.setenv("NCLOUD_ACCESS_KEY", AK)
        monkeypatch.setenv("NCLOUD_SECRET_KEY", SK)
        namespace: dict[str, object] = {}
        exec(compile(_readme_python_example(), "README.md", "exec"), namespace)
        hook = namespace["after_retraining"]
        assert callable(hook)
        # The pipeline passes every older model, and by mistake one of the newest 3.
        hook("retrain-ctr", ["ctr-0", "ctr-1", "ctr-2", "ctr-4", "other"])
    assert sim.state.remaining_ids() == {"ctr-3", "ctr-4", "ctr-5", "other"}
    records = read_audit(tmp_path / "audit.jsonl")
    assert records[0]["trigger"] == "retrain"
    reasons = {r["task_id"]: r.get("reason") for r in records if r["event"] == "skipped"}
    assert reasons == {"ctr-4": "keep_latest", "other": "name_glob"}


async def test_run_policy_returns_a_typed_summary(make_sim, tmp_path):
    """run_policy (async) returns counts, IDs by outcome, requests and the exit code."""
    sim = await make_sim(account(3))
    summary = await cleanup.run_policy(
        policy({"ids": ["t0000", "t0001"]}),
        apply=True,
        settings=cleanup.Settings(endpoint=sim.url, audit_log=str(tmp_path / "a.jsonl")),
        credentials=cleanup.Credentials(AK, SK),
    )
    assert isinstance(summary, cleanup.RunSummary)
    assert summary.exit_code == 0 and sorted(summary.deleted) == ["t0000", "t0001"]
    assert summary.requests["delete_task"] == {"200": 2}
    assert summary.to_json()["counts"]["deleted"] == 2


async def test_shards_delete_everything_exactly_once_within_the_rate(make_sim, tmp_path):
    """N concurrent shard processes delete the whole selection once, within one rate budget."""
    shards, rate = 3, 90
    # The server enforces the policy's rate (with a little room for network jitter):
    # any 429 would mean the shards together went over it.
    sim = await make_sim(account(400), rate_limit=rate * 1.1)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy({"all": True}, limits={"rate": rate})))
    env = {**os.environ, "NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": SK}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cleanup",
            "run",
            "--policy",
            str(path),
            "--apply",
            "--endpoint",
            sim.url,
            "--shard-count",
            str(shards),
            "--audit-log",
            str(tmp_path / f"audit-{index}.jsonl"),
            env={**env, "JOB_COMPLETION_INDEX": str(index)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for index in range(shards)
    ]
    codes = [await asyncio.wait_for(p.wait(), timeout=90) for p in procs]
    assert codes == [0] * shards
    assert sim.state.remaining_ids() == set()
    assert set(sim.state.deleted) == {f"t{i:04d}" for i in range(400)}
    assert max(sim.state.deleted.values()) == 1
    assert sim.state.count(status=429) == 0
    per_shard = [
        {r["task_id"] for r in read_audit(tmp_path / f"audit-{i}.jsonl") if r["event"] == "deleted"}
        for i in range(shards)
    ]
    assert sum(len(s) for s in per_shard) == 400 and all(per_shard)
