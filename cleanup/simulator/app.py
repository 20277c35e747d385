"""The simulated NCLUE API as an aiohttp application: gateway checks, endpoints, faults.

Every request under ``/api/v1`` goes through the same gate, in the gateway's order:

1. it is counted in ``SimState.requests`` (after it is answered, with its status);
2. a proxy in front of the gateway may answer 502 with an HTML page (``html_error``);
3. authentication: signature v2 headers valid and the timestamp within 5 minutes of
   the server clock, else 401 errorCode 200;
4. quota: 429 errorCode 400 once ``quota`` requests were accepted;
5. a throttle storm (``throttle_storm``), then the rate limit: 429 errorCode 420 when
   the sliding window is full (rejections do not count toward the window);
6. hang and latency, then the endpoint; a 2xx body may then be spoiled
   (``truncated_json``, ``non_object_body``); every 429 gets ``retry_after``.

Injected faults are counted by kind in ``SimState.faults``; the hostile knobs live in
``hostile.py``.

``/_sim/stats`` and ``/_sim/tasks`` are unsigned, unlimited and uncounted control
endpoints for benchmarks and demos running the client in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from typing import Any

from aiohttp import web

from cleanup.signing import ACCESS_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from cleanup.simulator.config import SimConfig
from cleanup.simulator.hostile import Hostility, throttled
from cleanup.simulator.state import BUSY_TASK_STATUSES, SimState

API_PREFIX = "/api/v1"
TIMESTAMP_TOLERANCE_S = 300.0
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
REFUSAL_MESSAGE = (
    "The task cannot be deleted now. Try again under conditions where deletion is possible."
)

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _DropConnection(Exception):
    """Raised by an endpoint to close the connection without any response."""


def error_response(
    status: int, code: str, message: str, details: str | None = None
) -> web.Response:
    """Return a gateway-shaped error: ``{"error": {"errorCode", "message", "details"}}``."""
    body = {"error": {"errorCode": code, "message": message, "details": details}}
    return web.Response(status=status, body=json.dumps(body), content_type="application/json")


def _task_not_found() -> web.Response:
    """NCLUE's own 404 for a task id that does not exist."""
    return error_response(404, "10106", "Task not found")


def _endpoint_error() -> web.Response:
    """The gateway's transient 503."""
    return error_response(503, "500", "Endpoint Error")


def _parse_count(raw: str | None, default: int) -> int | None:
    """Return a non-negative decimal integer from a query value, None if malformed."""
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)


