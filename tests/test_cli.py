"""The command line as users script it: exit codes, stdin IDs, plans, signals, no secrets."""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cleanup.auditview import verify

from .conftest import AK, SK, account, clean_env, cli, policy, read_audit, terminal_by_task


def creds_env(sim: Any, secret: str = SK) -> dict[str, str]:
    return {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": secret, "NCLUE_ENDPOINT": sim.url}


def write_policy(tmp_path: Path, doc: dict[str, Any], name: str = "policy.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.mark.parametrize(
    "text",
    [
        "version: 1\nselect: {all: true}\nfilters: {name_glb: x}\n",
        "version: 1\nselect: {all: true}\nfilters: {older_than: 30x}\n",
        "version: 1\nselect: {all: true}\nfilters: {name_regex: '([a-'}\n",
        "version: 1\nselect: {all: true}\nfilters: {statuses: [in_progress]}\n",
        "version: 1\nselect: {}\n",
        "version: 1\nselect: {all: true}\nlimits: {rate: 0}\n",
        "version: 1\nselect: [all\n",
    ],
)
async def test_invalid_policy_exits_2_before_any_request(make_sim, tmp_path, text):
    """Invalid policies exit 2 with a one-screen message and zero requests."""
    sim = await make_sim(account(3))
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code, _, err = await cli("run", "--policy", str(path), "--apply", env=creds_env(sim))
    assert code == 2
    assert str(path) in err and len(err.splitlines()) <= 5
    assert sim.state.total_requests() == 0


async def test_missing_credentials_exit_2(make_sim, tmp_path):
    """No credentials: exit 2 naming the variables, and no request."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, policy({"all": True}))
    code, _, err = await cli("run", "--policy", path, env={"NCLUE_ENDPOINT": sim.url})
    assert code == 2 and "NCLOUD_ACCESS_KEY" in err
    assert sim.state.total_requests() == 0


async def test_ids_piped_on_stdin_are_deleted(make_sim, tmp_path):
    """IDs on stdin are deleted; an unknown one is already_absent; exit 0."""
    sim = await make_sim(account(5))
    path = write_policy(tmp_path, {"version": 1, "select": {}, "retry": {"backoff_base": "5ms"}})
    audit = tmp_path / "audit.jsonl"
    code, _, err = await cli(
        "run",
        "--policy",
        path,
        "--apply",
        "--ids-from",
        "-",
        "--audit-log",
        str(audit),
        "--trigger",
        "retrain",
        env=creds_env(sim),
        stdin=b"t0001\n# superseded\nt0003\nunknown-9\n",
    )
    assert code == 0, err
    assert sim.state.remaining_ids() == {"t0000", "t0002", "t0004"}
    records = read_audit(audit)
    assert records[0]["trigger"] == "retrain" and "@" in records[0]["operator"]
    assert terminal_by_task(records) == {
        "t0001": ["deleted"],
        "t0003": ["deleted"],
        "unknown-9": ["already_absent"],
    }


async def test_plan_review_apply_deletes_exactly_the_plan(make_sim, tmp_path):
    """plan-out, then --apply --plan deletes the planned IDs only, re-judged live."""
    sim = await make_sim(account(6))
    path = write_policy(tmp_path, policy({"all": True}, protect={"ids": ["t0005"]}))
    plan = tmp_path / "plan.json"
    code, out, _ = await cli("run", "--policy", path, "--plan-out", str(plan), env=creds_env(sim))
    assert code == 0 and "would delete 5" in out
    planned = [t["task_id"] for t in json.loads(plan.read_text())["tasks"]]
    assert sorted(planned) == [f"t000{i}" for i in range(5)]
    assert sim.state.count(method="DELETE") == 0
    # New tasks appear and one planned task becomes busy before the review is done.
    sim.state.add_task("new-1", "exp", "completed", sim.state.tasks["t0000"].created_at)
    sim.state.tasks["t0004"].status = "in_progress"
    sim.state.tasks["t0004"].busy_until = None
    code, _, err = await cli(
        "run", "--policy", path, "--apply", "--plan", str(plan), env=creds_env(sim)
    )
    assert code == 4, err  # t0004 stays busy until the (short) deadline
    assert sim.state.remaining_ids() == {"t0004", "t0005", "new-1"}


async def test_plan_from_another_policy_is_refused(make_sim, tmp_path):
    """A plan made from a different policy exits 2 and deletes nothing."""
    sim = await make_sim(account(3))
    first = write_policy(tmp_path, policy({"all": True}), "a.yaml")
    other = write_policy(tmp_path, policy({"all": True}, filters={"name_glob": "x*"}), "b.yaml")
    plan = tmp_path / "plan.json"
    assert (await cli("run", "--policy", first, "--plan-out", str(plan), env=creds_env(sim)))[
        0
    ] == 0
    code, _, err = await cli(
        "run", "--policy", other, "--apply", "--plan", str(plan), env=creds_env(sim)
    )
    assert code == 2 and "different policy" in err
    assert sim.state.count(method="DELETE") == 0


async def test_no_secret_in_any_output(make_sim, tmp_path):
    """stdout, stderr, audit log, summary and metrics never contain the secret or its base64."""
    secret = "S3cr3t-Value-For-Leak-Test"
    sim = await make_sim(account(20), secret_key=secret, fail_after_delete=0.2, seed=1)
    path = write_policy(tmp_path, policy({"all": True}))
    outputs = []
    for key in (secret, "wrong-" + secret):  # a good run and a failing (401) one
        audit, summary, metrics = (tmp_path / n for n in ("a.jsonl", "s.json", "m.prom"))
        code, out, err = await cli(
            "run",
            "--policy",
            path,
            "--apply",
            "--audit-log",
            str(audit),
            "--summary-json",
            str(summary),
            "--metrics-textfile",
            str(metrics),
            "-v",
            env=creds_env(sim, key),
        )
        outputs += [out, err, audit.read_text(), summary.read_text(), metrics.read_text()]
    assert code == 3
    blob = "\n".join(outputs)
    for needle in (secret, base64.b64encode(secret.encode()).decode()):
        assert needle not in blob


async def test_summary_json_and_metrics_textfile(make_sim, tmp_path):
    """--summary-json and --metrics-textfile describe the run and parse."""
    sim = await make_sim(account(4))
    path = write_policy(tmp_path, policy({"all": True}))
    summary, metrics = tmp_path / "s.json", tmp_path / "m.prom"
    code, _, _ = await cli(
        "run",
        "--policy",
        path,
        "--apply",
        "--summary-json",
        str(summary),
        "--metrics-textfile",
        str(metrics),
        env=creds_env(sim),
    )
    assert code == 0
    data = json.loads(summary.read_text())
    assert data["counts"]["deleted"] == 4 and sorted(data["task_ids"]["deleted"]) == sorted(
        f"t000{i}" for i in range(4)
    )
    assert data["requests"]["delete_task"] == {"200": 4}
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    assert "nclue_cleanup_last_success_timestamp_seconds" in families
    samples = {(s.labels.get("outcome"), s.value) for s in families["nclue_cleanup_tasks"].samples}
    assert ("deleted", 4.0) in samples


async def test_audit_verify_command(tmp_path, make_sim):
    """audit verify exits 0 on an intact log and 1 naming the line on a modified copy."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, policy({"all": True}))
    audit = tmp_path / "audit.jsonl"
    await cli("run", "--policy", path, "--apply", "--audit-log", str(audit), env=creds_env(sim))
    code, out, _ = await cli("audit", "verify", str(audit))
    assert code == 0 and "intact" in out
    lines = audit.read_text().splitlines()
    lines[1] = lines[1].replace("t000", "x000")
    audit.write_text("\n".join(lines) + "\n")
    code, out, _ = await cli("audit", "verify", str(audit))
    assert code == 1 and "line 3" in out


async def _start_big_run(
    sim, tmp_path: Path, audit: Path, n: int, grace: str = "5"
) -> asyncio.subprocess.Process:
    doc = policy({"all": True}, limits={"rate": 400, "concurrency": 8})
    path = write_policy(tmp_path, doc)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cleanup",
        "run",
        "--policy",
        path,
        "--apply",
        "--audit-log",
        str(audit),
        "--shutdown-grace",
        grace,
        env=clean_env(**creds_env(sim)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _wait_for_deletes(sim, at_least: int) -> None:
    for _ in range(600):
        if len(sim.state.deleted) >= at_least:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the run did not start deleting")


async def _interrupt(sim, tmp_path: Path, audit: Path, sig: signal.Signals, n: int) -> list:
    """Start a big run, send ``sig`` once deleting is under way, return its audit records."""
    proc = await _start_big_run(sim, tmp_path, audit, n)
    await _wait_for_deletes(sim, 50)
    proc.send_signal(sig)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig], err[-2000:]
    records = read_audit(audit)
    assert records[-1]["event"] == "run_finished" and records[-1]["stopped_by"] == sig.name
    assert {r["task_id"] for r in records if r["event"] == "deleted"} == set(sim.state.deleted)
    assert all(len(v) == 1 for v in terminal_by_task(records).values())
    return records


async def test_sigterm_stops_cleanly_and_a_rerun_finishes(make_sim, tmp_path):
    """SIGTERM: exit 143, the audit log matches the server exactly, a rerun finishes the job."""
    sim = await make_sim(account(3000))
    audit = tmp_path / "audit.jsonl"
    records = await _interrupt(sim, tmp_path, audit, signal.SIGTERM, 3000)
    assert records[-1]["exit_code"] == 143
    assert 0 < len(sim.state.deleted) < 3000
    code, _, _ = await cli(
        "run",
        "--policy",
        str(tmp_path / "policy.yaml"),
        "--apply",
        "--audit-log",
        str(audit),
        env=creds_env(sim),
    )
    assert code == 0
    assert sim.state.remaining_ids() == set() and max(sim.state.deleted.values()) == 1
    assert verify(audit).ok


async def test_kill_9_then_rerun_converges(make_sim, tmp_path):
    """After kill -9 the audit log reads up to its last line and a rerun finishes the job."""
    sim = await make_sim(account(2000))
    audit = tmp_path / "audit.jsonl"
    proc = await _start_big_run(sim, tmp_path, audit, 2000)
    await _wait_for_deletes(sim, 100)
    proc.kill()
    await proc.wait()
    lines = audit.read_text().splitlines()
    for line in lines[:-1]:
        json.loads(line)  # every line but a torn last one parses
    code, _, _ = await cli(
        "run",
        "--policy",
        str(tmp_path / "policy.yaml"),
        "--apply",
        "--audit-log",
        str(tmp_path / "rerun.jsonl"),
        env=creds_env(sim),
    )
    assert code == 0
    assert sim.state.remaining_ids() == set() and max(sim.state.deleted.values()) == 1


async def test_validate_describes_the_policy(tmp_path):
    """validate prints the normalized policy in words and exits 0."""
    path = write_policy(tmp_path, policy({"all": True}, filters={"keep_latest": 3}))
    code, out, _ = await cli("validate", "--policy", path)
    assert code == 0
    assert "every task in the account" in out and "newest 3" in out


def test_example_policies_validate():
    """Every policy in config/ passes validate."""
    from cleanup.policy import load_policy

    for path in sorted(Path(__file__).parent.parent.joinpath("config").glob("*.yaml")):
        load_policy(path, ids_elsewhere=True)


async def test_sigint_exits_130_after_a_clean_shutdown(make_sim, tmp_path):
    """SIGINT (Ctrl-C) stops the run cleanly with exit 130 and a run_finished line."""
    sim = await make_sim(account(2000))
    await _interrupt(sim, tmp_path, tmp_path / "audit.jsonl", signal.SIGINT, 2000)


async def test_second_signal_exits_at_once(make_sim, tmp_path):
    """A second SIGTERM does not wait for the grace period of hung calls."""
    sim = await make_sim(account(2000))
    audit = tmp_path / "audit.jsonl"
    proc = await _start_big_run(sim, tmp_path, audit, 2000, grace="120")
    await _wait_for_deletes(sim, 50)
    sim.config.hang, sim.config.hang_s = 1.0, 120.0  # every call from now on hangs
    await asyncio.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    # Grace and hung calls both last 120 s: only the second signal can end it in time.
    await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 143


async def test_audit_log_to_stdout_keeps_stdout_pure_json(make_sim, tmp_path):
    """With --audit-log -, stdout is only audit JSON lines; the summary goes to stderr."""
    sim = await make_sim(account(3))
    path = write_policy(tmp_path, policy({"all": True}))
    code, out, err = await cli("run", "--policy", path, "--audit-log", "-", env=creds_env(sim))
    assert code == 0
    events = [json.loads(line)["event"] for line in out.splitlines()]
    assert events[0] == "run_started" and events[-1] == "run_finished"
    assert events.count("would_delete") == 3
    assert "would delete 3" in err
