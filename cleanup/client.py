"""The NCLUE API client: the only module that talks to aiohttp's client.

Every request waits for the shared ``RateLimiter``, is signed with a fresh
timestamp over the exact path and query it sends, and ends as parsed JSON or as
one of our own exceptions (``errors.py``). Retries of transient errors happen
here, so every attempt is one the worker decided to make: aiohttp's silent
re-send of idempotent requests on a dropped keep-alive connection is turned off.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import structlog
from yarl import URL

from . import __version__
from .credentials import Credentials
from .errors import (
    ApiError,
    AuthError,
    NotFoundError,
    QuotaExceededError,
    RefusedError,
    ThrottledError,
    ThrottleStormError,
    TransientApiError,
)
from .limiter import RateLimiter
from .signing import signed_headers

log = structlog.get_logger(__name__)

# A 401 while the local clock is further than this from the server's Date header is
# retried once with the timestamp corrected (the gateway's window is 5 minutes).
CLOCK_SKEW_THRESHOLD_S = 60.0

OnAttempt = Callable[[int], None]
OnRetry = Callable[[ApiError, int, float], None]
Sleep = Callable[[float], Awaitable[None]]


class NclueClient:
    """Signed, rate-limited, retrying access to one NCLUE endpoint."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        limiter: RateLimiter,
        *,
        max_attempts: int = 6,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        timeout_s: float = 30.0,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        url = URL(endpoint)
        self._origin = str(url.origin())
        self._base_path = url.raw_path.rstrip("/")
        self._credentials = credentials
        self._limiter = limiter
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(10.0, timeout_s))
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._offset_ms = 0
        self._session: aiohttp.ClientSession | None = None
        self.requests: Counter[tuple[str, int]] = Counter()
        """Every HTTP attempt by (route, status); status 0 when no response arrived."""

    async def __aenter__(self) -> NclueClient:
        session = aiohttp.ClientSession(
            timeout=self._timeout,
            headers={"Accept": "application/json", "User-Agent": f"nclue-cleanup/{__version__}"},
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
        )
        # aiohttp re-sends an idempotent request (DELETE included) once when a reused
        # keep-alive connection turns out closed. That attempt would bypass the rate
        # budget and the write-ahead ``deleting`` line, so it is switched off: a dropped
        # connection surfaces as a TransientApiError and is retried by us, deliberately.
        # (aiohttp's own test client switches it off the same way.)
        session._retry_connection = False
        self._session = session
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def clock_offset_s(self) -> float:
        return self._offset_ms / 1000

    async def list_page(self, resource: str, index: int, limit: int) -> dict[str, Any]:
        """One page of ``/tasks`` or ``/task-runs``; the body must be a JSON object."""
        route = "list_tasks" if resource == "tasks" else "list_runs"
        query = f"index={index}&limit={limit}"
        return await self.call_for_object("GET", route, f"/{resource}", query)

    async def get_task(self, task_id: str) -> dict[str, Any]:
        """One task; ``NotFoundError`` when the server does not know it."""
        return await self.call_for_object("GET", "get_task", f"/tasks/{task_id}")

    async def delete_task(
        self, task_id: str, *, on_attempt: OnAttempt | None = None, on_retry: OnRetry | None = None
    ) -> None:
        """Delete one task. ``on_attempt`` runs just before each DELETE is sent."""
        await self.call(
            "DELETE", "delete_task", f"/tasks/{task_id}", on_attempt=on_attempt, on_retry=on_retry
        )

    async def call_for_object(
        self, method: str, route: str, path: str, query: str = ""
    ) -> dict[str, Any]:
        """A call whose 2xx body must be a JSON object; a cut or odd body is retried."""
        body = await self.call(method, route, path, query, expect_object=True)
        assert isinstance(body, dict)
        return body

    async def call(
        self,
        method: str,
        route: str,
        path: str,
        query: str = "",
        *,
        on_attempt: OnAttempt | None = None,
        on_retry: OnRetry | None = None,
        expect_object: bool = False,
    ) -> object:
        """Send one request, retrying transient errors up to ``max_attempts``.

        ``expect_object``: a 2xx body that is not a JSON object (a proxy cut it short,
        say) counts as a transient error. A DELETE does not ask for it: its 2xx status
        is the evidence that the task was deleted, whatever the body says.
        """
        attempt = 0
        skew_retry_left = True
        while True:
            attempt += 1
            try:
                body = await self._exchange(method, route, path, query, on_attempt, attempt)
                if expect_object and not isinstance(body, dict):
                    raise TransientApiError(
                        f"{method} {self._base_path}{path}: the response is not a JSON object"
                    )
                return body
            except AuthError as exc:
                if not (skew_retry_left and self._correct_clock(exc)):
                    raise
                skew_retry_left = False
                attempt -= 1
                continue
            except TransientApiError as exc:
                if isinstance(exc, ThrottledError):
                    delay = self._limiter.throttled(exc.retry_after)
                    if self._limiter.storm:
                        raise ThrottleStormError(
                            f"{exc}; {self._limiter.throttled_in_a_row} requests in a row were "
                            "throttled: stopping instead of retrying for hours",
                            status=429,
                            code=exc.code,
                            detail=exc.detail,
                        ) from exc
                else:
                    ceiling = min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1))
                    delay = self._rng.uniform(0, ceiling)  # full jitter
                if attempt >= self._max_attempts:
                    raise
                if on_retry is not None:
                    on_retry(exc, attempt, delay)
                if not isinstance(exc, ThrottledError):
                    await self._sleep(delay)  # a 429's pause is enforced by the limiter

    async def _exchange(
        self,
        method: str,
        route: str,
        path: str,
        query: str,
        on_attempt: OnAttempt | None,
        attempt: int,
    ) -> object:
        assert self._session is not None, "use the client as an async context manager"
        uri = f"{self._base_path}{path}?{query}" if query else f"{self._base_path}{path}"
        where = f"{method} {uri}"
        async with self._limiter.slot():
            offset_ms = self._offset_ms
            timestamp = int(self._wall_clock() * 1000) + offset_ms
            headers = signed_headers(
                method, uri, timestamp, self._credentials.access_key, self._credentials.secret_key
            )
            if on_attempt is not None:
                on_attempt(attempt)
            try:
                async with self._session.request(
                    method, URL(self._origin + uri, encoded=True), headers=headers
                ) as resp:
                    raw = await resp.read()
                    status, resp_headers = resp.status, resp.headers
            except asyncio.TimeoutError as exc:
                self.requests[route, 0] += 1
                raise TransientApiError(f"{where}: timed out") from exc
            except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
                self.requests[route, 0] += 1
                raise ApiError(f"{where}: TLS verification failed: {exc}") from exc
            except aiohttp.ClientError as exc:
                self.requests[route, 0] += 1
                raise TransientApiError(
                    f"{where}: connection error ({type(exc).__name__})"
                ) from exc
        self.requests[route, status] += 1
        if 200 <= status < 300:
            self._limiter.succeeded()
            # A DELETE's 2xx is the evidence; its body is not read (saves CPU per delete).
            return None if method == "DELETE" else _parse_json(raw)
        error = _translate(where, status, _parse_json(raw), raw, resp_headers.get("Retry-After"))
        if isinstance(error, AuthError):
            error.skew_s = _skew(resp_headers.get("Date"), self._wall_clock())
            error.offset_ms_used = offset_ms
        elif not isinstance(error, ThrottledError):
            self._limiter.succeeded()
        raise error

    def _correct_clock(self, exc: AuthError) -> bool:
        """Decide whether a 401 deserves one retry with a corrected timestamp."""
        if exc.status != 401:
            return False
        if exc.offset_ms_used != self._offset_ms:
            return True  # another request already corrected the clock
        if exc.skew_s is None or abs(exc.skew_s) <= CLOCK_SKEW_THRESHOLD_S:
            return False
        self._offset_ms = round(exc.skew_s * 1000)
        log.warning(
            "clock_skew_corrected",
            skew_s=round(exc.skew_s, 1),
            advice="the local clock differs from the API gateway's; signing with its time",
        )
        return True


