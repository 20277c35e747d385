"""The simulator's hostile knobs: lying bodies, contradicting and moving listings,
redirects, gateway 404s, compression and size, seen with raw signed requests."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import timedelta

import pytest

from cleanup.simulator import SimConfig, SimState, Simulator
from tests.test_simulator import NOW, call, raw, session, small_account

__all__ = ["session"]


# -- lying bodies --------------------------------------------------------------------


async def test_get_body_swap_answers_with_the_other_tasks_body(session):
    """get_body_swap makes GET /tasks/t0 answer 200 with t1's body."""
    config = SimConfig(get_body_swap={"t0": "t1", "t2": "gone"})
    async with Simulator(config, small_account()) as sim:
        _, swapped, _ = await call(session, sim, "GET", "/tasks/t0")
        _, honest, _ = await call(session, sim, "GET", "/tasks/t2")
    assert swapped["task_id"] == "t1" and honest["task_id"] == "t2"
    assert sim.state.faults["get_body_swap"] == 1


async def test_wrong_get_body_answers_with_another_existing_task(session):
    """wrong_get_body=1 answers every GET with another task's body, never the asked one."""
    async with Simulator(SimConfig(wrong_get_body=1.0), small_account(5)) as sim:
        bodies = [(await call(session, sim, "GET", f"/tasks/t{n}"))[1] for n in range(5)]
        missing, _, _ = await call(session, sim, "GET", "/tasks/nope")
    for number, body in enumerate(bodies):
        assert body["task_id"] != f"t{number}" and body["task_id"] in sim.state.tasks
    assert missing == 404 and sim.state.faults["wrong_get_body"] == 5


@pytest.mark.parametrize(
    ("knob", "status", "ctype", "deleted"),
    [
        ("delete_wrong_body", 200, "application/json", False),
        ("delete_html_2xx", 200, "text/html", False),
        ("delete_error_2xx", 200, "application/json", False),
        ("delete_lies", 200, "application/json", False),
        ("delete_empty_2xx", 204, "application/octet-stream", True),
    ],
)
async def test_lying_delete_answers(session, knob, status, ctype, deleted):
    """Each lying-DELETE knob answers 2xx as documented and deletes only for an empty 204."""
    async with Simulator(SimConfig(**{knob: 1.0}), small_account()) as sim:
        got, got_type, body, _ = await raw(session, sim, "DELETE", "/tasks/t0")
        busy_state = sim.state.add_task("busy", "exp", "pending", NOW, busy_for_s=60)
        refused, _, _, _ = await raw(session, sim, "DELETE", "/tasks/busy")
    assert (got, got_type) == (status, ctype)
    assert ("t0" not in sim.state.tasks) is deleted
    assert sim.state.faults[knob] == 1
    assert refused == 400 and busy_state.task_id in sim.state.tasks  # refusals stay honest
    if knob == "delete_wrong_body":
        assert json.loads(body)["task_id"] in {"t1", "t2"}
    elif knob == "delete_error_2xx":
        assert "error" in json.loads(body)
    elif knob == "delete_lies":
        assert json.loads(body) == {"task_id": "t0"}
    elif knob == "delete_empty_2xx":
        assert body == b""


# -- listings that contradict themselves or move ---------------------------------------


async def test_conflicting_duplicates_list_a_task_twice_with_two_statuses(session):
    """A conflicting duplicate appears on two pages, once busy and once with its status."""
    state = small_account(10)
    config = SimConfig(conflicting_duplicates=frozenset({"t1", "t8"}))
    async with Simulator(config, state) as sim:
        pages = []
        for index in range(0, 12, 3):
            _, body, _ = await call(session, sim, "GET", f"/tasks?index={index}&limit=3")
            pages.append(body)
    seen: dict[str, list[tuple[int, str]]] = {}
    for number, page in enumerate(pages):
        assert page["total"] == 12
        for task in page["tasks"]:
            seen.setdefault(task["task_id"], []).append((number, task["status"]))
    for task_id in ("t1", "t8"):
        (page_a, status_a), (page_b, status_b) = seen[task_id]
        assert page_a != page_b and {status_a, status_b} == {"completed", "in_progress"}
    assert all(len(records) == 1 for key, records in seen.items() if key not in ("t1", "t8"))
    assert sim.state.faults["conflicting_duplicate"] == 2


