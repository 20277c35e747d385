"""Where candidates come from: the complete listing, explicit IDs, stdin; and holders.

Explicit IDs cost the fewer calls of two ways. A single ID is one ``GET /tasks/{id}``.
For more, the first listing page proves the endpoint and tells the account's size;
if more IDs are left to find than listing pages are left, the listing is read whole,
otherwise the rest are fetched with a GET each. An ID the listing does not hold is
confirmed with a GET before it is called absent (the listing may have raced a
create), and two listing records of one ID that disagree are settled with a GET.
Every body must name the ID asked for (``client.py`` checks); only IDs that came
from the selection are ever acted on.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .client import NclueClient, Page
from .errors import (
    ApiError,
    AuthError,
    EndpointError,
    ListingIncompleteError,
    QuotaExceededError,
    UsageError,
)
from .kinds import PROFILES, RUNS, TASKS
from .listing import LIMIT, Lister
from .model import Holder, Task, valid_task_id
from .stopping import Interrupted


@dataclass(slots=True)
class Lookup:
    """What the server said about a set of explicit IDs."""

    found: dict[str, Task] = field(default_factory=dict)
    absent: set[str] = field(default_factory=set)
    failed: dict[str, ApiError] = field(default_factory=dict)


class Source:
    """Complete listings of tasks and holders, and frugal lookups of explicit IDs."""

    def __init__(self, client: NclueClient, lister: Lister) -> None:
        self._client = client
        self.lister = lister
        self.listed_size: int | None = None
        """The account's size when a look-up read the whole listing (None otherwise)."""

    async def list_tasks(self, first: Page[Task] | None = None) -> dict[str, Task]:
        """Every task in the account (conflicting records settled), or an error.

        ``first``: page 0, when the caller has read it already (it is not read again).
        """
        listing = await self.lister.list_all(TASKS, first)
        tasks = listing.items  # this call's own: not copied
        if listing.conflicts:
            settled = await self.get_each(sorted(listing.conflicts))
            if settled.failed:
                task_id, error = next(iter(settled.failed.items()))
                raise ListingIncompleteError(
                    f"two listing records of {task_id} disagree and a GET could not settle it "
                    f"({error}); nothing was deleted"
                )
            for task_id in settled.absent:
                tasks.pop(task_id, None)
            tasks.update(settled.found)
        return tasks

    async def holders(self) -> list[Holder]:
        """Every task run and shopping-intent profile (what holds or references tasks).

        Two records of one holder that disagree are both kept: whichever holds wins.
        """
        runs, profiles = await asyncio.gather(
            self.lister.list_all(RUNS), self.lister.list_all(PROFILES)
        )
        return [*runs.items.values(), *profiles.items.values()]

    async def lookup(self, ids: Sequence[str], *, listed: dict[str, Task] | None = None) -> Lookup:
        """Current state of explicit IDs, by the cheaper of GETs and the listing."""
        wanted = list(dict.fromkeys(ids))
        result = Lookup()
        if listed is None and len(wanted) > 1:
            first = await self._client.list_page(TASKS, 0, LIMIT)
            on_first = {t.task_id: t for t in first.items}
            result.found.update((i, on_first[i]) for i in wanted if i in on_first)
            left = [i for i in wanted if i not in result.found]
            pages_left = math.ceil((first.total or 0) / LIMIT) - 1
            if len(first.items) >= LIMIT and len(left) > max(0, pages_left):
                listed = await self.list_tasks(first)
                self.listed_size = len(listed)
            wanted = left
        if listed is not None:
            result.found.update((i, listed[i]) for i in wanted if i in listed)
            wanted = [i for i in wanted if i not in listed]
        more = await self.get_each(wanted)
        result.found.update(more.found)
        result.absent |= more.absent
        result.failed.update(more.failed)
        return result

    async def get_each(self, ids: Iterable[str]) -> Lookup:
        """One GET per ID, concurrently (within the budget and the concurrency cap)."""
        result = Lookup()

        async def one(task_id: str) -> None:
            try:
                task = await self._client.get_task(task_id)
            except (AuthError, QuotaExceededError, EndpointError, Interrupted):
                raise
            except ApiError as exc:
                result.failed[task_id] = exc
                return
            if task is None:
                result.absent.add(task_id)
            else:
                result.found[task_id] = task

        await asyncio.gather(*(one(task_id) for task_id in ids))
        return result


def read_ids(lines: Iterable[str], source: str, *, secrets: Iterable[str] = ()) -> list[str]:
    """Task IDs, one per line; blank lines and ``#`` comments are ignored.

    A bad line is named by its number only, never quoted (it might be a secret: a
    credentials file passed by mistake), and a line equal to a loaded credential is
    refused outright.
    """
    forbidden = {s for s in secrets if s}
    ids = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text in forbidden:
            raise UsageError(
                f"{source}: line {number} is one of the loaded credentials, not a task ID; "
                "nothing was sent"
            )
        if not valid_task_id(text):
            raise UsageError(
                f"{source}: line {number} is not a task ID (expected letters, digits, "
                "'-', '_' or '.', at most 128 characters); nothing was sent"
            )
        ids.append(text)
    return ids


def in_shard(task_id: str, index: int, count: int) -> bool:
    """Stable across processes and hosts (not Python's salted ``hash``)."""
    digest = hashlib.sha256(task_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count == index
