"""The client's own cost: CPU against a bare loop, audit bytes, listing under latency."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchmarkError, SimProcess, pinned, policy, run_cleanup, run_module
from benchmarks.rows import UNLIMITED, Row, Sizes, expect_all_deleted, ratio, routes

COST_TARGET = 1.3
AUDIT_TARGET_BYTES = 2048


def _cost_pair(sizes: Sizes, workdir: Path, round_: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """One nclue-cleanup run and one bare-loop run, each on a fresh account."""
    n, width = sizes.cost_tasks, sizes.concurrency
    with SimProcess(n, workdir, seed=5) as sim:
        doc = policy({"all": True}, UNLIMITED, width)
        ours = run_cleanup(sim, doc, workdir, f"cost-nclue-{round_}")["cost"]
        ours["requests"] = sim.stats()["total_requests"]
        expect_all_deleted(sim.stats(), n, "cost-nclue")
    with SimProcess(n, workdir, seed=6) as sim:
        # The same requests: the bare loop lists the account too, then deletes.
        args = ["--endpoint", sim.url, "--list", "--concurrency", str(width)]
        bare = run_module("benchmarks.bare_client", args, workdir, f"cost-bare-{round_}")
        bare["requests"] = sim.stats()["total_requests"]
        expect_all_deleted(sim.stats(), n, "cost-bare")
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

    The two alternate, ``cost_rounds`` times each; the medians are compared, and each
    pair's own ratio is counted against the target, so a burst of load from elsewhere
    on the machine hits both sides alike and the spread is visible. Server and client
    are pinned to CPUs of their own (``pinned``).
    """
    n, width, rounds = sizes.cost_tasks, sizes.concurrency, sizes.cost_rounds
    with pinned():
        pairs = [_cost_pair(sizes, workdir, round_) for round_ in range(rounds)]
    ours_runs, bare_runs = [p[0] for p in pairs], [p[1] for p in pairs]
    ours = statistics.median(r["cpu_s"] for r in ours_runs) / n * 10_000
    base = statistics.median(r["cpu_s"] for r in bare_runs) / n * 10_000
    per_pair = [o["cpu_s"] / b["cpu_s"] for o, b in pairs]
    met = sum(value <= COST_TARGET for value in per_pair)
    return [
        Row(
            "4a",
            f"client CPU s per 10,000 deletes, nclue-cleanup (listing + {n:,} deletes, "
            f"concurrency {width}, audit log to a file, `api.verify: true`; median of {rounds})",
            f"{ours:.2f}",
            note=_cpu_note(ours_runs, n),
            runs=rounds,
        ),
        Row(
            "4b",
            f"client CPU s per 10,000 deletes, bare aiohttp loop (listing + {n:,} signed DELETEs, "
            f"concurrency {width}; median of {rounds})",
            f"{base:.2f}",
            note=_cpu_note(bare_runs, n),
            runs=rounds,
        ),
        Row(
            "4c",
            "client cost ratio nclue-cleanup / bare (medians of alternating pairs)",
            ratio(ours / base),
            f"<= {COST_TARGET:g}",
            ours / base <= COST_TARGET,
            f"per pair: {', '.join(ratio(value) for value in per_pair)}",
            runs=rounds,
        ),
        Row(
            "4d",
            f"pairs whose own ratio is <= {COST_TARGET:g}",
            f"{met} of {rounds}",
            f"{rounds} of {rounds}",
            met == rounds,
            runs=rounds,
        ),
    ]


def _audit_run(
    sizes: Sizes, workdir: Path, name: str, extra: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A narrow apply over the large account; its result and the server's counters."""
    with SimProcess(sizes.audit_account, workdir, seed=10) as sim:
        narrow = {"name_glob": sizes.audit_glob}
        doc = policy({"all": True}, UNLIMITED, sizes.concurrency, filters=narrow)
        result = run_cleanup(sim, doc, workdir, name, extra=extra)
        stats = sim.stats()
    if not stats["deleted"]:
        raise BenchmarkError(f"{name}: the narrow policy deleted nothing: {stats}")
    return result, stats


def audit_volume(sizes: Sizes, workdir: Path) -> list[Row]:
    """7: audit log bytes per deleted task on a large account under a narrow policy."""
    n = sizes.audit_account
    rows = []
    for key, extra in (("7a", []), ("7b", ["--audit-skipped", "all"])):
        result, stats = _audit_run(sizes, workdir, f"audit-{key}", extra)
        path = Path(result["audit_log"])
        size, lines = path.stat().st_size, path.read_bytes().count(b"\n")
        deleted = stats["deleted"]
        per_task = size / deleted
        flag = " `--audit-skipped all`" if extra else ""
        rows.append(
            Row(
                key,
                f"audit bytes per deleted task, {n:,}-task account, `name_glob: "
                f"{sizes.audit_glob}`{flag}",
                f"{per_task / 1024:.2f} KB",
                "(the old volume)" if extra else f"<= {AUDIT_TARGET_BYTES // 1024} KB",
                None if extra else per_task <= AUDIT_TARGET_BYTES,
                f"{size:,} bytes, {lines:,} lines for {deleted} deletes; skip reasons "
                f"{result['summary']['skip_reasons']}",
            )
        )
    return rows


def listing_latency(sizes: Sizes, workdir: Path) -> list[Row]:
    """8: a dry run's listing wall time under server latency, against the rate budget.

    The budget is the least time its requests can take at the rate when each is answered
    ``latency`` after it arrives: ``(requests - 1) / rate + latency``, server clock.
    """
    n, latency, rate = sizes.listing_tasks, sizes.listing_latency_s, sizes.listing_rate
    with SimProcess(n, workdir, rate_limit=rate, latency_s=latency, seed=11) as sim:
        doc = policy({"all": True}, rate, sizes.concurrency)
        result = run_cleanup(sim, doc, workdir, "listing-latency", apply=False)
        stats, log = sim.stats(), sim.log()
    requests = len(log.requests)
    wall = max(log.answered()) - min(log.arrivals())
    budget = (requests - 1) / rate + latency
    return [
        Row(
            "8",
            f"listing wall time, {latency:g} s server latency at {rate:g} request/s, "
            f"{n:,} tasks (dry run): wall / rate budget",
            ratio(wall / budget),
            "<= 1.10",
            wall / budget <= 1.10,
            f"{requests} listing calls ({routes(stats)}) took {wall:.1f} s (server: first in "
            f"to last answered) against {budget:.1f} s; "
            f"{stats['by_status'].get('429', 0)} answered 429; dry run took "
            f"{result['summary']['duration_s']:.1f} s",
        )
    ]
