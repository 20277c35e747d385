"""The audit log: fixed fields, owner-only file, hash chain across runs, verify."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cleanup.audit import GENESIS, AuditLog, verify
from cleanup.model import Outcome, Task

from .conftest import account, policy, read_audit


def _write(path: Path, run_id: str = "r1") -> None:
    log = AuditLog(path, run_id)
    log.event("run_started", policy="p.yaml")
    log.task_event("deleting", Task("a", "exp", "completed"), attempt=1)
    log.finish(Outcome.DELETED, Task("a", "exp", "completed"))
    log.event("run_finished", counts=log.counts())
    log.close()


def test_lines_have_the_fixed_fields_and_owner_only_mode(tmp_path: Path):
    """Every line has event, timestamp (UTC), run_id, prev_sha256; the file is 0600."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    records = read_audit(path)
    assert [r["event"] for r in records] == ["run_started", "deleting", "deleted", "run_finished"]
    for r in records:
        assert r["run_id"] == "r1" and r["timestamp"].endswith("Z")
    assert records[0]["prev_sha256"] == GENESIS
    assert records[2] | {"timestamp": "", "prev_sha256": ""} == {
        "event": "deleted",
        "timestamp": "",
        "run_id": "r1",
        "task_id": "a",
        "task_name": "exp",
        "status": "completed",
        "prev_sha256": "",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_chain_continues_across_runs_and_verify_passes(tmp_path: Path):
    """A second run appends to the same chain; verify accepts the whole file."""
    path = tmp_path / "audit.jsonl"
    _write(path, "r1")
    _write(path, "r2")
    result = verify(path)
    assert result.ok and result.lines == 8
    assert result.events is not None and result.events["deleted"] == 2


def test_verify_finds_the_first_modified_line(tmp_path: Path):
    """Changing one line breaks the chain at the line after it."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["task_id"] = "someone-else"
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.broken_line == 4


def test_verify_finds_a_removed_line(tmp_path: Path):
    """Removing a line breaks the chain where it was."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    assert verify(path).broken_line == 2


def test_torn_last_line_is_closed_off_by_the_next_run(tmp_path: Path):
    """After a kill mid-write the next run starts on a fresh line; verify names the torn one."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    with path.open("ab") as fh:
        fh.write(b'{"event": "dele')
    _write(path, "r2")
    lines = path.read_text().splitlines()
    assert lines[4] == '{"event": "dele'
    assert json.loads(lines[5])["event"] == "run_started"
    result = verify(path)
    assert result.broken_line == 5 and "torn" in (result.problem or "")


async def test_run_audit_matches_server_state(make_sim, run, tmp_path: Path):
    """After a mixed run, terminal lines match what the server holds, and the log verifies."""
    state = account(6)
    state.add_task("prod-1", "prod-model", "completed", state.tasks["t0000"].created_at)
    sim = await make_sim(state)
    doc = policy(
        {"all": True, "ids": ["gone-1"]},
        protect={"name_globs": ["prod-*"]},
        filters={"keep_latest": 2},
    )
    summary = await run(sim, doc)
    records = read_audit(tmp_path / "audit.jsonl")
    deleted = {r["task_id"] for r in records if r["event"] == "deleted"}
    assert deleted == set(state.deleted)
    assert sim.state.remaining_ids() == {"prod-1", "t0004", "t0005"}
    assert {r["task_id"] for r in records if r["event"] == "already_absent"} == {"gone-1"}
    finished = records[-1]
    assert finished["event"] == "run_finished" and finished["exit_code"] == summary.exit_code
    assert finished["counts"] == summary.counts
    assert verify(tmp_path / "audit.jsonl").ok
