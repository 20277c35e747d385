"""The bundled NCLUE simulator, exercised over loopback with a real aiohttp client."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp
import pytest
from yarl import URL

from cleanup.signing import signed_headers
from cleanup.simulator import (
    SeedError,
    SimConfig,
    SimState,
    Simulator,
    generate_account,
    load_seed,
    serve_forever,
    start_simulator,
)

AK = "sim-access-key"
SK = "sim-secret-key"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def session():
    """A real client session, closed after the test."""
    async with aiohttp.ClientSession() as client:
        yield client


def small_account(n: int = 3) -> SimState:
    """An account of ``n`` completed tasks named exp-N, one minute apart."""
    state = SimState()
    for number in range(n):
        state.add_task(f"t{number}", f"exp-{number}", "completed", NOW - timedelta(minutes=number))
    return state


async def raw(session, sim, method, path, *, prefix="/api/v1", **options):
    """Send one signed request; return (status, content type, body bytes, headers)."""
    uri = prefix + path
    headers = signed_headers(method, uri, int(time.time() * 1000), AK, SK)
    url = URL(sim.base_url + uri, encoded=True)
    async with session.request(method, url, headers=headers, **options) as response:
        return response.status, response.content_type, await response.read(), response.headers


async def call(session, sim, method, path, *, ts_ms=None, secret=SK, timeout=None):
    """Send one signed request; return (status, parsed JSON body, headers)."""
    uri = "/api/v1" + path
    timestamp = ts_ms if ts_ms is not None else int(time.time() * 1000)
    headers = signed_headers(method, uri, timestamp, AK, secret)
    url = URL(sim.base_url + uri, encoded=True)
    options = {"timeout": aiohttp.ClientTimeout(total=timeout)} if timeout else {}
    async with session.request(method, url, headers=headers, **options) as response:
        return response.status, await response.json(), response.headers


async def test_signed_request_is_accepted(session):
    """A correctly signed GET returns the task with ISO 'Z' times and is counted."""
    async with Simulator(state=small_account()) as sim:
        status, body, headers = await call(session, sim, "GET", "/tasks/t0")
    assert status == 200
    assert body == {
        "task_id": "t0",
        "task_name": "exp-0",
        "status": "completed",
        "created_at": "2026-03-01T12:00:00Z",
        "completed_at": "2026-03-01T12:00:00Z",
    }
    assert "Date" in headers
    assert sim.state.requests == {("GET", "get_task", 200): 1}


async def test_wrong_secret_is_rejected_with_gateway_body(session):
    """A signature made with the wrong secret gets 401 errorCode 200 and no secret echoed."""
    async with Simulator(state=small_account()) as sim:
        status, body, _ = await call(session, sim, "GET", "/tasks/t0", secret="wrong-secret")
    assert status == 401
    assert body["error"]["errorCode"] == "200"
    assert body["error"]["message"] == "Authentication Failed"
    assert SK not in json.dumps(body) and "wrong-secret" not in json.dumps(body)
    assert sim.state.count(status=401) == 1


async def test_timestamp_six_minutes_off_is_rejected(session):
    """A timestamp more than 5 minutes from the server clock gets 401."""
    stale = int((time.time() - 360) * 1000)
    async with Simulator(state=small_account()) as sim:
        status, body, _ = await call(session, sim, "GET", "/tasks/t0", ts_ms=stale)
    assert (status, body["error"]["errorCode"]) == (401, "200")


async def test_server_clock_offset_accepts_skewed_timestamp_and_shows_it(session):
    """With the server clock 7 minutes ahead, a matching timestamp passes and Date shows it."""
    ahead = int((time.time() + 420) * 1000)
    async with Simulator(SimConfig(clock_offset_s=420), small_account()) as sim:
        status, _, headers = await call(session, sim, "GET", "/tasks/t0", ts_ms=ahead)
        local_status, _, _ = await call(session, sim, "GET", "/tasks/t0")
    assert status == 200
    assert local_status == 401
    skew = parsedate_to_datetime(headers["Date"]) - datetime.now(UTC)
    assert timedelta(minutes=6) < skew < timedelta(minutes=8)


@pytest.mark.parametrize("index_mode", ["page", "offset"])
async def test_pagination_returns_every_task_once(session, index_mode):
    """Walking the listing by page or by offset yields all 450 tasks once, newest first."""
    state = generate_account(450, seed=3, now=NOW)
    seen: list[str] = []
    index = 0
    async with Simulator(SimConfig(index_mode=index_mode), state) as sim:
        while True:
            status, body, _ = await call(session, sim, "GET", f"/tasks?index={index}&limit=100")
            assert status == 200 and body["total"] == 450
            if not body["tasks"]:
                break
            seen.extend(task["task_id"] for task in body["tasks"])
            index += 1 if index_mode == "page" else len(body["tasks"])
    assert len(seen) == 450 and set(seen) == state.remaining_ids()
    created = [state.tasks[task_id].created_at for task_id in seen]
    assert created == sorted(created, reverse=True)


async def test_listing_shifts_after_deletes(session):
    """After deleting the first page, the same offset serves the next tasks and a lower total."""
    async with Simulator(state=small_account(5)) as sim:
        _, first, _ = await call(session, sim, "GET", "/tasks?index=0&limit=2")
        for task in first["tasks"]:
            await call(session, sim, "DELETE", f"/tasks/{task['task_id']}")
        _, second, _ = await call(session, sim, "GET", "/tasks?index=0&limit=2")
    assert [task["task_id"] for task in first["tasks"]] == ["t0", "t1"]
    assert [task["task_id"] for task in second["tasks"]] == ["t2", "t3"]
    assert second["total"] == 3


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "index=-1&limit=5"])
async def test_bad_pagination_is_400(session, query):
    """A limit outside 1..100 or a negative index is a 400 Bad Request Exception."""
    async with Simulator(state=small_account()) as sim:
        status, body, _ = await call(session, sim, "GET", f"/tasks?{query}")
    assert (status, body["error"]["errorCode"]) == (400, "100")


@pytest.mark.parametrize("refusal_status", [400, 409])
async def test_busy_task_is_refused_until_it_finishes(session, refusal_status):
    """A busy task is refused with the configured status, then deletable once finished."""
    state = small_account()
    state.add_task("busy", "exp-busy", "in_progress", NOW, busy_for_s=0.05)
    async with Simulator(SimConfig(refusal_status=refusal_status), state) as sim:
        status, body, _ = await call(session, sim, "DELETE", "/tasks/busy")
        assert status == refusal_status
        assert body["error"]["errorCode"] == "10107"
        await asyncio.sleep(0.1)
        _, task, _ = await call(session, sim, "GET", "/tasks/busy")
        status, body, _ = await call(session, sim, "DELETE", "/tasks/busy")
    assert task["status"] == "completed" and task["completed_at"] is not None
    assert (status, body) == (200, {"task_id": "busy"})


async def test_run_in_progress_holds_its_task(session):
    """A completed task with an in-progress run is refused until the run finishes."""
    state = small_account()
    run = state.add_run("r1", "t0", "in_progress", created_at=NOW)
    async with Simulator(state=state) as sim:
        refused, body, _ = await call(session, sim, "DELETE", "/tasks/t0")
        _, runs, _ = await call(session, sim, "GET", "/task-runs?index=0&limit=10")
        run.status = "completed"
        status, _, _ = await call(session, sim, "DELETE", "/tasks/t0")
    assert (refused, body["error"]["errorCode"]) == (400, "10107")
    assert runs["total"] == 1 and runs["runs"][0]["status"] == "in_progress"
    assert status == 200


async def test_delete_twice_is_404_the_second_time(session):
    """The second DELETE of a task is 404 errorCode 10106 and it was removed only once."""
    async with Simulator(state=small_account()) as sim:
        first, _, _ = await call(session, sim, "DELETE", "/tasks/t1")
        second, body, _ = await call(session, sim, "DELETE", "/tasks/t1")
    assert (first, second, body["error"]["errorCode"]) == (200, 404, "10106")
    assert sim.state.deleted["t1"] == 1
    assert [task_id for _, task_id in sim.state.delete_log] == ["t1"]


async def test_fail_after_delete_deletes_then_answers_504(session):
    """With fail_after_delete=1 the task is gone although the answer is 504 errorCode 510."""
    async with Simulator(SimConfig(fail_after_delete=1.0), small_account()) as sim:
        status, body, _ = await call(session, sim, "DELETE", "/tasks/t0")
        gone, _, _ = await call(session, sim, "GET", "/tasks/t0")
    assert (status, body["error"]["errorCode"], gone) == (504, "510", 404)
    assert sim.state.deleted["t0"] == 1


async def test_fail_before_delete_answers_503_and_keeps_task(session):
    """With fail_before_delete=1 the answer is 503 errorCode 500 and nothing is deleted."""
    async with Simulator(SimConfig(fail_before_delete=1.0), small_account()) as sim:
        status, body, _ = await call(session, sim, "DELETE", "/tasks/t0")
    assert (status, body["error"]["errorCode"]) == (503, "500")
    assert "t0" in sim.state.tasks and not sim.state.deleted


async def test_dropped_connection_reaches_the_client_as_a_disconnect(session):
    """With drop_connection=1 every DELETE ends in a disconnect, some after deleting."""
    # aiohttp silently re-sends an idempotent request once after a disconnect; turn that
    # off so each DELETE here is exactly one attempt.
    session._retry_connection = False
    state = small_account(8)
    async with Simulator(SimConfig(drop_connection=1.0), state) as sim:
        for number in range(8):
            with pytest.raises(aiohttp.ServerDisconnectedError):
                await call(session, sim, "DELETE", f"/tasks/t{number}")
    assert sim.state.count("DELETE", "delete_task", 0) == 8
    assert 0 < len(sim.state.deleted) < 8
    assert len(sim.state.tasks) + len(sim.state.deleted) == 8


async def test_rate_limit_rejects_the_sixth_request_in_a_second(session):
    """At rate_limit=5 the 6th request within a second gets 429 errorCode 420."""
    async with Simulator(SimConfig(rate_limit=5), small_account()) as sim:
        results = [await call(session, sim, "GET", "/tasks/t0") for _ in range(6)]
    assert [status for status, _, _ in results] == [200] * 5 + [429]
    assert results[-1][1] == {
        "error": {"errorCode": "420", "message": "Rate Limited", "details": None}
    }
    assert sim.state.count(status=429) == 1 and sim.state.accepted == 5


async def test_quota_exceeded_after_quota_accepted_requests(session):
    """Once `quota` requests were accepted, every further one gets 429 errorCode 400."""
    async with Simulator(SimConfig(quota=2), small_account()) as sim:
        statuses = [(await call(session, sim, "GET", "/tasks/t0"))[:2] for _ in range(4)]
    assert [status for status, _ in statuses] == [200, 200, 429, 429]
    assert statuses[-1][1]["error"]["errorCode"] == "400"
    assert sim.state.count("GET", "get_task", 429) == 2


async def test_failing_list_pages_answer_503(session):
    """A listing index in fail_list_pages answers 503 every time, others are served."""
    async with Simulator(SimConfig(fail_list_pages=frozenset({2})), small_account()) as sim:
        ok, _, _ = await call(session, sim, "GET", "/tasks?index=0&limit=2")
        failed, body, _ = await call(session, sim, "GET", "/tasks?index=2&limit=2")
    assert (ok, failed, body["error"]["errorCode"]) == (200, 503, "500")


async def test_hung_request_times_out_on_the_client(session):
    """With hang=1 the client's timeout fires, and closing the simulator releases the hang."""
    sim = await start_simulator(SimConfig(hang=1.0, hang_s=30.0), small_account())
    try:
        with pytest.raises(asyncio.TimeoutError):
            await call(session, sim, "GET", "/tasks/t0", timeout=0.2)
    finally:
        await sim.close()
    assert sim.state.count("GET", "get_task") == 1


