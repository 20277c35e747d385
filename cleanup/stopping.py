"""Stopping: one request to stop, seen by every phase, and the signals that make it.

SIGTERM, SIGINT and SIGHUP set the same ``Stopping``: no new work starts in any
phase (listing, evidence, deleting, the busy wait); calls in flight get ``grace_s``.
A second signal exits at once with the signal's code.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Iterator

from .logs import get_logger

log = get_logger(__name__)
SIGNAL_EXIT = {"SIGHUP": 129, "SIGINT": 130, "SIGTERM": 143}


class Interrupted(Exception):
    """Raised where work would start after a stop request (not an error: a stop)."""


class Stopping:
    """A request to stop: no new work starts; in-flight work gets ``grace_s``."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: str | None = None
        self.grace_s = 0.0

    def request(self, reason: str, grace_s: float) -> None:
        if not self.event.is_set():
            self.reason, self.grace_s = reason, grace_s
            self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def by_signal(self) -> bool:
        return self.reason in SIGNAL_EXIT

    def check(self) -> None:
        """Raise ``Interrupted`` when a stop was requested."""
        if self.event.is_set():
            raise Interrupted(self.reason or "stopping")

    async def sleep(self, seconds: float) -> bool:
        """Sleep, waking early on a stop request; return whether one came."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            return False
        return True

    async def sleep_or_raise(self, seconds: float) -> None:
        if await self.sleep(seconds):
            raise Interrupted(self.reason or "stopping")


@contextlib.contextmanager
def signals_stop(
    stopping: Stopping, grace_s: float, on_second: Callable[[str], None]
) -> Iterator[None]:
    """Turn SIGTERM / SIGINT / SIGHUP into ``stopping`` while the block runs.

    ``on_second`` runs on a second signal (it flushes what it can); then the process
    exits at once with that signal's code.
    """
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stopping.by_signal:
            on_second(sig.name)
            os._exit(SIGNAL_EXIT[sig.name])
        log.warning(
            "stopping",
            signal=sig.name,
            grace_s=grace_s,
            action="no new work in any phase; calls in flight may finish",
        )
        stopping.request(sig.name, grace_s)

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handle, sig)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
