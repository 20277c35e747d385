"""One task's DELETE attempt: its sends, whether one may have deleted, the evidence read.

Used by the executor (``deleter.py``) for each DELETE: ``on_send`` is the write-ahead
``deleting`` line (and refuses to start after a stop), ``on_retry`` the ``retrying``
line, ``retry_if`` looks at the evidence before a 5xx is retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import ApiError, ThrottledError
from .evidence import Verdict, Why, verdict
from .model import Holder, Task
from .stopping import Interrupted

if TYPE_CHECKING:
    from .deleter import Executor


def held(holder: Holder | None) -> dict[str, Any]:
    """Audit fields naming what holds a task: ``held_by`` and ``held_by_run`` or
    ``held_by_profile`` (the holder's ID)."""
    if holder is None:
        return {}
    return {"held_by": holder.describe(), f"held_by_{holder.kind}": holder.holder_id}


class Attempt:
    """One task's DELETE: its sends, whether one may have deleted, the evidence read."""

    def __init__(self, executor: Executor, task: Task) -> None:
        self.executor = executor
        self.task = task
        self.sends = 0
        self.may_have_happened = False
        self.verdict: Verdict | None = None

    async def once(self) -> Any:
        return await self.executor.client.delete_once(self.task.task_id, on_send=self.on_send)

    def on_send(self, number: int) -> None:
        executor = self.executor
        # A stop lets calls in flight (and their retries) finish, but starts nothing new;
        # a fatal error (auth, quota, a full disk, the breaker) stops retries too.
        if executor.fatal is not None or (self.sends == 0 and executor.stopping.requested):
            raise Interrupted(executor.stopping.reason or "stopping")
        self.sends += 1
        executor.recorder.event("deleting", self.task, write_ahead=True, attempt=self.sends)

    def on_retry(self, error: ApiError, attempt: int, delay: float) -> None:
        self.may_have_happened |= not isinstance(error, ThrottledError)
        self.executor.activity.retries += 1
        self.executor.recorder.event(
            "retrying",
            self.task,
            error=str(error),
            http_status=error.status or None,
            attempt=attempt,
            delay_s=round(delay, 3),
        )

    async def retry_if(self, error: ApiError) -> bool:
        """A 5xx on a DELETE first looks at the evidence: busy or held is deferred."""
        if error.status < 500:
            return True
        self.may_have_happened = True
        executor, task_id = self.executor, self.task.task_id
        lookup = await executor.guarded(executor.source.get_each([task_id]))
        if lookup is None or task_id in lookup.failed:
            return True
        found = verdict(lookup.found.get(task_id), executor.holding, task_id)
        if found.why is Why.FREE:  # held by something listed since the plan?
            await executor.refresh_holders()
            found = verdict(lookup.found.get(task_id), executor.holding, task_id)
        self.verdict = found
        return found.why not in (Why.ABSENT, Why.BUSY, Why.HELD)
