"""Safety belts on by default (issue 14), each through the CLI and through the Python API.

Every refusal is checked for its exit code, its message and the DELETEs it did not
send; every belt also gets the run it lets through, so a belt that refuses
everything cannot pass either.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import sys
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from cleanup import Credentials, Settings, load_policy, run_policy, run_policy_sync
from cleanup.describe import policy_warnings
from cleanup.errors import CredentialsError, PlanError, PolicyError
from cleanup.model import Action, Decision, Task
from cleanup.plans import write_plan
from cleanup.simulator import SimState

from .conftest import AK, CREDS, OLD, SK, account, clean_env, cli, policy, read_audit

ROOT = Path(__file__).resolve().parent.parent
NIGHTLY = ROOT / "config" / "nightly-retention.yaml"


def creds_env(sim: Any) -> dict[str, str]:
    return {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": SK, "NCLUE_ENDPOINT": sim.url}


def write(tmp_path: Path, doc: dict[str, Any] | str, name: str = "policy.yaml") -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def capped(select: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """``conftest.policy`` with the default ``max_deletions_percent`` (50) left on."""
    doc = policy(select, **sections)
    if "max_deletions_percent" not in sections.get("limits", {}):
        del doc["limits"]["max_deletions_percent"]
    return doc


def deletes(sim: Any) -> int:
    return int(sim.state.count("DELETE"))


def settings(sim: Any, tmp_path: Path, **fields: Any) -> Settings:
    fields.setdefault("audit_log", str(tmp_path / "audit.jsonl"))
    return Settings(endpoint=sim.url, **fields)


def summary_of(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


# -- durations carry a unit; policy timestamps carry a zone ------------------------------

BAD_TIMES = [
    ("filters: {older_than: 7}", "filters.older_than"),
    ("filters: {older_than: '7'}", "filters.older_than"),
    ("retry: {busy_interval: 60}", "retry.busy_interval"),
    ("filters: {created_before: '2026-01-01T00:00:00'}", "filters.created_before"),
    ("filters: {created_before: 2026-01-01 00:00:00}", "filters.created_before"),
    ("filters: {created_before: 2026-01-01}", "filters.created_before"),
]


@pytest.mark.parametrize(("line", "key"), BAD_TIMES)
async def test_cli_refuses_unitless_durations_and_zoneless_times(make_sim, tmp_path, line, key):
    """A bare-number duration or a zone-less policy time exits 2 naming the key, no request."""
    sim = await make_sim(account(5))
    path = write(tmp_path, f"version: 1\nselect: {{all: true}}\n{line}\n")
    code, _, err = await cli("run", "--policy", path, "--apply", "--yes", env=creds_env(sim))
    assert code == 2
    assert key in err and path in err
    assert sim.state.total_requests() == 0


@pytest.mark.parametrize(("line", "key"), BAD_TIMES)
async def test_api_refuses_unitless_durations_and_zoneless_times(make_sim, tmp_path, line, key):
    """``run_policy`` raises a PolicyError (exit 2) naming the key before any request."""
    sim = await make_sim(account(5))
    path = write(tmp_path, f"version: 1\nselect: {{all: true}}\n{line}\n")
    with pytest.raises(PolicyError) as caught:
        await run_policy(path, apply=True, settings=settings(sim, tmp_path), credentials=CREDS)
    assert caught.value.exit_code == 2 and key in str(caught.value)
    assert sim.state.total_requests() == 0


async def test_durations_with_units_and_zoned_times_are_accepted(make_sim, tmp_path):
    """The same keys with a unit and a zone run: 7d keeps this week's tasks."""
    state = account(3)
    state.add_task("fresh", "exp", "completed", datetime.now(UTC) - timedelta(days=2))
    sim = await make_sim(state)
    doc = policy(
        {"all": True}, filters={"older_than": "7d", "created_before": "2099-01-01T00:00:00Z"}
    )
    summary = await run_policy(doc, apply=True, settings=settings(sim, tmp_path), credentials=CREDS)
    assert summary.exit_code == 0
    assert sorted(summary.deleted) == ["t0000", "t0001", "t0002"]
    assert "fresh" in sim.state.tasks


