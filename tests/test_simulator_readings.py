"""The simulator's readings of the ambiguous API pages, profiles, seeds and its CLI knobs."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from cleanup.simulator import SimConfig, SimState, Simulator, generate_account, load_seed
from cleanup.simulator.cli import (
    DEMO_BUSY_S,
    add_simulator_commands,
    demo_account,
    simulate_config,
)
from tests.test_simulator import NOW, call, raw, session, small_account

__all__ = ["session"]

STATUSES = ("completed", "failed", "registered", "pending", "in_progress")


def every_status_account() -> SimState:
    """One task per status (busy ones busy for a minute), s0 newest."""
    state = SimState()
    for number, status in enumerate(STATUSES):
        busy = 60.0 if status in ("pending", "in_progress") else None
        state.add_task(
            f"s{number}", f"exp-{number}", status, NOW - timedelta(minutes=number), busy_for_s=busy
        )
    return state


async def walk(session, sim, path, key, limit=2):
    """Read a listing page by page (offset index); return every item in order."""
    items, index = [], 0
    while True:
        status, body, _ = await call(session, sim, "GET", f"{path}?index={index}&limit={limit}")
        assert status == 200
        if not body[key]:
            return items
        items.extend(body[key])
        index += len(body[key])


# -- status spelling -----------------------------------------------------------------


async def test_status_spelling_complete_shows_complete_in_listing_and_get(session):
    """With status_spelling=complete a completed task reads `complete` everywhere, others as is."""
    async with Simulator(SimConfig(status_spelling="complete"), every_status_account()) as sim:
        listed = await walk(session, sim, "/tasks", "tasks")
        _, got, _ = await call(session, sim, "GET", "/tasks/s0")
    assert [task["status"] for task in listed] == [
        "complete",
        "failed",
        "registered",
        "pending",
        "in_progress",
    ]
    assert got["status"] == "complete"
    assert sim.state.faults["status_spelling"] == 2
    assert sim.state.tasks["s0"].status == "completed"


async def test_mixed_case_spells_statuses_in_several_cases_stably(session):
    """mixed_case shows case variants of every status, the same one for a task each time."""
    state = generate_account(60, seed=2, now=NOW, busy_fraction=0.2)
    async with Simulator(SimConfig(status_spelling="mixed_case"), state) as sim:
        first = await walk(session, sim, "/tasks", "tasks", limit=100)
        again = await walk(session, sim, "/tasks", "tasks", limit=100)
    shown = {task["task_id"]: task["status"] for task in first}
    assert shown == {task["task_id"]: task["status"] for task in again}
    for task_id, status in shown.items():
        real = state.tasks[task_id].status
        assert status != real and status.lower() in (real, "complete")
    assert len(set(shown.values())) > 5 and sim.state.faults["status_spelling"] == 120


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize("refusal_status", [400, 403, 409, 500])
@pytest.mark.parametrize("refusal_body", ["nclue", "gateway", "text"])
async def test_refusal_has_the_configured_status_and_body(session, refusal_status, refusal_body):
    """A refused DELETE has the configured status and body; it is never an auth errorCode."""
    state = small_account()
    state.add_task("busy", "exp-busy", "pending", NOW, busy_for_s=60)
    config = SimConfig(refusal_status=refusal_status, refusal_body=refusal_body)
    async with Simulator(config, state) as sim:
        status, ctype, body, _ = await raw(session, sim, "DELETE", "/tasks/busy")
    assert status == refusal_status and "busy" in sim.state.tasks
    if refusal_body == "text":
        assert ctype == "text/plain" and b"cannot be deleted" in body
    else:
        error = json.loads(body)["error"]
        expected = {"nclue": {"10107"}, "gateway": {"100", "900"}}[refusal_body]
        assert ctype == "application/json" and error["errorCode"] in expected
    assert sim.state.refusals == {"busy": 1}
    assert sim.state.faults["refusal_shape"] == (
        0 if (refusal_status, refusal_body) == (400, "nclue") else 1
    )


def test_simconfig_refuses_an_unknown_refusal_status():
    """A refusal status outside 400/403/409/500 is a configuration error."""
    with pytest.raises(ValueError, match="refusal_status"):
        SimConfig(refusal_status=401)


async def test_refusal_names_its_evidence_busy_run_or_profile(session):
    """Each refusal is explained by the task's status, a run or a profile that holds it."""
    state = small_account(4)
    state.tasks["t0"].status = "in_progress"
    state.add_run("r", "t1", "pending", created_at=NOW)
    state.add_profile("p", "t2", "in_progress", created_at=NOW)
    async with Simulator(state=state) as sim:
        statuses = [(await raw(session, sim, "DELETE", f"/tasks/t{n}"))[0] for n in range(4)]
    assert statuses == [400, 400, 400, 200]
    assert sim.state.refusals == {"busy": 1, "run": 1, "profile": 1}


