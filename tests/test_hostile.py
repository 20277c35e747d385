"""Hostile gateways and proxies: the real client and pipeline against misbehaving responses.

Every test runs the real pipeline (the ``run`` fixture, or ``python -m cleanup`` for the
CLI checks) against the simulator's hostile knobs (``cleanup/simulator/hostile.py``)
over loopback. The classification pinned here: transient garbage (an HTML 502, a cut
or non-object body on a read) is retried; garbage that never clears fails closed
(exit 1, zero DELETEs); a 2xx DELETE is a delete whatever its body; garbled fields
never crash a run and never let a task be deleted on a guess; a listing that does not
add up deletes nothing; 429s are bounded by the retry budget and Retry-After by
``retry.backoff_max``.

Several tests here found worker bugs (a spoiled read never retried, an unreadable name
or date defeating protect and keep_latest, a total short by whole pages believed);
they stay as regression tests.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import timedelta
from email.utils import formatdate
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from yarl import URL

from cleanup.auditview import verify
from cleanup.signing import signed_headers
from cleanup.simulator import SimConfig, SimState, generate_account
from cleanup.simulator.hostile import NON_OBJECT_BODIES

from .conftest import (
    AK,
    FAST_RETRY,
    OLD,
    SK,
    account,
    cli,
    policy,
    read_audit,
    terminal_by_task,
)

MAX_ATTEMPTS = FAST_RETRY["max_attempts"]
BACKOFF_MAX_S = 0.05  # FAST_RETRY["backoff_max"]: every pause, Retry-After included, is capped
LISTING_ONLY = frozenset({"list_tasks"})
DELETE_ONLY = frozenset({"delete_task"})
GET_ONLY = frozenset({"get_task"})


def deleting_lines(path: Path) -> int:
    return sum(r["event"] == "deleting" for r in read_audit(path))


def one_terminal_each(path: Path) -> bool:
    return all(len(v) == 1 for v in terminal_by_task(read_audit(path)).values())


def named_account(groups: dict[str, int]) -> SimState:
    """Tasks ``<name>-<i>`` per group, one minute apart (``-0`` is each group's oldest)."""
    state = SimState()
    for name, count in groups.items():
        for i in range(count):
            state.add_task(f"{name}-{i}", name, "completed", OLD + timedelta(minutes=i))
    return state


# -- the knobs themselves ----------------------------------------------------------------


async def _raw(sim, method: str, path: str) -> tuple[int, str, bytes, Any]:
    """One signed request with a bare aiohttp session: (status, content type, body, headers)."""
    uri = "/api/v1" + path
    headers = signed_headers(method, uri, int(time.time() * 1000), AK, SK)
    async with aiohttp.ClientSession() as session:
        url = URL(sim.base_url + uri, encoded=True)
        async with session.request(method, url, headers=headers) as resp:
            return resp.status, resp.content_type, await resp.read(), resp.headers


async def test_hostile_knobs_shape_the_raw_responses(make_sim):
    """Each knob answers as documented: HTML 502, cut or non-object JSON, 429 + Retry-After."""
    sim = await make_sim(account(3), html_error=1.0)
    status, ctype, body, _ = await _raw(sim, "GET", "/tasks?index=0&limit=10")
    assert (status, ctype) == (502, "text/html") and b"Bad Gateway" in body
    sim.config.html_error, sim.config.truncated_json = 0.0, 1.0
    status, ctype, body, _ = await _raw(sim, "GET", "/tasks/t0000")
    assert (status, ctype) == (200, "application/json") and body.startswith(b"{")
    with pytest.raises(ValueError):
        json.loads(body)
    sim.config.truncated_json, sim.config.non_object_body = 0.0, 1.0
    status, _, body, _ = await _raw(sim, "DELETE", "/tasks/t0000")
    assert status == 200 and body in NON_OBJECT_BODIES and "t0000" not in sim.state.tasks
    sim.config.non_object_body, sim.config.throttle_storm = 0.0, 1.0
    sim.config.retry_after = "garbage"
    status, _, _, headers = await _raw(sim, "GET", "/tasks/t0001")
    assert status == 429 and headers["Retry-After"] == "garbage"
    assert dict(sim.state.faults) == {
        "html_error": 1,
        "truncated_json": 1,
        "non_object_body": 1,
        "throttle_storm": 1,
    }


def test_simconfig_refuses_unknown_hostile_names():
    """A misspelt route or field name in the hostile knobs is an error, not a silent no-op."""
    with pytest.raises(ValueError, match="list_task"):
        SimConfig(hostile_routes=frozenset({"list_task"}))
    with pytest.raises(ValueError, match="name"):
        SimConfig(wrong_type_fields=frozenset({"name"}))


# -- transient garbage is retried -------------------------------------------------------


async def test_html_502_from_a_proxy_is_retried_and_the_run_completes(make_sim, run, tmp_path):
    """HTML 502 pages on any route are transient: retried, and every task ends deleted."""
    sim = await make_sim(account(250), html_error=0.2, seed=1)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0, summary.error
    assert sim.state.faults["html_error"] > 10
    assert sim.state.remaining_ids() == set()
    assert summary.counts["deleted"] == 250 and summary.counts["failed"] == 0
    assert deleting_lines(tmp_path / "audit.jsonl") == sim.state.count(method="DELETE")
    assert one_terminal_each(tmp_path / "audit.jsonl")


async def test_html_502_on_every_listing_call_fails_closed(make_sim, run):
    """A listing that only ever gets HTML 502s stops after max_attempts: exit 1, no DELETE."""
    sim = await make_sim(account(250), html_error=1.0, hostile_routes=LISTING_ONLY)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert sim.state.count(method="DELETE") == 0
    assert sim.state.count(route="list_tasks") == MAX_ATTEMPTS
    assert "nothing was deleted" in (summary.error or "")
    assert "502" in (summary.error or "")


@pytest.mark.parametrize("knob", ["truncated_json", "non_object_body"])
async def test_spoiled_listing_page_is_retried(make_sim, run, knob):
    """A listing page whose 2xx body is cut short or not an object is retried like a 502."""
    sim = await make_sim(account(1000), hostile_routes=LISTING_ONLY, seed=1, **{knob: 0.3})
    summary = await run(sim, policy({"all": True}))
    assert sim.state.faults[knob] > 0
    assert summary.exit_code == 0, summary.error
    assert sim.state.remaining_ids() == set()


async def test_spoiled_get_is_retried(make_sim, run):
    """A GET /tasks/{id} whose 2xx body is cut short is retried, then the task is deleted."""
    # seed 1: the first GET is cut short, the second is whole.
    sim = await make_sim(account(3), truncated_json=0.5, hostile_routes=GET_ONLY, seed=1)
    summary = await run(sim, policy({"ids": ["t0001"]}))
    assert sim.state.faults["truncated_json"] == 1
    assert summary.exit_code == 0, summary.error
    assert summary.task_ids["deleted"] == ("t0001",)


@pytest.mark.parametrize("knob", ["truncated_json", "non_object_body"])
async def test_spoiled_body_on_every_listing_call_fails_closed(make_sim, run, knob):
    """A listing whose bodies are never a JSON object deletes nothing and exits 1."""
    sim = await make_sim(account(250), hostile_routes=LISTING_ONLY, **{knob: 1.0})
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert sim.state.count(method="DELETE") == 0
    assert 1 <= sim.state.count(route="list_tasks") <= MAX_ATTEMPTS
    assert "nothing was deleted" in (summary.error or "")


@pytest.mark.parametrize("knob", ["truncated_json", "non_object_body"])
async def test_2xx_delete_with_a_spoiled_body_is_failed_not_deleted(make_sim, run, tmp_path, knob):
    """A DELETE 2xx whose body is not JSON naming the task is not trusted: failed, with the
    delete possibly done (a rerun settles it); never reported deleted."""
    sim = await make_sim(account(10), hostile_routes=DELETE_ONLY, seed=2, **{knob: 1.0})
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1, summary.error
    assert sim.state.faults[knob] == 10
    assert summary.counts["deleted"] == 0 and summary.counts["failed"] == 10
    # One DELETE per task: an untrusted 2xx is not retried (the delete may have happened).
    assert sim.state.count(method="DELETE") == 10 == deleting_lines(tmp_path / "audit.jsonl")


# -- garbled fields -----------------------------------------------------------------------


async def test_wrong_field_types_never_crash_and_nothing_is_deleted(make_sim, run, tmp_path):
    """Tasks with a numeric status, garbage created_at and a list name are skipped, no crash;
    kept only for an unknown status, the run exits 1 so a changed API is noticed."""
    sim = await make_sim(account(30), wrong_types=1.0)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1, summary.error
    assert summary.counts["skipped"] == 30 and summary.counts["failed"] == 0
    assert {d.reason for d in summary.decisions} == {"unknown_status"}
    assert sim.state.count(method="DELETE") == 0
    assert verify(tmp_path / "audit.jsonl").ok
    assert one_terminal_each(tmp_path / "audit.jsonl")


async def test_numeric_status_is_skipped_as_unknown_status(make_sim, run):
    """A task whose status is a number is skipped with reason unknown_status, not deleted."""
    sim = await make_sim(account(5), wrong_types=1.0, wrong_type_fields=frozenset({"status"}))
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert [(d.reason, d.task.status) for d in summary.decisions] == [("unknown_status", None)] * 5
    assert summary.unknown_statuses == {"missing": 5}
    assert sim.state.count(method="DELETE") == 0


async def test_garbage_created_at_is_unknown_age(make_sim, run):
    """A task whose created_at is not a time has an unknown age: kept, with its own reason."""
    fields = frozenset({"created_at"})
    sim = await make_sim(account(5), wrong_types=1.0, wrong_type_fields=fields)
    summary = await run(sim, policy({"all": True}, filters={"older_than": "1d"}))
    assert summary.exit_code == 0
    assert {(d.reason, d.detail) for d in summary.decisions} == {
        ("created_at_unknown", "created_at missing or unreadable")
    }
    assert sim.state.count(method="DELETE") == 0


async def test_wrong_types_on_a_recheck_get_skip_the_busy_task(make_sim, run):
    """A deferred task whose status GET comes back garbled is skipped, and the run ends."""
    state = account(2)
    state.add_task("busy", "exp", "in_progress", OLD, busy_for_s=0.1)
    sim = await make_sim(state, wrong_types=1.0, hostile_routes=GET_ONLY)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0, summary.error
    assert set(summary.task_ids["deleted"]) == {"t0000", "t0001"}
    assert summary.task_ids["skipped"] == ("busy",)
    assert "busy" in sim.state.remaining_ids()


async def test_unreadable_task_name_never_defeats_protect(make_sim, run):
    """A protected prod-* task whose task_name arrives as a list is not deleted."""
    state = named_account({"prod-ranker": 3, "exp": 3})
    fields = frozenset({"task_name"})
    sim = await make_sim(state, wrong_types=1.0, wrong_type_fields=fields)
    summary = await run(sim, policy({"all": True}, protect={"name_globs": ["prod-*"]}))
    assert summary.exit_code == 0
    assert not {t for t in sim.state.deleted if t.startswith("prod-")}


async def test_unreadable_task_name_never_defeats_keep_latest(make_sim, run):
    """With names unreadable, none of the newest 2 tasks of any name is deleted."""
    state = named_account({"churn": 3, "ctr": 3})
    fields = frozenset({"task_name"})
    sim = await make_sim(state, wrong_types=1.0, wrong_type_fields=fields)
    summary = await run(sim, policy({"all": True}, filters={"keep_latest": 2}))
    assert summary.exit_code == 0
    newest = {"churn-1", "churn-2", "ctr-1", "ctr-2"}
    assert not newest & set(sim.state.deleted)


async def test_unknown_created_at_never_defeats_keep_latest(make_sim, run):
    """keep_latest deletes neither a task of unknown age nor one of the truly newest 2."""
    state = named_account({f"n{k}": 5 for k in range(8)})
    fields = frozenset({"created_at"})
    sim = await make_sim(state, wrong_types=0.3, wrong_type_fields=fields, seed=4)
    summary = await run(sim, policy({"all": True}, filters={"keep_latest": 2}))
    assert summary.exit_code == 0
    unknown_age = {d.task.task_id for d in summary.decisions if d.task.created_at is None}
    assert unknown_age  # the seed garbles some
    newest = {f"n{k}-{i}" for k in range(8) for i in (3, 4)}
    assert not (newest | unknown_age) & set(sim.state.deleted)


async def test_task_without_id_in_the_listing_fails_closed(make_sim, run):
    """A listed task object without task_id makes the listing incomplete: exit 1, no DELETE."""
    sim = await make_sim(account(250), missing_task_id=0.05, hostile_routes=LISTING_ONLY, seed=3)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert sim.state.count(method="DELETE") == 0
    assert "nothing was deleted" in (summary.error or "")


async def test_task_without_id_on_get_fails_that_task(make_sim, run, tmp_path):
    """An explicit ID whose GET answers an object without task_id ends failed, not deleted."""
    sim = await make_sim(account(3), missing_task_id=1.0, hostile_routes=GET_ONLY)
    summary = await run(sim, policy({"ids": ["t0001"]}))
    assert summary.exit_code == 1
    assert summary.task_ids["failed"] == ("t0001",)
    assert sim.state.count(method="DELETE") == 0
    assert one_terminal_each(tmp_path / "audit.jsonl")


# -- listings that do not add up ----------------------------------------------------------


@pytest.mark.parametrize(("tasks", "offset"), [(250, 7), (250, 100)])
async def test_lying_total_fails_closed(make_sim, run, tasks, offset):
    """A listing total above what the server serves (consistently) deletes nothing."""
    sim = await make_sim(account(tasks), total_offset=offset)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert sim.state.count(method="DELETE") == 0
    assert "nothing was deleted" in (summary.error or "").lower()


@pytest.mark.parametrize(
    ("tasks", "offset"), [(250, -7), (250, -100), (250, -50), (200, -100), (150, -50)]
)
async def test_total_below_the_served_count_hides_nothing(make_sim, run, tasks, offset):
    """A total short by part of a page or by whole pages hides no task: the listing reads
    until a window comes back short (total may be the page's size on the real API)."""
    sim = await make_sim(account(tasks), total_offset=offset)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0, summary.error
    assert summary.counts["deleted"] == tasks and sim.state.remaining_ids() == set()


async def test_short_total_never_reports_existing_ids_absent(make_sim, run):
    """Explicit IDs past a short total are found, never reported already_absent."""
    sim = await make_sim(account(250), total_offset=-50)
    ids = [f"t{i:04d}" for i in range(10)]  # the oldest: the listing's tail
    summary = await run(sim, policy({"ids": ids}))
    assert summary.task_ids["already_absent"] == ()
    assert sorted(summary.task_ids["deleted"]) == ids and summary.exit_code == 0


@pytest.mark.parametrize("index_mode", ["offset", "page"])
async def test_pages_that_start_one_early_still_list_everything(make_sim, run, index_mode):
    """Pages that repeat the previous page's last task are anchored, not trusted by
    count: the tail a total-based reader would lose is read, each task deleted once."""
    sim = await make_sim(account(300), duplicate_across_pages=True, index_mode=index_mode)
    summary = await run(sim, policy({"all": True}))
    assert sim.state.faults["duplicate_across_pages"] > 0
    assert summary.exit_code == 0, summary.error
    assert sim.state.remaining_ids() == set() and max(sim.state.deleted.values()) == 1


async def test_duplicated_ids_that_hide_nothing_are_deduplicated(make_sim, run, tmp_path):
    """Repeated IDs in a listing that still adds up to total are deleted once each."""
    # 250 tasks: the pages [0..99], [99..198], [199..249] repeat 99 and 199 but hide none,
    # so the listing is provably complete (250 distinct IDs == total) and may be acted on.
    sim = await make_sim(account(250), duplicate_across_pages=True)
    summary = await run(sim, policy({"all": True}))
    assert sim.state.faults["duplicate_across_pages"] > 0
    assert summary.exit_code == 0, summary.error
    assert summary.counts["deleted"] == 250
    assert sim.state.count(method="DELETE") == 250 and max(sim.state.deleted.values()) == 1
    assert one_terminal_each(tmp_path / "audit.jsonl")


# -- 429: Retry-After and storms ------------------------------------------------------------


def _http_date(offset_s: float) -> str:
    return formatdate(time.time() + offset_s, usegmt=True)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("2", "cap"),  # honoured, capped at retry.backoff_max
        ("0", "zero"),  # honoured
        (_http_date(3600), "cap"),  # a future HTTP date: capped
        ("Wed, 21 Oct 2015 07:28:00 GMT", "zero"),  # a past HTTP date: retry now
        ("garbage", "jitter"),  # unreadable: ignored, own backoff
        ("1e400", "cap"),  # infinite: capped
    ],
    ids=["seconds", "zero", "future-date", "past-date", "garbage", "huge"],
)
async def test_retry_after_is_capped_honoured_or_ignored(
    make_sim, run, tmp_path, retry_after, expected
):
    """Retry-After is honoured up to backoff_max or, when unreadable, ignored; no crash."""
    sim = await make_sim(
        account(60), throttle_storm=0.3, hostile_routes=DELETE_ONLY, retry_after=retry_after, seed=2
    )
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 0, summary.error
    assert sim.state.remaining_ids() == set()
    delays = [
        r["delay_s"]
        for r in read_audit(tmp_path / "audit.jsonl")
        if r["event"] == "retrying" and r["http_status"] == 429
    ]
    assert len(delays) == sim.state.count(status=429) > 0
    if expected == "cap":
        assert set(delays) == {BACKOFF_MAX_S}
    elif expected == "zero":
        assert set(delays) == {0.0}
    else:
        assert all(0 < d <= BACKOFF_MAX_S for d in delays)