def _parse_json(raw: bytes) -> object:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


_TAGS = re.compile(r"<[^>]*>")


def _translate(
    where: str, status: int, body: object, raw: bytes, retry_after: str | None
) -> ApiError:
    """Turn a non-2xx response into our exception, reading the error body leniently."""
    code, detail = _error_fields(body, raw)
    text = f"{where}: HTTP {status}" + (f" errorCode {code}" if code else "")
    text += f": {detail}" if detail else ""
    kw: dict[str, Any] = {"status": status, "code": code, "detail": detail}
    if status in (401, 403):
        return AuthError(text, **kw)
    if status == 429:
        if code == "400":
            return QuotaExceededError(text, **kw)
        return ThrottledError(text, retry_after=parse_retry_after(retry_after), **kw)
    if status == 404:
        return NotFoundError(text, **kw)
    if status >= 500 or status == 408:
        return TransientApiError(text, **kw)
    return RefusedError(text, **kw)


def _error_fields(body: object, raw: bytes) -> tuple[str | None, str | None]:
    if isinstance(body, dict):
        error = body.get("error")
        fields = error if isinstance(error, dict) else body
        code = fields.get("errorCode", fields.get("code"))
        message = fields.get("message") or fields.get("details")
        return (
            None if code is None or isinstance(code, (dict, list)) else str(code),
            None if message is None else str(message)[:300],
        )
    text = " ".join(_TAGS.sub(" ", raw[:2000].decode("utf-8", "replace")).split())
    return None, (text[:200] or None)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` of seconds or an HTTP date; ``None`` if unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def _skew(date_header: str | None, local_now: float) -> float | None:
    """The server's clock minus ours, from a ``Date`` header (None when unreadable)."""
    if not date_header:
        return None
    try:
        server = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    return None if server is None else server.timestamp() - local_now
