"""The report stage: the exit code, ``run_finished`` and the ``RunSummary`` of a run."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .errors import CleanupError
from .exitcodes import Facts, exit_code
from .logs import get_logger
from .model import Outcome
from .summary import RunSummary

if TYPE_CHECKING:
    from .pipeline import Run

log = get_logger(__name__)


def facts(run: Run, error: CleanupError | None, crashed: bool) -> Facts:
    counts = run.ledger.counts()
    return Facts(
        error=error,
        crashed=crashed,
        signal=run.stopping.reason,
        failed=counts[Outcome.FAILED.value],
        still_busy=counts[Outcome.STILL_BUSY.value],
        apply=run.prepared.settings.apply,
        unknown_status_kept=bool(run.ledger.unknown_statuses),
        would_refuse=run.would_refuse,
    )


def build_summary(run: Run, error: CleanupError | None, crashed: bool) -> RunSummary:
    """Decide the exit code, write ``run_finished``, close the log, return the summary."""
    ledger, prep = run.ledger, run.prepared
    if run.audit.failure is not None and error is None:
        error = run.audit.failure
    code = exit_code(facts(run, error, crashed))
    duration = time.monotonic() - run.started
    requests: dict[str, dict[str, int]] = {}
    for (route, status), n in sorted(run.transport.answers.items()):
        requests.setdefault(route, {})[str(status)] = n
    requests_total = sum(run.transport.sends.values())
    counts = ledger.counts()
    message = None if error is None else str(error)
    if crashed and message is None:
        message = run.warnings[-1] if run.warnings else "internal error"
    executor = run.executor
    refusal = executor.refusal if executor is not None else None
    drained = ledger.skip_reasons.get("drain", 0)
    if run.audit.failure is None:
        try:
            run.audit.write(
                "run_finished",
                counts=counts,
                skip_reasons=dict(sorted(ledger.skip_reasons.items())),
                progress_events=dict(sorted(ledger.events.items())),
                unknown_statuses=dict(ledger.unknown_statuses),
                refusal=refusal,
                requests=requests,
                requests_total=requests_total,
                duration_s=round(duration, 3),
                exit_code=code,
                error=message,
                stopped_by=run.stopping.reason,
            )
        except CleanupError as exc:  # the log failed at its last line: say so
            log.error("audit_write_failed", error=str(exc))
            message = message or str(exc)
            code = max(code, 1) if code == 0 else code
    run.audit.close()
    run.watch.close()
    return RunSummary(
        run_id=run.run_id,
        dry_run=not prep.settings.apply,
        exit_code=code,
        counts=counts,
        task_ids=ledger.task_ids(),
        requests=requests,
        requests_total=requests_total,
        duration_s=duration,
        endpoint=prep.endpoint,
        policy_sha256=prep.policy.sha256,
        error=message,
        warnings=tuple(run.warnings),
        progress_events=dict(sorted(ledger.events.items())),
        skip_reasons=dict(sorted(ledger.skip_reasons.items())),
        notes={o.value: tuple(n) for o, n in ledger.notes.items()},
        unknown_statuses=dict(ledger.unknown_statuses),
        statuses_seen=dict(ledger.statuses_seen),
        refusal=refusal,
        drain_left=drained if prep.policy.limits.max_deletions_per_run is not None else None,
        trigger=prep.settings.trigger,
        account=prep.settings.account,
        audit_log=prep.settings.audit_log,
        audit_head_sha256=run.audit.head_sha256 if run.audit.failure is None else None,
        plan_path=prep.settings.plan_out,
        planned=run.planned is not None,
        audit_lines=b"".join(run.audit.captured) if run.audit.captured is not None else None,
        decisions=run.planned.mine if run.planned is not None else (),
    )
