"""The benchmarks: each starts fresh simulators, runs a client, and returns table rows.

Every figure is a count or a ratio, read from the server's own counters and clock
(``benchmarks.sim_server``) wherever the server can see it; ``Row.runs`` says how many
runs it rests on. This module holds the calls, rate, latency, memory and naive-peer
cases and ``CASES``, the runner's list; the others live in ``cases_cost``,
``cases_busy`` and ``cases_shared``.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from benchmarks.cases_busy import busy_and_held
from benchmarks.cases_cost import audit_volume, client_cost, listing_latency
from benchmarks.cases_shared import concurrent_runs
from benchmarks.harness import (
    BenchmarkError,
    SimProcess,
    interval_rate,
    max_in_window,
    policy,
    run_cleanup,
    run_module,
    write_ids,
)
from benchmarks.rows import UNLIMITED, Case, Row, Sizes, expect_all_deleted, ratio, routes


def _listed(sizes: Sizes, workdir: Path, verify: bool) -> dict[str, Any]:
    """Delete a whole listed account; the server's counters afterwards."""
    name = "calls-verified" if verify else "calls-unverified"
    with SimProcess(sizes.listed, workdir) as sim:
        doc = policy({"all": True}, UNLIMITED, sizes.concurrency, api={"verify": verify})
        run_cleanup(sim, doc, workdir, name)
        stats = sim.stats()
    expect_all_deleted(stats, sizes.listed, name)
    return stats


def calls_per_task(sizes: Sizes, workdir: Path) -> list[Row]:
    """1: requests per deleted task, listed selection (with and without verification)
    and explicit IDs (server's count)."""
    n = sizes.listed
    rows = []
    for key, verify, target in (("1a", False, 1.02), ("1b", True, 1.03)):
        stats = _listed(sizes, workdir, verify)
        per_task = stats["total_requests"] / stats["deleted"]
        rows.append(
            Row(
                key,
                f"requests per deleted task, listed selection of {n:,} (`select: {{all: true}}`"
                f", `api.verify: {str(verify).lower()}`)",
                f"{per_task:.4f}",
                f"<= {target:g}",
                per_task <= target,
                f"{stats['total_requests']:,} requests ({routes(stats)}) for "
                f"{stats['deleted']:,} deletes",
            )
        )
    k, account = sizes.explicit_ids, sizes.explicit_account
    with SimProcess(account, workdir, seed=2) as sim:
        ids = random.Random(7).sample(sorted(sim.task_ids()), k)
        run_cleanup(sim, policy({"ids": ids}, UNLIMITED, sizes.concurrency), workdir, "calls-ids")
        stats = sim.stats()
    if stats["deleted"] != k:
        raise BenchmarkError(f"calls-ids: {stats['deleted']} of {k} deleted")
    explicit = stats["total_requests"] / k
    rows.append(
        Row(
            "1c",
            f"requests per deleted task, {k:,} explicit IDs in a {account:,}-task account "
            "(`api.verify: true`)",
            f"{explicit:.4f}",
            note=f"{stats['total_requests']:,} requests ({routes(stats)}); a GET per ID "
            "before its DELETE would be 2.00",
        )
    )
    return rows


def rate_fidelity(sizes: Sizes, workdir: Path) -> list[Row]:
    """2: achieved / configured delete rate at a high rate and at the production rate."""
    n, rate = sizes.rate_tasks, sizes.rate
    with SimProcess(n, workdir, rate_limit=sizes.rate_limit) as sim:
        result = run_cleanup(sim, policy({"all": True}, rate), workdir, "rate-high")
        stats, log = sim.stats(), sim.log()
    expect_all_deleted(stats, n, "rate-high")
    achieved = interval_rate(log.deletes) or 0.0
    throttled = stats["by_status"].get("429", 0)
    rows = [
        Row(
            "2a",
            f"rate fidelity at {rate:g}/s (server limit {sizes.rate_limit:g}/s), {n:,} tasks: "
            "achieved / configured",
            ratio(achieved / rate),
            ">= 0.97",
            achieved / rate >= 0.97,
            f"{achieved:.1f} deletes/s over {max(log.deletes) - min(log.deletes):.1f} s "
            f"(server's delete log); run took {result['summary']['duration_s']:.1f} s; most "
            f"requests in any 1 s: {max_in_window(log.arrivals())}",
        ),
        Row("2b", f"429 responses at {rate:g}/s", str(throttled), "0", throttled == 0),
    ]
    rows += _slow_rate(sizes, workdir)
    return rows


