"""The executor: concurrent, rate-limited deletes, refusal evidence and verification.

A dry run is a property of the executor (``preview`` records ``would_delete``), not
a branch through the decisions. ``Executor.run`` sends DELETEs through the shared
client (the rate budget and the concurrency cap hold for every call), turns refused
deletes into evidence (``evidence.py``), confirms accepted deletes when
``api.verify`` is on, and hands busy and held tasks to the busy loop (``waiting.py``).

Only tasks from the decisions it was given are ever sent a DELETE. Every task ends
with exactly one terminal record (``Recorder``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .attempt import Attempt, held
from .client import NclueClient
from .errors import (
    ApiError,
    AuditWriteError,
    AuthError,
    BadResponseError,
    CleanupError,
    EndpointError,
    ListingIncompleteError,
    QuotaExceededError,
    RefusedError,
    SafetyGuardError,
    TransientApiError,
)
from .evidence import Verdict, Why, holding_map, verdict
from .ledger import Recorder
from .logs import get_logger
from .model import Action, Decision, Holder, Outcome, Task
from .planner import holders_that_count
from .policy import Policy
from .source import Source
from .stopping import Interrupted, Stopping
from .verification import verify_deletes

log = get_logger(__name__)

BREAKER_MIN_ENDED = 20


@dataclass(slots=True)
class Waiting:
    """A deferred task: busy, held, or refused without a visible cause."""

    task: Task
    why: Why
    since: float  # monotonic time of its first deferral: its own busy deadline counts from it
    attempts: int = 1
    holder: Holder | None = None
    unexplained: bool = False


@dataclass(slots=True)
class Activity:
    """What the executor is doing, for progress views."""

    phase: str = "deleting"
    total: int = 0
    baseline: int = 0  # tasks already ended when deleting began (rule skips)
    retries: int = 0
    waiting: dict[str, Waiting] = field(default_factory=dict)
    next_look_at: float | None = None


class Executor:
    """Deletes the planned tasks and accounts for every one of them."""

    def __init__(
        self,
        client: NclueClient,
        source: Source,
        recorder: Recorder,
        policy: Policy,
        *,
        holders: list[Holder] | None,
        stopping: Stopping,
        now: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        verify_pages: int | None = None,
    ) -> None:
        self.client = client
        self.source = source
        self.recorder = recorder
        self.policy = policy
        self.holders = holders
        self.holding = holding_map(holders)
        self.stopping = stopping
        self.now = now
        self.monotonic = monotonic
        self.verify_pages = verify_pages
        """Listing pages a verification listing costs (None: unknown, GET each)."""
        self.fatal: CleanupError | None = None
        self.activity = Activity()
        self.refusal: dict[str, Any] | None = None
        self._holders_fresh = False
        self._ended: set[str] = set()
        self._failures: set[str] = set()
        recorder.on_failure = self.stop_for

    # -- dry run -----------------------------------------------------------------------

    def preview(self, decisions: Iterable[Decision]) -> None:
        """Dry run: record what would happen, send nothing, wait for nothing."""
        with self.recorder.batch():
            for d in decisions:
                if d.action is Action.DELETE:
                    self.recorder.finish(
                        Outcome.WOULD_DELETE, d.task, reason=d.reason, detail=d.detail
                    )
                elif d.action is Action.DEFER:
                    # Recorded as still_busy with would=wait; shown as "would wait (busy)".
                    self.recorder.finish(
                        Outcome.STILL_BUSY, d.task, reason=d.reason, detail=d.detail, would="wait"
                    )

    # -- apply -------------------------------------------------------------------------

    async def run(self, decisions: Sequence[Decision]) -> None:
        """Delete what is planned; busy and held tasks wait in ``activity.waiting``
        for the busy loop (``waiting.BusyLoop``)."""
        ready = [d.task for d in decisions if d.action is Action.DELETE]
        self.activity.total = len(ready) + sum(d.action is Action.DEFER for d in decisions)
        self.activity.baseline = len(self.recorder.ledger.ended)
        for d in decisions:
            if d.action is Action.DEFER:
                why = Why.HELD if d.held_by is not None else Why.BUSY
                self.defer(Waiting(d.task, why, self.monotonic(), holder=d.held_by), d.detail)
        await self.delete_pass(ready)

    async def delete_pass(self, tasks: Sequence[Task]) -> None:
        """One pass: concurrent deletes, then evidence for refusals, then verification."""
        queue = deque(tasks)
        refused: list[tuple[Task, ApiError]] = []
        accepted: list[Task] = []

        async def worker() -> None:
            while queue and not self.stopping.requested:
                task = queue.popleft()
                if not await self._claimed(task):
                    continue
                result = await self.delete_one(task)
                if isinstance(result, ApiError):
                    refused.append((task, result))
                elif result is not None:
                    accepted.append(result)

        width = min(len(queue), 2 * self.policy.limits.concurrency)
        await self._join([asyncio.create_task(worker()) for _ in range(width)])
        for task in queue:
            self.unreached(task)
        await self._classify(refused)
        await verify_deletes(self, accepted)

    async def _claimed(self, task: Task) -> bool:
        """Runs sharing a budget (``--shared-budget``) claim each task before its DELETE:
        a task another live run claimed is left to it (``skipped``, reason ``claimed``)."""
        ttl = self.policy.retry.busy_deadline_s + 10 * self.policy.retry.request_timeout_s
        budget = self.client.transport.budget
        if await budget.claim(task.task_id, self.recorder.audit.run_id, ttl):
            return True
        detail = "another run on this account is deleting it (--shared-budget)"
        self.recorder.finish(Outcome.SKIPPED, task, reason="claimed", detail=detail)
        return False

    async def _join(self, workers: list[asyncio.Task[None]]) -> None:
        """Wait for the workers; on a stop, give them the grace period, then cancel."""
        if not workers:
            return
        everything: asyncio.Future[Any] = asyncio.gather(*workers)
        stop: asyncio.Future[Any] = asyncio.ensure_future(self.stopping.event.wait())
        try:
            await asyncio.wait([everything, stop], return_when=asyncio.FIRST_COMPLETED)
            if not everything.done():
                await asyncio.wait({everything}, timeout=self.stopping.grace_s)
            if not everything.done():
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
        finally:
            stop.cancel()
        for worker in workers:  # re-raise a bug from a worker, if any (not a cancellation)
            if worker.done() and not worker.cancelled() and worker.exception() is not None:
                raise worker.exception()  # type: ignore[misc]

    async def delete_one(self, task: Task) -> ApiError | Task | None:
        """Delete one task: a refusal is returned for evidence, an accepted delete
        awaiting verification returns the task, anything else is finished here."""
        attempt = Attempt(self, task)
        try:
            reply = await self.client.retrying(
                attempt.once, on_retry=attempt.on_retry, retry_if=attempt.retry_if
            )
        except RefusedError as exc:
            return exc
        except TransientApiError as exc:
            return self._after_transient(attempt, exc)
        except BadResponseError as exc:
            self.failed(task, exc, sends=attempt.sends, may_have_happened=True)
        except (AuthError, QuotaExceededError, AuditWriteError, EndpointError) as exc:
            self.stop_for(exc)
            self.stopped(task, attempt.may_have_happened, str(exc))
        except Interrupted:
            self.stopped(task, attempt.may_have_happened, "stopped before this attempt")
        except asyncio.CancelledError:
            self.stopped(task, attempt.sends > 0, "interrupted while the DELETE was in flight")
            raise
        except Exception as exc:  # the per-task boundary: a bug becomes a failed line
            log.exception("task_crashed", task_id=task.task_id)
            self.recorder.finish(Outcome.FAILED, task, error=f"{type(exc).__name__}: {exc}")
            self.count_end(task, failed=True)
        else:
            if reply.absent:
                self._absent(task, attempt)
            elif self.policy.api.verify:
                self.count_end(task, failed=False)  # a failed verification counts it again
                self.recorder.event(
                    "delete_accepted",
                    task,
                    http_sends=reply.sends,
                    body_named=reply.body_named_task,
                )
                return task
            else:
                self.recorder.finish(Outcome.DELETED, task, attempts=attempt.sends)
                self.count_end(task, failed=False)
        return None

    def _absent(self, task: Task, attempt: Attempt) -> None:
        if attempt.may_have_happened or attempt.sends > 1:
            evidence = "404 after an earlier attempt of this run that may have deleted it"
            self.recorder.finish(Outcome.DELETED, task, evidence=evidence, attempts=attempt.sends)
        else:
            self.recorder.finish(Outcome.ALREADY_ABSENT, task, evidence="404 on DELETE")
        self.count_end(task, failed=False)

    def _after_transient(self, attempt: Attempt, exc: TransientApiError) -> ApiError | None:
        found = attempt.verdict
        if found is not None and found.why is Why.ABSENT:
            self._absent(attempt.task, attempt)
            return None
        if found is not None and found.why in (Why.BUSY, Why.HELD):
            return exc  # deferred from the evidence already read, not retried
        self.failed(attempt.task, exc, sends=attempt.sends, may_have_happened=True)
        return None

    # -- refusals --------------------------------------------------------------------

    async def _classify(self, refused: list[tuple[Task, ApiError]]) -> None:
        """Decide from evidence whether each refused delete is deferred or failed."""
        if not refused:
            return
        for task, error in refused:
            self.note_refusal(task, error)
        if self.stopping.requested:
            for task, _ in refused:
                self.unreached(task)
            return
        lookup = await self.guarded(self.source.lookup([t.task_id for t, _ in refused]))
        if lookup is not None and any(
            t.task_id in lookup.found and not lookup.found[t.task_id].busy for t, _ in refused
        ):
            await self.refresh_holders()
        for task, error in refused:
            previous = self.activity.waiting.pop(task.task_id, None)
            if lookup is None or task.task_id in lookup.failed:
                found = Verdict(Why.UNKNOWN, task)
            else:
                found = verdict(lookup.found.get(task.task_id), self.holding, task.task_id)
            self.after_refusal(task, error, found, previous)

    def after_refusal(
        self, task: Task, error: ApiError, found: Verdict, previous: Waiting | None
    ) -> None:
        since = previous.since if previous is not None else self.monotonic()
        attempts = previous.attempts + 1 if previous is not None else 1
        current = found.task or task
        if found.why is Why.ABSENT:
            self.recorder.finish(Outcome.ALREADY_ABSENT, task, evidence="refused, then 404 on GET")
            self.count_end(task, failed=False)
        elif found.why is Why.FREE and previous is not None and previous.unexplained:
            evidence = f"task is {current.state} and no unfinished run or profile holds it"
            self.failed(current, error, evidence=evidence)
        else:
            waiting = Waiting(current, found.why, since, attempts, found.holder)
            waiting.unexplained = found.why is Why.FREE
            self.defer(waiting, found.reason())

    def note_refusal(self, task: Task, error: ApiError) -> None:
        """The first refusal's shape goes to the audit log and the summary, once."""
        if self.refusal is not None:
            return
        self.refusal = {
            "http_status": error.status,
            "error_code": error.code,
            "message": error.detail,
        }
        self.recorder.event("refusal_seen", task, **self.refusal)

    async def refresh_holders(self) -> None:
        """List runs and profiles again, at most once per pass."""
        if self._holders_fresh:
            return
        holders = await self.guarded(self.source.holders())
        self._holders_fresh = True
        if holders is not None:
            self.holders = holders_that_count(holders, self.policy, self.now())
            self.holding = holding_map(self.holders)

    def new_pass(self) -> None:
        self._holders_fresh = False

    # -- endings -----------------------------------------------------------------------

    def defer(self, waiting: Waiting, reason: str | None) -> None:
        self.activity.waiting[waiting.task.task_id] = waiting
        fields: dict[str, Any] = {"reason": reason, "attempt": waiting.attempts}
        self.recorder.event("deferred", waiting.task, **fields, **held(waiting.holder))

    def failed(self, task: Task, error: ApiError, **fields: Any) -> None:
        self.recorder.finish(
            Outcome.FAILED,
            task,
            error=str(error),
            http_status=error.status or None,
            server_message=error.detail,
            **fields,
        )
        self.count_end(task, failed=True)

    def count_end(self, task: Task, *, failed: bool) -> None:
        """Book an ended DELETE; trip the circuit breaker past ``max_failure_percent``.

        An accepted DELETE counts as ended when accepted (verification may turn it into
        a failure later), so the share is never failures over failures mid-pass.
        """
        self._ended.add(task.task_id)  # the set: a task tried again counts once
        if failed:
            self._failures.add(task.task_id)
        ended, failures = len(self._ended), len(self._failures)
        limit = self.policy.limits.max_failure_percent
        if self.fatal is None and ended >= BREAKER_MIN_ENDED and failures * 100 > limit * ended:
            self.stop_for(
                SafetyGuardError(
                    f"{failures} of {ended} deletes failed, more than "
                    f"limits.max_failure_percent ({limit:g}%): stopped"
                )
            )

    def stop_for(self, error: CleanupError) -> None:
        if self.fatal is None:
            self.fatal = error
        # Authentication failures stop everything now; the others let calls in flight end.
        grace = 0.0 if isinstance(error, AuthError) else self.policy.retry.request_timeout_s
        self.stopping.request(type(error).__name__, grace)

    def stopped(self, task: Task, may_have_happened: bool, why: str) -> None:
        if may_have_happened:
            self.recorder.finish(
                Outcome.FAILED,
                task,
                error=f"{why}; the delete may have happened, a rerun settles it",
            )
        else:
            self.unreached(task)

    def unreached(self, task: Task) -> None:
        if self.recorder.ledger.has(task.task_id):
            return
        reason = "run_stopped" if self.fatal is not None else "interrupted"
        self.recorder.finish(Outcome.SKIPPED, task, reason=reason, detail=self.stopping.reason)

    async def guarded(self, call: Any) -> Any:
        """Evidence calls: fatal errors stop the run; other failures give None."""
        try:
            return await call
        except (AuthError, QuotaExceededError, EndpointError, AuditWriteError) as exc:
            self.stop_for(exc)
        except Interrupted:
            pass
        except (ListingIncompleteError, ApiError) as exc:
            log.warning("evidence_unavailable", error=str(exc))
        return None
