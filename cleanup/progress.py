"""Progress while a run deletes: a live view on a terminal, a log line elsewhere.

At 1 request/s a run of 600 tasks takes ten minutes; the view (counts per outcome,
current rate, tasks left, ETA) is what keeps a person from killing it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import structlog
from rich.console import Console
from rich.live import Live
from rich.table import Table

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a run stands: tasks finished of those planned, outcomes, requests, rate."""

    done: int
    total: int
    counts: dict[str, int]
    requests: int
    rate: float  # tasks finished per second, over the last few seconds

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    @property
    def eta_s(self) -> float | None:
        return self.left / self.rate if self.rate > 0 else None


class ProgressReporter(Protocol):
    """Receives snapshots every ``interval_s`` while the run acts on its plan."""

    interval_s: float

    def update(self, snapshot: Snapshot) -> None: ...

    def close(self) -> None: ...


class RateWindow:
    """Finished tasks per second over a sliding window of recent snapshots."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._points: deque[tuple[float, int]] = deque()
        self._window_s = window_s
        self._clock = clock

    def rate(self, done: int) -> float:
        now = self._clock()
        self._points.append((now, done))
        while len(self._points) > 2 and now - self._points[0][0] > self._window_s:
            self._points.popleft()
        t0, d0 = self._points[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class LiveProgress:
    """A rich live table on a terminal."""

    interval_s = 0.5

    def __init__(self, console: Console) -> None:
        self._live = Live(console=console, auto_refresh=False, transient=False)
        self._started = False

    def update(self, snapshot: Snapshot) -> None:
        if not self._started:
            self._live.start()
            self._started = True
        table = Table.grid(padding=(0, 2))
        outcomes = "  ".join(f"{k} {v}" for k, v in snapshot.counts.items() if v)
        table.add_row(
            f"[bold]{snapshot.done}/{snapshot.total}[/] tasks",
            f"{snapshot.rate:.1f}/s",
            f"{snapshot.left} left",
            f"ETA {_eta(snapshot.eta_s)}",
            f"{snapshot.requests} requests",
        )
        table.add_row(outcomes or "starting", "", "", "", "")
        self._live.update(table, refresh=True)

    def close(self) -> None:
        if self._started:
            self._live.stop()


class LogProgress:
    """A structured ``progress`` log line every few seconds (Kubernetes, CI)."""

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s

    def update(self, snapshot: Snapshot) -> None:
        log.info(
            "progress",
            done=snapshot.done,
            total=snapshot.total,
            left=snapshot.left,
            rate_per_s=round(snapshot.rate, 2),
            eta_s=None if snapshot.eta_s is None else round(snapshot.eta_s),
            requests=snapshot.requests,
            **{k: v for k, v in snapshot.counts.items() if v},
        )

    def close(self) -> None:
        pass
