"""The benchmarks: each starts fresh simulators, runs a client, and returns table rows.

Every figure is a count or a ratio from one run, read from the server's own counters
and clock (``benchmarks.sim_server``) wherever the server can see it.
"""

from __future__ import annotations

import itertools
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

UNLIMITED = 100_000.0
"""A policy rate no benchmark reaches: the limiter never makes anyone wait."""


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark is; ``QUICK`` is the smoke test's."""

    listed: int = 10_000
    explicit_ids: int = 1_000
    explicit_account: int = 10_000
    rate: float = 300.0
    rate_limit: float = 310.0
    rate_tasks: int = 10_000
    slow_rate: float = 1.0
    slow_seconds: int = 60
    latency_tasks: int = 2_000
    latency_s: float = 0.05
    concurrency: int = 16
    cost_tasks: int = 10_000
    cost_rounds: int = 5
    memory_tasks: int = 100_000
    naive_tasks: int = 300
    naive_account: int = 1_000
    naive_rate: float = 20.0


FULL = Sizes()
QUICK = Sizes(
    listed=300,
    explicit_ids=30,
    explicit_account=300,
    rate_tasks=300,
    slow_rate=5.0,
    slow_seconds=3,
    latency_tasks=300,
    cost_tasks=300,
    cost_rounds=1,
    memory_tasks=1_000,
    naive_tasks=30,
    naive_account=100,
)


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    key: str
    benchmark: str
    value: str
    target: str = "(reported)"
    met: bool | None = None
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "-"}[self.met]


Case = Callable[[Sizes, Path], list[Row]]


def _ratio(value: float) -> str:
    return f"{value:.3f}"


def _expect_all_deleted(stats: dict[str, object], tasks: int, name: str) -> None:
    if stats["deleted"] != tasks or stats["remaining"] != 0:
        raise BenchmarkError(f"{name}: {stats['deleted']} of {tasks} deleted: {stats}")


def calls_per_task(sizes: Sizes, workdir: Path) -> list[Row]:
    """1: requests per deleted task, listed selection and explicit IDs (server's count)."""
    n = sizes.listed
    with SimProcess(n, workdir) as sim:
        doc = policy({"all": True}, UNLIMITED, sizes.concurrency)
        run_cleanup(sim, doc, workdir, "calls-listed")
        stats = sim.stats()
    _expect_all_deleted(stats, n, "calls-listed")
    listed = stats["total_requests"] / stats["deleted"]
    rows = [
        Row(
            "1a",
            f"calls per deleted task, listed selection of {n:,} (`select: {{all: true}}`)",
            f"{listed:.4f}",
            "<= 1.02",
            listed <= 1.02,
            f"{stats['total_requests']:,} requests ({_routes(stats)}) for "
            f"{stats['deleted']:,} deletes",
        )
    ]
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
            "1b",
            f"calls per deleted task, {k:,} explicit IDs in a {account:,}-task account",
            f"{explicit:.4f}",
            note=f"{stats['total_requests']:,} requests ({_routes(stats)}); a GET per ID "
            "before its DELETE would be 2.00",
        )
    )
    return rows


def _routes(stats: dict[str, object]) -> str:
    by_route = stats["by_route"]
    assert isinstance(by_route, dict)
    return ", ".join(f"{route} {count:,}" for route, count in sorted(by_route.items()))


