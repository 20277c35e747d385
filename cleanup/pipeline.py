"""The whole run, stage by stage: select, plan, guard, delete (or preview), report.

``run_policy`` is the in-process API (also what the CLI calls): it takes a policy,
returns a ``RunSummary`` and writes the same audit log as the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import uuid
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from . import __version__
from .audit import AuditLog
from .client import NclueClient
from .credentials import Credentials, load_credentials
from .deleter import Deleter, Stopping
from .errors import CleanupError, PolicyError
from .limiter import RateLimiter
from .model import Action, Decision, Outcome, Task
from .planner import newest_per_name, plan
from .plans import read_plan, write_plan
from .policy import Policy, load_policy, policy_from_mapping
from .progress import ProgressReporter, RateWindow, Snapshot
from .settings import Settings, operator, resolve_endpoint
from .source import Lookup, Source, in_shard, read_ids
from .summary import RunSummary

log = structlog.get_logger(__name__)

SIGNAL_EXIT = {"SIGINT": 130, "SIGTERM": 143}


async def run_policy(
    policy: Policy | str | Path | Mapping[str, Any],
    *,
    apply: bool = False,
    ids: Iterable[str] = (),
    settings: Settings | None = None,
    credentials: Credentials | None = None,
    handle_signals: bool = False,
    progress: ProgressReporter | None = None,
    rng: random.Random | None = None,
) -> RunSummary:
    """Run a policy end to end and return its summary (never raises for API trouble).

    ``policy`` is a ``Policy``, a path to a policy file, or a mapping in the policy
    file's format. ``ids`` adds explicit task IDs (like ``--ids-from``). Usage
    errors (bad policy, no credentials, a plan from another policy) raise
    ``UsageError`` before any request is sent. ``progress`` receives snapshots while
    the run deletes (``cleanup.progress.LogProgress`` logs one every few seconds).
    """
    settings = replace(settings or Settings(), apply=apply or (settings or Settings()).apply)
    extra = tuple(read_ids(ids, "ids")) + settings.extra_ids
    loaded = _as_policy(policy, ids_elsewhere=bool(extra or settings.plan_in))
    explicit = _explicit_ids(loaded, extra, settings)
    endpoint = resolve_endpoint(settings.endpoint, os.environ, loaded.endpoint)
    creds = credentials or load_credentials()
    run = _Run(loaded, settings, creds, endpoint, explicit, rng, progress)
    return await run.execute(handle_signals)


def run_policy_sync(policy: Policy | str | Path | Mapping[str, Any], **kwargs: Any) -> RunSummary:
    """``run_policy`` for code that is not async (a notebook, an Airflow task)."""
    return asyncio.run(run_policy(policy, **kwargs))


def _as_policy(policy: Policy | str | Path | Mapping[str, Any], *, ids_elsewhere: bool) -> Policy:
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, (str, Path)):
        return load_policy(policy, ids_elsewhere=ids_elsewhere)
    return policy_from_mapping(policy, source="<mapping>", ids_elsewhere=ids_elsewhere)


def _explicit_ids(policy: Policy, extra: tuple[str, ...], settings: Settings) -> tuple[str, ...]:
    """Explicit IDs: the plan's alone with ``--plan``, else policy, ids_file and extras."""
    if settings.plan_in:
        return read_plan(settings.plan_in, policy).task_ids
    ids = list(policy.selection.ids)
    if policy.selection.ids_file is not None:
        path = policy.selection.ids_file
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise PolicyError(f"{policy.source}: select.ids_file: cannot read {path}") from exc
        ids += read_ids(lines, str(path))
    return tuple(dict.fromkeys([*ids, *extra]))