class SimApi:
    """The handlers of one simulator, sharing its config, state and fault generator."""

    def __init__(self, config: SimConfig, state: SimState) -> None:
        """Bind the handlers to ``config`` (read on every request) and ``state``."""
        self.config = config
        self.state = state
        self.rng = random.Random(config.seed)
        self.hostile = Hostility(config, self.rng, state.faults)
        self.closing = asyncio.Event()

    def build(self) -> web.Application:
        """Return the aiohttp application serving the API and the control endpoints."""
        app = web.Application()
        router = app.router
        router.add_route("GET", f"{API_PREFIX}/tasks", self._gated("list_tasks", self.list_tasks))
        router.add_route(
            "GET", f"{API_PREFIX}/tasks/{{task_id}}", self._gated("get_task", self.get_task)
        )
        router.add_route(
            "DELETE", f"{API_PREFIX}/tasks/{{task_id}}", self._gated("delete_task", self.delete)
        )
        router.add_route("GET", f"{API_PREFIX}/task-runs", self._gated("list_runs", self.list_runs))
        router.add_route("GET", "/_sim/stats", self.stats)
        router.add_route("GET", "/_sim/tasks", self.remaining)
        router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    def server_time(self) -> float:
        """Return the server's wall clock: real time plus the configured offset."""
        return time.time() + self.config.clock_offset_s

    def _date_header(self, response: web.StreamResponse) -> None:
        """Stamp the server clock on a response, the way clients detect clock skew."""
        response.headers["Date"] = formatdate(self.server_time(), usegmt=True)

    # -- the gate ------------------------------------------------------------------

    def _gated(self, route: str, endpoint: Endpoint) -> Endpoint:
        """Wrap an endpoint in counting, authentication, quota, rate limit and delays."""

        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                rejection = self.hostile.before_gateway(route) or self._admit(request, route)
                await self._delay()
                if rejection is not None:
                    response: web.StreamResponse = rejection
                else:
                    response = self.hostile.spoil_body(route, await endpoint(request))
            except _DropConnection:
                self.state.requests[(request.method, route, 0)] += 1
                if request.transport is not None:
                    request.transport.close()
                # Never written: the transport is closing, aiohttp drops it quietly.
                return web.Response(status=204)
            self.state.requests[(request.method, route, response.status)] += 1
            self.hostile.stamp_429(response)
            self._date_header(response)
            return response

        return handler

    def _admit(self, request: web.Request, route: str) -> web.Response | None:
        """Return the gateway's rejection of ``request``, or None to let it through."""
        config = self.config
        headers = request.headers
        if not verify(
            request.method, request.raw_path, headers, config.access_key, config.secret_key
        ):
            return error_response(401, "200", "Authentication Failed", self._auth_detail(request))
        skew = int(headers[TIMESTAMP_HEADER]) / 1000 - self.server_time()
        if abs(skew) > TIMESTAMP_TOLERANCE_S:
            return error_response(
                401,
                "200",
                "Authentication Failed",
                "the timestamp is more than 5 minutes away from the gateway clock",
            )
        state = self.state
        if config.quota is not None and state.accepted >= config.quota:
            state.faults["quota_exceeded"] += 1
            return error_response(429, "400", "Quota Exceeded")
        if self.hostile.storm(route):
            return throttled()
        if config.rate_limit is not None and not self._take_rate_slot(config.rate_limit):
            state.faults["rate_limited"] += 1
            return error_response(429, "420", "Rate Limited")
        state.accepted += 1
        return None

    def _take_rate_slot(self, rate: float) -> bool:
        """Record one request in the sliding window unless the window is full.

        The window is 1 s holding ``rate`` requests; below 1 request/s it is ``1/rate``
        seconds holding one.
        """
        window = max(1.0, 1.0 / rate) if rate > 0 else 1.0
        capacity = rate * window
        now = time.monotonic()
        times = self.state.accepted_times
        while times and times[0] <= now - window:
            times.popleft()
        if len(times) >= capacity:
            return False
        times.append(now)
        return True

    def _auth_detail(self, request: web.Request) -> str:
        """Say why a signature check failed, without echoing any credential."""
        headers = request.headers
        names = (TIMESTAMP_HEADER, ACCESS_KEY_HEADER, SIGNATURE_HEADER)
        missing = [name for name in names if not headers.get(name)]
        if missing:
            return "missing header(s): " + ", ".join(missing)
        if headers[ACCESS_KEY_HEADER] != self.config.access_key:
            return "unknown access key"
        if not headers[TIMESTAMP_HEADER].isdigit():
            return "the timestamp is not milliseconds since the epoch"
        return "the signature does not match the request"

    async def _delay(self) -> None:
        """Sleep for a configured hang (probability ``hang``) and the fixed latency."""
        config = self.config
        if config.hang > 0 and self.rng.random() < config.hang:
            self.state.faults["hang"] += 1
            # Interrupted when the simulator closes, so a hung test ends promptly.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closing.wait(), config.hang_s)
        if config.latency_s > 0:
            await asyncio.sleep(config.latency_s)

    # -- endpoints -----------------------------------------------------------------

    def _page_args(self, request: web.Request) -> tuple[int, int, int] | web.Response:
        """Return (index, limit, start position) from the query, or a 400 response."""
        query = request.query
        limit = _parse_count(query.get("limit"), DEFAULT_LIMIT)
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            return error_response(
                400, "100", "Bad Request Exception", "limit must be an integer from 1 to 100"
            )
        index = _parse_count(query.get("index"), 0)
        if index is None:
            return error_response(
                400, "100", "Bad Request Exception", "index must be a non-negative integer"
            )
        start = index * limit if self.config.index_mode == "page" else index
        return index, limit, start

    async def list_tasks(self, request: web.Request) -> web.StreamResponse:
        """GET /tasks: one page of tasks, newest first."""
        args = self._page_args(request)
        if isinstance(args, web.Response):
            return args
        index, limit, start = args
        config = self.config
        if index in config.fail_list_pages or (
            config.fail_list > 0 and self.rng.random() < config.fail_list
        ):
            self.state.faults["fail_list"] += 1
            return _endpoint_error()
        hostile = self.hostile
        page = self.state.task_page(hostile.listing_start(start), limit)
        body: dict[str, Any] = {
            "index": index,
            "limit": limit,
            "total": hostile.listing_total(len(self.state.tasks)),
            "tasks": [hostile.task_object("list_tasks", task.to_json()) for task in page],
        }
        return web.json_response(body)

    async def get_task(self, request: web.Request) -> web.StreamResponse:
        """GET /tasks/{task_id}: the task with its current status."""
        task = self.state.tasks.get(request.match_info["task_id"])
        if task is None:
            return _task_not_found()
        task.refresh(time.monotonic())
        return web.json_response(self.hostile.task_object("get_task", task.to_json()))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        """DELETE /tasks/{task_id}: refuse while busy or held, else delete (with faults)."""
        task_id = request.match_info["task_id"]
        state = self.state
        task = state.tasks.get(task_id)
        if task is None:
            return _task_not_found()
        now = time.monotonic()
        task.refresh(now)
        config = self.config
        if task.status in BUSY_TASK_STATUSES or state.blocking_runs(task_id, now):
            return error_response(config.refusal_status, "10107", REFUSAL_MESSAGE)
        rng = self.rng
        if config.fail_before_delete > 0 and rng.random() < config.fail_before_delete:
            state.faults["fail_before_delete"] += 1
            return _endpoint_error()
        if config.drop_connection > 0 and rng.random() < config.drop_connection:
            state.faults["drop_connection"] += 1
            if rng.random() < 0.5:
                state.remove_task(task_id)
            raise _DropConnection
        state.remove_task(task_id)
        if config.fail_after_delete > 0 and rng.random() < config.fail_after_delete:
            state.faults["fail_after_delete"] += 1
            return error_response(504, "510", "Endpoint Timeout")
        return web.json_response({"task_id": task_id})

    async def list_runs(self, request: web.Request) -> web.StreamResponse:
        """GET /task-runs: one page of runs, newest first."""
        args = self._page_args(request)
        if isinstance(args, web.Response):
            return args
        index, limit, start = args
        page = self.state.run_page(self.hostile.listing_start(start), limit)
        body: dict[str, Any] = {
            "index": index,
            "limit": limit,
            "total": self.hostile.listing_total(len(self.state.runs)),
            "runs": [run.to_json() for run in page],
        }
        return web.json_response(body)

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """Any other path or method: the gateway's 404."""
        response = error_response(404, "300", "Not Found Exception")
        self.state.requests[(request.method, "other", 404)] += 1
        self._date_header(response)
        return response

    # -- control endpoints (unsigned, uncounted) -------------------------------------

    async def stats(self, request: web.Request) -> web.StreamResponse:
        """GET /_sim/stats: the state's counters."""
        return web.json_response(self.state.snapshot())

    async def remaining(self, request: web.Request) -> web.StreamResponse:
        """GET /_sim/tasks: the ids of the tasks still in the account."""
        task_ids = list(self.state.tasks)
        return web.json_response({"count": len(task_ids), "task_ids": task_ids})