def rate_fidelity(sizes: Sizes, workdir: Path) -> list[Row]:
    """2: achieved / configured delete rate at a high rate and at the production rate."""
    n, rate = sizes.rate_tasks, sizes.rate
    with SimProcess(n, workdir, rate_limit=sizes.rate_limit) as sim:
        result = run_cleanup(sim, policy({"all": True}, rate), workdir, "rate-high")
        stats, log = sim.stats(), sim.log()
    _expect_all_deleted(stats, n, "rate-high")
    achieved = interval_rate(log.deletes) or 0.0
    throttled = stats["by_status"].get("429", 0)
    rows = [
        Row(
            "2a",
            f"rate fidelity at {rate:g}/s (server limit {sizes.rate_limit:g}/s), {n:,} tasks: "
            "achieved / configured",
            _ratio(achieved / rate),
            ">= 0.97",
            achieved / rate >= 0.97,
            f"{achieved:.1f} deletes/s over {max(log.deletes) - min(log.deletes):.1f} s "
            f"(server's delete log); run took {result['summary']['duration_s']:.1f} s; most "
            f"requests in any 1 s: {max_in_window(log.arrivals())}",
        ),
        Row("2b", f"429 responses at {rate:g}/s", str(throttled), "0", throttled == 0),
    ]
    slow = sizes.slow_rate
    tasks = round(slow * sizes.slow_seconds) - 1  # plus one listing call
    with SimProcess(tasks, workdir, rate_limit=slow, seed=3) as sim:
        run_cleanup(sim, policy({"all": True}, slow), workdir, "rate-slow")
        stats, log = sim.stats(), sim.log()
    _expect_all_deleted(stats, tasks, "rate-slow")
    achieved = interval_rate(log.deletes) or 0.0
    burst = max_in_window(log.arrivals())
    throttled = stats["by_status"].get("429", 0)
    rows += [
        Row(
            "2c",
            f"rate fidelity at {slow:g}/s for about {sizes.slow_seconds} s ({tasks} listed "
            f"tasks, server limit {slow:g}/s): achieved / configured",
            _ratio(achieved / slow),
            ">= 0.97",
            achieved / slow >= 0.97,
            f"{stats['total_requests']} requests ({_routes(stats)}), {throttled} answered 429; "
            f"smallest gap between arrivals {_min_gap(log.arrivals()):.4f} s",
        ),
        Row(
            "2d",
            f"most requests in any 1 s sliding window at {slow:g}/s (server arrivals)",
            str(burst),
            f"<= {slow:g}",
            burst <= slow,
        ),
    ]
    return rows


def _min_gap(times: list[float]) -> float:
    return min((b - a for a, b in itertools.pairwise(times)), default=0.0)


def latency_hiding(sizes: Sizes, workdir: Path) -> list[Row]:
    """3: delete-phase wall time against the ideal N x latency / concurrency."""
    n, latency, width = sizes.latency_tasks, sizes.latency_s, sizes.concurrency
    with SimProcess(n, workdir, latency_s=latency, seed=4) as sim:
        result = run_cleanup(sim, policy({"all": True}, UNLIMITED, width), workdir, "latency")
        stats, log = sim.stats(), sim.log()
    _expect_all_deleted(stats, n, "latency")
    phase = max(log.answered("DELETE")) - min(log.arrivals("DELETE"))
    ideal = n * latency / width
    listing = max(log.answered("GET")) - min(log.arrivals("GET"))
    return [
        Row(
            "3",
            f"latency hiding: {latency * 1000:g} ms latency, concurrency {width}, {n:,} tasks: "
            "delete phase / (N x latency / C)",
            _ratio(phase / ideal),
            "<= 1.10",
            phase / ideal <= 1.10,
            f"delete phase {phase:.2f} s (server: first DELETE in to last DELETE answered) "
            f"vs ideal {ideal:.2f} s; listing {listing:.2f} s before it; whole run "
            f"{result['summary']['duration_s']:.2f} s",
        )
    ]