async def test_unknown_path_is_gateway_404(session):
    """A path the API does not have gets 404 errorCode 300, counted as route 'other'."""
    async with Simulator(state=small_account()) as sim:
        status, body, _ = await call(session, sim, "GET", "/nothing-here")
    assert (status, body["error"]["errorCode"]) == (404, "300")
    assert sim.state.count(route="other") == 1


async def test_control_endpoints_report_counters_uncounted(session):
    """/_sim/stats and /_sim/tasks report the state and are not counted themselves."""
    async with Simulator(state=small_account()) as sim:
        await call(session, sim, "DELETE", "/tasks/t0")
        await call(session, sim, "DELETE", "/tasks/t0")
        async with session.get(sim.base_url + "/_sim/stats") as response:
            stats = await response.json()
        async with session.get(sim.base_url + "/_sim/tasks") as response:
            remaining = await response.json()
    assert stats["total_requests"] == 2 and sim.state.total_requests() == 2
    assert stats["by_status"] == {"200": 1, "404": 1}
    assert (stats["remaining"], stats["deleted"], stats["max_deletes_per_id"]) == (2, 1, 1)
    assert sorted(remaining["task_ids"]) == ["t1", "t2"]


async def test_serve_forever_serves_until_stopped(session):
    """serve_forever reports the running simulator, serves it, and returns once stopped."""
    running: asyncio.Future[Simulator] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    server = asyncio.create_task(
        serve_forever(None, small_account(), on_started=running.set_result, stop=stop)
    )
    status, _, _ = await call(session, await running, "GET", "/tasks/t0")
    stop.set()
    await server
    assert status == 200


