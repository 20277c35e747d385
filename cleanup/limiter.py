"""One budget for every call: a rate (asyncio-throttle), a concurrency cap and a shared cool-down.

Listing pages, status checks and deletes all pass through the same ``RateLimiter``
slot, so ``limits.rate`` bounds the account's total request rate. A 429 from any
request pauses every caller (``throttled``) and lowers the effective rate by a
quarter, which recovers by 2 % per success.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import structlog
from asyncio_throttle.throttler import Throttler

log = structlog.get_logger(__name__)

# The throttler admits ``burst`` calls per ``burst / rate`` seconds: a sliding window
# of about 0.1 s, so calls are spread evenly instead of arriving as one burst a second,
# and no 1-second window ever holds more than ``rate`` calls.
_WINDOW_S = 0.1
_MIN_FACTOR = 0.05
_DECREASE = 0.75  # per 429
_RECOVERY = 1.02  # per success
_MARGIN, _MAX_MARGIN_S = 0.01, 0.005


class RateLimiter:
    """At most ``concurrency`` calls in flight and ``rate`` calls per second, all callers."""

    def __init__(
        self,
        rate: float,
        concurrency: int,
        *,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        storm_after: int = 30,
    ) -> None:
        self.rate = rate
        self._burst = max(1, round(rate * _WINDOW_S))
        # Only one caller at a time polls the throttler (the others queue on the lock),
        # so the poll interval can be fine enough to keep the achieved rate near ``rate``.
        self._factor = 1.0
        self._throttler = Throttler(
            rate_limit=self._burst,
            period=self._period(),
            retry_interval=max(0.0005, min(0.01, 1 / rate / 4)),
        )
        self._throttle_lock = asyncio.Lock()
        self._semaphore = asyncio.Semaphore(concurrency)
        self._resume_at = 0.0
        self.throttled_in_a_row = 0
        self._storm_after = storm_after
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._rng = rng or random.Random()
        self._clock = clock
        self.sent = 0

    @property
    def storm(self) -> bool:
        """So many 429s in a row, with no success between, that retrying is pointless."""
        return self.throttled_in_a_row >= self._storm_after

    @property
    def effective_rate(self) -> float:
        return self.rate * self._factor

    def slot(self) -> _Slot:
        """``async with limiter.slot():`` waits for a turn under every limit, then holds
        a concurrency slot until the block ends."""
        return _Slot(self)

    async def _acquire(self) -> None:
        await self._semaphore.acquire()
        try:
            while True:
                wait = self._resume_at - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                async with self._throttle_lock:
                    await self._throttler.acquire()  # type: ignore[no-untyped-call]
                if self._resume_at <= self._clock():
                    break
        except BaseException:
            self._semaphore.release()
            raise
        self.sent += 1

    def _release(self) -> None:
        self._semaphore.release()

    def throttled(self, retry_after: float | None) -> float:
        """Record a 429: everyone pauses, and the rate drops. Returns the pause in seconds."""
        self.throttled_in_a_row += 1
        if retry_after is not None:
            pause = min(retry_after, self._backoff_max_s)
        else:
            ceiling = self._backoff_base_s * 2 ** min(self.throttled_in_a_row - 1, 16)
            pause = self._rng.uniform(0.5, 1.0) * min(self._backoff_max_s, ceiling)
        self._resume_at = max(self._resume_at, self._clock() + pause)
        old = self._factor
        self._set_factor(self._factor * _DECREASE)
        if self._factor < old:
            log.warning(
                "rate_lowered",
                configured_rate=self.rate,
                effective_rate=round(self.effective_rate, 3),
                pause_s=round(pause, 3),
            )
        return pause

    def succeeded(self) -> None:
        """Record a success: the effective rate creeps back towards the configured one."""
        self.throttled_in_a_row = 0
        if self._factor < 1.0:
            self._set_factor(self._factor * _RECOVERY)

    def _set_factor(self, factor: float) -> None:
        self._factor = min(1.0, max(_MIN_FACTOR, factor))
        self._throttler.period = self._period()

    def _period(self) -> float:
        """The throttler's window, a little longer than the rate alone asks: the slot is
        taken a moment before the request leaves, and sending jitters, so without the
        margin two calls could reach the server just under 1 s apart at 1 request/s."""
        exact = self._burst / (self.rate * self._factor)
        return exact + min(exact * _MARGIN, _MAX_MARGIN_S)


class _Slot:
    """The context manager ``RateLimiter.slot`` returns (a class: it is on the hot path)."""

    __slots__ = ("_limiter",)

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        await self._limiter._acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter._release()
