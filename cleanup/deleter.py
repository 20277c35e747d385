"""The executor: concurrent, rate-limited deletes, refusal evidence and the busy loop.

A dry run is a property of the executor (``preview`` records ``would_delete``), not
a branch through the decisions. ``Deleter.run`` sends DELETEs through the shared
client (so the rate limiter and the concurrency cap hold for every call), turns a
refused delete into evidence (the task's status, the run that holds it), and comes
back for busy tasks every ``retry.busy_interval`` until ``retry.busy_deadline``,
judging each again with the full policy on the status it finished with.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog

from .audit import AuditLog
from .client import NclueClient
from .errors import (
    ApiError,
    AuthError,
    CleanupError,
    ListingIncompleteError,
    NotFoundError,
    QuotaExceededError,
    RefusedError,
    ThrottledError,
)
from .model import HOLDING_RUN_STATUSES, Action, Decision, Outcome, Task
from .planner import judge
from .policy import Policy
from .source import Run, Source

log = structlog.get_logger(__name__)
T = TypeVar("T")


class _NotStarted(Exception):
    """A stop came while this DELETE waited for its slot: it is not sent."""


class Stopping:
    """A request to stop: no new work starts; in-flight work gets ``grace_s``."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.reason: str | None = None
        self.grace_s = 0.0

    def request(self, reason: str, grace_s: float) -> None:
        if not self.event.is_set():
            self.reason, self.grace_s = reason, grace_s
            self.event.set()

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep, waking early on a stop request; return whether one came."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout=max(0.0, seconds))
        except asyncio.TimeoutError:
            return False
        return True


@dataclass(slots=True)
class _Deferred:
    task: Task
    reason: str
    attempts: int = 1
    held_by_run: str | None = None
    unexplained: bool = False  # refused while neither busy nor held: one more try


