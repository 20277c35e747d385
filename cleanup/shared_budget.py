"""A rate budget shared by every run on one NCP account, through Redis.

The NCLUE guidance (1 request/s) is per account, so the nightly CronJob, a post-training
Job and a laptop on the same account must draw from one budget. ``open_budget`` returns
a ``RedisBudget`` when ``--shared-budget redis://[user:password@]host:port/db`` (or
``rediss://`` for TLS) is reachable, and the per-process ``LocalBudget`` otherwise, with a
``shared_budget_unavailable`` warning: never no limit.

Why Redis and a Lua script, not a rate-limit library: most clusters already run Redis,
and the budget needs *reservations* of evenly spaced future slots (the GCRA / virtual
scheduling idea), so each caller makes one round trip and then sleeps until its slot.
The Python libraries over Redis (``limits`` and its fixed, moving and sliding windows,
or the redis-cell module's ``CL.THROTTLE``, not packaged by Debian) answer allowed or
denied: the caller has to poll, and a window admits ``rate`` requests in a burst at its
edge. The script is the whole algorithm, run atomically by Redis on its own clock
(``TIME``), so the processes' clocks do not matter:

    slot = max(now, next); next = slot + interval; return slot - now

State: one hash per account, ``nclue-cleanup:budget:<sha256(account_key)[:16]>`` (the key
never names the account), with ``next`` (the next free slot, server microseconds) and
``factor`` (the shared rate factor after 429s). Every write sets its expiry to the
reserved future plus ``_IDLE_TTL_S``, so an idle account leaves nothing behind.

A 429 anywhere (``throttled``) pushes the shared ``next`` past now + pause and lowers the
shared factor by a quarter, so every process pauses and slows. Successes cost no round
trip of their own: ``succeeded`` counts locally, and the count rides on the process's
next reservation, where the script raises the shared factor by 2 % per success (the
``LocalBudget`` rule, applied to the account's successes as a whole).

Each reservation spaces the next slot by the reserving process's own interval, so runs
sharing an account should use the same ``limits.rate``. If Redis fails mid-run, the
budget logs ``shared_budget_lost`` and carries on as a ``LocalBudget`` from the current
time at the configured rate for the rest of the run (its requests then come on top of
the runs still sharing); ``acquire`` never raises for it.

Needs Redis 5 or later (scripts that read ``TIME`` and write), standalone or a primary
behind a service address; on a Redis Cluster or a read-only replica the first script call
fails and the run falls back the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from urllib.parse import unquote, urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cleanup.budget import (
    _DECREASE,
    _MIN_FACTOR,
    _RECOVERY,
    MARGIN_MAX_S,
    MARGIN_SHARE,
    LocalBudget,
    RateBudget,
)
from cleanup.errors import UsageError
from cleanup.logs import get_logger

log = get_logger(__name__)

KEY_PREFIX = "nclue-cleanup:budget:"
CLIENT_NAME = "nclue-cleanup-budget"
_IDLE_TTL_S = 60
_NO_PAUSE = -1
_FAILURES = (RedisError, OSError, TimeoutError)

# KEYS[1] the account's hash. ARGV: exact interval (us, at factor 1), successes since the
# caller's last call, pause (us, -1 for none), reserve (1 or 0), idle TTL (ms), minimum
# factor, decrease per 429, recovery per success, margin share, margin cap (us): the
# per-process budget's margin (budget.spaced). Returns {wait (us), factor}.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'next', 'factor')
local nxt = tonumber(state[1]) or 0
local factor = tonumber(state[2]) or 1
local successes, pause = tonumber(ARGV[2]), tonumber(ARGV[3])
if successes > 0 and factor < 1 then
  factor = math.min(1, factor * tonumber(ARGV[8]) ^ successes)
end
if pause >= 0 then
  factor = math.max(tonumber(ARGV[6]), factor * tonumber(ARGV[7]))
  nxt = math.max(nxt, now + pause)
end
local wait = 0
if ARGV[4] == '1' then
  local slot = math.max(now, nxt)
  local exact = tonumber(ARGV[1]) / factor
  nxt = slot + exact + math.min(exact * tonumber(ARGV[9]), tonumber(ARGV[10]))
  wait = slot - now
end
redis.call('HSET', KEYS[1], 'next', string.format('%.0f', nxt), 'factor', tostring(factor))
redis.call('PEXPIRE', KEYS[1], math.ceil(math.max(0, nxt - now) / 1000) + tonumber(ARGV[5]))
return {math.floor(wait), tostring(factor)}
"""


def budget_key(account_key: str) -> str:
    """The Redis key of one account's budget: a hash, so the key never names the account."""
    return KEY_PREFIX + hashlib.sha256(account_key.encode()).hexdigest()[:16]


def _service(url: str) -> str:
    """The URL's host:port, for logs; a UsageError (never quoting it) if it is malformed."""
    form = "--shared-budget: expected redis://[:password@]host:port/db or rediss://..."
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise UsageError(f"{form}; the scheme is not redis or rediss")
    try:
        port = parts.port or 6379
    except ValueError:
        raise UsageError(f"{form}; the port is not a number") from None
    if not parts.hostname:
        raise UsageError(f"{form}; the host is missing")
    db = unquote(parts.path).strip("/")
    if db and not db.isdigit():
        raise UsageError(f"{form}; the database is not a number")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


