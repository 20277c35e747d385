"""The simulated NCLUE API as an aiohttp application: gateway checks, endpoints, faults.

Every request under the API prefix (``/api/v1``; ``SimConfig.api_prefix``) goes through
the same gate, in the gateway's order:

1. it is counted in ``SimState.requests`` (after it is answered, with its status);
2. a proxy in front of the gateway may answer 502 with an HTML page (``html_error``);
3. authentication: signature v2 headers valid and the timestamp within 5 minutes of
   the server clock, else 401 errorCode 200;
4. quota: 429 errorCode 400 once ``quota`` requests were accepted;
5. a throttle storm (``throttle_storm``), then the rate limit: 429 errorCode 420 when
   the sliding window is full (rejections do not count toward the window);
6. hang and latency; a redirect (``redirect_routes``) instead of the endpoint;
7. the endpoint (listings in ``listings.py``, lying bodies from ``lies.py``); a 2xx body
   may then be spoiled (``truncated_json``, ``non_object_body``), then padded, bombed or
   gzipped (``encoding.py``); every 429 gets ``retry_after``.

Any other path gets the gateway's 404 (``route_404_body``). Injected faults are counted
by kind in ``SimState.faults``; the hostile knobs live in ``hostile.py``.

``/_sim/stats`` and ``/_sim/tasks`` are unsigned, unlimited and uncounted control
endpoints for benchmarks and demos running the client in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate

from aiohttp import web

from cleanup.signing import ACCESS_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from cleanup.simulator.answers import (
    REFUSAL_MESSAGE,
    endpoint_error,
    error_response,
    refusal,
    route_not_found,
    task_not_found,
)
from cleanup.simulator.config import SimConfig
from cleanup.simulator.encoding import Encoding
from cleanup.simulator.hostile import Hostility, throttled
from cleanup.simulator.lies import Lies
from cleanup.simulator.listings import DEFAULT_LIMIT, MAX_LIMIT, Listings
from cleanup.simulator.state import SimState
from cleanup.simulator.wire import Wire

__all__ = [
    "API_PREFIX",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "REFUSAL_MESSAGE",
    "SimApi",
    "error_response",
]

API_PREFIX = SimConfig.api_prefix
"""The default API prefix (``SimConfig.api_prefix``)."""
TIMESTAMP_TOLERANCE_S = 300.0

Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _DropConnection(Exception):
    """Raised by an endpoint to close the connection without any response."""


class SimApi:
    """The handlers of one simulator, sharing its config, state and fault generator."""

    def __init__(self, config: SimConfig, state: SimState) -> None:
        """Bind the handlers to ``config`` (read on every request) and ``state``."""
        self.config = config
        self.state = state
        self.rng = random.Random(config.seed)
        self.hostile = Hostility(config, self.rng, state.faults)
        self.lies = Lies(config, self.rng, state.faults)
        self.encoding = Encoding(config, state.faults)
        self.wire = Wire(config, state.faults)
        self.listings = Listings(config, state, self.rng, self.hostile, self.wire)
        self.closing = asyncio.Event()

    def build(self) -> web.Application:
        """Return the aiohttp application serving the API and the control endpoints."""
        app = web.Application()
        router = app.router
        prefix = self.config.api_prefix
        routes: tuple[tuple[str, str, str, Endpoint], ...] = (
            ("GET", "/tasks", "list_tasks", self.listings.list_tasks),
            ("GET", "/tasks/{task_id}", "get_task", self.get_task),
            ("DELETE", "/tasks/{task_id}", "delete_task", self.delete),
            ("GET", "/task-runs", "list_runs", self.listings.list_runs),
            ("GET", "/profile/shopping-intents", "list_profiles", self.listings.list_profiles),
        )
        for method, path, route, endpoint in routes:
            router.add_route(method, prefix + path, self._gated(route, endpoint))
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
                if rejection is None:
                    rejection = self.hostile.redirect(route, request)
                if rejection is not None:
                    response: web.StreamResponse = rejection
                else:
                    response = self.hostile.spoil_body(route, await endpoint(request))
                    response = self.encoding.finish(route, response)
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

    async def get_task(self, request: web.Request) -> web.StreamResponse:
        """GET /tasks/{task_id}: the task with its current status (or a lie, see lies.py)."""
        asked = request.match_info["task_id"]
        task = self.lies.get_body_of(self.state, asked) or self.state.tasks.get(asked)
        if task is None:
            return task_not_found()
        task.refresh(time.monotonic())
        return web.json_response(self.hostile.task_object("get_task", self.wire.task(task)))

    async def delete(self, request: web.Request) -> web.StreamResponse:
        """DELETE /tasks/{task_id}: refuse while busy or held, else delete (with faults)."""
        task_id = request.match_info["task_id"]
        state = self.state
        if task_id not in state.tasks:
            return task_not_found()
        config = self.config
        reason = state.refusal_reason(task_id, registered_holds=config.registered_holds)
        if reason is not None:
            state.refusals[reason] += 1
            if (config.refusal_status, config.refusal_body) != (400, "nclue"):
                state.faults["refusal_shape"] += 1
            return refusal(config)
        lie = self.lies.delete_answer(state, task_id)
        if lie is not None:
            answer, deleted = lie
            if deleted:
                state.remove_task(task_id)
            return answer
        rng = self.rng
        if config.fail_before_delete > 0 and rng.random() < config.fail_before_delete:
            state.faults["fail_before_delete"] += 1
            return endpoint_error()
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

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """Any other path or method: the gateway's 404."""
        if self.config.route_404_body != "json":
            self.state.faults["route_404_body"] += 1
        response = route_not_found(self.config)
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