# -- max_deletions_percent: default 50 of the listed account ------------------------------


async def test_cli_percent_cap_refuses_more_than_half_by_default(make_sim, tmp_path):
    """A plan over 50 % of the listed account exits 5 naming the cap; no DELETE is sent."""
    sim = await make_sim(account(10))
    path = write(tmp_path, capped({"all": True}))
    code, _, err = await cli("run", "--policy", path, "--apply", "--yes", env=creds_env(sim))
    assert code == 5
    assert "max_deletions_percent" in err and "10 of the account's 10" in err
    assert deletes(sim) == 0 and len(sim.state.tasks) == 10


async def test_cli_percent_cap_lifted_with_100(make_sim, tmp_path):
    """``max_deletions_percent: 100`` lets the same whole-account plan delete everything."""
    sim = await make_sim(account(10))
    path = write(tmp_path, capped({"all": True}, limits={"max_deletions_percent": 100}))
    code, _, _ = await cli("run", "--policy", path, "--apply", "--yes", env=creds_env(sim))
    assert code == 0 and not sim.state.tasks


async def test_api_percent_cap_default_and_boundary(make_sim, tmp_path):
    """Through the API: half the account passes, one more is refused (exit 5, no DELETE)."""
    state = account(5)
    for i in range(5):
        state.add_task(f"new{i}", "exp", "completed", datetime.now(UTC) - timedelta(hours=1))
    sim = await make_sim(state)
    half = capped({"all": True}, filters={"older_than": "1d"})
    state.add_task("t0005", "exp", "completed", OLD + timedelta(minutes=5))
    refused = await run_policy(
        half, apply=True, settings=settings(sim, tmp_path), credentials=CREDS
    )
    assert refused.exit_code == 5 and "max_deletions_percent" in (refused.error or "")
    assert deletes(sim) == 0
    assert refused.skip_reasons.get("max_deletions_percent") == 6
    sim.state.remove_task("t0005")
    passed = await run_policy(half, apply=True, settings=settings(sim, tmp_path), credentials=CREDS)
    assert passed.exit_code == 0 and len(passed.deleted) == 5


# -- max_deletions judged on the whole plan, across shards ---------------------------------


async def test_cli_max_deletions_is_judged_on_the_whole_plan_in_every_shard(make_sim, tmp_path):
    """4 shards of a 40-task plan with a cap of 20: each exits 5 (its part of ~10 would pass)."""
    sim = await make_sim(account(40))
    path = write(tmp_path, policy({"all": True}, limits={"max_deletions": 20}))
    runs = await asyncio.gather(
        *(
            cli(
                "run",
                "--policy",
                path,
                "--apply",
                "--yes",
                "--shard-index",
                str(i),
                "--shard-count",
                "4",
                "--audit-log",
                str(tmp_path / f"audit{i}.jsonl"),
                env=creds_env(sim),
            )
            for i in range(4)
        )
    )
    for code, _, err in runs:
        assert code == 5
        assert "would delete 40 tasks" in err and "max_deletions (20)" in err
    assert deletes(sim) == 0 and len(sim.state.tasks) == 40
    parts = [
        sum(r["event"] == "skipped" for r in read_audit(tmp_path / f"audit{i}.jsonl"))
        for i in range(4)
    ]
    assert sum(parts) == 40 and max(parts) <= 20


async def test_api_shards_refuse_together_and_delete_together_under_the_cap(make_sim, tmp_path):
    """Through the API every shard refuses a whole plan over the cap; under it they split it."""
    sim = await make_sim(account(40))
    over = policy({"all": True}, limits={"max_deletions": 39})
    for i in range(4):
        summary = await run_policy(
            over,
            apply=True,
            settings=settings(sim, tmp_path, shard_index=i, shard_count=4),
            credentials=CREDS,
        )
        assert summary.exit_code == 5 and "would delete 40 tasks" in (summary.error or "")
    assert deletes(sim) == 0
    under = policy({"all": True}, limits={"max_deletions": 40})
    deleted: list[str] = []
    for i in range(4):
        summary = await run_policy(
            under,
            apply=True,
            settings=settings(sim, tmp_path, shard_index=i, shard_count=4),
            credentials=CREDS,
        )
        assert summary.exit_code == 0
        deleted += summary.deleted
    assert len(deleted) == len(set(deleted)) == 40 and not sim.state.tasks