# -- total, order, timestamps --------------------------------------------------------


async def test_total_meaning_page_reports_the_page_size(session):
    """With total_meaning=page each page's total is the number of tasks on that page."""
    async with Simulator(SimConfig(total_meaning="page"), small_account(5)) as sim:
        _, full, _ = await call(session, sim, "GET", "/tasks?index=0&limit=3")
        _, tail, _ = await call(session, sim, "GET", "/tasks?index=3&limit=3")
        _, runs, _ = await call(session, sim, "GET", "/task-runs?index=0&limit=3")
    assert (full["total"], len(full["tasks"])) == (3, 3)
    assert (tail["total"], len(tail["tasks"])) == (2, 2)
    assert runs["total"] == 0 and sim.state.faults["total_meaning"] == 3


@pytest.mark.parametrize("index_mode", ["offset", "page"])
async def test_oldest_first_orders_every_listing_oldest_first(session, index_mode):
    """order=oldest_first serves tasks, runs and profiles oldest first, each once."""
    state = small_account(7)
    for number in range(5):
        created = NOW - timedelta(hours=number)
        state.add_run(f"r{number}", "t0", "completed", created_at=created)
        state.add_profile(f"p{number}", "t0", "completed", created_at=created)
    config = SimConfig(order="oldest_first", index_mode=index_mode)
    async with Simulator(config, state) as sim:
        listings = {}
        for path, key in (
            ("/tasks", "tasks"),
            ("/task-runs", "runs"),
            ("/profile/shopping-intents", "profiles"),
        ):
            items, index = [], 0
            while True:
                query = f"{path}?index={index}&limit=2"
                _, body, _ = await call(session, sim, "GET", query)
                if not body[key]:
                    break
                items.extend(body[key])
                index += 1 if index_mode == "page" else len(body[key])
            listings[key] = items
    assert [t["task_id"] for t in listings["tasks"]] == [f"t{n}" for n in range(6, -1, -1)]
    assert [r["run_id"] for r in listings["runs"]] == [f"r{n}" for n in range(4, -1, -1)]
    assert [p["profile_id"] for p in listings["profiles"]] == [f"p{n}" for n in range(4, -1, -1)]
    assert sim.state.faults["oldest_first"] > 0


@pytest.mark.parametrize(
    ("style", "expected"),
    [
        ("iso_z", "2026-03-01T12:00:00Z"),
        ("naive", "2026-03-01T12:00:00"),
        ("naive_kst", "2026-03-01T21:00:00"),
        ("kst_offset", "2026-03-01T21:00:00+09:00"),
        ("kst_offset_nocolon", "2026-03-01T21:00:00+0900"),
        ("epoch_s", 1772366400),
        ("epoch_ms", 1772366400000),
        ("fraction_7", "2026-03-01T12:00:00.0000000Z"),
    ],
)
async def test_timestamp_format_shapes_task_run_and_profile_times(session, style, expected):
    """Each timestamp_format writes created_at of tasks, runs and profiles its own way."""
    state = small_account(1)
    state.add_run("r", "t0", "completed", created_at=NOW)
    state.add_profile("p", "t0", "completed", created_at=NOW)
    async with Simulator(SimConfig(timestamp_format=style), state) as sim:
        _, task, _ = await call(session, sim, "GET", "/tasks/t0")
        _, runs, _ = await call(session, sim, "GET", "/task-runs")
        _, profiles, _ = await call(session, sim, "GET", "/profile/shopping-intents")
    assert task["created_at"] == expected and task["completed_at"] == expected
    assert runs["runs"][0]["created_at"] == expected
    assert profiles["profiles"][0]["created_at"] == expected
    assert sim.state.faults["timestamp_format"] == (0 if style == "iso_z" else 3)


async def test_fraction_7_keeps_the_microseconds(session):
    """fraction_7 writes seven fractional digits: the microseconds and a trailing zero."""
    state = SimState()
    state.add_task("t", "exp", "completed", NOW + timedelta(microseconds=123456))
    async with Simulator(SimConfig(timestamp_format="fraction_7"), state) as sim:
        _, task, _ = await call(session, sim, "GET", "/tasks/t")
    assert task["created_at"] == "2026-03-01T12:00:00.1234560Z"


