"""The busy loop: come back for deferred tasks until each one's own deadline.

Every ``retry.busy_interval`` a pass reads what it needs and no more: the runs and
profiles once (only when a task is held), the state of the tasks that are not still
held (one GET each, or the listing when that is cheaper), then judges each with the
whole policy on its new state and deletes those now free. A held task is not sent
another DELETE until the evidence says it is free. A task's deadline counts from its
own first deferral, so a long delete phase never uses up the wait of tasks deferred
late.
"""

from __future__ import annotations

from .attempt import held
from .deleter import Executor, Waiting
from .evidence import Why
from .model import Action, Outcome
from .planner import Evidence, evidence_from, judge


class BusyLoop:
    """Passes over the executor's waiting tasks until none is left or time is up."""

    def __init__(self, executor: Executor, evidence: Evidence) -> None:
        self.ex = executor
        self.evidence = evidence

    async def run(self) -> None:
        ex = self.ex
        waiting = ex.activity.waiting
        deadline_s = ex.policy.retry.busy_deadline_s
        while waiting and not ex.stopping.requested:
            last = max(w.since for w in waiting.values()) + deadline_s
            wait = min(ex.policy.retry.busy_interval_s, max(0.0, last - ex.monotonic()))
            ex.activity.phase = "waiting"
            ex.activity.next_look_at = ex.monotonic() + wait
            if await ex.stopping.sleep(wait):
                break
            ex.activity.next_look_at = None
            await self._pass()
            self._expire(deadline_s, detail="busy deadline reached")
        self._expire(
            0.0, detail="interrupted" if ex.stopping.requested else "busy deadline reached"
        )

    def _expire(self, deadline_s: float, *, detail: str) -> None:
        ex = self.ex
        now = ex.monotonic()
        for task_id, item in list(ex.activity.waiting.items()):
            if now - item.since < deadline_s:
                continue
            del ex.activity.waiting[task_id]
            if ex.recorder.ledger.has(task_id):
                continue
            ex.recorder.finish(
                Outcome.STILL_BUSY,
                item.task,
                reason=_reason(item),
                attempts=item.attempts,
                detail=detail,
                **held(item.holder),
            )

    async def _pass(self) -> None:
        ex = self.ex
        ex.new_pass()
        waiting = ex.activity.waiting
        holding: dict[str, object] = {}
        if any(w.why in (Why.HELD, Why.FREE) for w in waiting.values()):
            await ex.refresh_holders()  # fresh this pass: a held task needs no GET
            holding = dict(ex.holding or {})
        still_held = {t for t, w in waiting.items() if w.why is Why.HELD and t in holding}
        to_read = [w for w in waiting.values() if w.task.task_id not in still_held]
        for task_id in still_held:
            item = waiting[task_id]
            item.attempts += 1
            item.holder = (ex.holding or {}).get(task_id, item.holder)
        if not to_read:
            return
        lookup = await ex.guarded(ex.source.lookup([w.task.task_id for w in to_read]))
        if lookup is None:
            return
        now = ex.now()
        evidence = evidence_from(ex.holders, ex.policy, now, self.evidence.kept)
        ready = []
        for item in to_read:
            task_id = item.task.task_id
            if task_id in lookup.absent:
                del waiting[task_id]
                ex.recorder.finish(Outcome.ALREADY_ABSENT, item.task, evidence="404 on GET")
                ex.count_end(item.task, failed=False)
                continue
            if task_id not in lookup.found:
                continue  # unreadable this time: look again next pass
            decision = judge(lookup.found[task_id], ex.policy, now, evidence)
            if decision.action is Action.DELETE:
                ready.append(decision.task)
            elif decision.action is Action.DEFER:
                why = Why.HELD if decision.held_by is not None else Why.BUSY
                waiting[task_id] = Waiting(
                    decision.task, why, item.since, item.attempts + 1, decision.held_by
                )
                ex.defer(waiting[task_id], decision.detail)
            else:
                del waiting[task_id]
                ex.recorder.finish(
                    Outcome.SKIPPED, decision.task, reason=decision.reason, detail=decision.detail
                )
        await ex.delete_pass(ready)
        for task in ready:
            if ex.recorder.ledger.has(task.task_id):
                waiting.pop(task.task_id, None)


def _reason(item: Waiting) -> str:
    if item.why is Why.HELD and item.holder is not None:
        return f"held by {item.holder.describe()}"
    if item.why is Why.BUSY:
        return f"task is {item.task.state}"
    return "refused; no visible cause"