def test_generate_account_is_deterministic():
    """The same seed gives the same account; another seed gives another one."""
    first = generate_account(200, seed=7, now=NOW)
    again = generate_account(200, seed=7, now=NOW)
    other = generate_account(200, seed=8, now=NOW)
    assert [t.task_id for t in first.tasks.values()] == [t.task_id for t in again.tasks.values()]
    assert [t.task_name for t in first.tasks.values()] == [
        t.task_name for t in again.tasks.values()
    ]
    assert first.remaining_ids() != other.remaining_ids()


def test_generate_account_honours_busy_and_held_fractions():
    """busy_fraction and held_fraction are met, and names form groups of 1..10."""
    state = generate_account(1000, seed=1, now=NOW, busy_fraction=0.2, held_fraction=0.3)
    busy = [t for t in state.tasks.values() if t.status in ("pending", "in_progress")]
    assert len(busy) == 200 and all(t.busy_until is not None for t in busy)
    held = {t for t in state.tasks if state.blocking_runs(t)}
    assert held and abs(len(held) - 240) <= 5
    groups: dict[str, int] = {}
    for task in state.tasks.values():
        groups[task.task_name] = groups.get(task.task_name, 0) + 1
        assert NOW - timedelta(days=120) <= task.created_at <= NOW
    assert max(groups.values()) <= 10 and max(groups.values()) > 1


