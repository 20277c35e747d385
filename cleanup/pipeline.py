"""The whole run as stages over explicit values: prepare, select, plan, guard, execute.

``run_policy`` is the in-process API (also what the CLI calls): it takes a policy,
returns a ``RunSummary`` and writes the same audit log as the command line.
Everything that can be checked without the network is checked in ``prepare``
(``UsageError``, exit 2, before any request). After ``run_started`` is written,
whatever goes wrong ends with ``run_finished`` and a summary.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from . import __version__
from .audit import AuditLog, open_sink
from .budget import LocalBudget, RateBudget
from .client import NclueClient
from .deleter import Executor
from .errors import CleanupError, SafetyGuardError
from .guard import account_warnings, judge_caps
from .ledger import Ledger, Recorder
from .listing import LIMIT, Lister
from .logs import get_logger
from .model import Action, Decision, Holder, Outcome, Task
from .planner import (
    UNSELECTED_REASONS,
    Evidence,
    drain,
    evidence_from,
    holders_that_count,
    judge,
    newest_per_group,
)
from .plans import write_plan
from .prepare import Prepared, prepare
from .progress import ProgressReporter
from .retrying import RetryPolicy
from .settings import operator
from .source import Source, in_shard
from .stopping import Interrupted, Stopping, signals_stop
from .summarize import build_summary
from .summary import RunSummary
from .transport import Transport
from .waiting import BusyLoop
from .watch import Watch

log = get_logger(__name__)
Confirm = Callable[[int], Awaitable[bool]]


@dataclass(slots=True)
class Selected:
    """What the selection found: candidates, the listed account, explicit IDs' fates."""

    candidates: list[Task]
    account: dict[str, Task] | None = None
    """The whole listing by ID; let go once planned (``account_size`` stays)."""
    absent: tuple[str, ...] = ()
    unreadable: dict[str, str] | None = None
    holders: list[Holder] | None = None
    account_size: int | None = None


@dataclass(slots=True)
class Planned:
    whole: list[Decision]
    mine: list[Decision]
    evidence: Evidence
    refusal: str | None = None
    refusal_reason: str | None = None