# -- drain mode: max_deletions_per_run ------------------------------------------------------


async def test_cli_drain_deletes_oldest_first_and_the_next_run_continues(make_sim, tmp_path):
    """Per-run cap 4 of 10: oldest 4 deleted, 6 skipped ``drain``, exit 0; then 4, then 2."""
    sim = await make_sim(account(10))
    path = write(tmp_path, policy({"all": True}, limits={"max_deletions_per_run": 4}))
    expected = [
        (["t0000", "t0001", "t0002", "t0003"], 6),
        (["t0004", "t0005", "t0006", "t0007"], 2),
    ]
    expected.append((["t0008", "t0009"], 0))
    for n, (ids, left) in enumerate(expected):
        audit, out = tmp_path / f"audit{n}.jsonl", tmp_path / f"summary{n}.json"
        code, _, err = await cli(
            "run",
            "--policy",
            path,
            "--apply",
            "--yes",
            "--audit-log",
            str(audit),
            "--summary-json",
            str(out),
            env=creds_env(sim),
        )
        assert code == 0, err
        summary = summary_of(out)
        assert sorted(summary["task_ids"]["deleted"]) == ids
        assert summary["drain_left"] == left
        drained = [r for r in read_audit(audit) if r.get("reason") == "drain"]
        assert len(drained) == left and all(r["event"] == "skipped" for r in drained)
    assert not sim.state.tasks


async def test_api_drain_with_a_cap_judges_what_this_run_deletes(make_sim, tmp_path):
    """Through the API a backlog of 30 over ``max_deletions`` 10 drains 8 a run, exit 0."""
    sim = await make_sim(account(30))
    doc = policy({"all": True}, limits={"max_deletions_per_run": 8, "max_deletions": 10})
    first = await run_policy(doc, apply=True, settings=settings(sim, tmp_path), credentials=CREDS)
    assert first.exit_code == 0
    assert sorted(first.deleted) == [f"t{i:04d}" for i in range(8)]
    assert first.drain_left == 22 and first.skip_reasons["drain"] == 22
    # run_policy_sync from a thread: this test's loop must keep serving the simulator.
    second = await asyncio.to_thread(
        run_policy_sync, doc, apply=True, settings=settings(sim, tmp_path), credentials=CREDS
    )
    assert second.exit_code == 0 and second.drain_left == 14
    assert sorted(second.deleted) == [f"t{i:04d}" for i in range(8, 16)]


# -- max_failure_percent: the circuit breaker -----------------------------------------------


async def breaker_cli(make_sim: Any, tmp_path: Path) -> tuple[Any, int, str, str]:
    """The CLI against 200 tasks whose every DELETE answers 200 with an HTML page."""
    sim = await make_sim(account(200), delete_html_2xx=1.0)
    path = write(tmp_path, policy({"all": True}))
    out = tmp_path / "summary.json"
    args = ("run", "--policy", path, "--apply", "--yes", "--summary-json", str(out))
    code, stdout, stderr = await cli(*args, env=creds_env(sim))
    return sim, code, stdout, stderr


async def test_cli_breaker_stops_failing_deletes_with_exit_5(make_sim, tmp_path):
    """Every DELETE failing: it stops after ~20 ended, exit 5, far fewer DELETEs than tasks."""
    sim, code, out, _ = await breaker_cli(make_sim, tmp_path)
    assert code == 5
    assert "max_failure_percent" in out
    assert 20 <= deletes(sim) <= 40
    summary = summary_of(tmp_path / "summary.json")
    assert summary["counts"]["failed"] >= 20
    assert summary["skip_reasons"]["run_stopped"] >= 150
    assert len(sim.state.tasks) == 200


async def test_cli_breaker_says_why_on_stderr(make_sim, tmp_path):
    """The breaker's refusal is one clear line on stderr, like every other refusal."""
    _, code, _, err = await breaker_cli(make_sim, tmp_path)
    assert code == 5 and "max_failure_percent" in err


