"""The NCLUE API as typed calls: pages, one task, one delete, with every answer checked.

Everything a server says is checked here, in the one layer that reads responses, so
no caller can forget: a listing must be an object with a list of objects whose IDs
are plain; a GET must name the task that was asked for; a DELETE's 2xx body, where
there is one, must be JSON naming the same task (an HTML page, an ``error`` object or
another task's ID is a failure); a redirect is never followed and fails the call; a
404 counts only with the API's JSON error body and once the endpoint is proven (a
first listing or GET succeeded), else it is a configuration error (exit 2).

Status codes become our exceptions in ``translate``; transient ones are retried by
``retrying`` with the run's one ``RetryPolicy``. A 401 while the local clock is far
from the gateway's ``Date`` is sent once more with the timestamp corrected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any, Generic, TypeVar

from .answers import (
    GATEWAY_NOT_FOUND,
    check_delete_body,
    parse_json,
    route_not_found,
    skew,
    translate,
)
from .errors import (
    ApiError,
    BadResponseError,
    NotFoundError,
    ThrottledError,
    ThrottleStormError,
    TransientApiError,
)
from .kinds import TASKS, RecordError, ResourceKind, parse_task
from .logs import get_logger
from .model import Task
from .retrying import RetryPolicy
from .stopping import Stopping
from .transport import OnSend, Reply, Transport
from .untrusted import printable

log = get_logger(__name__)
T = TypeVar("T")
R = TypeVar("R")

CLOCK_SKEW_THRESHOLD_S = 60.0
OnRetry = Callable[[ApiError, int, float], None]
RetryIf = Callable[[ApiError], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One listing page: its parsed items and the ``total`` it reported (None if absent)."""

    items: list[T]
    total: int | None


@dataclass(frozen=True, slots=True)
class DeleteReply:
    """A DELETE's answer: accepted (2xx) or absent (404), and the sends it took."""

    absent: bool
    sends: int
    body_named_task: bool


