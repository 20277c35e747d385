"""Progress feed: what a run is doing, sent to a ``ProgressReporter`` every few seconds.

Every phase reports: the listing (pages, tasks seen, the account's size when known),
the look-up of explicit IDs, the deletes, and the busy wait (how many, held by what,
when the next look is). The run's objects are read, never changed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import TYPE_CHECKING

from .evidence import Why
from .progress import ProgressReporter, RateWindow, Snapshot

if TYPE_CHECKING:
    from .pipeline import Run


class Watch:
    """Builds snapshots of one run and ticks them to the reporter while work runs."""

    def __init__(self, run: Run, reporter: ProgressReporter | None) -> None:
        self._run = run
        self._reporter = reporter
        self.phase = "listing"
        self.pages = 0
        self.tasks_seen = 0
        self.expected: int | None = None
        self._window = RateWindow()
        self._ticker: asyncio.Task[None] | None = None
        self._done = asyncio.Event()

    def on_page(self, kind: str, pages: int, seen: int, expected: int | None) -> None:
        if kind == "tasks":
            self.pages, self.tasks_seen, self.expected = pages, seen, expected

    def snapshot(self) -> Snapshot:
        run = self._run
        executor = run.executor
        ledger = run.ledger
        done = len(ledger.ended) - (executor.activity.baseline if executor is not None else 0)
        total = executor.activity.total if executor is not None else 0
        waiting = executor.activity.waiting if executor is not None else {}
        held_by: Counter[str] = Counter()
        for item in waiting.values():
            if item.why is Why.HELD and item.holder is not None:
                held_by[item.holder.kind] += 1
            else:
                held_by["task busy" if item.why is Why.BUSY else "refused"] += 1
        phase = executor.activity.phase if executor is not None else self.phase
        next_look = None
        if executor is not None and executor.activity.next_look_at is not None:
            next_look = max(0.0, executor.activity.next_look_at - executor.monotonic())
        return Snapshot(
            phase=phase,
            done=done,
            total=total,
            counts=ledger.counts(),
            requests=sum(run.transport.sends.values()),
            rate=self._window.rate(done),
            configured_rate=run.budget.rate,
            pages=self.pages,
            tasks_seen=self.tasks_seen,
            expected_tasks=self.expected,
            waiting=len(waiting),
            held_by=dict(held_by),
            next_look_in_s=next_look,
            retries=executor.activity.retries if executor is not None else 0,
        )

    def ticking(self) -> _Ticking:
        """``async with watch.ticking():`` sends snapshots while the block runs (a no-op
        without a reporter, or inside another ``ticking`` block)."""
        return _Ticking(self)

    async def _start(self) -> bool:
        reporter = self._reporter
        if reporter is None or self._ticker is not None:
            return False

        done = self._done = asyncio.Event()

        async def tick() -> None:
            # Ends by the event, not by cancellation: a cancelled await here made the
            # coverage tracer lose the awaiting frames (CPython 3.11).
            while not done.is_set():
                reporter.update(self.snapshot())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), reporter.interval_s)

        self._ticker = asyncio.ensure_future(tick())
        return True

    async def _stop(self) -> None:
        assert self._ticker is not None and self._reporter is not None
        self._done.set()
        await self._ticker
        self._ticker = None
        self._reporter.update(self.snapshot())

    def close(self) -> None:
        if self._reporter is not None:
            self._reporter.close()


class _Ticking:
    """The context manager ``Watch.ticking`` returns (a class, not an async generator:
    it must not be finalized behind the event loop's back)."""

    __slots__ = ("_started", "_watch")

    def __init__(self, watch: Watch) -> None:
        self._watch = watch
        self._started = False

    async def __aenter__(self) -> None:
        self._started = await self._watch._start()

    async def __aexit__(self, *exc_info: object) -> None:
        if self._started:
            await self._watch._stop()