async def test_api_breaker_stops_failing_deletes_with_exit_5(make_sim, tmp_path):
    """Through the API the breaker trips at exit 5 after ~20 ended deletes."""
    sim = await make_sim(account(200), delete_html_2xx=1.0)
    doc = policy({"all": True})
    summary = await run_policy(doc, apply=True, settings=settings(sim, tmp_path), credentials=CREDS)
    assert summary.exit_code == 5 and "max_failure_percent" in (summary.error or "")
    assert 20 <= deletes(sim) <= 40 and summary.counts["failed"] >= 20
    assert summary.counts["deleted"] == 0 and summary.skip_reasons["run_stopped"] >= 150


async def test_api_breaker_stays_shut_under_the_failure_share(make_sim, tmp_path):
    """About 5 % of DELETEs failing stays under 20 %: exit 1 (failures), not 5 (breaker)."""
    sim = await make_sim(account(200), delete_html_2xx=0.05)
    doc = policy({"all": True})
    summary = await run_policy(doc, apply=True, settings=settings(sim, tmp_path), credentials=CREDS)
    failed, deleted = summary.counts["failed"], summary.counts["deleted"]
    assert 0 < failed * 100 <= 20 * (failed + deleted)
    assert summary.exit_code == 1, summary.error
    assert deleted + failed == 200


# -- account.access_key_ids ------------------------------------------------------------------


async def test_cli_policy_for_another_account_exits_2_before_any_request(make_sim, tmp_path):
    """A loaded key the policy does not list: exit 2, a line saying so, no request at all."""
    sim = await make_sim(account(5))
    doc = policy({"all": True}, account={"access_key_ids": ["ncp_iam_PRODUCTION"]})
    path = write(tmp_path, doc)
    code, out, err = await cli("run", "--policy", path, "--apply", "--yes", env=creds_env(sim))
    assert code == 2 and "account.access_key_ids" in err
    assert SK not in out + err
    assert sim.state.total_requests() == 0
    listed = write(tmp_path, policy({"all": True}, account={"access_key_ids": [AK]}), "ok.yaml")
    code, _, _ = await cli("run", "--policy", listed, "--apply", "--yes", env=creds_env(sim))
    assert code == 0 and not sim.state.tasks


async def test_api_policy_for_another_account_raises_before_any_request(make_sim, tmp_path):
    """Through the API a key the policy does not list raises CredentialsError, no request."""
    sim = await make_sim(account(5))
    doc = policy({"all": True}, account={"access_key_ids": [AK]})
    other = Credentials("ncp_iam_SANDBOX0001", SK)
    with pytest.raises(CredentialsError) as caught:
        await run_policy(doc, apply=True, settings=settings(sim, tmp_path), credentials=other)
    assert caught.value.exit_code == 2 and "account.access_key_ids" in str(caught.value)
    assert sim.state.total_requests() == 0


# -- confirmation on a terminal -----------------------------------------------------------


class Terminal:
    """The CLI with stdin, stdout and stderr on a pseudo-terminal, read by a thread."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int) -> None:
        self.proc, self.master = proc, master
        self.seen = bytearray()
        self.grew = asyncio.Event()
        loop = asyncio.get_running_loop()

        def read() -> None:
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every slave end is closed
                    return
                if not chunk:
                    return
                self.seen.extend(chunk)
                loop.call_soon_threadsafe(self.grew.set)

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()

    async def until(self, text: bytes) -> bool:
        """Wait for ``text`` on the terminal; False when the process ended without it."""
        while text not in self.seen:
            if self.proc.returncode is not None:
                return False
            self.grew.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.grew.wait(), 0.2)
        return True

    def type(self, text: bytes) -> None:
        os.write(self.master, text)

    async def finish(self) -> tuple[int, str]:
        code = await asyncio.wait_for(self.proc.wait(), 90)
        await asyncio.to_thread(self.reader.join, 10)
        return code, self.seen.decode(errors="replace")


@contextlib.asynccontextmanager
async def on_terminal(*args: str, env: dict[str, str]) -> AsyncIterator[Terminal]:
    """Start ``python -m cleanup ARGS`` on a new pseudo-terminal."""
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cleanup",
        *args,
        env=clean_env(NO_COLOR="1", TERM="dumb", COLUMNS="120", **env),
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    term = Terminal(proc, master)
    try:
        yield term
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.to_thread(term.reader.join, 10)
        os.close(master)


PROMPT = b"Type 5 to go on: "


async def test_terminal_wrong_number_deletes_nothing(make_sim, tmp_path):
    """On a terminal --apply asks for the plan's size; a wrong number deletes nothing."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}))
    async with on_terminal("run", "--policy", path, "--apply", env=creds_env(sim)) as term:
        assert await term.until(PROMPT)
        term.type(b"4\n")
        code, text = await term.finish()
    assert code == 1 and "not confirmed" in text
    assert deletes(sim) == 0 and len(sim.state.tasks) == 5