# -- shopping-intent profiles --------------------------------------------------------


async def test_profiles_listing_has_the_documented_shape_and_gate(session):
    """GET /profile/shopping-intents pages profiles newest first, signed and counted."""
    state = small_account(2)
    for number in range(3):
        state.add_profile(
            f"p{number}",
            "t0",
            "completed",
            created_at=NOW - timedelta(days=number),
            profile_name=f"intent-{number}",
            disk_usage=1024,
        )
    async with Simulator(state=state) as sim:
        _, first, _ = await call(session, sim, "GET", "/profile/shopping-intents?index=0&limit=2")
        _, second, _ = await call(session, sim, "GET", "/profile/shopping-intents?index=2&limit=2")
        bad, _, _ = await call(session, sim, "GET", "/profile/shopping-intents?limit=101")
        unsigned, _, _ = await call(session, sim, "GET", "/profile/shopping-intents", secret="x")
    assert (first["index"], first["limit"], first["total"]) == (0, 2, 3)
    assert first["profiles"][0] == {
        "profile_id": "p0",
        "profile_name": "intent-0",
        "task_id": "t0",
        "task_name": "exp-0",
        "status": "completed",
        "created_at": "2026-03-01T12:00:00Z",
        "disk_usage": 1024,
    }
    assert [p["profile_id"] for p in second["profiles"]] == ["p2"]
    assert (bad, unsigned) == (400, 401)
    assert sim.state.count("GET", "list_profiles") == 4


async def test_busy_profile_holds_its_task_until_it_finishes(session):
    """A pending profile refuses its task's DELETE; once it finishes the DELETE succeeds."""
    state = small_account(2)
    state.add_profile("p", "t0", "pending", busy_for_s=0.05, final_status="failed")
    state.add_profile("done", "t1", "completed")
    async with Simulator(state=state) as sim:
        held, _, _ = await call(session, sim, "DELETE", "/tasks/t0")
        free, _, _ = await call(session, sim, "DELETE", "/tasks/t1")
        await asyncio.sleep(0.1)
        _, listed, _ = await call(session, sim, "GET", "/profile/shopping-intents")
        later, _, _ = await call(session, sim, "DELETE", "/tasks/t0")
    assert (held, free, later) == (400, 200, 200)
    assert {p["profile_id"]: p["status"] for p in listed["profiles"]}["p"] == "failed"


@pytest.mark.parametrize("registered_holds", [True, False])
async def test_registered_holds_switches_runs_and_profiles(session, registered_holds):
    """A registered run or profile holds its task exactly when registered_holds is on."""
    state = small_account(2)
    state.add_run("r", "t0", "registered")
    state.add_profile("p", "t1", "registered")
    async with Simulator(SimConfig(registered_holds=registered_holds), state) as sim:
        statuses = [(await raw(session, sim, "DELETE", f"/tasks/t{n}"))[0] for n in range(2)]
    assert statuses == ([400, 400] if registered_holds else [200, 200])


def test_generate_account_adds_holding_and_referencing_profiles():
    """profile_fraction tasks are held by busy profiles; referenced ones only by finished ones."""
    plain = generate_account(500, seed=4, now=NOW)
    state = generate_account(500, seed=4, now=NOW, profile_fraction=0.1, referenced_fraction=0.2)
    assert [t.task_id for t in plain.tasks.values()] == [t.task_id for t in state.tasks.values()]
    assert not plain.profiles
    deletable = [t for t in state.tasks.values() if t.status not in ("pending", "in_progress")]
    held = {t.task_id for t in deletable if state.blocking_profiles(t.task_id)}
    assert len(held) == round(len(deletable) * 0.1)
    finished = [p for p in state.profiles.values() if p.status in ("completed", "failed")]
    assert len(finished) == round(len(deletable) * 0.2)
    assert all(p.task_id in state.tasks and p.task_id not in held for p in finished)
    assert all(p.busy_until is not None for p in state.profiles.values() if p.task_id in held)