async def test_throttle_storm_longer_than_the_retry_budget_stops_the_run(make_sim, run, tmp_path):
    """A 429 storm on every DELETE stops the run after 30 throttled calls in a row: exit 1.

    Retrying each task through the storm would take hours at 1 request/s; the run
    stops like a spent quota instead, and a later run picks the tasks up.
    """
    sim = await make_sim(account(200), throttle_storm=1.0, hostile_routes=DELETE_ONLY)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert "throttled" in (summary.error or "")
    assert summary.counts["deleted"] == 0 and summary.counts["failed"] == 0
    assert summary.counts["skipped"] == 200
    # 30 in a row, plus at most the calls already in flight (concurrency 8).
    assert 30 <= sim.state.count(method="DELETE") <= 30 + 8
    assert sim.state.count(route="list_tasks") == 3  # 2 pages + the page after 200
    records = read_audit(tmp_path / "audit.jsonl")
    assert all(len(v) == 1 for v in terminal_by_task(records).values())


async def test_throttle_storm_on_the_listing_fails_closed_after_the_budget(make_sim, run):
    """A 429 storm on every call stops the listing after max_attempts: exit 1, no DELETE."""
    sim = await make_sim(account(20), throttle_storm=1.0, retry_after="2")
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert sim.state.total_requests() <= 3 * MAX_ATTEMPTS  # tasks, runs, profiles
    assert sim.state.count(method="DELETE") == 0
    assert "nothing was deleted" in (summary.error or "")