async def test_on_list_page_hook_runs_after_each_page_of_every_listing(session):
    """on_list_page is called with (state, route, index) once each page is built."""
    calls = []

    def hook(state: SimState, route: str, index: int) -> None:
        calls.append((route, index))
        state.add_task(f"new-{len(calls)}", "exp-new", "completed", NOW + timedelta(hours=1))

    async with Simulator(SimConfig(on_list_page=hook), small_account(3)) as sim:
        _, first, _ = await call(session, sim, "GET", "/tasks?index=0&limit=2")
        _, second, _ = await call(session, sim, "GET", "/tasks?index=2&limit=2")
        await call(session, sim, "GET", "/task-runs?index=0&limit=2")
        await call(session, sim, "GET", "/profile/shopping-intents?index=5&limit=2")
    assert calls == [("list_tasks", 0), ("list_tasks", 2), ("list_runs", 0), ("list_profiles", 5)]
    assert [t["task_id"] for t in first["tasks"]] == ["t0", "t1"]
    assert [t["task_id"] for t in second["tasks"]] == ["t1", "t2"]  # new-1 pushed t1 down
    assert first["total"] == 3 and second["total"] == 4


async def test_create_per_list_page_adds_newest_tasks_after_each_page(session):
    """create_per_list_page=2 adds two registered tasks at the newest end per /tasks page."""
    async with Simulator(SimConfig(create_per_list_page=2), small_account(3)) as sim:
        _, first, _ = await call(session, sim, "GET", "/tasks?index=0&limit=10")
        _, second, _ = await call(session, sim, "GET", "/tasks?index=0&limit=10")
        await call(session, sim, "GET", "/task-runs")
    assert [t["task_id"] for t in first["tasks"]] == ["t0", "t1", "t2"]
    assert second["total"] == 5 and [t["status"] for t in second["tasks"][:2]] == [
        "registered",
        "registered",
    ]
    assert [t["task_id"] for t in second["tasks"][2:]] == ["t0", "t1", "t2"]
    assert len(sim.state.tasks) == 7 and sim.state.faults["created_during_listing"] == 4


async def test_delete_per_list_page_vanishes_tasks_without_counting_deletes(session):
    """delete_per_list_page removes random tasks as another client would, not as DELETEs."""
    async with Simulator(SimConfig(delete_per_list_page=3), small_account(10)) as sim:
        _, first, _ = await call(session, sim, "GET", "/tasks?index=0&limit=4")
        _, second, _ = await call(session, sim, "GET", "/tasks?index=0&limit=4")
    assert first["total"] == 10 and second["total"] == 7
    assert len(sim.state.vanished) == 6 and len(set(sim.state.vanished)) == 6
    assert len(sim.state.tasks) == 4 and not sim.state.deleted
    assert sim.state.faults["deleted_during_listing"] == 6


# -- redirects and routes --------------------------------------------------------------


async def test_redirect_routes_answer_307_and_a_follower_reaches_the_target(session):
    """A redirected DELETE answers 307 to the configured URL and deletes nothing here."""
    async with Simulator(state=small_account()) as target:
        config = SimConfig(
            redirect_routes=frozenset({"delete_task"}),
            redirect_location=target.base_url + "{path}",
        )
        async with Simulator(config, small_account()) as sim:
            status, _, _, headers = await raw(
                session, sim, "DELETE", "/tasks/t0?x=1", allow_redirects=False
            )
            followed, _, _, _ = await raw(session, sim, "DELETE", "/tasks/t1")
            listed, _, _ = await call(session, sim, "GET", "/tasks")
            sim.config.redirect_status = 308
            permanent, _, _, _ = await raw(
                session, sim, "DELETE", "/tasks/t2", allow_redirects=False
            )
    assert status == 307 and headers["Location"] == target.base_url + "/api/v1/tasks/t0?x=1"
    assert (followed, listed, permanent) == (200, 200, 308)
    assert "t0" in sim.state.tasks and "t1" in sim.state.tasks and not sim.state.deleted
    assert target.state.count("DELETE", "delete_task") == 1 and "t1" not in target.state.tasks
    assert sim.state.faults["redirect"] == 3


def test_redirect_routes_need_a_location():
    """redirect_routes without redirect_location is a configuration error."""
    with pytest.raises(ValueError, match="redirect_location"):
        SimConfig(redirect_routes=frozenset({"get_task"}))