class Deleter:
    """Deletes the planned tasks and accounts for every one of them in the audit log."""

    def __init__(
        self,
        client: NclueClient,
        source: Source,
        audit: AuditLog,
        policy: Policy,
        *,
        kept: frozenset[str],
        stopping: Stopping,
        now: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._source = source
        self._audit = audit
        self._policy = policy
        self._kept = kept
        self._stopping = stopping
        self._now = now
        self._monotonic = monotonic
        self._runs: asyncio.Task[list[Run] | None] | None = None
        self.fatal: CleanupError | None = None

    def preview(self, decisions: Iterable[Decision]) -> None:
        """Dry run: record what would happen, send nothing, wait for nothing."""
        for d in decisions:
            if d.action is Action.DELETE:
                self._audit.finish(Outcome.WOULD_DELETE, d.task, reason=d.reason, detail=d.detail)
            elif d.action is Action.DEFER:
                self._audit.finish(
                    Outcome.STILL_BUSY, d.task, reason=d.detail, dry_run=True, would="defer"
                )

    async def run(self, decisions: Sequence[Decision]) -> None:
        """Delete what is planned, then come back for what is busy."""
        started = self._monotonic()
        deferred: dict[str, _Deferred] = {}
        for d in decisions:
            if d.action is Action.DEFER:
                deferred[d.task.task_id] = self._defer(d.task, d.detail or d.reason, 1)
        refused = await self._delete_all([d.task for d in decisions if d.action is Action.DELETE])
        deferred.update(await self._classify(refused, deferred))
        await self._busy_loop(deferred, started + self._policy.retry.busy_deadline_s)

    # -- deleting -----------------------------------------------------------------------

    async def _delete_all(self, tasks: Sequence[Task]) -> list[tuple[Task, RefusedError]]:
        """One pass of concurrent deletes; returns the refused ones for classification."""
        queue = deque(tasks)
        refused: list[tuple[Task, RefusedError]] = []

        async def worker() -> None:
            while queue and not self._stopping.requested:
                task = queue.popleft()
                error = await self._delete_one(task)
                if error is not None:
                    refused.append((task, error))

        width = min(len(queue), 2 * self._policy.limits.concurrency)
        workers = [asyncio.create_task(worker()) for _ in range(width)]
        await self._join(workers)
        for task in queue:
            self._finish_unstarted(task)
        return refused

    async def _join(self, workers: list[asyncio.Task[None]]) -> None:
        """Wait for the workers; on a stop request give them the grace period, then cancel."""
        if not workers:
            return
        everything: asyncio.Future[Any] = asyncio.gather(*workers)
        stop: asyncio.Future[Any] = asyncio.ensure_future(self._stopping.event.wait())
        try:
            await asyncio.wait([everything, stop], return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                await asyncio.wait({everything}, timeout=self._stopping.grace_s)
            if not everything.done():
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        finally:
            stop.cancel()
        if not everything.cancelled():
            everything.result()  # re-raise a bug from a worker, if any

    async def _delete_one(self, task: Task) -> RefusedError | None:
        """Delete one task and write its terminal line (a refusal is returned instead)."""
        sent = 0
        may_have_happened = False

        def on_attempt(attempt: int) -> None:
            nonlocal sent
            # A stop request lets calls in flight (and their retries) finish, but starts
            # nothing new; a fatal error (auth, quota, a 429 storm) stops retries too.
            if self.fatal is not None or (attempt == 1 and self._stopping.requested):
                raise _NotStarted
            sent += 1
            self._audit.task_event("deleting", task, attempt=attempt)

        def on_retry(error: ApiError, attempt: int, delay: float) -> None:
            nonlocal may_have_happened
            may_have_happened |= not isinstance(error, ThrottledError)
            self._audit.task_event(
                "retrying",
                task,
                error=str(error),
                http_status=error.status,
                attempt=attempt,
                delay_s=round(delay, 3),
            )

        try:
            await self._client.delete_task(task.task_id, on_attempt=on_attempt, on_retry=on_retry)
        except NotFoundError:
            if may_have_happened:
                evidence = "404 after an earlier attempt of this run that may have deleted it"
                self._audit.finish(Outcome.DELETED, task, evidence=evidence)
            else:
                self._audit.finish(Outcome.ALREADY_ABSENT, task, evidence="404 on DELETE")
        except RefusedError as exc:
            return exc
        except _NotStarted:
            self._finish_stopped(task, may_have_happened, "stopped before this attempt")
        except (AuthError, QuotaExceededError) as exc:
            self._stop_for(exc)
            self._finish_stopped(task, may_have_happened, str(exc))
        except ApiError as exc:
            self._finish_failed(task, exc, attempts=sent)
        except asyncio.CancelledError:
            self._finish_stopped(task, sent > 0, "interrupted while the DELETE was in flight")
            raise
        except Exception as exc:  # the per-task boundary: a bug becomes a failed line
            log.exception("task_crashed", task_id=task.task_id)
            self._audit.finish(Outcome.FAILED, task, error=f"{type(exc).__name__}: {exc}")
        else:
            self._audit.finish(Outcome.DELETED, task, attempts=sent)
        return None

    def _finish_failed(self, task: Task, error: ApiError, **fields: object) -> None:
        self._audit.finish(
            Outcome.FAILED,
            task,
            error=str(error),
            http_status=error.status,
            server_message=error.detail,
            **fields,
        )

    def _stop_for(self, error: AuthError | QuotaExceededError) -> None:
        if self.fatal is None:
            self.fatal = error
        # Authentication failures stop everything now; a spent quota lets calls in flight end.
        grace = 0.0 if isinstance(error, AuthError) else self._stopping_grace()
        self._stopping.request(type(error).__name__, grace)

    def _stopping_grace(self) -> float:
        return self._policy.retry.request_timeout_s

    def _finish_stopped(self, task: Task, may_have_happened: bool, why: str) -> None:
        if may_have_happened:
            self._audit.finish(
                Outcome.FAILED,
                task,
                error=f"{why}; the delete may have happened, a rerun settles it",
            )
        else:
            self._finish_unstarted(task)

    def _finish_unstarted(self, task: Task) -> None:
        reason = "run_stopped" if self.fatal else "interrupted"
        self._audit.finish(Outcome.SKIPPED, task, reason=reason, detail=self._stopping.reason)

    # -- refusals and busy tasks --------------------------------------------------------

    def _defer(
        self,
        task: Task,
        reason: str,
        attempts: int,
        held_by_run: str | None = None,
        *,
        unexplained: bool = False,
    ) -> _Deferred:
        interval = self._policy.retry.busy_interval_s
        next_check = self._now() + timedelta(seconds=interval)
        self._audit.task_event(
            "deferred",
            task,
            reason=reason,
            attempt=attempts,
            held_by_run=held_by_run,
            next_check_at=next_check.isoformat().replace("+00:00", "Z"),
        )
        return _Deferred(task, reason, attempts, held_by_run, unexplained)

    async def _classify(
        self, refused: list[tuple[Task, RefusedError]], deferred: dict[str, _Deferred]
    ) -> dict[str, _Deferred]:
        """Decide from evidence whether each refused delete is busy (deferred) or failed."""
        if not refused or self._stopping.requested:
            for task, _ in refused:
                self._finish_unstarted(task)
            return {}
        lookup = await self._guarded(self._source.lookup([t.task_id for t, _ in refused]))
        runs = await self._runs_this_pass()
        result: dict[str, _Deferred] = {}
        for task, error in refused:
            before = deferred.get(task.task_id)
            attempts = before.attempts + 1 if before else 1
            if lookup is None or task.task_id in lookup.failed:
                result[task.task_id] = self._defer(task, "refused; status unknown", attempts)
                continue
            if task.task_id in lookup.absent:
                self._audit.finish(
                    Outcome.ALREADY_ABSENT, task, evidence="refused, then 404 on GET"
                )
                continue
            current = lookup.found[task.task_id]
            holder = runs.get(task.task_id) if runs else None
            if current.busy:
                result[task.task_id] = self._defer(current, f"task is {current.status}", attempts)
            elif holder is not None:
                reason = f"held by run {holder.run_id} ({holder.status})"
                result[task.task_id] = self._defer(current, reason, attempts, holder.run_id)
            elif runs is None:
                result[task.task_id] = self._defer(current, "refused; runs unknown", attempts)
            elif before is None or not before.unexplained:
                # The hold may have ended between the refusal and this evidence: try again
                # on the next pass, and call it failed only if it is refused again.
                reason = "refused, but neither busy nor held now; trying again"
                result[task.task_id] = self._defer(current, reason, attempts, unexplained=True)
            else:
                evidence = f"task is {current.status} and no unfinished run holds it"
                self._finish_failed(current, error, evidence=evidence)
        return result

    async def _runs_this_pass(self) -> dict[str, Run] | None:
        """Unfinished runs by task, listed at most once per pass and shared by every task."""
        if self._runs is None:
            self._runs = asyncio.ensure_future(self._guarded(self._source.list_runs()))
        runs = await self._runs
        if runs is None:
            return None
        return {r.task_id: r for r in runs if r.task_id and r.status in HOLDING_RUN_STATUSES}

    async def _guarded(self, call: Awaitable[T]) -> T | None:
        """Evidence calls: auth and quota errors stop the run; other failures yield None."""
        try:
            return await call
        except (AuthError, QuotaExceededError) as exc:
            self._stop_for(exc)
        except (ListingIncompleteError, ApiError) as exc:
            log.warning("evidence_unavailable", error=str(exc))
        return None

    async def _busy_loop(self, deferred: dict[str, _Deferred], deadline: float) -> None:
        while deferred and not self._stopping.requested:
            wait = min(self._policy.retry.busy_interval_s, deadline - self._monotonic())
            if wait <= 0 or await self._stopping.sleep(wait):
                break
            self._runs = None  # a new pass: the runs listing is read again if needed
            deferred = await self._recheck(deferred)
        for item in deferred.values():
            self._audit.finish(
                Outcome.STILL_BUSY,
                item.task,
                reason=item.reason,
                attempts=item.attempts,
                held_by_run=item.held_by_run,
                detail="interrupted" if self._stopping.requested else "busy deadline reached",
            )

    async def _recheck(self, deferred: dict[str, _Deferred]) -> dict[str, _Deferred]:
        """Read the deferred tasks again, judge them, delete those that are now free."""
        lookup = await self._guarded(self._source.lookup(list(deferred)))
        if lookup is None:
            return deferred
        still: dict[str, _Deferred] = {}
        ready: list[Task] = []
        now = self._now()
        for task_id, item in deferred.items():
            if task_id in lookup.absent:
                self._audit.finish(Outcome.ALREADY_ABSENT, item.task, evidence="404 on GET")
            elif task_id in lookup.failed:
                still[task_id] = item
            else:
                decision = judge(lookup.found[task_id], self._policy, now, self._kept)
                if decision.action is Action.DELETE:
                    ready.append(decision.task)
                elif decision.action is Action.DEFER:
                    still[task_id] = self._defer(
                        decision.task, decision.detail or "busy", item.attempts + 1
                    )
                else:
                    self._audit.finish(
                        Outcome.SKIPPED,
                        decision.task,
                        reason=decision.reason,
                        detail=decision.detail,
                    )
        refused = await self._delete_all(ready)
        still.update(await self._classify(refused, deferred))
        return still
