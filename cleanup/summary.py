"""The run summary: what a run did, for the console, the JSON file, metrics and callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import Decision, Outcome


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a run did: counts and task IDs per outcome, requests sent, exit code."""

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
    decisions: tuple[Decision, ...] = field(default=(), repr=False, compare=False)

    @property
    def deleted(self) -> tuple[str, ...]:
        return self.task_ids.get(Outcome.DELETED.value, ())

    def to_json(self) -> dict[str, Any]:
        deleted = self.counts.get(Outcome.DELETED.value, 0)
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "exit_code": self.exit_code,
            "error": self.error,
            "warnings": list(self.warnings),
            "progress_events": self.progress_events,
            "endpoint": self.endpoint,
            "policy_sha256": self.policy_sha256,
            "counts": self.counts,
            "task_ids": {k: list(v) for k, v in self.task_ids.items()},
            "requests": self.requests,
            "requests_total": self.requests_total,
            "requests_per_deleted_task": round(self.requests_total / deleted, 4)
            if deleted
            else None,
            "achieved_delete_rate": round(deleted / self.duration_s, 3)
            if self.duration_s > 0
            else None,
            "duration_s": round(self.duration_s, 3),
        }
