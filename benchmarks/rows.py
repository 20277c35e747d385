"""What every benchmark case shares: the sizes, the table row, small figure helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import BenchmarkError

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
    cost_rounds: int = 7
    memory_tasks: tuple[int, ...] = (100_000, 300_000)
    naive_tasks: int = 300
    naive_account: int = 1_000
    naive_rate: float = 20.0
    audit_account: int = 100_000
    audit_glob: str = "exp-ctr-00*"
    """A name filter that selects a few dozen tasks of the generated account."""
    listing_tasks: int = 1_200
    listing_latency_s: float = 2.0
    listing_rate: float = 1.0
    busy_tasks: int = 1_000
    busy_scale: float = 50.0
    """Time runs this many times faster than production (1 request/s, 60 s interval)."""
    busy_deadline_s: float = 1800.0
    """The production ``busy_deadline`` (30 min); the quick run shortens it."""
    busy_for_s: float = 600.0
    """Busy tasks and runs finish within this many production seconds."""
    shared_tasks: int = 1_000
    shared_rate: float = 50.0


FULL = Sizes()
QUICK = Sizes(
    listed=300,
    explicit_ids=30,
    explicit_account=300,
    rate_tasks=300,
    slow_rate=5.0,
    slow_seconds=2,
    latency_tasks=300,
    cost_tasks=300,
    cost_rounds=1,
    memory_tasks=(1_000, 3_000),
    naive_tasks=30,
    naive_account=100,
    audit_account=3_000,
    audit_glob="exp-ctr-*",
    listing_tasks=300,
    listing_latency_s=0.4,
    listing_rate=5.0,
    busy_tasks=200,
    busy_scale=500.0,
    busy_deadline_s=300.0,
    busy_for_s=100.0,
    shared_tasks=20,
    shared_rate=100.0,
)


@dataclass(frozen=True)
class Row:
    """One line of the results table; ``runs`` is how many runs the figure rests on."""

    key: str
    benchmark: str
    value: str
    target: str = "(reported)"
    met: bool | None = None
    note: str = ""
    runs: int = 1

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**missed**", None: "-"}[self.met]


Case = Callable[[Sizes, Path], list[Row]]


def ratio(value: float) -> str:
    return f"{value:.3f}"


def expect_all_deleted(stats: dict[str, object], tasks: int, name: str) -> None:
    if stats["deleted"] != tasks or stats["remaining"] != 0:
        raise BenchmarkError(f"{name}: {stats['deleted']} of {tasks} deleted: {stats}")


def routes(stats: dict[str, object]) -> str:
    """The server's request counts by route, as one phrase."""
    by_route = stats["by_route"]
    assert isinstance(by_route, dict)
    return ", ".join(f"{route} {count:,}" for route, count in sorted(by_route.items()))
