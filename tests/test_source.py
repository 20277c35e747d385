"""Selection: the complete listing under both index meanings, explicit IDs, stdin IDs."""

from __future__ import annotations

import math

import pytest

from cleanup.client import NclueClient
from cleanup.errors import ListingIncompleteError, UsageError
from cleanup.limiter import RateLimiter
from cleanup.source import Source, in_shard, read_ids

from .conftest import CREDS, account, policy


async def _source(sim, **client_kw) -> tuple[NclueClient, Source]:
    client = NclueClient(
        sim.url,
        CREDS,
        RateLimiter(5000, 8),
        backoff_base_s=0.001,
        backoff_max_s=0.01,
        **client_kw,
    )
    await client.__aenter__()
    return client, Source(client)


@pytest.mark.parametrize("index_mode", ["offset", "page"])
@pytest.mark.parametrize("n", [0, 1, 100, 101, 450])
async def test_listing_is_complete_under_both_index_meanings(make_sim, index_mode, n):
    """Every task is listed exactly once whatever `index` means, in about n/100 calls."""
    sim = await make_sim(account(n), index_mode=index_mode)
    client, source = await _source(sim)
    try:
        tasks = await source.list_tasks()
    finally:
        await client.__aexit__()
    assert sorted(t.task_id for t in tasks) == sorted(sim.state.tasks)
    calls = sim.state.count(route="list_tasks")
    # One call per 100 tasks; a page-number server costs one more (the probe that
    # tells the two meanings apart is free on an offset server), and so does a total
    # on a page boundary (the page after it must be empty: `total` could lie).
    extra = (1 if index_mode == "page" and n > 100 else 0) + (1 if n and n % 100 == 0 else 0)
    assert calls == max(1, math.ceil(n / 100)) + extra


async def test_listing_that_keeps_failing_raises(make_sim):
    """A page that still fails after retries makes the listing fail closed."""
    sim = await make_sim(account(150), fail_list_pages=frozenset({1, 100}))
    client, source = await _source(sim, max_attempts=2)
    try:
        with pytest.raises(ListingIncompleteError, match="nothing was deleted"):
            await source.list_tasks()
    finally:
        await client.__aexit__()


async def test_listing_survives_transient_page_failures(make_sim):
    """Occasional 503s on listing pages are retried and the listing still completes."""
    sim = await make_sim(account(450), fail_list=0.3, seed=5)
    client, source = await _source(sim, max_attempts=10)
    try:
        tasks = await source.list_tasks()
    finally:
        await client.__aexit__()
    assert len({t.task_id for t in tasks}) == 450


async def test_total_that_lies_fails_closed(make_sim):
    """A listing that never adds up to its `total` raises instead of guessing."""
    state = account(120)
    sim = await make_sim(state)
    sim.state.task_page = lambda start, count: []  # every page but... nothing, total says 120
    client, source = await _source(sim)
    try:
        with pytest.raises(ListingIncompleteError):
            await source.list_tasks()
    finally:
        await client.__aexit__()


async def test_few_explicit_ids_use_one_get_each(make_sim):
    """Two IDs in a 1,000-task account: one listing page, then a GET for what is left."""
    sim = await make_sim(account(1000))
    client, source = await _source(sim)
    try:
        lookup = await source.lookup(["t0001", "t0002", "missing"])
    finally:
        await client.__aexit__()
    assert set(lookup.found) == {"t0001", "t0002"}
    assert lookup.absent == {"missing"}
    assert sim.state.count(route="list_tasks") == 1
    assert sim.state.count(route="get_task") <= 3


async def test_many_explicit_ids_use_the_listing(make_sim):
    """500 IDs in a 450-task account: the listing is cheaper than 500 GETs."""
    sim = await make_sim(account(450))
    ids = [f"t{i:04d}" for i in range(500)]
    client, source = await _source(sim)
    try:
        lookup = await source.lookup(ids)
    finally:
        await client.__aexit__()
    assert len(lookup.found) == 450 and len(lookup.absent) == 50
    assert sim.state.count(route="get_task") == 0
    assert sim.state.count(route="list_tasks") <= 6


async def test_listed_selection_costs_no_per_task_get(make_sim, run):
    """A listed selection sends no GET per task: listing pages plus one DELETE each."""
    sim = await make_sim(account(450), index_mode="page")
    summary = await run(sim, policy({"all": True}))
    assert summary.counts["deleted"] == 450
    assert sim.state.count(route="get_task") == 0
    assert sim.state.count(route="list_tasks") <= 6
    assert summary.requests_total <= 450 + 6


def test_read_ids_skips_blanks_and_comments_and_names_bad_lines():
    """ID lines allow blanks and # comments; a malformed line is an error naming it."""
    assert read_ids(["a-1", "", "  # note", " b_2 "], "stdin") == ["a-1", "b_2"]
    with pytest.raises(UsageError, match=r"stdin: line 2: 'not an id'"):
        read_ids(["ok", "not an id"], "stdin")
    with pytest.raises(UsageError, match="line 1"):
        read_ids(["../../etc/passwd"], "ids.txt")


def test_shards_partition_ids_stably():
    """Every ID lands in exactly one shard, the same one in every process."""
    ids = [f"task-{i}" for i in range(1000)]
    shards = [[i for i in ids if in_shard(i, k, 4)] for k in range(4)]
    assert sorted(i for shard in shards for i in shard) == sorted(ids)
    assert all(150 < len(s) < 350 for s in shards)
    assert in_shard("task-1", 0, 4) == in_shard("task-1", 0, 4)


@pytest.mark.parametrize("index_mode", ["offset", "page"])
async def test_listing_misses_nothing_while_others_delete(make_sim, index_mode):
    """Tasks deleted by someone else mid-listing never make the listing skip a survivor."""
    import asyncio
    import random

    sim = await make_sim(account(1200), index_mode=index_mode, latency_s=0.003)
    rng = random.Random(7)
    stop = asyncio.Event()

    async def other_shard() -> None:
        while not stop.is_set():
            alive = sorted(sim.state.remaining_ids())
            for task_id in rng.sample(alive, min(3, len(alive))):
                sim.state.remove_task(task_id)
            await asyncio.sleep(0.002)

    deleter = asyncio.create_task(other_shard())
    client, source = await _source(sim)
    try:
        tasks = await source.list_tasks()
    finally:
        stop.set()
        await deleter
        await client.__aexit__()
    listed = {t.task_id for t in tasks}
    assert sim.state.remaining_ids() <= listed
    assert len(sim.state.remaining_ids()) < 1200  # the other shard did delete meanwhile


async def test_listing_restarts_when_tasks_appear(make_sim):
    """Tasks created mid-listing make the pass start again, and the result is complete."""
    import asyncio

    sim = await make_sim(account(300), latency_s=0.003)
    created = 0

    async def trainer() -> None:
        nonlocal created
        while created < 3:
            await asyncio.sleep(0.004)
            sim.state.add_task(f"new-{created}", "exp", "completed")
            created += 1

    background = asyncio.create_task(trainer())
    client, source = await _source(sim)
    try:
        tasks = await source.list_tasks()
    finally:
        await background
        await client.__aexit__()
    assert {t.task_id for t in tasks} == set(sim.state.tasks)