def _slow_rate(sizes: Sizes, workdir: Path) -> list[Row]:
    """2c-2e: the production rate: fidelity, bursts, and the client's CPU per request."""
    slow = sizes.slow_rate
    # The listing, the runs and profiles listings and the verifying listing take about
    # one slot in twenty at this size: the run lasts about ``slow_seconds``.
    tasks = round(slow * sizes.slow_seconds * 0.95)
    with SimProcess(tasks, workdir, rate_limit=slow, seed=3) as sim:
        result = run_cleanup(sim, policy({"all": True}, slow), workdir, "rate-slow")
        stats, log = sim.stats(), sim.log()
    expect_all_deleted(stats, tasks, "rate-slow")
    arrivals = log.arrivals()
    achieved = interval_rate(log.deletes) or 0.0
    requests = interval_rate(arrivals) or 0.0
    burst = max_in_window(arrivals)
    throttled = stats["by_status"].get("429", 0)
    cpu_ms = result["cost"]["cpu_s"] / stats["total_requests"] * 1000
    return [
        Row(
            "2c",
            f"rate fidelity at {slow:g}/s for about {sizes.slow_seconds} s ({tasks} listed "
            f"tasks, server limit {slow:g}/s): achieved deletes/s / configured",
            ratio(achieved / slow),
            ">= 0.97",
            achieved / slow >= 0.97,
            f"{stats['total_requests']} requests ({routes(stats)}), {throttled} answered 429; "
            f"smallest gap between arrivals {_min_gap(arrivals):.4f} s; all requests "
            f"{requests:.3f}/s from first to last",
        ),
        Row(
            "2d",
            f"most requests in any 1 s sliding window at {slow:g}/s (server arrivals)",
            str(burst),
            f"<= {slow:g}",
            burst <= slow,
        ),
        Row(
            "2e",
            f"client CPU per request at {slow:g} request/s (the 2c run: CPU s / requests)",
            f"{cpu_ms:.2f} ms",
            "<= 3 ms",
            cpu_ms <= 3.0,
            f"{result['cost']['cpu_s']:.3f} CPU s (user {result['cost']['user_s']:.3f} + sys "
            f"{result['cost']['sys_s']:.3f}) over {result['cost']['wall_s']:.1f} s wall, "
            "start-up and imports excluded",
        ),
    ]


def _min_gap(times: list[float]) -> float:
    return min((b - a for a, b in itertools.pairwise(times)), default=0.0)


def latency_hiding(sizes: Sizes, workdir: Path) -> list[Row]:
    """3: delete-phase wall time against the ideal N x latency / concurrency."""
    n, latency, width = sizes.latency_tasks, sizes.latency_s, sizes.concurrency
    with SimProcess(n, workdir, latency_s=latency, seed=4) as sim:
        result = run_cleanup(sim, policy({"all": True}, UNLIMITED, width), workdir, "latency")
        stats, log = sim.stats(), sim.log()
    expect_all_deleted(stats, n, "latency")
    phase = max(log.answered("DELETE")) - min(log.arrivals("DELETE"))
    ideal = n * latency / width
    first_delete = min(log.arrivals("DELETE"))
    before = [r for r in log.requests if r[2] == "GET" and r[1] <= first_delete]
    listing = max(r[1] for r in before) - min(r[0] for r in before) if before else 0.0
    after = sum(1 for r in log.requests if r[2] == "GET" and r[0] > first_delete)
    return [
        Row(
            "3",
            f"latency hiding: {latency * 1000:g} ms latency, concurrency {width}, {n:,} tasks: "
            "delete phase / (N x latency / C)",
            ratio(phase / ideal),
            "<= 1.10",
            phase / ideal <= 1.10,
            f"delete phase {phase:.2f} s (server: first DELETE in to last DELETE answered) "
            f"vs ideal {ideal:.2f} s; listing {listing:.2f} s before it, {after} GETs after "
            "the first DELETE (verification); whole run "
            f"{result['summary']['duration_s']:.2f} s",
        )
    ]