def test_load_seed_reads_yaml(tmp_path):
    """A YAML seed gives tasks with extra fields, busy deadlines and runs."""
    path = tmp_path / "seed.yaml"
    path.write_text(
        "tasks:\n"
        "  - {task_id: a, task_name: exp-a, status: completed,"
        " created_at: 2026-01-02T03:04:05Z, train_bucket: b1}\n"
        "  - {task_id: b, task_name: exp-a, status: pending,"
        " created_at: '2026-01-03T00:00:00Z', busy_for_s: 60, final_status: failed}\n"
        "runs:\n"
        "  - {run_id: r, task_id: a, status: in_progress}\n",
        encoding="utf-8",
    )
    state = load_seed(path)
    assert state.tasks["a"].to_json()["train_bucket"] == "b1"
    assert state.tasks["a"].to_json()["created_at"] == "2026-01-02T03:04:05Z"
    assert state.tasks["b"].busy_until is not None and state.tasks["b"].final_status == "failed"
    assert [run.run_id for run in state.blocking_runs("a")] == ["r"]


def test_load_seed_names_the_bad_entry(tmp_path):
    """A seed entry without task_id is an error naming the file and the entry."""
    path = tmp_path / "seed.json"
    path.write_text(json.dumps({"tasks": [{"task_name": "x", "status": "completed"}]}))
    with pytest.raises(SeedError, match=r"seed\.json: tasks\[0\]\.task_id"):
        load_seed(path)