@pytest.mark.parametrize(
    ("body", "ctype", "marker"),
    [
        ("json", "application/json", b'"300"'),
        ("html", "text/html", b"<html>"),
        ("text", "text/plain", b"Not Found"),
    ],
)
async def test_route_404_body_shapes_the_gateway_404(session, body, ctype, marker):
    """A path outside the API (the singular /task/...) gets the configured 404 body."""
    async with Simulator(SimConfig(route_404_body=body), small_account()) as sim:
        status, got_type, got, _ = await raw(session, sim, "GET", "/task/t0")
    assert (status, got_type) == (404, ctype) and marker in got
    assert sim.state.count(route="other") == 1


async def test_api_prefix_moves_the_api_and_the_old_prefix_gets_route_404s(session):
    """With api_prefix=/api/v2, sim.url ends there and every /api/v1 call is the gateway 404."""
    async with Simulator(SimConfig(api_prefix="/api/v2"), small_account()) as sim:
        served, _, _, _ = await raw(session, sim, "GET", "/tasks", prefix="/api/v2")
        results = [
            await raw(session, sim, method, path)
            for method, path in (
                ("GET", "/tasks?index=0&limit=5"),
                ("GET", "/tasks/t0"),
                ("DELETE", "/tasks/t0"),
            )
        ]
    assert sim.url.endswith("/api/v2") and served == 200
    for status, ctype, body, _ in results:
        assert (status, ctype) == (404, "application/json")
        assert json.loads(body)["error"]["errorCode"] == "300"
    assert "t0" in sim.state.tasks and sim.state.count(route="other") == 3


# -- compression and size --------------------------------------------------------------


async def test_gzip_responses_compress_json_bodies(session):
    """gzip_responses sends JSON bodies gzip-encoded; aiohttp inflates them."""
    async with Simulator(SimConfig(gzip_responses=True), small_account()) as sim:
        status, _, wire, headers = await raw(
            session, sim, "GET", "/tasks?index=0&limit=5", auto_decompress=False
        )
        _, body, _ = await call(session, sim, "GET", "/tasks/t1")
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert len(json.loads(gzip.decompress(wire))["tasks"]) == 3
    assert body["task_id"] == "t1" and sim.state.faults["gzip"] == 2


async def test_oversize_body_pads_listings_and_gets_to_the_size(session):
    """oversize_body_bytes pads 2xx listing and GET bodies, still JSON, to exactly that size."""
    size = 3_000_000
    async with Simulator(SimConfig(oversize_body_bytes=size), small_account()) as sim:
        _, _, listing, _ = await raw(session, sim, "GET", "/tasks?index=0&limit=5")
        _, _, task, _ = await raw(session, sim, "GET", "/tasks/t0")
        deleted, _, _ = await call(session, sim, "DELETE", "/tasks/t0")
        missing, _, small, _ = await raw(session, sim, "GET", "/tasks/t0")
    assert len(listing) == len(task) == size
    assert len(json.loads(listing)["tasks"]) == 3 and json.loads(task)["task_id"] == "t0"
    assert deleted == 200 and missing == 404 and len(small) < 200
    assert sim.state.faults["oversize_body"] == 2


async def test_gzip_bomb_is_small_on_the_wire_and_inflates_to_the_size(session):
    """gzip_bomb_bytes sends a small gzip body that inflates to exactly that many bytes."""
    size = 20_000_000
    async with Simulator(SimConfig(gzip_bomb_bytes=size), small_account()) as sim:
        status, _, wire, headers = await raw(
            session, sim, "GET", "/tasks/t0", auto_decompress=False
        )
    inflated = zlib.decompress(wire, 16 + zlib.MAX_WBITS)
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert len(wire) < size // 100 and len(inflated) == size
    assert json.loads(inflated)["task_id"] == "t0"
    assert sim.state.faults["gzip_bomb"] == 1


async def test_a_client_reading_the_bomb_gets_the_whole_inflated_body(session):
    """An uncapped aiohttp client inflates the bomb in full: the cap is the client's job."""
    async with Simulator(SimConfig(gzip_bomb_bytes=5_000_000), small_account()) as sim:
        status, _, body, _ = await raw(session, sim, "GET", "/tasks?index=0&limit=5")
    assert status == 200 and len(body) == 5_000_000
