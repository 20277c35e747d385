"""Where candidates come from: the complete listing, explicit IDs, stdin.

The listing never skips. ``index`` means a page number on some servers and an item
offset on others (the API page has said both). After page 0 the lister asks for
the last window as an offset: a page-number server answers that with nothing, an
offset server with the last window, at no extra cost. Pages are then read from the
last to the first, which stays complete while other
shards delete tasks (see ``Source._list_once``). Tasks are de-duplicated by
``task_id`` and counted against ``total``; a listing that cannot be completed raises
``ListingIncompleteError`` and nothing is deleted.

Explicit IDs cost the fewer calls of two ways: one ``GET /tasks/{id}`` per ID, or the
listing (one call per 100 tasks). The first listing page tells the account's size,
so the rule is: more IDs left to find than listing pages left -> finish the listing;
otherwise GET the rest one by one. A single ID is always one GET.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

import structlog

from .client import NclueClient
from .errors import (
    ApiError,
    AuthError,
    ListingIncompleteError,
    NotFoundError,
    QuotaExceededError,
    UsageError,
)
from .model import Task, valid_task_id

log = structlog.get_logger(__name__)

PAGE_LIMIT = 100
_LISTING_TRIES = 3


@dataclass(frozen=True, slots=True)
class Run:
    """A task model run; one that is not finished holds its task."""

    run_id: str
    task_id: str | None
    status: str | None


@dataclass(slots=True)
class Lookup:
    """What the server said about a set of explicit IDs."""

    found: dict[str, Task]
    absent: set[str]
    failed: dict[str, ApiError]


class Source:
    """Lists tasks and runs completely, and looks up explicit IDs frugally."""

    def __init__(self, client: NclueClient) -> None:
        self._client = client
        self._offset_mode: dict[str, bool] = {}

    async def list_tasks(self) -> list[Task]:
        """Every task in the account, or ``ListingIncompleteError``."""
        tasks: list[Task] = await self._list_all("tasks")
        return tasks

    async def list_runs(self) -> list[Run]:
        """Every task model run, or ``ListingIncompleteError``."""
        runs: list[Run] = await self._list_all("task-runs")
        return runs

    async def lookup(self, ids: Sequence[str]) -> Lookup:
        """Current state of explicit IDs, by the cheaper of GETs and the listing."""
        wanted = list(dict.fromkeys(ids))
        result = Lookup(found={}, absent=set(), failed={})
        if len(wanted) > 1:
            first = await self._page("tasks", 0)
            total, items = first
            wanted_set = set(wanted)
            for task in items:
                if task.task_id in wanted_set:
                    result.found[task.task_id] = task
            left = [i for i in wanted if i not in result.found]
            pages_left = math.ceil(total / max(1, len(items))) - 1 if items else 0
            if len(left) > pages_left:
                listed = {t.task_id: t for t in await self.list_tasks_from(first)}
                result.found.update((i, listed[i]) for i in left if i in listed)
                result.absent.update(i for i in left if i not in listed)
                return result
            wanted = left
        await asyncio.gather(*(self._get_one(task_id, result) for task_id in wanted))
        return result

    async def list_tasks_from(self, first: tuple[int, list[Any]]) -> list[Task]:
        """Finish a listing whose first page is already fetched."""
        tasks: list[Task] = await self._list_all("tasks", first)
        return tasks

    async def _get_one(self, task_id: str, result: Lookup) -> None:
        try:
            result.found[task_id] = _task(await self._client.get_task(task_id), "tasks/{id}")
        except NotFoundError:
            result.absent.add(task_id)
        except (AuthError, QuotaExceededError):
            raise
        except ApiError as exc:
            result.failed[task_id] = exc
        except ListingIncompleteError as exc:  # a malformed task object
            result.failed[task_id] = ApiError(str(exc))

    async def _list_all(self, resource: str, first: tuple[int, list[Any]] | None = None) -> Any:
        for _ in range(_LISTING_TRIES):
            items = await self._list_once(resource, first)
            if items is not None:
                return items
            first = None
            log.warning("listing_changed_while_read", resource=resource, action="listing again")
        raise ListingIncompleteError(
            f"GET /{resource}: could not read a complete listing ({_LISTING_TRIES} tries): "
            "tasks kept appearing while it was read, or the pages do not add up to the "
            "server's total. Nothing was deleted."
        )

    async def _list_once(
        self, resource: str, first: tuple[int, list[Any]] | None
    ) -> list[Any] | None:
        """One pass over the listing; ``None`` when it cannot prove it missed nothing.

        After page 0 (which gives ``total`` and the page size) the pages are read from
        the last one back to the first. Tasks deleted meanwhile, by other shards or
        people, only move the tasks behind them towards the front, so a task not yet
        read stays below the windows already read, and the next window down still
        finds it; page 0 is read again at the end if anything moved. New tasks (a
        growing ``total``) could move unread ones up, so they start the pass again.
        When nothing changed, the tasks seen must add up to ``total`` exactly.
        """
        ident = _IDENT[resource]
        total, page = first or await self._page(resource, 0)
        seen = {ident(item): item for item in page}
        size, start_total = len(page), total
        if total > size and size:
            last = math.ceil(total / size) - 1
            offset_mode = self._offset_mode.get(resource)
            if offset_mode is None:
                # Ask for the last window as an offset. As a page number that index lies
                # far past the end, so an empty answer while `total` says otherwise means
                # pages; for offset servers (the API's current meaning) it costs nothing.
                now_total, page = await self._page(resource, last * size)
                if now_total > total or (not page and now_total <= last * size):
                    return None  # new tasks, or too much vanished to tell: list again
                offset_mode = self._offset_mode[resource] = bool(page)
                log.debug("listing_index_meaning", resource=resource, offset=offset_mode)
                total = now_total
                for item in page:
                    seen.setdefault(ident(item), item)
                if offset_mode:
                    last -= 1
            for k in range(last, -1, -1):
                if k == 0 and total == start_total:
                    break  # nothing moved: page 0 as first read still holds
                index = k * size if offset_mode else k
                now_total, page = await self._page(resource, index)
                if now_total > total:
                    return None
                total = now_total
                for item in page:
                    seen.setdefault(ident(item), item)
        if total == start_total and len(seen) != total:
            return None  # the pages do not add up to what the server says it holds
        # A page 0 shorter than asked for and holding all of `total` ended the list.
        paged = size == PAGE_LIMIT or start_total > size
        on_boundary = paged and size and start_total % size == 0
        if on_boundary and not await self._ends_here(resource, seen, start_total, size):
            return None  # more tasks than `total` admits: a server that lies
        return list(seen.values()) if len(seen) >= total else None

    async def _ends_here(self, resource: str, seen: dict[str, Any], total: int, size: int) -> bool:
        """When ``total`` ends on a page boundary, check that nothing lies beyond it.

        A ``total`` short by whole pages would otherwise go unnoticed. The window after
        the last one must hold no task not already seen. With a single page and the
        index meaning still unknown, index 1 shows it either way: as an offset it
        repeats page 0 plus what follows, as a page number it is what follows.
        """
        offset_mode = self._offset_mode.get(resource)
        index = 1 if offset_mode is None else total if offset_mode else total // size
        _, page = await self._page(resource, index)
        return all(_IDENT[resource](item) in seen for item in page)

    async def _page(self, resource: str, index: int) -> tuple[int, list[Any]]:
        """One page, its items already parsed (``Task`` or ``Run``): the raw JSON of a
        100,000-task account is not kept (a dry run's memory is measured)."""
        where = f"GET /{resource}?index={index}&limit={PAGE_LIMIT}"
        key = "runs" if resource == "task-runs" else "tasks"
        try:
            body = await self._client.list_page(resource, index, PAGE_LIMIT)
        except (AuthError, QuotaExceededError):
            raise
        except ApiError as exc:
            raise ListingIncompleteError(
                f"{where} failed after retries ({exc}); nothing was deleted"
            ) from exc
        total, items = body.get("total"), body.get(key)
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise ListingIncompleteError(f"{where}: 'total' is not a count; nothing was deleted")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ListingIncompleteError(f"{where}: '{key}' is not a list of objects")
        parse = _run if resource == "task-runs" else _task
        return total, [parse(item, resource) for item in items]


_IDENT: dict[str, Callable[[Any], str]] = {
    "tasks": attrgetter("task_id"),
    "task-runs": attrgetter("run_id"),
}


def _run(item: dict[str, Any], where: str) -> Run:
    run_id, task_id, status = item.get("run_id"), item.get("task_id"), item.get("status")
    if not isinstance(run_id, str) or not run_id:
        raise ListingIncompleteError(f"GET /{where}: a run without a run_id; nothing was deleted")
    return Run(
        run_id,
        task_id if isinstance(task_id, str) else None,
        status if isinstance(status, str) else None,
    )


def _task(item: dict[str, Any], where: str) -> Task:
    try:
        return Task.from_api(item)
    except ValueError as exc:
        raise ListingIncompleteError(f"GET /{where}: {exc}; nothing was deleted") from exc


def read_ids(lines: Iterable[str], source: str) -> list[str]:
    """Task IDs, one per line; blank lines and ``#`` comments are ignored."""
    ids = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if not valid_task_id(text):
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise UsageError(f"{source}: line {number}: {shown!r} is not a task ID")
        ids.append(text)
    return ids


def in_shard(task_id: str, index: int, count: int) -> bool:
    """Stable across processes and hosts (not Python's salted ``hash``)."""
    digest = hashlib.sha256(task_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count == index
