"""The three listings: GET /tasks, /task-runs and /profile/shopping-intents.

They share one shape (``{"index", "limit", "total", <items>}``), one pagination rule
(``index_mode``), the order (``order``), the meaning of ``total`` (``total_meaning``,
then ``total_offset``) and the race hooks (``on_list_page``; for /tasks also
``create_per_list_page`` and ``delete_per_list_page``, run once the page is built).
GET /tasks alone also lists ``conflicting_duplicates`` twice and fails on request
(``fail_list_pages``, ``fail_list``).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web

from cleanup.simulator.answers import bad_request, endpoint_error
from cleanup.simulator.config import SimConfig
from cleanup.simulator.hostile import Hostility
from cleanup.simulator.records import BUSY_TASK_STATUSES, SimTask
from cleanup.simulator.state import SimState
from cleanup.simulator.wire import Wire

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

T = TypeVar("T")
Entry = tuple[SimTask, str | None]
"""A listed task and the status shown instead of its own (None: its own)."""


def _parse_count(raw: str | None, default: int) -> int | None:
    """Return a non-negative decimal integer from a query value, None if malformed."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


def with_ghosts(ordered: Sequence[SimTask], ghosts: set[str]) -> list[Entry]:
    """The listing with a second, contradicting record of each ghost, far from the first.

    A ghost in the first half is listed again at the end, one in the second half again
    at the start, so the two records are at least half the listing apart.
    """
    head: list[Entry] = []
    tail: list[Entry] = []
    for position, task in enumerate(ordered):
        if task.task_id in ghosts:
            fake = "completed" if task.status in BUSY_TASK_STATUSES else "in_progress"
            (tail if 2 * position < len(ordered) else head).append((task, fake))
    return head + [(task, None) for task in ordered] + tail


class Listings:
    """The listing endpoints of one simulator."""

    def __init__(
        self,
        config: SimConfig,
        state: SimState,
        rng: random.Random,
        hostile: Hostility,
        wire: Wire,
    ) -> None:
        """Share the simulator's live config, state, fault generator and renderers."""
        self.config = config
        self.state = state
        self.rng = rng
        self.hostile = hostile
        self.wire = wire
        self.faults = state.faults

    def page_args(self, request: web.Request) -> tuple[int, int, int] | web.Response:
        """Return (index, limit, start position) from the query, or a 400 response."""
        query = request.query
        limit = _parse_count(query.get("limit"), DEFAULT_LIMIT)
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            return bad_request("limit must be an integer from 1 to 100")
        index = _parse_count(query.get("index"), 0)
        if index is None:
            return bad_request("index must be a non-negative integer")
        start = index * limit if self.config.index_mode == "page" else index
        return index, limit, start

    def _window(
        self, fetch: Callable[[int, int], Sequence[T]], size: int, start: int, count: int
    ) -> list[T]:
        """Items ``start`` .. ``start + count`` in the configured order (``fetch`` is
        newest first)."""
        start = self.hostile.listing_start(start)
        if self.config.order == "newest_first":
            return list(fetch(start, count))
        self.faults["oldest_first"] += 1
        end = size - start
        if end <= 0:
            return []
        begin = max(0, end - count)
        return list(reversed(fetch(begin, end - begin)))

    def _total(self, account: int, page: int) -> int:
        """The ``total`` a page reports, by ``total_meaning`` and ``total_offset``."""
        if self.config.total_meaning == "page":
            self.faults["total_meaning"] += 1
            return self.hostile.listing_total(page)
        return self.hostile.listing_total(account)

    def _task_entries(self, start: int, count: int) -> tuple[list[Entry], int]:
        """One page of (task, shown status) and the length of the whole listing."""
        state = self.state
        ghosts = set(self.config.conflicting_duplicates).intersection(state.tasks)
        if not ghosts:
            page = self._window(state.task_page, len(state.tasks), start, count)
            return [(task, None) for task in page], len(state.tasks)
        full = with_ghosts(state.task_page(0, len(state.tasks)), ghosts)
        entries = self._window(lambda at, n: full[at : at + n], len(full), start, count)
        self.faults["conflicting_duplicate"] += sum(1 for _, shown in entries if shown)
        return entries, len(full)

    async def list_tasks(self, request: web.Request) -> web.StreamResponse:
        """GET /tasks: one page of tasks."""
        args = self.page_args(request)
        if isinstance(args, web.Response):
            return args
        index, limit, start = args
        config = self.config
        if index in config.fail_list_pages or (
            config.fail_list > 0 and self.rng.random() < config.fail_list
        ):
            self.faults["fail_list"] += 1
            return endpoint_error()
        entries, size = self._task_entries(start, limit)
        tasks = [
            self.hostile.task_object("list_tasks", self.wire.task(task, shown))
            for task, shown in entries
        ]
        body: dict[str, Any] = {"index": index, "limit": limit}
        body["total"] = self._total(size, len(tasks))
        body["tasks"] = tasks
        self._after_page("list_tasks", index)
        return web.json_response(body)

    async def list_runs(self, request: web.Request) -> web.StreamResponse:
        """GET /task-runs: one page of runs."""
        state = self.state
        return self._dependents(
            request, "list_runs", "runs", state.run_page, len(state.runs), self.wire.run
        )

    async def list_profiles(self, request: web.Request) -> web.StreamResponse:
        """GET /profile/shopping-intents: one page of shopping-intent profiles."""
        state = self.state
        return self._dependents(
            request,
            "list_profiles",
            "profiles",
            state.profile_page,
            len(state.profiles),
            self.wire.profile,
        )

    def _dependents(
        self,
        request: web.Request,
        route: str,
        key: str,
        page_of: Callable[[int, int], Sequence[Any]],
        count: int,
        render: Callable[[Any], dict[str, Any]],
    ) -> web.StreamResponse:
        """One page of runs or profiles: the same pagination, total and hooks as tasks."""
        args = self.page_args(request)
        if isinstance(args, web.Response):
            return args
        index, limit, start = args
        items = [render(item) for item in self._window(page_of, count, start, limit)]
        body: dict[str, Any] = {"index": index, "limit": limit}
        body["total"] = self._total(count, len(items))
        body[key] = items
        self._after_page(route, index)
        return web.json_response(body)

    # -- races: the account moves between page reads -----------------------------------

    def _after_page(self, route: str, index: int) -> None:
        """Run the race knobs and the test's hook once a page is built."""
        config = self.config
        if route == "list_tasks":
            for _ in range(config.create_per_list_page):
                self._create_one()
            for _ in range(config.delete_per_list_page):
                self._vanish_one()
        if config.on_list_page is not None:
            self.faults["on_list_page"] += 1
            config.on_list_page(self.state, route, index)

    def _create_one(self) -> None:
        """A new registered task at the newest end (another client created it)."""
        task_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.state.add_task(task_id, f"race-new-{task_id[:8]}", "registered", datetime.now(UTC))
        self.faults["created_during_listing"] += 1

    def _vanish_one(self) -> None:
        """A random task disappears (another client deleted it)."""
        state = self.state
        if not state.tasks:
            return
        victim = state.task_page(self.rng.randrange(len(state.tasks)), 1)
        if victim and state.vanish_task(victim[0].task_id):
            self.faults["deleted_during_listing"] += 1
