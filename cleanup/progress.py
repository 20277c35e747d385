"""Progress in every phase of a run: a live view on a terminal, a log line elsewhere.

At 1 request/s listing 20,000 tasks takes minutes and a busy wait up to half an hour;
what the run is doing, how far it is and when it looks again is what keeps a person
from killing it.
"""

from __future__ import annotations

import math
import sys
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from .logs import get_logger

log = get_logger(__name__)

PHASES = ("listing", "looking_up", "deleting", "waiting", "verifying")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where a run stands in its current phase.

    ``done`` of ``total`` is the phase's own unit (tasks looked up, deleted, verified);
    while listing, ``pages`` and ``tasks_seen`` count what came back so far and
    ``expected_tasks`` is the listing's total when the server says it.
    """

    phase: str
    done: int
    total: int
    counts: dict[str, int]
    requests: int
    rate: float  # tasks finished per second, over the last few seconds
    configured_rate: float  # the policy's requests per second
    pages: int = 0
    tasks_seen: int = 0
    expected_tasks: int | None = None
    waiting: int = 0  # busy tasks the run is waiting for
    held_by: dict[str, int] = field(default_factory=dict)  # {"task busy": 3, "run": 2}
    next_look_in_s: float | None = None
    retries: int = 0

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    @property
    def eta_s(self) -> float | None:
        """Seconds to the end of the phase; listing counts pages at the configured rate."""
        if self.phase == "listing":
            return self._listing_eta_s()
        return self.left / self.rate if self.rate > 0 else None

    def _listing_eta_s(self) -> float | None:
        if self.expected_tasks is None or not self.pages or self.configured_rate <= 0:
            return None
        per_page = max(1, math.ceil(self.tasks_seen / self.pages))
        pages_left = math.ceil(max(0, self.expected_tasks - self.tasks_seen) / per_page)
        return pages_left / self.configured_rate


class ProgressReporter(Protocol):
    """Receives a snapshot every ``interval_s`` while a run lists, deletes and waits."""

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


def format_duration(seconds: float | None) -> str:
    """``7s``, ``3m10s``, ``1h02m``; ``?`` when unknown."""
    if seconds is None:
        return "?"
    minutes, secs = divmod(math.ceil(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def _plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else words or word + 's'}"


def _pairs(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counts.items() if v)


def headline(s: Snapshot) -> str:
    """The first line of the live view: what the phase is doing and when it ends."""
    eta = format_duration(s.eta_s)
    if s.phase == "listing":
        if s.expected_tasks is None:
            seen = f"{s.tasks_seen:,} tasks so far"
        else:
            seen = f"{s.tasks_seen:,} of ~{s.expected_tasks:,} tasks, ETA {eta}"
        return f"listing: {_plural(s.pages, 'page')}, {seen} at {s.configured_rate:g}/s"
    if s.phase == "waiting":
        line = f"waiting for {_plural(s.waiting, 'busy task')}"
        if s.held_by:
            line += f" ({_pairs(s.held_by)})"
        if s.next_look_in_s is not None:
            line += f", next look in {format_duration(s.next_look_in_s)}"
        return line
    what = {"looking_up": "looking up", "verifying": "verifying"}.get(s.phase, s.phase)
    return f"{what}: {s.done:,}/{s.total:,}, {s.rate:.1f}/s, {s.left:,} left, ETA {eta}"


def detail_line(s: Snapshot) -> str:
    """The second line: outcomes so far, requests sent, retries."""
    outcomes = _pairs(s.counts)
    cost = f"{_plural(s.requests, 'request')}, {_plural(s.retries, 'retry', 'retries')}"
    return f"{outcomes}; {cost}" if outcomes else cost


class LiveProgress:
    """A two-line rich live view on a terminal; log lines printed meanwhile go above it.

    stderr is redirected through the view while it runs; stdout only when it is a
    terminal too (piped, it carries the audit lines or the JSON summary: left alone).
    """

    interval_s = 0.5

    def __init__(self, console: Console) -> None:
        self._console = console
        self._live: Live | None = None

    def update(self, snapshot: Snapshot) -> None:
        lines = (headline(snapshot), detail_line(snapshot))
        view = Group(*(Text(line, no_wrap=True, overflow="ellipsis") for line in lines))
        if self._live is None:
            self._live = Live(
                view,
                console=self._console,
                auto_refresh=False,
                transient=False,
                redirect_stdout=_isatty(sys.stdout),
                redirect_stderr=True,
            )
            self._live.start(refresh=True)
        else:
            self._live.update(view, refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LogProgress:
    """A structured ``progress`` log event per snapshot, every 5 s by default (Kubernetes, CI).

    Every event has the same fields, whatever the phase, so log queries need no branches.
    """

    def __init__(self, interval_s: float = 5.0) -> None:
        self.interval_s = interval_s

    def update(self, snapshot: Snapshot) -> None:
        fields = asdict(snapshot)
        fields["counts"] = {k: v for k, v in snapshot.counts.items() if v}
        fields["rate"] = round(snapshot.rate, 2)
        eta = snapshot.eta_s
        log.info(
            "progress", **fields, left=snapshot.left, eta_s=None if eta is None else round(eta)
        )

    def close(self) -> None:
        pass