async def test_terminal_right_number_deletes(make_sim, tmp_path):
    """On a terminal, typing the plan's size goes on and deletes it."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}))
    async with on_terminal("run", "--policy", path, "--apply", env=creds_env(sim)) as term:
        assert await term.until(PROMPT)
        assert deletes(sim) == 0  # nothing is sent before the answer
        term.type(b"5\n")
        code, _ = await term.finish()
    assert code == 0 and not sim.state.tasks


async def test_terminal_yes_skips_the_question(make_sim, tmp_path):
    """``--yes`` on a terminal deletes without asking."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}))
    args = ("run", "--policy", path, "--apply", "--yes")
    async with on_terminal(*args, env=creds_env(sim)) as term:
        code, text = await term.finish()
    assert code == 0 and "to go on" not in text and not sim.state.tasks


async def test_without_a_terminal_apply_never_asks(make_sim, tmp_path):
    """Without a terminal (CronJob, pipeline) --apply deletes without a prompt."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}))
    code, out, err = await cli("run", "--policy", path, "--apply", env=creds_env(sim))
    assert code == 0 and "to go on" not in out + err and not sim.state.tasks


async def test_api_confirm_is_asked_with_the_count(make_sim, tmp_path):
    """Through the API ``confirm`` gets the number of tasks; False deletes nothing (exit 1)."""
    sim = await make_sim(account(5))
    asked: list[int] = []

    async def no(count: int) -> bool:
        asked.append(count)
        return False

    async def yes(count: int) -> bool:
        asked.append(count)
        return True

    doc = policy({"all": True})
    refused = await run_policy(
        doc, apply=True, settings=settings(sim, tmp_path), credentials=CREDS, confirm=no
    )
    assert refused.exit_code == 1 and deletes(sim) == 0
    done = await run_policy(
        doc, apply=True, settings=settings(sim, tmp_path), credentials=CREDS, confirm=yes
    )
    assert done.exit_code == 0 and len(done.deleted) == 5
    assert asked == [5, 5]


# -- --dry-run, and no abbreviations ---------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "said"),
    [(("--dry-run", "--apply"), "not allowed with"), (("--app",), "unrecognized arguments")],
)
async def test_cli_usage_errors_for_mode_flags(make_sim, tmp_path, flags, said):
    """``--dry-run --apply`` and the abbreviation ``--app`` are usage errors (exit 2)."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}))
    code, _, err = await cli("run", "--policy", path, *flags, "--yes", env=creds_env(sim))
    assert code == 2 and said in err
    assert sim.state.total_requests() == 0