class NclueClient:
    """Typed, checked, retried calls over one ``Transport``."""

    def __init__(
        self,
        transport: Transport,
        retry: RetryPolicy,
        stopping: Stopping,
        *,
        timezone_: tzinfo = UTC,
    ) -> None:
        self.transport = transport
        self.retry = retry
        self.stopping = stopping
        self.tz = timezone_
        self.proven = False
        """A listing or GET succeeded: a later 404 with the API's body means absent."""
        self.any_success = False
        self._skew_corrected = False
        self._storm = False
        self._get_route_proven = False

    # -- calls -------------------------------------------------------------------------

    async def list_page(self, kind: ResourceKind[T], index: int, limit: int) -> Page[T]:
        """One page of ``kind`` (retried); bad records raise ``RecordError``."""
        query = f"index={index}&limit={limit}"

        async def once() -> Page[T]:
            try:
                reply = await self._exchange("GET", kind.path, query, route=kind.route)
            except NotFoundError as exc:  # a listing always exists: its 404 is the route's
                raise route_not_found(f"GET {kind.path}", str(exc)) from None
            body = self._object(reply, f"GET {kind.path}?{query}", transient=True)
            items, total = body.get(kind.list_key), body.get("total")
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise TransientApiError(
                    f"GET {kind.path}?{query}: '{kind.list_key}' is not a list of objects"
                )
            if isinstance(total, bool) or not isinstance(total, int) or total < 0:
                total = None
            page = Page([kind.parse(item, self.tz) for item in items], total)
            self.proven = True
            return page

        return await self.retrying(once)

    async def get_task(self, task_id: str) -> Task | None:
        """The task now, or None when the API says it does not exist (404)."""
        where = f"GET /tasks/{task_id}"

        async def once() -> Task | None:
            try:
                reply = await self._exchange("GET", f"/tasks/{task_id}", route="get_task")
            except NotFoundError as exc:
                if not self.proven:
                    await self.prove()
                if exc.code == GATEWAY_NOT_FOUND:
                    await self._prove_get_route(task_id)
                return None
            body = self._object(reply, where, transient=True)
            try:
                task = parse_task(body, self.tz)
            except RecordError as exc:
                raise BadResponseError(f"{where}: {exc}") from None
            if task.task_id != task_id:
                raise BadResponseError(
                    f"{where}: the answer names another task ({printable(task.task_id, 60)}); "
                    "nothing is done with it"
                )
            self.proven = True
            return task

        return await self.retrying(once)

    async def _prove_get_route(self, missing: str) -> None:
        """A GET answered the gateway's 404: GET a task the listing shows, once, to tell
        "no such task" from "no such route" (which would make every ID look absent)."""
        if self._get_route_proven:
            return
        page = await self.list_page(TASKS, 0, 1)
        known = next((t.task_id for t in page.items if t.task_id != missing), None)
        if known is None:
            return  # nothing to prove it with; the listing proved the endpoint
        try:
            await self._exchange("GET", f"/tasks/{known}", route="get_task")
        except NotFoundError as exc:
            raise route_not_found(f"GET /tasks/{known}", "a listed task answers 404") from exc
        self._get_route_proven = True

    async def prove(self) -> None:
        """Prove the endpoint with the smallest listing (a 404 here: wrong endpoint)."""
        try:
            await self.list_page(TASKS, 0, 1)
        except NotFoundError as exc:
            raise route_not_found(self.transport.endpoint, str(exc)) from exc

    async def delete_once(self, task_id: str, *, on_send: OnSend | None = None) -> DeleteReply:
        """One DELETE (not retried here: the deleter decides from evidence)."""
        where = f"DELETE /tasks/{task_id}"
        path = f"/tasks/{task_id}"
        reply = await self._send("DELETE", path, "", route="delete_task", on_send=on_send)
        try:
            self._raise_for(reply, "DELETE", path)
        except NotFoundError as exc:
            if not self.proven:
                raise route_not_found(self.transport.endpoint, where) from None
            if exc.code == GATEWAY_NOT_FOUND and await self.get_task(task_id) is not None:
                # The gateway's own 404 (no such route) while the task is there.
                raise route_not_found(where, "the gateway's 404 but the task exists") from None
            return DeleteReply(absent=True, sends=reply.sends, body_named_task=False)
        return DeleteReply(False, reply.sends, check_delete_body(reply, where, task_id))

    async def retrying(
        self,
        call: Callable[[], Awaitable[R]],
        *,
        on_retry: OnRetry | None = None,
        retry_if: RetryIf | None = None,
    ) -> R:
        """Run ``call`` and retry transient errors with the run's ``RetryPolicy``.

        A 429's pause is shared through the rate budget (everyone waits); other delays
        are slept here, waking on a stop request (``Interrupted``).
        """
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except TransientApiError as exc:
                if self.retry.gives_up(attempt):
                    raise
                if retry_if is not None and not await retry_if(exc):
                    raise
                delay = self.retry.delay(attempt, exc)
                if on_retry is not None:
                    on_retry(exc, attempt, delay)
                if isinstance(exc, ThrottledError):
                    self.transport.budget.throttled(delay)
                    self.stopping.check()
                else:
                    await self.stopping.sleep_or_raise(delay)

    # -- one exchange ------------------------------------------------------------------

    async def _exchange(
        self, method: str, path: str, query: str = "", *, route: str, on_send: OnSend | None = None
    ) -> Reply:
        """Send, correct the clock once on a skewed 401, and raise for non-2xx answers."""
        reply = await self._send(method, path, query, route=route, on_send=on_send)
        self._raise_for(reply, method, path, query)
        return reply

    async def _send(
        self, method: str, path: str, query: str, *, route: str, on_send: OnSend | None
    ) -> Reply:
        # A listing page or GET that waited for its rate slot past a stop is not sent.
        on_send = on_send or self._not_after_stop
        offset = self.transport.offset_ms
        reply = await self.transport.send(method, path, query, route=route, on_send=on_send)
        # Once per run the clock is corrected; a request signed before that (concurrent
        # with the one that found the skew) is sent once more with the corrected time.
        if reply.status == 401 and (
            self._correct_clock(reply) or self.transport.offset_ms != offset
        ):
            reply = await self.transport.send(method, path, query, route=route, on_send=on_send)
        self._storm = self.retry.answered(reply.status == 429)
        if reply.status != 429:
            self.transport.budget.succeeded()
        return reply

    def _raise_for(self, reply: Reply, method: str, path: str, query: str = "") -> None:
        if 200 <= reply.status < 300:
            self.any_success = True
            return
        where = f"{method} {self.transport.base_path}{path}" + (f"?{query}" if query else "")
        error = translate(where, reply, method=method, any_success=self.any_success)
        if self._storm and isinstance(error, ThrottledError):
            raise ThrottleStormError(
                f"{error}; {self.retry.throttled_in_a_row} requests in a row were throttled: "
                "stopping instead of retrying for hours",
                status=429,
                code=error.code,
                detail=error.detail,
            )
        raise error

    def _not_after_stop(self, _: int) -> None:
        self.stopping.check()

    def _correct_clock(self, reply: Reply) -> bool:
        if self._skew_corrected:
            return False
        offset = skew(reply.headers.get("Date"), self.transport.wall_now())
        if offset is None or abs(offset) <= CLOCK_SKEW_THRESHOLD_S:
            return False
        self._skew_corrected = True
        self.transport.offset_ms = round(offset * 1000)
        log.warning(
            "clock_skew_corrected",
            skew_s=round(offset, 1),
            advice="the local clock differs from the API gateway's; signing with its time",
        )
        return True

    @staticmethod
    def _object(reply: Reply, where: str, *, transient: bool) -> dict[str, Any]:
        body = parse_json(reply.body)
        if isinstance(body, dict) and "error" not in body:
            return body
        what = "an error object" if isinstance(body, dict) else "not a JSON object"
        cls = TransientApiError if transient else BadResponseError
        raise cls(f"{where}: HTTP {reply.status} but the body is {what}")
