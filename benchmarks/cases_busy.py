"""Busy and held tasks at production interval/deadline ratios, time scaled.

Production: 1 request/s, ``busy_interval: 60s``, ``busy_deadline: 30m``, tasks busy for
up to 10 minutes (``Sizes.busy_deadline_s``, ``Sizes.busy_for_s``; the quick run
shortens both). ``Sizes.busy_scale`` runs all of it that many times faster (the rate
up, every time down), so the counts are those of a production night.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks.harness import SimProcess, policy, run_cleanup
from benchmarks.rows import Row, Sizes, routes

BUSY_FRACTION, HELD_FRACTION = 0.30, 0.05
"""Shares of the selected tasks that are busy, and held by a run (SPEC.md, Targets)."""
INTERVAL_S = 60.0
TARGET = 1.10


def _busy_run(sizes: Sizes, workdir: Path, tasks: int, name: str) -> dict[str, Any]:
    """One scaled apply over an account with busy and held tasks; figures and counts."""
    scale = sizes.busy_scale
    rate = 1.0 * scale
    # held_fraction counts among the tasks that are not busy.
    held = HELD_FRACTION / (1 - BUSY_FRACTION)
    busy = {"busy_fraction": BUSY_FRACTION, "held_fraction": held}
    busy["busy_duration_s"] = sizes.busy_for_s / scale
    with SimProcess(tasks, workdir, rate_limit=rate, seed=12, **busy) as sim:
        retry = {"busy_interval": f"{INTERVAL_S / scale * 1000:.0f}ms"}
        retry["busy_deadline"] = f"{sizes.busy_deadline_s / scale * 1000:.0f}ms"
        doc = policy({"all": True}, rate, 8, retry=retry)
        result = run_cleanup(sim, doc, workdir, name, ok_codes=(0, 4))
        stats = sim.stats()
    counts = result["summary"]["counts"]
    deleted = stats["deleted"]
    return {
        "per_task": stats["total_requests"] / max(deleted, 1),
        "still_busy": counts.get("still_busy", 0),
        "note": (
            f"{stats['total_requests']:,} requests ({routes(stats)}; statuses "
            f"{stats['by_status']}) for {deleted:,} deleted of {tasks:,}; outcomes {counts}; "
            f"exit {result['cost']['exit_code']}; run took {result['summary']['duration_s']:.1f} s"
            f" at {rate:g} request/s"
        ),
    }


def busy_and_held(sizes: Sizes, workdir: Path) -> list[Row]:
    """9: requests per deleted task with busy and held tasks; a plan past the deadline."""
    scale = sizes.busy_scale
    ratios = f"x{scale:g} time, {BUSY_FRACTION:.0%} busy, {HELD_FRACTION:.0%} held"
    small = _busy_run(sizes, workdir, sizes.busy_tasks, "busy")
    # Larger than busy_deadline x rate: the delete phase outlasts the deadline.
    big_tasks = math.ceil(1.7 * sizes.busy_deadline_s * 1.0)
    big = _busy_run(sizes, workdir, big_tasks, "busy-big")
    return [
        Row(
            "9a",
            f"requests per deleted task, busy and held tasks at production ratios "
            f"({sizes.busy_tasks:,} tasks, {ratios})",
            f"{small['per_task']:.4f}",
            f"<= {TARGET:.2f}",
            small["per_task"] <= TARGET,
            small["note"],
        ),
        Row(
            "9b",
            f"requests per deleted task, a plan of {big_tasks:,} (> busy_deadline x rate = "
            f"{sizes.busy_deadline_s:g}) at the same ratios",
            f"{big['per_task']:.4f}",
            f"<= {TARGET:.2f}",
            big["per_task"] <= TARGET,
            big["note"],
        ),
        Row(
            "9c",
            f"`still_busy` in that plan of {big_tasks:,} (every task is free within "
            f"{sizes.busy_for_s / 60:g} production minutes)",
            str(big["still_busy"]),
            "0",
            big["still_busy"] == 0,
        ),
    ]
