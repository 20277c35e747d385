"""One retry policy for every request: backoff with full jitter, Retry-After, storms.

``RetryPolicy`` decides whether and when a failed attempt is tried again; the client
asks it and nobody else computes a delay. The 429 cool-down is shared through the
rate budget (everyone pauses), and a storm of 429s with no success in between stops
the run like a spent quota instead of retrying for hours.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .errors import ApiError, ThrottledError

Sleep = Callable[[float], Awaitable[None]]

STORM_AFTER = 30
"""429s in a row, with no other answer between them, that make a storm."""


@dataclass(slots=True)
class RetryPolicy:
    """Backoff for transient errors: ``uniform(0, min(max, base * 2**(n-1)))``."""

    max_attempts: int = 6
    base_s: float = 1.0
    max_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)
    sleep: Sleep = asyncio.sleep
    storm_after: int = STORM_AFTER
    throttled_in_a_row: int = 0

    def delay(self, attempt: int, error: ApiError) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after ``error``."""
        if error.retry_after is not None:
            return min(float(error.retry_after), self.max_s)  # the server said: honoured, capped
        ceiling = min(self.max_s, self.base_s * 2.0 ** min(attempt - 1, 30))
        if isinstance(error, ThrottledError):
            # A 429 waits at least half its ceiling: the budget is spent for a while.
            return self.rng.uniform(0.5, 1.0) * ceiling
        return self.rng.uniform(0, ceiling)  # full jitter

    def gives_up(self, attempt: int) -> bool:
        return attempt >= self.max_attempts

    def answered(self, throttled: bool) -> bool:
        """Count an answer; return whether the 429s in a row now make a storm."""
        self.throttled_in_a_row = self.throttled_in_a_row + 1 if throttled else 0
        return self.throttled_in_a_row >= self.storm_after
