"""The shared rate budget: one throttler, a concurrency cap, a cool-down everyone obeys."""

from __future__ import annotations

import asyncio
import random

from cleanup.limiter import RateLimiter


async def test_concurrency_cap_holds():
    """No more than `concurrency` callers are inside a slot at once."""
    limiter = RateLimiter(10_000, 3)
    inside = peak = 0

    async def call() -> None:
        nonlocal inside, peak
        async with limiter.slot():
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.001)
            inside -= 1

    await asyncio.gather(*(call() for _ in range(30)))
    assert peak == 3 and limiter.sent == 30


def test_throttling_lowers_the_rate_and_success_restores_it_slowly():
    """Each 429 cuts the effective rate by a quarter; successes restore it 2 % at a time."""
    limiter = RateLimiter(100, 4, backoff_base_s=0.001, backoff_max_s=0.002)
    limiter.throttled(None)
    limiter.throttled(None)
    assert limiter.effective_rate == 56.25
    limiter.succeeded()
    assert limiter.effective_rate == 56.25 * 1.02
    for _ in range(200):
        limiter.succeeded()
    assert limiter.effective_rate == 100


def test_retry_after_sets_the_pause_capped_by_backoff_max():
    """Retry-After is honoured as the shared pause, capped at backoff_max."""
    limiter = RateLimiter(10, 1, backoff_base_s=0.5, backoff_max_s=3.0, rng=random.Random(1))
    assert limiter.throttled(2.0) == 2.0
    assert limiter.throttled(120.0) == 3.0
    assert 0 < limiter.throttled(None) <= 3.0


async def test_cool_down_pauses_every_caller():
    """After a 429, a caller asking for a slot waits until the shared pause is over."""
    limiter = RateLimiter(10_000, 4, backoff_max_s=0.3)
    limiter.throttled(0.3)
    waiter = asyncio.ensure_future(limiter.slot().__aenter__())
    await asyncio.sleep(0.05)
    assert not waiter.done()  # still inside the 0.3 s pause
    await waiter
    assert limiter.sent == 1


def test_fractional_rates_are_one_call_per_interval():
    """rate 0.5 is one call per 2 s; rate 300 is 30 per 0.1 s; each window has a small margin."""
    slow, fast = RateLimiter(0.5, 1), RateLimiter(300, 8)
    assert slow._throttler.rate_limit == 1
    assert slow._throttler.period == 2.005  # + 5 ms: never two calls inside 2 s
    assert fast._throttler.rate_limit == 30
    assert abs(fast._throttler.period - 0.101) < 1e-9  # + 1 %