class RedisBudget:
    """Evenly spaced slots for every process on one account, reserved atomically in Redis."""

    def __init__(self, client: redis.Redis, *, key: str, rate: float, service: str) -> None:
        if not rate > 0:
            raise ValueError("rate must be above zero")
        self.rate = rate
        self._client = client
        self._script = client.register_script(_SCRIPT)
        self.key = key
        self._service = service
        self._factor = 1.0
        self._successes = 0
        self._rtt_min = math.inf
        self._pending: set[asyncio.Task[None]] = set()
        self._local: LocalBudget | None = None

    @property
    def effective_rate(self) -> float:
        if self._local is not None:
            return self._local.effective_rate
        return self.rate * self._factor

    async def acquire(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending))
        local = self._local
        if local is None:
            successes, self._successes = self._successes, 0
            loop = asyncio.get_running_loop()
            sent = loop.time()
            try:
                wait_s = await self._call(successes=successes, pause_s=None, reserve=True)
            except _FAILURES as exc:
                local = await self._fall_back(exc)
            else:
                delay = self._ran_at(sent, loop.time()) + wait_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                return
        await local.acquire()

    async def start(self) -> None:
        """Load the script and time one round trip on the open connection (raises on failure)."""
        await self._client.script_load(_SCRIPT)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await self._client.ping()
        self._rtt_min = loop.time() - sent

    def _ran_at(self, sent: float, answered: float) -> float:
        """When Redis ran the script, in local time: the later of the send and the reply
        less the quickest round trip seen, so a call slowed by opening a connection does
        not take its slot as starting early."""
        self._rtt_min = min(self._rtt_min, answered - sent)
        return max(sent, answered - self._rtt_min)

    def throttled(self, pause_s: float) -> None:
        """Lower the rate now and push the pause to Redis at once (called in the event loop)."""
        if self._local is not None:
            self._local.throttled(pause_s)
            return
        old = self._factor
        self._factor = max(_MIN_FACTOR, self._factor * _DECREASE)
        task = asyncio.get_running_loop().create_task(self._push_pause(max(0.0, pause_s), old))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def succeeded(self) -> None:
        if self._local is not None:
            self._local.succeeded()
            return
        self._successes += 1
        if self._factor < 1.0:
            self._factor = min(1.0, self._factor * _RECOVERY)

    async def claim(self, task_id: str, owner: str, ttl_s: float) -> bool:
        """Claim ``task_id`` for this run (SET NX): False when another live run on the
        account holds it. Redis out of reach: True (the per-process fallback)."""
        if self._local is not None:
            return True
        key = f"{self.key}:claim:{task_id}"
        try:
            if await self._client.set(key, owner, nx=True, px=max(1, int(ttl_s * 1000))):
                return True
            holder = await self._client.get(key)
        except _FAILURES:
            return True
        return holder in (owner, owner.encode())

    async def aclose(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending))
        await self._client.aclose()

    async def _call(self, *, successes: int, pause_s: float | None, reserve: bool) -> float:
        """Run the script once; returns how long to wait for the reserved slot, in seconds."""
        pause_us = _NO_PAUSE if pause_s is None else round(pause_s * 1e6)
        reply = await self._script(
            keys=[self.key],
            args=[
                1e6 / self.rate,
                successes,
                pause_us,
                1 if reserve else 0,
                _IDLE_TTL_S * 1000,
                _MIN_FACTOR,
                _DECREASE,
                _RECOVERY,
                MARGIN_SHARE,
                MARGIN_MAX_S * 1e6,
            ],
        )
        wait_us, factor = reply
        self._factor = float(factor)
        return int(wait_us) / 1e6

    async def _push_pause(self, pause_s: float, old_factor: float) -> None:
        try:
            await self._call(successes=0, pause_s=pause_s, reserve=False)
        except _FAILURES as exc:
            local = await self._fall_back(exc)
            local.throttled(pause_s)
            return
        if self._factor < old_factor:
            log.warning(
                "rate_lowered",
                configured_rate=self.rate,
                effective_rate=round(self.effective_rate, 3),
                pause_s=round(pause_s, 3),
                shared=True,
            )

    async def _fall_back(self, exc: BaseException) -> LocalBudget:
        """Redis failed: carry on with a per-process budget from now, once, with a warning."""
        if self._local is not None:
            return self._local
        local = self._local = LocalBudget(self.rate)
        log.warning(
            "shared_budget_lost",
            service=self._service,
            error=type(exc).__name__,
            fallback="per-process budget",
        )
        with contextlib.suppress(*_FAILURES):
            await self._client.aclose()
        return local


async def open_budget(
    url: str | None, *, account_key: str, rate: float, connect_timeout_s: float = 2.0
) -> RateBudget:
    """The account's shared budget at ``url``, or the per-process budget (with a warning).

    ``url`` None: ``LocalBudget`` silently. Unreachable, refused or rejected credentials:
    ``LocalBudget`` and a ``shared_budget_unavailable`` warning naming host:port only.
    A malformed URL: ``UsageError``.
    """
    if url is None:
        return LocalBudget(rate)
    service = _service(url)
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=connect_timeout_s,
            socket_timeout=connect_timeout_s,
            client_name=CLIENT_NAME,
            retry=Retry(NoBackoff(), 1),
        )
    except ValueError:
        raise UsageError("--shared-budget: the URL's options are not valid") from None
    key = budget_key(account_key)
    budget = RedisBudget(client, key=key, rate=rate, service=service)
    try:
        await budget.start()
    except _FAILURES as exc:
        await client.aclose()
        log.warning(
            "shared_budget_unavailable",
            service=service,
            error=type(exc).__name__,
            fallback="per-process budget",
        )
        return LocalBudget(rate)
    log.info("shared_budget_connected", service=service, key=key)
    return budget
