"""Selection: the complete listing under both index meanings, explicit IDs, stdin IDs."""

from __future__ import annotations

import math

import pytest

from cleanup.errors import ListingIncompleteError, UsageError
from cleanup.source import in_shard, read_ids

from .conftest import account, api_stack, policy


def _offset_calls(n: int) -> int:
    """Listing cost on an offset server: windows of 100 overlapping by one, and the
    window that comes back short proves the end."""
    return 1 if n < 100 else 1 + math.ceil((n - 99) / 99)


@pytest.mark.parametrize("index_mode", ["offset", "page"])
@pytest.mark.parametrize("n", [0, 1, 100, 101, 450])
async def test_listing_is_complete_under_both_index_meanings(make_sim, index_mode, n):
    """Every task is listed exactly once whatever `index` means, in about n/100 calls."""
    sim = await make_sim(account(n), index_mode=index_mode)
    async with api_stack(sim) as api:
        tasks = await api.source.list_tasks()
    assert sorted(tasks) == sorted(sim.state.tasks)
    calls = sim.state.count(route="list_tasks")
    # About one call per 100 tasks. The probe that tells the two meanings apart is free
    # on an offset server; page-number windows overlap by choosing the page size, which
    # costs up to a sixth more, plus two probes.
    if index_mode == "offset":
        assert calls == _offset_calls(n)
    else:
        assert calls <= math.ceil(n / 85) + 3


async def test_listing_that_keeps_failing_raises(make_sim):
    """A page that still fails after retries makes the listing fail closed."""
    sim = await make_sim(account(150), fail_list_pages=frozenset({1, 99, 100}))
    async with api_stack(sim, max_attempts=2) as api:
        with pytest.raises(ListingIncompleteError, match="nothing was deleted"):
            await api.source.list_tasks()


async def test_listing_survives_transient_page_failures(make_sim):
    """Occasional 503s on listing pages are retried and the listing still completes."""
    sim = await make_sim(account(450), fail_list=0.3, seed=5)
    async with api_stack(sim, max_attempts=10) as api:
        tasks = await api.source.list_tasks()
    assert len(tasks) == 450


async def test_total_that_lies_fails_closed(make_sim):
    """A listing that never adds up to its `total` raises instead of guessing."""
    state = account(120)
    sim = await make_sim(state)
    sim.state.task_page = lambda start, count: []  # every page but... nothing, total says 120
    async with api_stack(sim) as api:
        with pytest.raises(ListingIncompleteError):
            await api.source.list_tasks()


async def test_few_explicit_ids_use_one_get_each(make_sim):
    """Two IDs in a 1,000-task account: one listing page, then a GET for what is left."""
    sim = await make_sim(account(1000))
    async with api_stack(sim) as api:
        lookup = await api.source.lookup(["t0001", "t0002", "missing"])
    assert set(lookup.found) == {"t0001", "t0002"}
    assert lookup.absent == {"missing"}
    assert sim.state.count(route="list_tasks") == 1
    assert sim.state.count(route="get_task") <= 3


async def test_many_explicit_ids_use_the_listing(make_sim):
    """500 IDs in a 450-task account: the listing is cheaper than 500 GETs; the 50 it
    does not hold are each confirmed with a GET before they are called absent."""
    sim = await make_sim(account(450))
    ids = [f"t{i:04d}" for i in range(500)]
    async with api_stack(sim) as api:
        lookup = await api.source.lookup(ids)
    assert len(lookup.found) == 450 and len(lookup.absent) == 50
    assert sim.state.count(route="get_task") == 50
    # The first page the choice was made on is not read again by the listing.
    assert sim.state.count(route="list_tasks") == _offset_calls(450)


async def test_listed_selection_costs_no_per_task_get(make_sim, run):
    """A listed selection sends no GET per task: listing pages, the runs and profiles
    listed once, one DELETE each, and one listing that verifies the deletes."""
    sim = await make_sim(account(450), index_mode="page")
    summary = await run(sim, policy({"all": True}))
    assert summary.counts["deleted"] == 450
    assert sim.state.count(route="get_task") == 0
    assert sim.state.count(route="list_tasks") <= 8
    assert summary.requests_total <= 450 + 8 + 2


def test_read_ids_skips_blanks_and_comments_and_names_bad_lines():
    """ID lines allow blanks and # comments; a malformed line is named by number, unquoted."""
    assert read_ids(["a-1", "", "  # note", " b_2 "], "stdin") == ["a-1", "b_2"]
    with pytest.raises(UsageError, match=r"stdin: line 2 is not a task ID") as info:
        read_ids(["ok", "not an id"], "stdin")
    assert "not an id" not in str(info.value)
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
    try:
        async with api_stack(sim) as api:
            tasks = await api.source.list_tasks()
    finally:
        stop.set()
        await deleter
    listed = set(tasks)
    assert sim.state.remaining_ids() <= listed
    assert len(sim.state.remaining_ids()) < 1200  # the other shard did delete meanwhile


async def test_listing_completes_while_tasks_appear(make_sim):
    """Tasks created mid-listing (at the newest end) do not stop the listing: every task
    that existed before it began is listed, in one pass."""
    import asyncio

    sim = await make_sim(account(300), latency_s=0.003)
    before = set(sim.state.tasks)
    created = 0

    async def trainer() -> None:
        nonlocal created
        while created < 3:
            await asyncio.sleep(0.004)
            sim.state.add_task(f"new-{created}", "exp", "completed")
            created += 1

    background = asyncio.create_task(trainer())
    try:
        async with api_stack(sim) as api:
            tasks = await api.source.list_tasks()
    finally:
        await background
    assert before <= set(tasks)
    assert sim.state.count(route="list_tasks") <= _offset_calls(303) + 2