# -- the command line never shows a traceback -------------------------------------------------


CLI_CASES: dict[str, tuple[dict[str, Any], set[int]]] = {  # knobs, the exit codes allowed
    "html-502": ({"html_error": 0.2}, {0}),
    "html-502-listing": ({"html_error": 1.0, "hostile_routes": LISTING_ONLY}, {1}),
    # an untrusted DELETE 2xx is a failure; past 20 % of them the breaker stops (exit 5)
    "truncated-json": ({"truncated_json": 0.2}, {0, 1, 5}),
    "non-object-body": ({"non_object_body": 0.2}, {0, 1, 5}),
    "wrong-types": ({"wrong_types": 0.5}, {0}),
    "missing-task-id": ({"missing_task_id": 0.05}, {1}),
    "total-too-high": ({"total_offset": 7}, {1}),
    "total-short-by-pages": ({"total_offset": -100}, {0, 1}),
    "duplicate-across-pages": ({"duplicate_across_pages": True}, {0}),
    "retry-after-garbage": ({"throttle_storm": 0.2, "retry_after": "garbage"}, {0}),
    "retry-after-date": ({"throttle_storm": 0.2, "retry_after": _http_date(60)}, {0}),
    "storm-on-deletes": ({"throttle_storm": 1.0, "hostile_routes": DELETE_ONLY}, {1}),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
async def test_cli_shows_no_traceback_under_hostile_responses(make_sim, tmp_path, case):
    """python -m cleanup run exits with a code, never a Python traceback, on hostile answers."""
    knobs, codes = CLI_CASES[case]
    # A 429 storm slows every worker (the limiter's floor is 5 % of the rate): keep it small.
    size = 30 if knobs.get("throttle_storm") == 1.0 else 300
    sim = await make_sim(generate_account(size, seed=5), seed=5, **knobs)
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy({"all": True}, protect={"name_globs": ["prod-*"]})))
    audit = tmp_path / "audit.jsonl"
    env = {"NCLOUD_ACCESS_KEY": AK, "NCLOUD_SECRET_KEY": SK, "NCLUE_ENDPOINT": sim.url}
    code, out, err = await cli(
        "run", "--policy", str(path), "--apply", "--audit-log", str(audit), env=env
    )
    assert code in codes, err[-3000:]
    for needle in ("Traceback", '"exception"', "task_crashed"):
        assert needle not in err, err[-3000:]
    assert verify(audit).ok
    assert one_terminal_each(audit)
    if code == 1 and sim.state.count(method="DELETE") == 0:
        assert "nothing was deleted" in (out + err).lower()
    events = Counter(r["event"] for r in read_audit(audit))
    assert events["run_started"] == events["run_finished"] == 1