async def test_cli_dry_run_flag_sends_no_delete(make_sim, tmp_path):
    """``--dry-run`` says the default: the plan is listed and no DELETE is sent."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}))
    code, _, _ = await cli("run", "--policy", path, "--dry-run", env=creds_env(sim))
    assert code == 0 and sim.state.total_requests() > 0 and deletes(sim) == 0


async def test_api_dry_run_sends_no_delete(make_sim, tmp_path):
    """Through the API ``apply=False`` plans every task and sends no DELETE."""
    sim = await make_sim(account(5))
    doc = policy({"all": True})
    summary = await run_policy(doc, settings=settings(sim, tmp_path), credentials=CREDS)
    assert summary.dry_run and summary.counts["would_delete"] == 5 and deletes(sim) == 0


# -- review.min_plan_age / max_plan_age ------------------------------------------------------


def aged_plan(sim: Any, tmp_path: Path, policy_path: str, age: timedelta) -> str:
    """A plan of every task in ``sim`` made ``age`` ago, for ``policy_path``."""
    decisions = [
        Decision(Task(t.task_id, t.task_name, t.status, t.created_at), Action.DELETE, "selected")
        for t in sim.state.tasks.values()
    ]
    out = tmp_path / f"plan-{int(age.total_seconds())}.json"
    write_plan(
        out,
        decisions,
        policy=load_policy(policy_path),
        endpoint=sim.url,
        access_key_id=AK,
        run_id="review-test",
        now=datetime.now(UTC) - age,
    )
    return str(out)


REVIEWED = {"min_plan_age": "24h", "max_plan_age": "7d"}
AGES = [(timedelta(hours=1), "younger than review.min_plan_age"), (timedelta(days=8), "older")]


@pytest.mark.parametrize(("age", "said"), AGES)
async def test_cli_plan_outside_the_review_window_is_refused(make_sim, tmp_path, age, said):
    """A too-young or too-old plan: exit 2 saying which, no request at all."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}, review=REVIEWED))
    plan = aged_plan(sim, tmp_path, path, age)
    args = ("run", "--policy", path, "--apply", "--yes", "--plan", plan)
    code, _, err = await cli(*args, env=creds_env(sim))
    assert code == 2 and said in err
    assert sim.state.total_requests() == 0