class Run:
    """One run: the objects it needs, and the stages in order (``execute``)."""

    def __init__(
        self,
        prepared: Prepared,
        *,
        rng: random.Random | None = None,
        progress: ProgressReporter | None = None,
        budget: RateBudget | None = None,
        stopping: Stopping | None = None,
    ) -> None:
        p, s = prepared.policy, prepared.settings
        self.prepared = prepared
        self.run_id = uuid.uuid4().hex
        self.started = time.monotonic()
        self.stopping = stopping or Stopping()
        self.warnings: list[str] = []
        rate = p.limits.rate / s.shard_count
        self.budget = budget or LocalBudget(rate)
        self.transport = Transport(
            prepared.endpoint,
            prepared.credentials,
            self.budget,
            concurrency=p.limits.concurrency,
            timeout_s=p.retry.request_timeout_s,
        )
        retry = RetryPolicy(
            max_attempts=p.retry.max_attempts,
            base_s=p.retry.backoff_base_s,
            max_s=p.retry.backoff_max_s,
            rng=rng or random.Random(),
        )
        self.client = NclueClient(self.transport, retry, self.stopping, timezone_=p.api.timezone)
        self.watch = Watch(self, progress)
        self.lister = Lister(self.client, self.stopping, on_page=self.watch.on_page)
        self.source = Source(self.client, self.lister)
        self.ledger = Ledger()
        self.audit = AuditLog(open_sink(s.audit_log), self.run_id)
        if s.capture_audit:
            self.audit.captured = []
        self.recorder = Recorder(self.audit, self.ledger, skipped_lines=s.audit_skipped)
        self.executor: Executor | None = None
        self.planned: Planned | None = None
        self.would_refuse = False
        self.confirm: Confirm | None = None

    # -- the stages ----------------------------------------------------------------------

    async def execute(self, handle_signals: bool) -> RunSummary:
        error: CleanupError | None = None
        crashed = False
        try:
            self._started()
            if handle_signals:
                with signals_stop(
                    self.stopping, self.prepared.settings.shutdown_grace_s, self._abort
                ):
                    await self._stages()
            else:
                await self._stages()
        except CleanupError as exc:
            error = exc
            log.error("run_failed", error=str(exc), exit_code=exc.exit_code)
        except Interrupted:
            pass
        except Exception as exc:
            crashed = True
            error = None
            self.warnings.append(f"internal error: {type(exc).__name__}: {exc}")
            log.exception("run_crashed", error=f"{type(exc).__name__}: {exc}")
        if self.executor is not None and self.executor.fatal is not None and error is None:
            error = self.executor.fatal
            log.error("run_stopped", error=str(error), exit_code=error.exit_code)
        self._sweep()
        return self._finish(error, crashed)

    async def _stages(self) -> None:
        async with self.transport:
            selected = await self.select()
            planned = self.plan(selected)
            self.planned = planned
            self.record_plan(planned, selected)
            if self.prepared.settings.plan_out:
                self._write_plan(planned)
            if planned.refusal is not None:
                if self.prepared.settings.apply:
                    for d in planned.mine:
                        if d.action is not Action.SKIP:
                            self.recorder.finish(
                                Outcome.SKIPPED,
                                d.task,
                                reason=planned.refusal_reason,
                                detail=planned.refusal,
                            )
                    raise SafetyGuardError(planned.refusal)
                self.would_refuse = True
                self.warnings.append("an --apply run would refuse: " + planned.refusal)
                log.warning("safety_guard_would_refuse", refusal=planned.refusal, exit_code=5)
            executor = Executor(
                self.client,
                self.source,
                self.recorder,
                self.prepared.policy,
                holders=selected.holders,
                stopping=self.stopping,
                now=lambda: datetime.now(UTC),
                verify_pages=_verify_pages(selected, self.source.listed_size),
            )
            self.executor = executor
            if not self.prepared.settings.apply:
                executor.preview(d for d in planned.mine if d.action is not Action.SKIP)
                return
            acting = [d for d in planned.mine if d.action is not Action.SKIP]
            if acting and self.confirm is not None and not await self.confirm(len(acting)):
                self.stopping.request("not_confirmed", 0.0)
                raise CleanupError("--apply was not confirmed; nothing was deleted")
            async with self.watch.ticking():
                await executor.run(acting)
                await BusyLoop(executor, planned.evidence).run()

    async def select(self) -> Selected:
        """The listing when the policy needs it, explicit IDs' state, and the holders."""
        p, prep = self.prepared.policy, self.prepared
        self.watch.phase = "listing"
        needs_listing = p.selection.all or bool(p.filters.keep_latest)
        async with self.watch.ticking():
            # A listed account almost always needs its runs and profiles too: list them
            # alongside the tasks (within the same rate budget) instead of after.
            early = asyncio.ensure_future(self._holders()) if needs_listing else None
            try:
                account = await self.source.list_tasks() if needs_listing else None
            except BaseException:
                if early is not None:
                    early.cancel()
                    await asyncio.gather(early, return_exceptions=True)
                raise
            ids = prep.plan.task_ids if prep.plan is not None else prep.explicit
            self.watch.phase = "looking_up"
            lookup = await self.source.lookup(ids, listed=account) if ids else None
            # The listing itself when it is the selection (a 300,000-task account is
            # not copied); explicit IDs looked up join it in a new dict.
            candidates: Mapping[str, Task] = {}
            if account is not None and p.selection.all and prep.plan is None:
                candidates = account
            if lookup is not None:
                candidates = {**candidates, **lookup.found}
            holders: list[Holder] | None = None
            if early is not None:
                holders = await early
            elif candidates:
                holders = await self._holders()
        unreadable = {} if lookup is None else {i: str(e) for i, e in lookup.failed.items()}
        absent = () if lookup is None else tuple(sorted(lookup.absent))
        return Selected(list(candidates.values()), account, absent, unreadable, holders)

    async def _holders(self) -> list[Holder]:
        """The runs and profiles that count (``holders_that_count``), sorted out as soon
        as they are listed: most of a large account's runs are let go before the task
        listing ends, instead of being held beside it."""
        holders = await self.source.holders()
        return holders_that_count(holders, self.prepared.policy, datetime.now(UTC))

    def plan(self, selected: Selected) -> Planned:
        """Pure decisions over the whole plan; guards judged on it, before sharding."""
        p = self.prepared.policy
        now = datetime.now(UTC)
        listed = selected.account.values() if selected.account is not None else selected.candidates
        kept = newest_per_group(listed, p)
        evidence = evidence_from(selected.holders, p, now, kept)
        whole = drain(
            [judge(t, p, now, evidence) for t in selected.candidates],
            p.limits.max_deletions_per_run,
        )
        sharded = self.prepared.settings.shard_count > 1
        mine = [d for d in whole if self._mine(d.task.task_id)] if sharded else whole
        planned = Planned(whole, mine, evidence)
        planned.refusal_reason, planned.refusal = judge_caps(whole, p, selected.account)
        self.warnings += account_warnings(listed, selected.account, p)
        if selected.account is not None:  # nothing reads it from here on
            selected.account_size, selected.account = len(selected.account), None
        return planned

    def record_plan(self, planned: Planned, selected: Selected) -> None:
        """Terminal lines for what the plan settles now; statuses seen are counted."""
        with self.recorder.batch():  # nothing is sent while the plan is recorded
            self._record_plan(planned, selected)

    def _record_plan(self, planned: Planned, selected: Selected) -> None:
        ledger = self.ledger
        explicit = set(self.prepared.explicit)
        for d in planned.mine:
            ledger.statuses_seen[d.task.state or "missing"] += 1
            if d.reason == "unknown_status":
                ledger.unknown_statuses[d.task.status or "missing"] += 1
            if d.action is not Action.SKIP:
                continue
            if d.reason in UNSELECTED_REASONS and d.task.task_id not in explicit:
                self.recorder.skipped_quietly(d.task, d.reason, d.detail)
            else:
                self.recorder.finish(Outcome.SKIPPED, d.task, reason=d.reason, detail=d.detail)
        for task_id in selected.absent:
            if self._mine(task_id):
                self.recorder.finish(
                    Outcome.ALREADY_ABSENT, Task(task_id), evidence="not found (GET 404)"
                )
        for task_id, error in (selected.unreadable or {}).items():
            if self._mine(task_id):
                self.recorder.finish(Outcome.FAILED, Task(task_id), error=error)
        if ledger.unknown_statuses:
            shown = ", ".join(f"{k!r} x{v}" for k, v in ledger.unknown_statuses.most_common(5))
            self.warnings.append(f"tasks kept for a status this tool does not know: {shown}")

    def _write_plan(self, planned: Planned) -> None:
        prep = self.prepared
        assert prep.settings.plan_out is not None
        write_plan(
            prep.settings.plan_out,
            planned.mine,
            policy=prep.policy,
            endpoint=prep.endpoint,
            access_key_id=prep.credentials.access_key,
            run_id=self.run_id,
            now=datetime.now(UTC),
        )

    def _mine(self, task_id: str) -> bool:
        s = self.prepared.settings
        return s.shard_count == 1 or in_shard(task_id, s.shard_index, s.shard_count)

    # -- start and finish ------------------------------------------------------------------

    def _started(self) -> None:
        s, p = self.prepared.settings, self.prepared.policy
        if p.limits.rate > 1:
            self.warnings.append(
                f"limits.rate is {p.limits.rate:g} requests/s; the NCLUE guidance is 1 request/s"
            )
        self.audit.write(
            "run_started",
            policy=p.source,
            policy_sha256=p.sha256,
            dry_run=not s.apply,
            mode="apply" if s.apply else "dry_run",
            endpoint=self.prepared.endpoint,
            version=__version__,
            shard={"index": s.shard_index, "count": s.shard_count},
            trigger=s.trigger,
            operator=s.operator or operator(),
            account=s.account,
            rate=p.limits.rate / s.shard_count,
            concurrency=p.limits.concurrency,
            explicit_ids=len(self.prepared.explicit),
            plan=s.plan_in,
        )

    def _sweep(self) -> None:
        """Every task that entered the pipeline ends with one terminal record."""
        if self.planned is None or self.audit.failure is not None:
            return
        stopped = self.executor.fatal if self.executor is not None else None
        for d in self.planned.mine:
            if d.action is not Action.SKIP and not self.ledger.has(d.task.task_id):
                reason = (
                    "run_stopped"
                    if stopped is not None or not self.stopping.by_signal
                    else "interrupted"
                )
                self.recorder.finish(
                    Outcome.SKIPPED, d.task, reason=reason, detail=self.stopping.reason
                )

    def _abort(self, signal_name: str) -> None:
        """A second signal: the process exits now; flush what can be flushed."""
        log.error("second_signal", signal=signal_name, action="exiting at once")
        self.audit.close()

    def _finish(self, error: CleanupError | None, crashed: bool) -> RunSummary:
        return build_summary(self, error, crashed)


def _verify_pages(selected: Selected, listed_size: int | None) -> int | None:
    """What a verifying listing costs, when the account's size is known (else: GET each)."""
    size = selected.account_size if selected.account_size is not None else listed_size
    return None if size is None else math.ceil(size / LIMIT) + 1


__all__ = ["Run", "prepare"]