def memory(sizes: Sizes, workdir: Path) -> list[Row]:
    """5: peak RSS of dry runs over large accounts."""
    rows = []
    for number, n in enumerate(sizes.memory_tasks):
        with SimProcess(n, workdir, seed=8) as sim:
            doc = policy({"all": True}, UNLIMITED, sizes.concurrency)
            result = run_cleanup(sim, doc, workdir, f"memory-{n}", apply=False)
            stats = sim.stats()
        would = result["summary"]["counts"].get("would_delete", 0)
        if would != n:
            raise BenchmarkError(f"memory: the dry run would delete {would} of {n}")
        rss = result["cost"]["maxrss_mb"]
        last = number == len(sizes.memory_tasks) - 1
        rows.append(
            Row(
                f"5{'ab'[number]}",
                f"peak RSS of a dry run over a {n:,}-task account (`select: {{all: true}}`)",
                f"{rss:.0f} MB",
                "< 150 MB" if last else "(reported)",
                rss < 150 if last else None,
                f"{stats['total_requests']:,} listing calls; dry run took "
                f"{result['summary']['duration_s']:.1f} s",
            )
        )
    return rows


def naive_peer(sizes: Sizes, workdir: Path) -> list[Row]:
    """6: the API page's GET-then-DELETE loop against nclue-cleanup at the same budget."""
    k, account, rate = sizes.naive_tasks, sizes.naive_account, sizes.naive_rate
    with SimProcess(account, workdir, rate_limit=rate, seed=9) as sim:
        ids = random.Random(9).sample(sorted(sim.task_ids()), k)
        args = ["--endpoint", sim.url, "--ids", str(write_ids(ids, workdir, "naive"))]
        run_module("benchmarks.naive_peer", [*args, "--rate", str(rate)], workdir, "naive")
        naive_stats, naive_log = sim.stats(), sim.log()
    with SimProcess(account, workdir, rate_limit=rate, seed=9) as sim:
        run_cleanup(sim, policy({"ids": ids}, rate), workdir, "naive-nclue")
        ours_stats, ours_log = sim.stats(), sim.log()
    for stats, name in ((naive_stats, "naive"), (ours_stats, "naive-nclue")):
        if stats["deleted"] != k:
            raise BenchmarkError(f"{name}: {stats['deleted']} of {k} deleted")
    naive_wall = max(naive_log.answered()) - min(naive_log.arrivals())
    ours_wall = max(ours_log.answered()) - min(ours_log.arrivals())
    budget = f"{k} explicit IDs in a {account:,}-task account, both at {rate:g} req/s"
    scaled = f"server wall x {rate:g}, i.e. at 1 req/s"
    return [
        Row(
            "6a",
            f"calls per task, naive GET-then-DELETE peer ({budget})",
            f"{naive_stats['total_requests'] / k:.3f}",
            note=f"{naive_stats['by_status']}",
        ),
        Row(
            "6b",
            f"calls per task, nclue-cleanup ({budget})",
            f"{ours_stats['total_requests'] / k:.3f}",
            note=f"{ours_stats['by_status']}",
        ),
        Row(
            "6c",
            f"wall time, naive peer, scaled to 1 req/s ({scaled})",
            f"{naive_wall * rate / 60:.1f} min",
            note=f"{naive_wall:.1f} s at {rate:g} req/s",
        ),
        Row(
            "6d",
            f"wall time, nclue-cleanup, scaled to 1 req/s ({scaled})",
            f"{ours_wall * rate / 60:.1f} min",
            note=f"{ours_wall:.1f} s at {rate:g} req/s",
        ),
    ]


CASES: tuple[tuple[str, tuple[str, ...], Case], ...] = (
    ("calls per task", ("1a", "1b", "1c"), calls_per_task),
    ("rate fidelity", ("2a", "2b", "2c", "2d", "2e"), rate_fidelity),
    ("latency hiding", ("3",), latency_hiding),
    ("client cost", ("4a", "4b", "4c", "4d"), client_cost),
    ("memory", ("5a", "5b"), memory),
    ("naive peer", ("6a", "6b", "6c", "6d"), naive_peer),
    ("audit volume", ("7a", "7b"), audit_volume),
    ("listing latency", ("8",), listing_latency),
    ("busy and held", ("9a", "9b", "9c"), busy_and_held),
    ("concurrent runs", tuple(f"10{c}" for c in "abcdefghijklm"), concurrent_runs),
)
"""(name, the row keys it produces, the function): the runner's order."""
