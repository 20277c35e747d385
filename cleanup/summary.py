"""The run summary: what a run did, for the console, the JSON file, metrics and callers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .model import Decision, Outcome


@dataclass(frozen=True, slots=True)
class TaskNote:
    """One task named in a summary (a failure or a task still busy), with why."""

    task_id: str
    task_name: str | None
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "task_name": self.task_name, "why": self.why}


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did: counts and task IDs per outcome, requests sent, exit code.

    ``counts`` has every terminal outcome (``Outcome`` values, zero included);
    ``skip_reasons`` splits ``skipped`` by reason, ``interrupted`` and ``run_stopped``
    included; ``notes`` names the ``failed`` and ``still_busy`` tasks with why.
    """

    run_id: str
    dry_run: bool
    exit_code: int
    counts: dict[str, int]
    task_ids: dict[str, tuple[str, ...]]
    requests: dict[str, dict[str, int]]
    requests_total: int
    duration_s: float
    endpoint: str
    policy_sha256: str
    error: str | None = None
    warnings: tuple[str, ...] = ()
    progress_events: dict[str, int] = field(default_factory=dict)
    """Non-terminal task events: DELETE attempts (deleting), deferrals, retries."""
    skip_reasons: dict[str, int] = field(default_factory=dict)
    notes: dict[str, tuple[TaskNote, ...]] = field(default_factory=dict)
    unknown_statuses: dict[str, int] = field(default_factory=dict)
    statuses_seen: dict[str, int] = field(default_factory=dict)
    refusal: dict[str, Any] | None = None
    """The first refused DELETE: status, errorCode, message (how the API refuses)."""
    drain_left: int | None = None
    """Drain mode: tasks the policy would delete that were left for the next run."""
    trigger: str = "adhoc"
    account: str | None = None
    audit_log: str | None = None
    audit_head_sha256: str | None = None
    """sha256 of the audit log's last line (run_finished): ``audit verify --expect-head``."""
    plan_path: str | None = None
    planned: bool = False
    """The run got as far as planning (a dry run's plan table means something)."""
    audit_lines: bytes | None = field(default=None, repr=False, compare=False)
    """This run's audit lines, when ``Settings.capture_audit`` asked for them."""
    decisions: Sequence[Decision] = field(default=(), repr=False, compare=False)

    @property
    def deleted(self) -> tuple[str, ...]:
        return self.task_ids.get(Outcome.DELETED.value, ())

    @property
    def interrupted(self) -> int:
        return self.skip_reasons.get("interrupted", 0) + self.skip_reasons.get("run_stopped", 0)

    def to_json(self) -> dict[str, Any]:
        deleted = self.counts.get(Outcome.DELETED.value, 0)
        return {
            "run_id": self.run_id,
            "account": self.account,
            "trigger": self.trigger,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "error": self.error,
            "warnings": list(self.warnings),
            "endpoint": self.endpoint,
            "policy_sha256": self.policy_sha256,
            "counts": self.counts,
            "skip_reasons": self.skip_reasons,
            "interrupted": self.interrupted,
            "drain_left": self.drain_left,
            "unknown_statuses": self.unknown_statuses,
            "statuses_seen": self.statuses_seen,
            "refusal": self.refusal,
            "notes": {k: [n.to_json() for n in v] for k, v in self.notes.items()},
            "task_ids": dict(self.task_ids),  # tuples are JSON arrays: not copied
            "progress_events": self.progress_events,
            "requests": self.requests,
            "requests_total": self.requests_total,
            "requests_per_deleted_task": round(self.requests_total / deleted, 4)
            if deleted
            else None,
            "achieved_delete_rate": round(deleted / self.duration_s, 3)
            if self.duration_s > 0
            else None,
            "duration_s": round(self.duration_s, 3),
            "audit_log": self.audit_log,
            "audit_head_sha256": self.audit_head_sha256,
            "plan": self.plan_path,
        }