class _Run:
    """One run's state; ``execute`` is the pipeline in order."""

    def __init__(
        self,
        policy: Policy,
        settings: Settings,
        credentials: Credentials,
        endpoint: str,
        explicit: tuple[str, ...],
        rng: random.Random | None,
        progress: ProgressReporter | None = None,
    ) -> None:
        self.policy, self.settings, self.endpoint, self.explicit = (
            policy,
            settings,
            endpoint,
            explicit,
        )
        self.run_id = uuid.uuid4().hex
        self.started = time.monotonic()
        self.stopping = Stopping()
        self.warnings: list[str] = []
        self.error: str | None = None
        self.decisions: list[Decision] = []
        rate = policy.limits.rate / settings.shard_count
        self.limiter = RateLimiter(
            rate,
            policy.limits.concurrency,
            backoff_base_s=policy.retry.backoff_base_s,
            backoff_max_s=policy.retry.backoff_max_s,
            rng=rng,
        )
        self.client = NclueClient(
            endpoint,
            credentials,
            self.limiter,
            max_attempts=policy.retry.max_attempts,
            backoff_base_s=policy.retry.backoff_base_s,
            backoff_max_s=policy.retry.backoff_max_s,
            timeout_s=policy.retry.request_timeout_s,
            rng=rng,
        )
        self.audit = AuditLog(settings.audit_log, self.run_id)
        self.progress = progress

    async def execute(self, handle_signals: bool) -> RunSummary:
        self._start()
        if handle_signals:
            self._install_signal_handlers()
        exit_code = 0
        try:
            async with self.client:
                exit_code = await self._pipeline()
        except CleanupError as exc:
            self.error = str(exc)
            exit_code = exc.exit_code
            log.error("run_failed", error=self.error, exit_code=exit_code)
        finally:
            if handle_signals:
                self._remove_signal_handlers()
        exit_code = self._final_exit_code(exit_code)
        return self._finish(exit_code)

    def _start(self) -> None:
        s, p = self.settings, self.policy
        if p.limits.rate > 1:
            message = (
                f"limits.rate is {p.limits.rate:g} requests/s; the NCLUE guidance is 1 request/s"
            )
            self.warnings.append(message)
            log.warning("rate_above_guidance", rate=p.limits.rate, guidance=1)
        self.audit.event(
            "run_started",
            policy=p.source,
            policy_sha256=p.sha256,
            dry_run=not s.apply,
            mode="apply" if s.apply else "dry_run",
            endpoint=self.endpoint,
            version=__version__,
            shard={"index": s.shard_index, "count": s.shard_count},
            trigger=s.trigger,
            operator=s.operator or operator(),
            rate=p.limits.rate / s.shard_count,
            concurrency=p.limits.concurrency,
            explicit_ids=len(self.explicit),
            plan=s.plan_in,
        )

    async def _pipeline(self) -> int:
        source = Source(self.client)
        account, lookup = await self._select(source)
        now = datetime.now(timezone.utc)
        candidates = self._candidates(account, lookup)
        kept = newest_per_name(
            account if account is not None else candidates, self.policy.filters.keep_latest
        )
        self.decisions = plan(candidates, self.policy, now, kept=kept)
        self._settle_lookup(lookup)
        for d in self.decisions:
            if d.action is Action.SKIP:
                self.audit.finish(Outcome.SKIPPED, d.task, reason=d.reason, detail=d.detail)
        wanted = [d for d in self.decisions if d.action in (Action.DELETE, Action.DEFER)]
        if self.settings.plan_out:
            ids = [d.task.task_id for d in self.decisions if d.action is Action.DELETE]
            write_plan(self.settings.plan_out, ids, self.policy, self.endpoint, now)
        guard = self._guard(wanted)
        deleter = Deleter(
            self.client,
            source,
            self.audit,
            self.policy,
            kept=kept,
            stopping=self.stopping,
            now=lambda: datetime.now(timezone.utc),
        )
        if guard is not None:
            for d in wanted:
                self.audit.finish(Outcome.SKIPPED, d.task, reason="max_deletions", detail=guard)
            self.error = guard
            return 5
        if not self.settings.apply:
            deleter.preview(wanted)
            return 0
        await self._with_progress(deleter.run(wanted), len(wanted))
        if deleter.fatal is not None:
            self.error = str(deleter.fatal)
            return deleter.fatal.exit_code
        return 0

    async def _with_progress(self, work: Awaitable[None], total: int) -> None:
        """Run ``work`` while a ticker sends progress snapshots to the reporter."""
        reporter = self.progress
        if reporter is None:
            await work
            return
        baseline = self.audit.ended_count
        window = RateWindow()

        def snapshot() -> Snapshot:
            done = self.audit.ended_count - baseline
            requests = sum(self.client.requests.values())
            return Snapshot(done, total, self.audit.counts(), requests, window.rate(done))

        async def tick() -> None:
            while True:
                reporter.update(snapshot())
                await asyncio.sleep(reporter.interval_s)

        ticker = asyncio.ensure_future(tick())
        try:
            await work
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            reporter.update(snapshot())
            reporter.close()

    async def _select(self, source: Source) -> tuple[list[Task] | None, Lookup | None]:
        """The complete listing when the policy needs it, and explicit IDs' state."""
        policy = self.policy
        needs_listing = (policy.selection.all and not self.settings.plan_in) or bool(
            policy.filters.keep_latest
        )
        account = await source.list_tasks() if needs_listing else None
        if not self.explicit:
            return account, None
        if account is not None:
            by_id = {t.task_id: t for t in account}
            found = {i: by_id[i] for i in self.explicit if i in by_id}
            absent = {i for i in self.explicit if i not in by_id}
            return account, Lookup(found=found, absent=absent, failed={})
        return None, await source.lookup(self.explicit)

    def _candidates(self, account: list[Task] | None, lookup: Lookup | None) -> list[Task]:
        s = self.settings
        if account is not None and self.policy.selection.all and not s.plan_in:
            tasks = list(account)
        else:
            tasks = []
        if lookup is not None:
            listed = {t.task_id for t in tasks}
            tasks += [t for i, t in lookup.found.items() if i not in listed]
        return [t for t in tasks if self._mine(t.task_id)]

    def _mine(self, task_id: str) -> bool:
        """Whether this process's shard handles ``task_id`` (always, when not sharded)."""
        s = self.settings
        return s.shard_count == 1 or in_shard(task_id, s.shard_index, s.shard_count)

    def _settle_lookup(self, lookup: Lookup | None) -> None:
        """Explicit IDs the server does not know are already absent; unreadable ones failed."""
        if lookup is None:
            return
        for task_id in sorted(lookup.absent):
            if self._mine(task_id):
                self.audit.finish(Outcome.ALREADY_ABSENT, Task(task_id), evidence="not found")
        for task_id, error in lookup.failed.items():
            if self._mine(task_id):
                self.audit.finish(
                    Outcome.FAILED, Task(task_id), error=str(error), http_status=error.status
                )

    def _guard(self, wanted: list[Decision]) -> str | None:
        limit = self.policy.limits.max_deletions
        if limit is None or len(wanted) <= limit:
            return None
        message = (
            f"the plan would delete {len(wanted)} tasks, more than limits.max_deletions "
            f"({limit}); nothing was deleted. Narrow the policy or raise the limit."
        )
        if self.settings.apply:
            return message
        self.warnings.append("an --apply run would refuse: " + message)
        log.warning("safety_guard_would_refuse", planned=len(wanted), max_deletions=limit)
        return None

    def _final_exit_code(self, code: int) -> int:
        if code in (2, 3, 5):
            return code
        if self.stopping.reason in SIGNAL_EXIT:
            return SIGNAL_EXIT[self.stopping.reason]
        counts = self.audit.counts()
        if code == 0 and counts[Outcome.FAILED.value]:
            return 1
        if code == 0 and counts[Outcome.STILL_BUSY.value] and self.settings.apply:
            return 4
        return code

    def _finish(self, exit_code: int) -> RunSummary:
        duration = time.monotonic() - self.started
        requests: dict[str, dict[str, int]] = {}
        for (route, status), n in sorted(self.client.requests.items()):
            requests.setdefault(route, {})[str(status)] = n
        counts = self.audit.counts()
        progress_events = dict(sorted(self.audit.progress_events.items()))
        self.audit.event(
            "run_finished",
            counts=counts,
            progress_events=progress_events,
            requests=requests,
            requests_total=sum(self.client.requests.values()),
            duration_s=round(duration, 3),
            exit_code=exit_code,
            error=self.error,
            stopped_by=self.stopping.reason,
        )
        self.audit.close()
        return RunSummary(
            run_id=self.run_id,
            dry_run=not self.settings.apply,
            exit_code=exit_code,
            counts=counts,
            progress_events=progress_events,
            task_ids={o.value: tuple(ids) for o, ids in self.audit.outcomes.items()},
            requests=requests,
            requests_total=sum(self.client.requests.values()),
            duration_s=duration,
            endpoint=self.endpoint,
            policy_sha256=self.policy.sha256,
            error=self.error,
            warnings=tuple(self.warnings),
            decisions=tuple(self.decisions),
        )

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.stopping.requested and self.stopping.reason in SIGNAL_EXIT:
            log.error("second_signal", signal=sig.name, action="exiting at once")
            self.audit.close()
            os._exit(SIGNAL_EXIT[sig.name])
        log.warning(
            "stopping",
            signal=sig.name,
            grace_s=self.settings.shutdown_grace_s,
            action="no new work; in-flight calls may finish",
        )
        self.stopping.request(sig.name, self.settings.shutdown_grace_s)
