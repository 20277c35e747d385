"""The rate budget: one seam for how many requests per second every call may spend.

``RateBudget`` is what the transport asks before each attempt. ``LocalBudget`` is the
per-process implementation; a budget shared between processes (``shared_budget.py``)
implements the same Protocol, so no caller changes when it is plugged in.

Guarantees of every implementation: never more than ``rate`` requests start in any
window of ``1 / rate`` seconds (at most one per slot, slots evenly spaced), a 429 seen
by anyone pauses everyone (``throttled``), and ``acquire`` sleeps until the next slot
instead of polling.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import structlog

log = structlog.get_logger(__name__)

_MIN_FACTOR = 0.05
_DECREASE = 0.75  # per 429
_RECOVERY = 1.02  # per success
MARGIN_SHARE, MARGIN_MAX_S = 0.02, 0.02
"""Slots are ``1 / rate`` apart plus 2 % of that, at most 20 ms (both budgets)."""


def spaced(exact_s: float) -> float:
    """The spacing of two slots ``exact_s`` apart at the rate, with the margin."""
    return exact_s + min(exact_s * MARGIN_SHARE, MARGIN_MAX_S)


@runtime_checkable
class RateBudget(Protocol):
    """How many requests may start, shared by every caller that holds it."""

    rate: float
    """The configured requests per second."""

    async def acquire(self) -> None:
        """Wait until one more request may start (sleeping, not polling)."""

    def throttled(self, pause_s: float) -> None:
        """A 429 was seen: nobody starts a request for ``pause_s``; the rate drops."""

    def succeeded(self) -> None:
        """A request was answered without a 429: the rate recovers a little."""

    @property
    def effective_rate(self) -> float:
        """The rate in force now (lower than ``rate`` after 429s)."""

    async def claim(self, task_id: str, owner: str, ttl_s: float) -> bool:
        """Whether this run (``owner``) may delete ``task_id``: False when another run
        sharing the budget claimed it first (a per-process budget always says True)."""

    async def aclose(self) -> None:
        """Release whatever the budget holds (connections, leases)."""


class LocalBudget:
    """Evenly spaced slots for one process: ``1 / rate`` seconds apart, reserved in order.

    Each caller reserves the next free slot and sleeps until it (one timer per caller,
    no polling). A 429 moves the next free slot past the pause and stretches the
    spacing by a quarter; every success shrinks it back by 2 %.
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if not rate > 0:
            raise ValueError("rate must be above zero")
        self.rate = rate
        self._clock = clock
        self._factor = 1.0
        self._next = 0.0

    @property
    def effective_rate(self) -> float:
        return self.rate * self._factor

    @property
    def interval_s(self) -> float:
        # A little more than 1 / rate: a slot is taken a moment before the request
        # leaves and sending jitters, so without the margin two requests could reach
        # the server just under 1 s apart at 1 request/s.
        return spaced(1.0 / self.effective_rate)

    async def acquire(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval_s
        wait = slot - now
        if wait > 0:
            await asyncio.sleep(wait)

    def throttled(self, pause_s: float) -> None:
        old = self._factor
        self._factor = max(_MIN_FACTOR, self._factor * _DECREASE)
        self._next = max(self._next, self._clock() + max(0.0, pause_s))
        if self._factor < old:
            log.warning(
                "rate_lowered",
                configured_rate=self.rate,
                effective_rate=round(self.effective_rate, 3),
                pause_s=round(pause_s, 3),
            )

    def succeeded(self) -> None:
        if self._factor < 1.0:
            self._factor = min(1.0, self._factor * _RECOVERY)

    async def claim(self, task_id: str, owner: str, ttl_s: float) -> bool:
        return True

    async def aclose(self) -> None:
        return None
