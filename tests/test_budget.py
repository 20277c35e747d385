"""The rate budget: evenly spaced slots, a cool-down everyone obeys, no polling."""

from __future__ import annotations

import asyncio
import itertools

from cleanup.budget import LocalBudget, RateBudget


class FakeClock:
    """A clock tests move by hand (the budget reads it; asyncio still sleeps for real)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_budget_is_a_rate_budget():
    """The per-process budget implements the seam every caller uses."""
    assert isinstance(LocalBudget(1.0), RateBudget)


def test_throttling_lowers_the_rate_and_success_restores_it_slowly():
    """Each 429 cuts the effective rate by a quarter; successes restore it 2 % at a time."""
    budget = LocalBudget(100)
    budget.throttled(0.0)
    budget.throttled(0.0)
    assert budget.effective_rate == 56.25
    budget.succeeded()
    assert budget.effective_rate == 56.25 * 1.02
    for _ in range(200):
        budget.succeeded()
    assert budget.effective_rate == 100


async def test_slots_are_reserved_in_order_one_interval_apart():
    """Callers get slots 1/rate apart (plus a small margin), in the order they asked."""
    clock = FakeClock()  # frozen: every reservation after the first lies in its future
    budget = LocalBudget(1000, clock=clock)
    reserved = []
    for _ in range(4):
        await budget.acquire()
        reserved.append(budget._next)
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(reserved)}
    assert gaps == {round(0.001 * 1.02, 9)}


def test_fractional_rates_are_one_call_per_interval():
    """rate 0.5 is one call per 2 s (+20 ms margin); rate 300 is 1/300 s (+2 %)."""
    assert LocalBudget(0.5).interval_s == 2.02
    assert abs(LocalBudget(300).interval_s - 1.02 / 300) < 1e-12


async def test_cool_down_pauses_every_caller():
    """After a 429, the next slot for anyone is after the shared pause."""
    budget = LocalBudget(10_000)
    budget.throttled(0.3)
    waiter = asyncio.ensure_future(budget.acquire())
    await asyncio.sleep(0.05)
    assert not waiter.done()  # still inside the 0.3 s pause
    await waiter


async def test_acquire_sleeps_instead_of_polling():
    """Waiting for a slot is one timer, not a loop of wake-ups (idle CPU near zero)."""
    budget = LocalBudget(4.0)
    await budget.acquire()
    loop = asyncio.get_running_loop()
    timers_before = len(loop._scheduled)  # type: ignore[attr-defined]
    waiter = asyncio.ensure_future(budget.acquire())
    await asyncio.sleep(0)
    assert len(loop._scheduled) - timers_before == 1  # type: ignore[attr-defined]
    await waiter