def test_load_seed_reads_profiles(tmp_path):
    """A seed's profiles carry their task's name, busy deadline and disk usage."""
    path = tmp_path / "seed.yaml"
    path.write_text(
        "tasks:\n  - {task_id: a, task_name: exp-a, status: completed, created_at: 2026-01-01}\n"
        "profiles:\n  - {profile_id: p, task_id: a, status: in_progress, busy_for_s: 60,"
        " disk_usage: 2048}\n",
        encoding="utf-8",
    )
    state = load_seed(path)
    profile = state.profiles["p"]
    assert (profile.task_name, profile.disk_usage) == ("exp-a", 2048)
    assert [p.profile_id for p in state.blocking_profiles("a")] == ["p"]


# -- the command line ----------------------------------------------------------------


def simulate_args(*flags: str) -> argparse.Namespace:
    """Parse ``simulate`` flags the way the tool's parser does."""
    parser = argparse.ArgumentParser()
    add_simulator_commands(parser.add_subparsers())
    return parser.parse_args(["simulate", *flags])


def test_simulate_flags_build_the_config():
    """Every new knob has a simulate flag that lands in SimConfig; defaults stay off."""
    assert simulate_config(simulate_args()) == SimConfig(busy_duration_s=30.0)
    config = simulate_config(
        simulate_args(
            "--status-spelling",
            "mixed_case",
            "--refusal-status",
            "500",
            "--refusal-body",
            "text",
            "--total-meaning",
            "page",
            "--order",
            "oldest_first",
            "--timestamp-format",
            "epoch_ms",
            "--no-registered-holds",
            "--delete-lies",
            "0.5",
            "--wrong-get-body",
            "0.1",
            "--create-per-list-page",
            "2",
            "--conflicting-duplicate",
            "t1",
            "--redirect-route",
            "delete_task",
            "--redirect-location",
            "http://127.0.0.1:1{path}",
            "--route-404-body",
            "html",
            "--api-prefix",
            "/api/v2",
            "--gzip-responses",
            "--gzip-bomb-bytes",
            "1000000",
        )
    )
    assert (config.status_spelling, config.refusal_status, config.refusal_body) == (
        "mixed_case",
        500,
        "text",
    )
    assert (config.total_meaning, config.order, config.timestamp_format) == (
        "page",
        "oldest_first",
        "epoch_ms",
    )
    assert not config.registered_holds and config.delete_lies == 0.5
    assert config.wrong_get_body == 0.1 and config.create_per_list_page == 2
    assert config.conflicting_duplicates == {"t1"} and config.redirect_routes == {"delete_task"}
    assert (config.route_404_body, config.api_prefix) == ("html", "/api/v2")
    assert config.gzip_responses and config.gzip_bomb_bytes == 1_000_000


def test_importing_the_simulator_cli_does_not_load_aiohttp_web():
    """`import cleanup.simulator.cli` (and the package) leaves aiohttp.web unimported."""
    code = (
        "import sys, cleanup.simulator, cleanup.simulator.cli\n"
        "cleanup.simulator.SimConfig\n"
        "assert 'aiohttp.web' not in sys.modules, 'aiohttp.web imported'\n"
        "cleanup.simulator.Simulator\n"
        "assert 'aiohttp.web' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_demo_account_has_every_status_and_both_kinds_of_holder():
    """The demo account has every status, busy tasks, holding runs and profiles, all brief."""
    state = demo_account(400)
    statuses = {task.status for task in state.tasks.values()}
    assert statuses == set(STATUSES)
    assert any(state.blocking_runs(task_id) for task_id in state.tasks)
    assert any(state.blocking_profiles(task_id) for task_id in state.tasks)
    assert any(p.status in ("completed", "failed") for p in state.profiles.values())
    busy = [t for t in state.tasks.values() if t.busy_until is not None]
    holders = [*state.runs.values(), *state.profiles.values()]
    deadlines = [r.busy_until for r in [*busy, *holders] if r.busy_until is not None]
    assert len(busy) >= 20 and max(deadlines) <= time.monotonic() + DEMO_BUSY_S


def test_demo_runs_the_real_pipeline_against_the_demo_account(tmp_path):
    """`nclue-cleanup demo` deletes from its simulated account and writes a verifiable log."""
    pytest.importorskip("cleanup.console")
    audit = tmp_path / "audit.jsonl"
    demo = subprocess.run(
        [sys.executable, "-m", "cleanup", "demo", "--audit-log", str(audit)],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr
    events = [json.loads(line)["event"] for line in audit.read_text().splitlines()]
    assert "deleted" in events and events[-1] == "run_finished"
    verify = subprocess.run(
        [sys.executable, "-m", "cleanup", "audit", "verify", str(audit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