def _cost_pair(sizes: Sizes, workdir: Path, round_: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One nclue-cleanup run and one bare-loop run, each on a fresh account."""
    n, width = sizes.cost_tasks, sizes.concurrency
    with SimProcess(n, workdir, seed=5) as sim:
        doc = policy({"all": True}, UNLIMITED, width)
        ours = run_cleanup(sim, doc, workdir, f"cost-nclue-{round_}")["cost"]
        ours["requests"] = sim.stats()["total_requests"]
        _expect_all_deleted(sim.stats(), n, "cost-nclue")
    with SimProcess(n, workdir, seed=6) as sim:
        # The same requests: the bare loop lists the account too, then deletes.
        args = ["--endpoint", sim.url, "--list", "--concurrency", str(width)]
        bare = run_module("benchmarks.bare_client", args, workdir, f"cost-bare-{round_}")
        bare["requests"] = sim.stats()["total_requests"]
        _expect_all_deleted(sim.stats(), n, "cost-bare")
    return ours, bare


def _cpu_note(runs: list[dict[str, Any]], n: int) -> str:
    per = [f"{r['cpu_s'] / n * 10_000:.2f}" for r in runs]
    user = statistics.median(r["user_s"] for r in runs) / n * 10_000
    system = statistics.median(r["sys_s"] for r in runs) / n * 10_000
    return (
        f"{runs[0]['requests']:,} requests per run; runs: {', '.join(per)} s "
        f"(median user {user:.2f} + sys {system:.2f}); median wall "
        f"{statistics.median(r['wall_s'] for r in runs):.1f} s"
    )


def client_cost(sizes: Sizes, workdir: Path) -> list[Row]:
    """4: client CPU per 10,000 deletes, nclue-cleanup against a bare aiohttp loop.

    The two alternate, ``cost_rounds`` times each, and the medians are compared, so a
    burst of load from elsewhere on the machine hits both sides alike.
    """
    n, width = sizes.cost_tasks, sizes.concurrency
    pairs = [_cost_pair(sizes, workdir, round_) for round_ in range(sizes.cost_rounds)]
    ours_runs, bare_runs = [p[0] for p in pairs], [p[1] for p in pairs]
    ours = statistics.median(r["cpu_s"] for r in ours_runs) / n * 10_000
    base = statistics.median(r["cpu_s"] for r in bare_runs) / n * 10_000
    ratio = ours / base
    best = min(r["cpu_s"] for r in ours_runs) / min(r["cpu_s"] for r in bare_runs)
    return [
        Row(
            "4a",
            f"client CPU s per 10,000 deletes, nclue-cleanup (listing + {n:,} deletes, "
            f"concurrency {width}, audit log to a file; median of {sizes.cost_rounds})",
            f"{ours:.2f}",
            note=_cpu_note(ours_runs, n),
        ),
        Row(
            "4b",
            f"client CPU s per 10,000 deletes, bare aiohttp loop (listing + {n:,} signed DELETEs, "
            f"concurrency {width}; median of {sizes.cost_rounds})",
            f"{base:.2f}",
            note=_cpu_note(bare_runs, n),
        ),
        Row(
            "4c",
            "client cost ratio nclue-cleanup / bare (medians)",
            _ratio(ratio),
            "<= 1.5",
            ratio <= 1.5,
            f"ratio of the fastest runs: {best:.3f}",
        ),
    ]


def memory(sizes: Sizes, workdir: Path) -> list[Row]:
    """5: peak RSS of a dry run over a large account."""
    n = sizes.memory_tasks
    with SimProcess(n, workdir, seed=8) as sim:
        doc = policy({"all": True}, UNLIMITED, sizes.concurrency)
        result = run_cleanup(sim, doc, workdir, "memory", apply=False)
        stats = sim.stats()
    would = result["summary"]["counts"].get("would_delete", 0)
    if would != n:
        raise BenchmarkError(f"memory: the dry run would delete {would} of {n}")
    rss = result["cost"]["maxrss_mb"]
    return [
        Row(
            "5",
            f"peak RSS of a dry run over a {n:,}-task account (`select: {{all: true}}`)",
            f"{rss:.0f} MB",
            "< 150 MB",
            rss < 150,
            f"{stats['total_requests']:,} listing calls; dry run took "
            f"{result['summary']['duration_s']:.1f} s",
        )
    ]


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
    ("calls per task", ("1a", "1b"), calls_per_task),
    ("rate fidelity", ("2a", "2b", "2c", "2d"), rate_fidelity),
    ("latency hiding", ("3",), latency_hiding),
    ("client cost", ("4a", "4b", "4c"), client_cost),
    ("memory", ("5",), memory),
    ("naive peer", ("6a", "6b", "6c", "6d"), naive_peer),
)
"""(name, the row keys it produces, the function): the runner's order."""