async def test_cli_plan_inside_the_review_window_is_applied(make_sim, tmp_path):
    """A plan two days old, within 24h..7d, is applied."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}, review=REVIEWED))
    plan = aged_plan(sim, tmp_path, path, timedelta(days=2))
    args = ("run", "--policy", path, "--apply", "--yes", "--plan", plan)
    code, _, err = await cli(*args, env=creds_env(sim))
    assert code == 0, err
    assert not sim.state.tasks


@pytest.mark.parametrize(("age", "said"), AGES)
async def test_api_plan_outside_the_review_window_is_refused(make_sim, tmp_path, age, said):
    """Through the API a plan outside the review window raises PlanError, no request."""
    sim = await make_sim(account(5))
    path = write(tmp_path, policy({"all": True}, review=REVIEWED))
    plan = aged_plan(sim, tmp_path, path, age)
    with pytest.raises(PlanError) as caught:
        await run_policy(
            path, apply=True, settings=settings(sim, tmp_path, plan_in=plan), credentials=CREDS
        )
    assert caught.value.exit_code == 2 and said in str(caught.value)
    assert sim.state.total_requests() == 0


# -- validate warnings; a dry run that --apply would refuse ------------------------------------

WHOLE = "select.all with no name or age filter"
NO_CAP = "no deletion cap"


async def test_cli_validate_warns_about_whole_account_and_caps_off(tmp_path):
    """``validate`` warns about select.all without filters and about a switched-off cap."""
    bare = write(
        tmp_path, "version: 1\nselect: {all: true}\nlimits: {max_deletions_percent: 100}\n"
    )
    code, out, _ = await cli("validate", "--policy", bare)
    assert code == 0
    assert f"warning: {WHOLE}" in out and f"warning: {NO_CAP}" in out
    code, out, _ = await cli("validate", "--policy", str(NIGHTLY))
    assert code == 0 and WHOLE not in out and NO_CAP not in out


def test_api_policy_warnings_name_each_belt_off(tmp_path):
    """``policy_warnings`` names a whole-account selection and a policy with no cap."""
    doc = {"version": 1, "select": {"all": True}, "limits": {"max_deletions_percent": 100}}
    bare = load_policy(write(tmp_path, doc))
    warnings = " | ".join(policy_warnings(bare))
    assert WHOLE in warnings and NO_CAP in warnings
    default = load_policy(write(tmp_path, {"version": 1, "select": {"all": True}}, "d.yaml"))
    assert NO_CAP not in " | ".join(policy_warnings(default))  # 50 % is on by default
    filtered = {**doc, "filters": {"older_than": "30d"}, "limits": {"max_deletions": 100}}
    assert policy_warnings(load_policy(write(tmp_path, filtered, "f.yaml"))) == []


async def test_cli_dry_run_that_apply_would_refuse_exits_5(make_sim, tmp_path):
    """A dry run over the percent cap exits 5 and says an --apply would refuse; no DELETE."""
    sim = await make_sim(account(10))
    path = write(tmp_path, capped({"all": True}))
    code, out, err = await cli("run", "--policy", path, env=creds_env(sim))
    assert code == 5
    assert "would refuse" in out + err and "max_deletions_percent" in out + err
    assert deletes(sim) == 0


async def test_api_dry_run_that_apply_would_refuse_exits_5(make_sim, tmp_path):
    """Through the API the same dry run returns exit 5 and a warning; under the cap, 0."""
    sim = await make_sim(account(10))
    over = capped({"all": True}, limits={"max_deletions": 9})
    summary = await run_policy(over, settings=settings(sim, tmp_path), credentials=CREDS)
    assert summary.exit_code == 5 and any("would refuse" in w for w in summary.warnings)
    fits = capped({"all": True}, limits={"max_deletions": 10, "max_deletions_percent": 100})
    summary = await run_policy(fits, settings=settings(sim, tmp_path), credentials=CREDS)
    assert summary.exit_code == 0 and deletes(sim) == 0


# -- the shipped nightly policy on a 3,000-task account with a backlog ------------------------


def backlog_account(total: int = 3000) -> tuple[SimState, int]:
    """``total`` tasks in 40 versioned families, 80 % older than 30 days, with some
    production, registered and profile-referenced ones; returns (state, deletable)."""
    state, now = SimState(), datetime.now(UTC)
    old = int(total * 0.8)
    deletable = 0
    for i in range(total):
        age = 31 + i / 60 if i < old else (i - old) / 60
        name = f"{'prod-' if i % 97 == 0 else ''}ctr{i % 40}-v{i}"
        status = "registered" if i % 89 == 0 else ("failed" if i % 10 == 0 else "completed")
        state.add_task(f"n{i:05d}", name, status, now - timedelta(days=age))
        referenced = i % 211 == 0
        if referenced:
            state.add_profile(f"p{i:05d}", f"n{i:05d}")
        kept = i % 97 == 0 or status == "registered" or referenced
        deletable += i < old and not kept
    return state, deletable


@pytest.mark.soak
async def test_nightly_policy_drains_a_3000_task_backlog_300_a_night(make_sim, tmp_path):
    """The shipped nightly policy (rate raised) deletes its cap each run, exit 0, until drained,
    each run within the CronJob's deadline at the shipped rate."""
    doc = yaml.safe_load(NIGHTLY.read_text())
    shipped_rate = doc["limits"]["rate"]
    doc["limits"]["rate"] = 1000
    path = write(tmp_path, doc, "nightly-fast.yaml")
    cap = doc["limits"]["max_deletions_per_run"]
    job = yaml.safe_load((ROOT / "deploy" / "k8s" / "base" / "cronjob.yaml").read_text())
    deadline_s = job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    state, deletable = backlog_account()
    sim = await make_sim(state)
    figures: list[tuple[int, int, int | None, int]] = []
    for night in range(deletable // cap + 2):
        out = tmp_path / f"summary{night}.json"
        args = ("run", "--policy", path, "--apply", "--trigger", "cron", "--summary-json", str(out))
        audit = ("--audit-log", str(tmp_path / "audit.jsonl"))
        code, _, err = await cli(*args, *audit, env=creds_env(sim))
        summary = summary_of(out)
        deleted, left = summary["counts"]["deleted"], summary["drain_left"]
        figures.append((code, deleted, left, summary["requests_total"]))
        assert code == 0, err
        assert summary["requests_total"] / shipped_rate < deadline_s
        if left == 0:
            break
    print("\nnightly (exit, deleted, drain_left, requests):", figures, "deletable:", deletable)
    full, last = figures[:-1], figures[-1]
    assert all(deleted == cap for _, deleted, _, _ in full)
    assert last[1] == deletable - cap * len(full) and 0 < last[1] <= cap and last[2] == 0
    assert len(figures) == -(-deletable // cap)
    assert sum(sim.state.deleted.values()) == deletable
