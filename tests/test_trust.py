"""Trust nothing (issue 12): the pipeline acts only on what was asked for and proven.

One regression test per point of issue 12 that the in-process API can show, run with
``run_policy`` against the bundled simulator's hostile knobs (``SimConfig``) over
loopback; the points that need a process (signals, a full disk, stderr, pipes) live in
``test_trust_cli.py``. Two more loopback servers appear: ``Recorder`` (an "evil" origin
that must never receive a signed request) and ``Front`` (a proxy in front of the
simulator that rewrites chosen answers, for shapes the knobs do not make).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from cleanup import Settings, run_policy
from cleanup.auditview import verify
from cleanup.errors import PlanError, PolicyError, UsageError
from cleanup.plans import document_sha256
from cleanup.signing import ACCESS_KEY_HEADER, SIGNATURE_HEADER
from cleanup.simulator import SimState
from cleanup.summary import RunSummary

from .conftest import CREDS, OLD, account, policy, read_audit, terminal_by_task

GET_ONLY = frozenset({"get_task"})
LYING_KINDS = ("delete_wrong_body", "delete_html_2xx", "delete_error_2xx", "delete_lies")


def deletes(sim: Any) -> int:
    return int(sim.state.count(method="DELETE"))


def one_terminal_each(path: Path) -> bool:
    return all(len(v) == 1 for v in terminal_by_task(read_audit(path)).values())


def events_of(path: Path, task_id: str) -> list[str]:
    return [r["event"] for r in read_audit(path) if r.get("task_id") == task_id]


def truly_removed(sim: Any) -> set[str]:
    """Tasks a DELETE really removed (not another client's deletes)."""
    return set(sim.state.deleted)


async def run_at(
    endpoint: str, doc: dict[str, Any], tmp_path: Path, *, apply: bool = True, **settings: Any
) -> RunSummary:
    """``run_policy`` against any endpoint (the ``run`` fixture always uses ``sim.url``)."""
    settings.setdefault("audit_log", str(tmp_path / "audit.jsonl"))
    return await run_policy(
        doc, apply=apply, settings=Settings(endpoint=endpoint, **settings), credentials=CREDS
    )


class Recorder:
    """A loopback origin that answers 200 to anything and remembers what reached it."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _any(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path_qs, dict(request.headers)))
        task_id = request.path.rsplit("/", 1)[-1]
        return web.json_response({"task_id": task_id, "tasks": [], "total": 0})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._any)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def signed(self) -> list[tuple[str, str]]:
        """Requests that carried the access key or a signature header."""
        wanted = {ACCESS_KEY_HEADER.lower(), SIGNATURE_HEADER.lower()}
        return [
            (method, path)
            for method, path, headers in self.requests
            if wanted & {name.lower() for name in headers}
        ]


Override = Callable[[web.Request], web.Response | None]


class Front:
    """A proxy on loopback in front of a simulator: ``override`` may answer instead."""

    def __init__(self, upstream: str, override: Override) -> None:
        self.upstream = upstream
        self.override = override
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.base_url = ""

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        answer = self.override(request)
        if answer is not None:
            return answer
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        url = self.upstream + request.raw_path
        async with self._session.request(
            request.method, url, headers=headers, data=await request.read(), allow_redirects=False
        ) as resp:
            body = await resp.read()
            kept = {k: v for k, v in resp.headers.items() if k in ("Content-Type", "Date")}
            return web.Response(status=resp.status, body=body, headers=kept)

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()


@pytest.fixture
async def evil() -> AsyncIterator[Recorder]:
    server = Recorder()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def front() -> AsyncIterator[Callable[..., Any]]:
    started: list[Front] = []

    async def start(sim: Any, override: Override) -> Front:
        proxy = Front(sim.base_url, override)
        await proxy.start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        await proxy.close()


# -- 1. a GET answering another task's body ----------------------------------------------


async def test_get_answering_another_tasks_body_never_deletes_that_task(make_sim, run, tmp_path):
    """Point 1: GET /tasks/X answering Y's body fails X and never sends Y a DELETE."""
    sim = await make_sim(account(5), get_body_swap={"t0001": "t0003"})
    summary = await run(sim, policy({"ids": ["t0001"]}))
    assert sim.state.faults["get_body_swap"] >= 1
    assert sim.state.deleted == Counter()
    assert {"t0001", "t0003"} <= set(sim.state.tasks)
    assert summary.task_ids.get("failed") == ("t0001",)
    assert summary.exit_code == 1
    assert "t0003" not in terminal_by_task(read_audit(tmp_path / "audit.jsonl"))


async def test_get_body_of_another_task_under_apply_plan_deletes_nothing(make_sim, run, tmp_path):
    """Point 1: the same lie under --apply --plan fails the planned ID, deletes nothing."""
    sim = await make_sim(account(5))
    plan = tmp_path / "plan.json"
    doc = policy({"ids": ["t0001"]})
    dry = await run(sim, doc, apply=False, plan_out=str(plan))
    assert dry.exit_code == 0 and dry.task_ids["would_delete"] == ("t0001",)
    sim.config.get_body_swap = {"t0001": "t0004"}
    summary = await run(sim, doc, plan_in=str(plan), audit_log=str(tmp_path / "apply.jsonl"))
    assert sim.state.faults["get_body_swap"] >= 1
    assert deletes(sim) == 0
    assert summary.task_ids.get("failed") == ("t0001",)
    assert "t0004" not in terminal_by_task(read_audit(tmp_path / "apply.jsonl"))


async def test_get_body_naming_the_id_in_another_case_is_not_the_asked_task(make_sim, run):
    """Beyond the list: a body whose task_id differs only in case names another task."""
    state = account(3)
    state.add_task("T0001", "exp", "completed", OLD)
    sim = await make_sim(state, get_body_swap={"t0001": "T0001"})
    summary = await run(sim, policy({"ids": ["t0001"]}))
    assert deletes(sim) == 0
    assert summary.task_ids.get("failed") == ("t0001",)


async def test_random_wrong_get_bodies_only_ever_delete_selected_ids(make_sim, run, tmp_path):
    """Point 1: with wrong_get_body on GETs, every DELETE sent names a selected ID."""
    sim = await make_sim(account(250), wrong_get_body=0.5, seed=3)
    chosen = ["t0010", "t0020"]  # past the first page: each is read with a GET
    summary = await run(sim, policy({"ids": chosen}))
    assert sim.state.faults["wrong_get_body"] >= 1
    sent = {r["task_id"] for r in read_audit(tmp_path / "audit.jsonl") if r["event"] == "deleting"}
    assert sent <= set(chosen)
    assert truly_removed(sim) <= set(chosen)
    assert set(summary.deleted) <= truly_removed(sim)


# -- 2. hand-edited plans ----------------------------------------------------------------


async def _made_plan(sim: Any, run: Any, tmp_path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    plan = tmp_path / "plan.json"
    summary = await run(sim, doc, apply=False, plan_out=str(plan), audit_log=str(tmp_path / "d"))
    assert summary.exit_code == 0
    document: dict[str, Any] = json.loads(plan.read_text())
    return document


def _write(path: Path, document: dict[str, Any], *, reseal: bool) -> str:
    if reseal:
        document["sha256"] = document_sha256(document)
    path.write_text(json.dumps(document))
    return str(path)


def _extra_entry(task_id: str) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "task_name": "exp",
        "status": "completed",
        "created_at": "2026-01-01T00:00:00Z",
        "action": "delete",
        "reason": "selected",
        "detail": None,
    }


def _add_id(document: dict[str, Any], task_id: str) -> None:
    document["tasks"].append(_extra_entry(task_id))


def _add_id_and_count(document: dict[str, Any], task_id: str) -> None:
    _add_id(document, task_id)
    document["counts"]["delete"] += 1


def _cut_id(document: dict[str, Any], task_id: str) -> None:
    document["tasks"] = [t for t in document["tasks"] if t["task_id"] != task_id]


def _set(key: str, value: str) -> Callable[[dict[str, Any], str], None]:
    def edit(document: dict[str, Any], _: str) -> None:
        document[key] = value

    return edit


def _future(document: dict[str, Any], _: str) -> None:
    moment = datetime.now(UTC) + timedelta(days=1)
    document["created_at"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")


PLAN_EDITS: dict[str, tuple[Callable[[dict[str, Any], str], None], bool]] = {
    "id-added": (_add_id_and_count, False),
    "id-cut-counts-stale-resealed": (_cut_id, True),
    "id-cut-counts-stale": (_cut_id, False),
    "id-added-counts-stale-resealed": (_add_id, True),
    "other-policy-resealed": (_set("policy_sha256", "0" * 64), True),
    "other-endpoint-resealed": (_set("endpoint", "http://127.0.0.1:1/api/v1"), True),
    "other-account-resealed": (_set("access_key_id", "ncp_iam_OTHERKEY"), True),
    "created-in-the-future-resealed": (_future, True),
}


@pytest.mark.parametrize("edit", list(PLAN_EDITS))
async def test_hand_edited_plans_are_refused_before_any_request(make_sim, run, tmp_path, edit):
    """Point 2 (and a future created_at): an edited plan is refused, exit 2, no request."""
    sim = await make_sim(account(6))
    document = await _made_plan(sim, run, tmp_path, policy({"all": True}))
    change, reseal = PLAN_EDITS[edit]
    change(document, "t0001" if "cut" in edit else "zz-not-planned")
    path = _write(tmp_path / "edited.json", document, reseal=reseal)
    before = sim.state.total_requests()
    with pytest.raises(PlanError) as caught:
        await run(sim, policy({"all": True}), plan_in=path)
    assert caught.value.exit_code == 2
    assert sim.state.total_requests() == before
    assert deletes(sim) == 0


async def test_plan_ids_outside_an_explicit_selection_are_refused(make_sim, run, tmp_path):
    """Point 2: a resealed plan naming an ID the explicit selection lacks is refused."""
    sim = await make_sim(account(6))
    doc = policy({"ids": ["t0001", "t0002"]})
    document = await _made_plan(sim, run, tmp_path, doc)
    _add_id_and_count(document, "t0005")
    path = _write(tmp_path / "edited.json", document, reseal=True)
    before = sim.state.total_requests()
    with pytest.raises(PlanError, match="not in the policy's selection"):
        await run(sim, doc, plan_in=path)
    assert sim.state.total_requests() == before
    assert deletes(sim) == 0


async def test_apply_plan_deletes_exactly_the_planned_ids(make_sim, run, tmp_path):
    """Point 2: --apply --plan deletes the plan's IDs and no task the plan does not name."""
    sim = await make_sim(account(6))
    document = await _made_plan(sim, run, tmp_path, policy({"all": True}))
    _cut_id(document, "t0002")
    document["counts"]["delete"] -= 1
    path = _write(tmp_path / "cut.json", document, reseal=True)
    summary = await run(sim, policy({"all": True}), plan_in=path)
    assert summary.exit_code == 0
    assert truly_removed(sim) == {f"t{i:04d}" for i in range(6)} - {"t0002"}


# -- 3. keep_latest ties ---------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
async def test_keep_latest_keeps_every_task_tied_with_the_newest(make_sim, run, seed):
    """Point 3: keep_latest 1 with whole-second ties keeps all the tied newest versions."""
    rng = random.Random(seed)
    second = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    state = SimState()
    tied = [f"{rng.choice('abcdef')}{rng.randrange(10**6):06d}-{n}" for n in range(3)]
    order = list(range(5))
    rng.shuffle(order)
    for n in order:
        state.add_task(f"old-{n}", "model", "completed", second - timedelta(hours=n + 1))
    for task_id in rng.sample(tied, len(tied)):
        state.add_task(task_id, "model", "completed", second)
    sim = await make_sim(state)
    summary = await run(sim, policy({"all": True}, filters={"keep_latest": 1}))
    assert summary.exit_code == 0
    assert not truly_removed(sim) & set(tied)
    assert set(tied) <= set(sim.state.tasks)
    assert truly_removed(sim) == {f"old-{n}" for n in range(5)}


# -- 4. protect.ids case ---------------------------------------------------------------


@pytest.mark.parametrize("select", [{"all": True}, {"ids": ["t0001", "t0002"]}])
async def test_protect_ids_in_another_case_still_protect(make_sim, run, select):
    """Point 4: protect.ids pasted in upper case protects the lower-case listed task."""
    sim = await make_sim(account(4))
    summary = await run(sim, policy(select, protect={"ids": ["T0001"]}))
    assert "t0001" in sim.state.tasks
    assert "t0001" not in truly_removed(sim)
    assert "t0001" in summary.task_ids.get("skipped", ())
    assert "t0002" in truly_removed(sim)


# -- 5. conflicting listing records -----------------------------------------------------


@pytest.mark.parametrize(
    "size",
    [
        20,
        pytest.param(
            150,
        ),
    ],
)
async def test_conflicting_listing_records_are_settled_by_a_get(make_sim, run, size):
    """Point 5: two records of one task that disagree are settled by a GET, which wins."""
    state = account(size)
    state.add_task("busy-1", "exp", "in_progress", OLD, busy_for_s=3600)
    sim = await make_sim(state, conflicting_duplicates=frozenset({"t0003", "busy-1"}))
    summary = await run(sim, policy({"all": True}, retry={"busy_deadline": "200ms"}))
    assert sim.state.faults["conflicting_duplicate"] >= 2
    assert sim.state.count(method="GET", route="get_task") >= 2
    assert "t0003" in truly_removed(sim)  # really completed: the GET says so
    assert "busy-1" not in truly_removed(sim)  # really busy, whatever the ghost said
    assert summary.task_ids.get("still_busy") == ("busy-1",)
    assert summary.exit_code == 4


# -- 6. a listing that moves between page reads -----------------------------------------


def _race_once(
    added: list[str], vanish: tuple[str, ...], *, after: int = 1
) -> Callable[[SimState, str, int], None]:
    """After the ``after``-th /tasks page: one new task at the newest end, two vanish."""
    served: list[int] = []

    def hook(state: SimState, route: str, index: int) -> None:
        if route != "list_tasks":
            return
        served.append(index)
        if added or len(served) < after:
            return
        added.append("new-0")
        state.add_task("new-0", "exp", "completed", datetime.now(UTC))
        for task_id in vanish:
            state.vanish_task(task_id)

    return hook


async def test_listing_that_moves_between_pages_misses_no_survivor(make_sim, run, tmp_path):
    """Point 6: a create and two deletes between page reads leave no survivor unlisted."""
    added: list[str] = []
    sim = await make_sim(account(250), on_list_page=_race_once(added, ("t0249", "t0248")))
    summary = await run(sim, policy({"all": True}, filters={"older_than": "1d"}))
    assert added and summary.exit_code == 0
    survivors = {f"t{i:04d}" for i in range(248)}
    assert survivors <= truly_removed(sim)
    assert one_terminal_each(tmp_path / "audit.jsonl")


async def test_explicit_ids_in_a_moving_listing_are_never_absent_while_they_exist(
    make_sim, run, tmp_path
):
    """Point 6: an explicit ID near a page boundary is never already_absent while it exists."""
    added: list[str] = []
    # The lookup reads page 0, then lists the whole account: the race hits that listing.
    race = _race_once(added, ("t0249", "t0247"), after=2)
    sim = await make_sim(account(250), on_list_page=race)
    chosen = [f"t{i:04d}" for i in (151, 150, 149, 148, 51, 50, 49, 48, 2, 1)]
    summary = await run(sim, policy({"ids": chosen}))
    assert added
    assert not summary.task_ids.get("already_absent")
    assert set(chosen) == truly_removed(sim)


# -- 7. a wrong base path ----------------------------------------------------------------


WRONG_PATH_SELECTIONS = {"one-id": {"ids": ["t0001"]}, "listing": {"all": True}}


WRONG_PATH_CASES = [
    ("one-id", "json"),
    ("one-id", "html"),
    ("one-id", "text"),
    pytest.param(
        "listing",
        "json",
    ),
    ("listing", "html"),
    ("listing", "text"),
]


@pytest.mark.parametrize(("select", "body"), WRONG_PATH_CASES)
async def test_wrong_base_path_is_endpoint_not_found(make_sim, tmp_path, select, body):
    """Point 7: /api/v2 gives exit 2 "endpoint or route not found", never already_absent."""
    sim = await make_sim(account(4), route_404_body=body)
    doc = policy(WRONG_PATH_SELECTIONS[select])
    summary = await run_at(sim.base_url + "/api/v2", doc, tmp_path)
    assert summary.exit_code == 2
    assert "endpoint or route not found" in (summary.error or "")
    assert deletes(sim) == 0
    assert not summary.task_ids.get("already_absent")
    assert not summary.deleted


async def test_api_served_under_another_prefix_is_endpoint_not_found(make_sim, tmp_path):
    """Point 7: an API moved to another prefix is a configuration error for a one-ID run."""
    sim = await make_sim(account(4), api_prefix="/nclue/api/v1")
    summary = await run_at(sim.base_url + "/api/v1", policy({"ids": ["t0001"]}), tmp_path)
    assert summary.exit_code == 2
    assert "endpoint or route not found" in (summary.error or "")
    assert sim.state.count(route="other") >= 1
    assert deletes(sim) == 0


async def test_gateway_404_on_delete_of_a_proven_endpoint_is_not_already_absent(
    make_sim, front, tmp_path
):
    """Beyond the list: a DELETE answered with the gateway's own 404 (errorCode 300, no
    such route) is not the API's "task not found": the task is not called absent."""

    def gateway_404_on_delete(request: web.Request) -> web.Response | None:
        if request.method != "DELETE":
            return None
        error = {"errorCode": "300", "message": "Not Found Exception", "details": None}
        return web.json_response({"error": error}, status=404)

    sim = await make_sim(account(3))
    proxy = await front(sim, gateway_404_on_delete)
    summary = await run_at(proxy.base_url + "/api/v1", policy({"all": True}), tmp_path)
    assert set(sim.state.tasks) == {"t0000", "t0001", "t0002"}
    assert not summary.task_ids.get("already_absent")
    assert not summary.deleted
    assert summary.exit_code != 0


async def test_html_404_on_delete_of_a_proven_endpoint_is_a_route_error(make_sim, front, tmp_path):
    """Point 7: a proxy's HTML 404 on DELETE, after listings succeeded, is exit 2."""

    def html_404_on_delete(request: web.Request) -> web.Response | None:
        if request.method != "DELETE":
            return None
        return web.Response(status=404, text="<html>404</html>", content_type="text/html")

    sim = await make_sim(account(3))
    proxy = await front(sim, html_404_on_delete)
    summary = await run_at(proxy.base_url + "/api/v1", policy({"all": True}), tmp_path)
    assert summary.exit_code == 2
    assert "endpoint or route not found" in (summary.error or "")
    assert not summary.task_ids.get("already_absent")
    assert not summary.deleted


# -- 8. redirects ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_redirect_on_delete_is_not_followed_and_the_task_fails(
    make_sim, run, evil, tmp_path, status
):
    """Point 8: a 3xx on DELETE sends nothing to the other origin; the task is failed."""
    sim = await make_sim(
        account(3),
        redirect_routes=frozenset({"delete_task"}),
        redirect_location=evil.url + "{path}",
        redirect_status=status,
    )
    summary = await run(sim, policy({"all": True}))
    assert sim.state.faults["redirect"] >= 1
    assert evil.requests == []
    assert not summary.deleted
    assert set(summary.task_ids.get("failed", ())) == {"t0000", "t0001", "t0002"}
    assert truly_removed(sim) == set()
    records = read_audit(tmp_path / "audit.jsonl")
    assert records[-1]["event"] == "run_finished"
    assert not any(r["event"] == "deleted" for r in records)


@pytest.mark.parametrize("route", ["get_task", "list_tasks", "list_runs", "list_profiles"])
async def test_redirect_on_reads_sends_no_credentials_elsewhere(make_sim, run, evil, route):
    """Point 8: a 3xx on a listing or GET is not followed; nothing is deleted."""
    sim = await make_sim(
        account(3),
        redirect_routes=frozenset({route}),
        redirect_location=evil.url + "{path}",
    )
    select = {"ids": ["t0001"]} if route == "get_task" else {"all": True}
    summary = await run(sim, policy(select))
    assert evil.signed() == [] and evil.requests == []
    assert deletes(sim) == 0
    assert summary.exit_code != 0


# -- 9. lying 2xx on DELETE ----------------------------------------------------------------


@pytest.mark.parametrize("kind", LYING_KINDS)
@pytest.mark.parametrize("select", [{"all": True}, {"ids": ["t0001", "t0002", "t0003"]}])
async def test_lying_2xx_delete_is_never_reported_deleted(make_sim, run, tmp_path, kind, select):
    """Point 9: a 2xx that deleted nothing is never reported deleted (api.verify default)."""
    sim = await make_sim(account(5), **{kind: 1.0})
    summary = await run(sim, policy(select))
    assert sim.state.faults[kind] >= 1
    assert set(summary.deleted) <= truly_removed(sim)
    assert not summary.deleted
    assert summary.exit_code == 1
    assert one_terminal_each(tmp_path / "audit.jsonl")


async def test_empty_204_that_did_delete_is_deleted_and_verified(make_sim, run, tmp_path):
    """Point 9: a 204 with no body that did delete ends deleted, verified."""
    sim = await make_sim(account(5), delete_empty_2xx=1.0)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0
    assert set(summary.deleted) == truly_removed(sim) == {f"t{i:04d}" for i in range(5)}
    done = [r for r in read_audit(tmp_path / "audit.jsonl") if r["event"] == "deleted"]
    assert done and all(r.get("verified") is True for r in done)


async def test_mixed_lies_report_only_real_deletes(make_sim, run):
    """Point 9: under every lie at once, deleted is a subset of what really went."""
    knobs = {kind: 0.15 for kind in LYING_KINDS} | {"delete_empty_2xx": 0.15}
    sim = await make_sim(account(120), seed=11, **knobs)
    summary = await run(sim, policy({"all": True}, limits={"max_failure_percent": 100}))
    assert set(summary.deleted) <= truly_removed(sim)
    assert truly_removed(sim) - set(summary.deleted) <= set(summary.task_ids.get("failed", ()))
    assert summary.deleted


# -- 12. secrets as IDs -------------------------------------------------------------------


async def test_secret_passed_as_an_id_is_refused_before_any_request(make_sim, tmp_path):
    """Point 12: run_policy(ids=[secret]) raises UsageError naming a line, never the secret."""
    sim = await make_sim(account(2))
    with pytest.raises(UsageError) as caught:
        await run_policy(
            policy({"ids": []}),
            apply=True,
            ids=["t0001", CREDS.secret_key],
            settings=Settings(endpoint=sim.url, audit_log=str(tmp_path / "audit.jsonl")),
            credentials=CREDS,
        )
    assert CREDS.secret_key not in str(caught.value)
    assert "line 2" in str(caught.value)
    assert sim.state.total_requests() == 0


# -- 13. hostile task names ---------------------------------------------------------------


HOSTILE_NAMES = (
    "exp-[/x]",
    "exp-[bold red]x[/]",
    "exp-\x1b[31mred\x1b[0m",
    "exp-" + "n" * 1_000_000,
)


@pytest.mark.parametrize("apply", [False, True])
async def test_hostile_task_names_are_cut_in_the_audit_log(make_sim, run, tmp_path, apply):
    """Point 13: hostile names never crash a run; audit names are cut to 256, flagged."""
    state = SimState()
    for n, name in enumerate(HOSTILE_NAMES):
        state.add_task(f"h{n}", name, "completed", OLD)
    sim = await make_sim(state)
    summary = await run(sim, policy({"all": True}), apply=apply)
    assert summary.exit_code == 0
    records = [r for r in read_audit(tmp_path / "audit.jsonl") if r.get("task_id") == "h3"]
    assert records
    for record in records:
        assert len(record["task_name"]) <= 256
        assert record["task_name_truncated"] is True
    assert (tmp_path / "audit.jsonl").stat().st_size < 200_000
    assert verify(tmp_path / "audit.jsonl").ok


# -- 14. compressed, oversized and bombed answers --------------------------------------------


async def test_gzip_responses_are_read(make_sim, run):
    """Point 14: ordinary gzip bodies are read; the run deletes."""
    sim = await make_sim(account(5), gzip_responses=True)
    summary = await run(sim, policy({"all": True}))
    assert sim.state.faults["gzip"] >= 1
    assert summary.exit_code == 0 and len(summary.deleted) == 5


@pytest.mark.parametrize(
    "knob", [{"gzip_bomb_bytes": 40_000_000}, {"oversize_body_bytes": 17_000_000}]
)
async def test_bombed_or_oversized_listing_fails_closed(make_sim, run, knob):
    """Point 14: a listing body over 16 MB (decompressed) fails closed: no DELETE."""
    sim = await make_sim(account(5), **knob)
    summary = await run(sim, policy({"all": True}, retry={"max_attempts": 2}))
    assert summary.exit_code == 1
    assert deletes(sim) == 0


@pytest.mark.parametrize(
    "knob", [{"gzip_bomb_bytes": 40_000_000}, {"oversize_body_bytes": 17_000_000}]
)
async def test_bombed_or_oversized_get_fails_the_task(make_sim, run, knob):
    """Point 14: a GET body over 16 MB fails that explicit ID; nothing is deleted."""
    sim = await make_sim(account(5), **knob)
    summary = await run(sim, policy({"ids": ["t0001"]}, retry={"max_attempts": 2}))
    assert summary.exit_code != 0
    assert deletes(sim) == 0
    assert not summary.deleted


def test_policy_alias_bomb_is_refused_unexpanded(tmp_path):
    """Point 14: a YAML alias bomb is a PolicyError, never expanded."""
    lines = ['a0: &a0 ["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]']
    for n in range(1, 30):
        lines.append(f"a{n}: &a{n} [" + ", ".join([f"*a{n - 1}"] * 9) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("version: 1\nselect: {all: true}\n" + "\n".join(lines) + "\n")
    from cleanup import load_policy

    with pytest.raises(PolicyError, match="aliases"):
        load_policy(path)


def test_policy_over_one_megabyte_is_refused(tmp_path):
    """Point 14: a policy file over 1 MB is refused unread."""
    path = tmp_path / "big.yaml"
    path.write_text("version: 1\nselect: {all: true}\n# " + "x" * 1_100_000 + "\n")
    from cleanup import load_policy

    with pytest.raises(PolicyError, match="1 MB"):
        load_policy(path)


# -- 18. continuous creation -----------------------------------------------------------------


@pytest.mark.parametrize("per_page", [1, 3])
async def test_listing_completes_under_continuous_creation(make_sim, run, per_page):
    """Point 18: new tasks arriving on every page read never fail the listing closed."""
    sim = await make_sim(account(320), create_per_list_page=per_page)
    summary = await run(sim, policy({"all": True}))
    assert sim.state.faults["created_during_listing"] >= 1
    assert summary.exit_code == 0, summary.error
    assert {f"t{i:04d}" for i in range(320)} <= truly_removed(sim)


async def test_listing_completes_with_creates_and_deletes_by_others(make_sim, run):
    """Point 18: creates and another client's deletes during the listing still complete."""
    sim = await make_sim(account(320), create_per_list_page=1, delete_per_list_page=1, seed=4)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0, summary.error
    untouched = {f"t{i:04d}" for i in range(320)} - set(sim.state.vanished)
    assert untouched <= truly_removed(sim)


# -- beyond the list -------------------------------------------------------------------------


async def test_empty_200_on_get_is_a_failed_read_not_a_delete(make_sim, front, tmp_path):
    """Beyond the list: GET answering 200 with no body fails that ID; nothing is deleted."""

    def empty_get(request: web.Request) -> web.Response | None:
        if request.method == "GET" and request.path.startswith("/api/v1/tasks/"):
            return web.Response(status=200, body=b"", content_type="application/json")
        return None

    sim = await make_sim(account(3))
    proxy = await front(sim, empty_get)
    doc = policy({"ids": ["t0001"]}, retry={"max_attempts": 2})
    summary = await run_at(proxy.base_url + "/api/v1", doc, tmp_path)
    assert deletes(sim) == 0
    assert summary.task_ids.get("failed") == ("t0001",)
    assert not summary.task_ids.get("already_absent")


async def test_delete_body_with_a_numeric_task_id_is_not_trusted(make_sim, front, tmp_path):
    """Beyond the list: a DELETE 200 whose task_id is a number is not a confirmation."""

    def numeric(request: web.Request) -> web.Response | None:
        if request.method == "DELETE":
            return web.json_response({"task_id": 1})
        return None

    sim = await make_sim(account(2))
    proxy = await front(sim, numeric)
    summary = await run_at(proxy.base_url + "/api/v1", policy({"ids": ["t0001"]}), tmp_path)
    assert "t0001" in sim.state.tasks
    assert not summary.deleted


@pytest.mark.parametrize("value", ["99999999", "1e400", "inf", "-5"])
async def test_absurd_retry_after_is_capped(make_sim, run, value):
    """Beyond the list: an absurd Retry-After is capped by retry.backoff_max; the run ends."""
    sim = await make_sim(account(10), throttle_storm=0.3, retry_after=value, seed=2)
    summary = await run(sim, policy({"all": True}))
    assert sim.state.faults["throttle_storm"] >= 1
    assert summary.exit_code == 0
    assert len(summary.deleted) == 10


async def test_listing_record_with_a_case_variant_id_is_a_different_task(make_sim, run):
    """Beyond the list: an explicit ID does not match a listed ID differing only in case."""
    state = account(3)
    for n in range(120):
        state.add_task(f"pad-{n:03d}", "pad", "completed", OLD + timedelta(days=1))
    state.add_task("CASE-1", "exp", "completed", OLD)
    sim = await make_sim(state)
    summary = await run(sim, policy({"ids": ["case-1", "t0001"]}))
    assert "CASE-1" in sim.state.tasks
    assert "case-1" in summary.task_ids.get("already_absent", ())
    assert "t0001" in truly_removed(sim)


async def test_unreadable_verification_never_reports_a_lying_delete_as_deleted(make_sim, run):
    """Beyond the list: a 2xx that deleted nothing, whose verification GET cannot be read,
    is not reported deleted (the task is still there)."""
    sim = await make_sim(account(3), delete_lies=1.0, html_error=1.0, hostile_routes=GET_ONLY)
    summary = await run(sim, policy({"ids": ["t0001", "t0002"]}, retry={"max_attempts": 2}))
    assert sim.state.faults["delete_lies"] >= 1 and sim.state.faults["html_error"] >= 1
    assert {"t0001", "t0002"} <= set(sim.state.tasks)
    assert set(summary.deleted) <= truly_removed(sim)


@pytest.mark.parametrize("apply", [False, True], ids=["dry-run", "apply"])
async def test_names_with_a_lone_surrogate_or_a_line_separator_are_logged_whole(
    make_sim, run, tmp_path: Path, apply: bool
):
    """A server's JSON can spell a lone surrogate (\\ud800) or U+2028 in a task name:
    the run still ends normally, each audit line stays one line (to str.splitlines
    too), reads back as the name the server sent, and the chain verifies."""
    state = SimState()
    names = ["exp-\ud800-a", "exp-\u2028-b", "exp-\x85-c"]
    for i, name in enumerate(names):
        state.add_task(f"t{i:04d}", name, "completed", OLD + timedelta(minutes=i))
    sim = await make_sim(state)
    summary = await run(sim, policy({"all": True}), apply=apply)
    assert summary.exit_code == 0
    assert deletes(sim) == (3 if apply else 0)
    audit = tmp_path / "audit.jsonl"
    terminal = "deleted" if apply else "would_delete"
    logged = {r["task_id"]: r["task_name"] for r in read_audit(audit) if r["event"] == terminal}
    assert logged == {f"t{i:04d}": name for i, name in enumerate(names)}
    assert verify(audit).ok
