"""Complete listings: every item that existed while the listing ran, or an error.

What ``index`` and ``total`` mean is not settled by the API pages (an item offset or a
page number; the account's size or the page's), the order is undocumented, and other
processes create and delete while we read. So the lister proves completeness from the
items themselves, not from ``total``:

- Windows overlap: each window is asked to start a little before where the last one
  ended, and must contain one of the last items already read (the *anchor*). Items
  keep their relative order, so everything after the anchor is contiguous with what
  was read: nothing between two windows can be skipped. A window without an anchor
  (deletes moved the items below it) is asked again further back; too many such
  retries fail the pass.
- The list ends at a window shorter than it was asked to be, anchored. ``total`` is
  used only to notice a server that serves fewer tasks than it says it has (when it
  says so consistently), and, when it exceeds a page, that the server's pages are
  shorter than asked.
- ``index`` meaning is learned once: the second window is asked at index 99, which as
  an offset is the next window (anchored by the first page's last item) and costs
  nothing; as a page number it is far away and shows no anchor, and a probe at
  index 1 settles it. Page-number windows overlap by choosing the page size.
- A pass that cannot prove itself is started again, at most ``PASSES`` times, then the
  listing fails closed (``ListingIncompleteError``): nothing is deleted.

Two records of one ID that disagree (``ResourceKind.fingerprint``) are reported in
``Listing.conflicts`` for the caller to resolve.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .client import NclueClient, Page
from .errors import ApiError, AuthError, EndpointError, ListingIncompleteError, QuotaExceededError
from .kinds import RecordError, ResourceKind
from .logs import get_logger
from .stopping import Stopping

log = get_logger(__name__)
T = TypeVar("T")

LIMIT = 100
PASSES = 3
TAIL = 50
"""How many of the last items read can anchor the next window."""
_MIN_PAGE_LIMIT = 20
OnPage = Callable[[str, int, int, "int | None"], None]


@dataclass(frozen=True, slots=True)
class Listing(Generic[T]):
    """A complete listing: items by ID (first record kept), IDs whose records disagree."""

    items: dict[str, T]
    conflicts: frozenset[str] = frozenset()
    calls: int = 0


@dataclass(slots=True)
class _Pass(Generic[T]):
    kind: ResourceKind[T]
    items: dict[str, T] = field(default_factory=dict)
    conflicts: set[str] = field(default_factory=set)
    tail: list[str] = field(default_factory=list)
    end: int = 0  # position just after the last item read, in the current list
    calls: int = 0
    totals: list[int] = field(default_factory=list)
    counted: bool = False  # some page's total exceeded its items: total is the account's
    repeats: int = 0  # records of an ID already read, served again past the anchor
    short: tuple[int, int] | None = None  # (steady total, records served) when fewer

    def take(self, page: Page[T], start: int, after: int) -> None:
        """Accept the items after position ``after`` of an anchored ``page`` read at
        ``start``: they continue the list; the tail moves on to them."""
        ids = [self._add(item, ordered=True) for item in page.items[after:]]
        self.tail = (self.tail + ids)[-TAIL:]
        self.end = start + len(page.items)
        self._total(page)

    def extra(self, page: Page[T]) -> None:
        """Keep the items of an unanchored page (they exist) without trusting its place."""
        for item in page.items:
            self._add(item)
        self._total(page)

    def _add(self, item: T, *, ordered: bool = False) -> str:
        ident = self.kind.ident(item)
        known = self.items.get(ident)
        if known is None:
            self.items[ident] = item
            return ident
        self.repeats += ordered
        if self.kind.fingerprint(known) != self.kind.fingerprint(item):
            self.conflicts.add(ident)
        return ident

    def _total(self, page: Page[T]) -> None:
        if page.total is not None:
            self.totals.append(page.total)
            self.counted |= page.total > len(page.items)

    def anchor(self, page: Page[T]) -> int | None:
        """Position in ``page`` of the latest item of the tail it holds (None: no anchor)."""
        ids = [self.kind.ident(item) for item in page.items]
        first: dict[str, int] = {}
        for position, ident in enumerate(ids):
            first.setdefault(ident, position)
        for ident in reversed(self.tail):
            if ident in first:
                return first[ident]
        return None


class Lister:
    """Lists kinds completely; learns the server's ``index`` meaning once."""

    def __init__(
        self,
        client: NclueClient,
        stopping: Stopping,
        *,
        on_page: OnPage | None = None,
        depth: int = 4,
    ) -> None:
        self._client = client
        self.depth = depth
        """Windows asked for at once on an offset server (1: strictly one at a time)."""
        self._stopping = stopping
        self._on_page = on_page
        self.offset_index: bool | None = None
        self.calls = 0

    async def list_all(self, kind: ResourceKind[T], first: Page[T] | None = None) -> Listing[T]:
        """Every item of ``kind``, or ``ListingIncompleteError`` (auth and quota pass)."""
        why = "no pass could be proven complete"
        suspect: tuple[tuple[int, int], frozenset[str]] | None = None
        for attempt in range(1, PASSES + 1):
            try:
                done = await self._one_pass(kind, first)
                first = None  # a page read before the listing serves its first pass only
            except _PassFailed as exc:
                why = str(exc)
                log.warning("listing_restarted", kind=kind.name, attempt=attempt, why=why)
                continue
            except RecordError as exc:
                raise ListingIncompleteError(
                    f"GET {kind.path}: {exc}; nothing was deleted"
                ) from None
            except (AuthError, QuotaExceededError, EndpointError):
                raise
            except ApiError as exc:
                raise ListingIncompleteError(
                    f"GET {kind.path} failed after retries ({exc}); nothing was deleted"
                ) from exc
            if done.short is not None and suspect is None:
                # Served fewer than a steady total says: others creating and deleting
                # meanwhile, or a server that hides tasks. Another pass tells: the same
                # tasks and the same shortfall again is a liar; anything else moved.
                suspect = (done.short, frozenset(done.items))
                why = f"the server says {done.short[0]} but served {done.short[1]} items"
                log.warning("listing_restarted", kind=kind.name, attempt=attempt, why=why)
                continue
            if done.short is not None and suspect == (done.short, frozenset(done.items)):
                break
            return Listing(done.items, frozenset(done.conflicts), done.calls)
        raise ListingIncompleteError(
            f"GET {kind.path}: could not read a complete listing in {PASSES} passes ({why}); "
            "nothing was deleted"
        )

    async def _page(self, state: _Pass[T], index: int, limit: int) -> Page[T]:
        self._stopping.check()
        page = await self._client.list_page(state.kind, index, limit)
        state.calls += 1
        self.calls += 1
        if self._on_page is not None:
            expected = page.total if page.total is not None and page.total > LIMIT else None
            self._on_page(
                state.kind.name, state.calls, len(state.items) + len(page.items), expected
            )
        return page

    async def _one_pass(self, kind: ResourceKind[T], first: Page[T] | None) -> _Pass[T]:
        state: _Pass[T] = _Pass(kind)
        if first is None:
            first = await self._page(state, 0, LIMIT)
        state.take(first, 0, 0)
        limit = _page_size(first)
        if limit is not None and (
            self.offset_index is not None or await self._learn_meaning(state, limit)
        ):
            await self._scan(state, limit)
        return self._finish(state)

    async def _learn_meaning(self, state: _Pass[T], limit: int) -> bool:
        """Ask index ``limit - 1`` (then 1 if needed); returns whether more may follow."""
        probe = await self._page(state, limit - 1, limit)
        at = state.anchor(probe)
        if at is not None:
            self.offset_index = True
            state.take(probe, limit - 1, at + 1)
            return len(probe.items) >= limit
        # No anchor: a page number far away, or deletes moved everything. Index 1 says.
        second = await self._page(state, 1, limit)
        seen = sum(1 for item in second.items if state.kind.ident(item) in state.items)
        if second.items and seen * 2 >= len(second.items):
            self.offset_index = True
            at = state.anchor(second)
            state.take(second, 1, 0 if at is None else at + 1)
            return len(second.items) >= limit - 1
        # Page numbers. Page 1 is kept but not trusted: an anchored window that starts
        # inside page 0 checks the boundary next.
        self.offset_index = False
        state.extra(second)
        return True

    async def _scan(self, state: _Pass[T], limit: int) -> None:
        """Anchored windows until a short one; windows without an anchor are bounded.

        On an offset server the next windows' places are known in advance, so up to
        ``depth`` of them are asked for at once (the rate budget still spaces them):
        latency, not the rate, would otherwise bound a large listing. Each is accepted
        only if it holds the anchor of the one before; at the first that does not, the
        rest are dropped and the scan goes on one window at a time.
        """
        misses = 0
        overlap = 1
        while True:
            windows = self._windows(state, overlap, limit)
            pages = await asyncio.gather(*(self._page(state, i, size) for i, size, _ in windows))
            for (_, size, start), page in zip(windows, pages, strict=True):
                at = state.anchor(page)
                if at is None:
                    misses += 1
                    if misses > 10 + state.calls // 5 or start == 0:
                        raise _PassFailed("windows kept missing their anchor (the list moved)")
                    state.extra(page)
                    overlap = min(TAIL, max(overlap * 4, 4))
                    break
                state.take(page, start, at + 1)
                if len(page.items) < size:
                    return
                overlap = max(1, overlap // 2)

    def _windows(self, state: _Pass[T], overlap: int, limit: int) -> list[tuple[int, int, int]]:
        """The next window, and on an offset server the ones after it while the account's
        size (when ``total`` tells it) says they hold tasks."""
        first = self._window(state.end, overlap, limit)
        if not self.offset_index or self.depth <= 1 or overlap > 1:
            return [first]
        step = limit - overlap
        if state.counted and state.totals:
            left = state.totals[-1] - state.end
            count = min(self.depth, max(1, math.ceil((left + 2) / step)))
        else:
            count = min(self.depth, 2)
        return [(first[0] + k * step, limit, first[2] + k * step) for k in range(count)]

    def _window(self, end: int, overlap: int, limit: int) -> tuple[int, int, int]:
        """(index, limit, start) of a window starting at most ``end - overlap``."""
        start = max(0, end - overlap)
        if self.offset_index:
            return start, limit, start
        best = (0, limit, 0)
        best_new = -1
        for size in range(limit, _MIN_PAGE_LIMIT - 1, -1):
            index = start // size
            new = index * size + size - end
            if new > best_new:
                best, best_new = (index, size, index * size), new
        return best

    def _finish(self, state: _Pass[T]) -> _Pass[T]:
        totals = state.totals
        served = len(state.items) + state.repeats
        if state.counted and len(set(totals)) == 1 and served < totals[0]:
            state.short = (totals[0], served)
        return state


class _PassFailed(Exception):
    """This pass cannot prove it missed nothing; the lister tries another."""


def _page_size(first: Page[T]) -> int | None:
    """The server's page size when the first page shows more to come, else None."""
    count = len(first.items)
    if count >= LIMIT:
        return LIMIT
    if count and first.total is not None and first.total > count:
        return count  # the server serves pages shorter than asked, and says there is more
    return None
