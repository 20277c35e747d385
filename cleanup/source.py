"""Where candidates come from: the complete listing, explicit IDs, stdin.

The listing never skips. ``index`` means a page number on some servers and an item
offset on others (the API page has said both), so the lister asks for page 0 and
index 1 and compares: if index 1 starts with page 0's second task, ``index`` is an
offset. Tasks are de-duplicated by ``task_id`` and the count is checked against
``total``; a listing that cannot be completed raises ``ListingIncompleteError`` and
nothing is deleted.

Explicit IDs cost the fewer calls of two ways: one ``GET /tasks/{id}`` per ID, or the
listing (one call per 100 tasks). The first listing page tells the account's size,
so the rule is: more IDs left to find than listing pages left -> finish the listing;
otherwise GET the rest one by one. A single ID is always one GET.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
from .model import Task
from .policy import valid_task_id

log = structlog.get_logger(__name__)

PAGE_LIMIT = 100
_LISTING_TRIES = 3


@dataclass(frozen=True, slots=True)
class Run:
    """A task model run; one that is not finished holds its task."""

    run_id: str
    task_id: str
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
        items = await self._list_all("tasks", "tasks")
        return [_task(item, "tasks") for item in items]

    async def list_runs(self) -> list[Run]:
        """Every task model run, or ``ListingIncompleteError``."""
        runs = []
        for item in await self._list_all("task-runs", "runs"):
            task_id, status = item.get("task_id"), item.get("status")
            if isinstance(task_id, str):
                status = status if isinstance(status, str) else None
                runs.append(Run(str(item.get("run_id")), task_id, status))
        return runs

    async def lookup(self, ids: Sequence[str]) -> Lookup:
        """Current state of explicit IDs, by the cheaper of GETs and the listing."""
        wanted = list(dict.fromkeys(ids))
        result = Lookup(found={}, absent=set(), failed={})
        if len(wanted) > 1:
            first = await self._page("tasks", "tasks", 0)
            total, items = first
            wanted_set = set(wanted)
            for item in items:
                task = _task(item, "tasks")
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

    async def list_tasks_from(self, first: tuple[int, list[dict[str, Any]]]) -> list[Task]:
        """Finish a listing whose first page is already fetched."""
        items = await self._list_all("tasks", "tasks", first)
        return [_task(item, "tasks") for item in items]

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

    async def _list_all(
        self, resource: str, key: str, first: tuple[int, list[dict[str, Any]]] | None = None
    ) -> list[dict[str, Any]]:
        for _ in range(_LISTING_TRIES):
            items = await self._list_once(resource, key, first)
            if items is not None:
                return items
            first = None
            log.warning("listing_changed_while_read", resource=resource, action="listing again")
        raise ListingIncompleteError(
            f"GET /{resource}: the listing never added up to its reported total "
            f"({_LISTING_TRIES} tries); the account changed while being read, or the server's "
            "total is wrong. Nothing was deleted."
        )

    async def _list_once(
        self, resource: str, key: str, first: tuple[int, list[dict[str, Any]]] | None
    ) -> list[dict[str, Any]] | None:
        """One pass over the listing; ``None`` when it does not add up to ``total``."""
        total, page = first or await self._page(resource, key, 0)
        seen = {_item_id(item, resource): item for item in page}
        step = len(page)
        if total > len(seen) and step:
            offset_mode = self._offset_mode.get(resource)
            index = 1
            max_pages = math.ceil(total / step) + 3
            for _ in range(max_pages):
                page_total, page = await self._page(resource, key, index)
                if page_total != total:
                    return None
                if not page:
                    break
                if offset_mode is None:
                    offset_mode = step > 1 and _item_id(page[0], resource) == list(seen)[1]
                    self._offset_mode[resource] = offset_mode
                    log.debug("listing_index_meaning", resource=resource, offset=offset_mode)
                for item in page:
                    seen.setdefault(_item_id(item, resource), item)
                if len(seen) >= total:
                    break
                index += len(page) if offset_mode else 1
        if len(seen) != total:
            return None
        return list(seen.values())

    async def _page(self, resource: str, key: str, index: int) -> tuple[int, list[dict[str, Any]]]:
        where = f"GET /{resource}?index={index}&limit={PAGE_LIMIT}"
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
        return total, items


def _item_id(item: dict[str, Any], resource: str) -> str:
    value = item.get("run_id" if resource == "task-runs" else "task_id")
    if not isinstance(value, str) or not value:
        raise ListingIncompleteError(
            f"GET /{resource}: an item without a string ID; nothing was deleted"
        )
    return value


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
