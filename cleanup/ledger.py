"""Bookkeeping of one run's outcomes, apart from the audit writer that records them.

``Ledger`` knows what happened (one terminal outcome per task, counts, skip reasons,
the tasks to name in the summary); ``Recorder`` writes each event to the audit log
and books it in the ledger, so a task gets exactly one terminal line and the
summary, the metrics and the exit code all read the same numbers.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .audit import AuditLog
from .errors import AuditWriteError
from .model import Outcome, Task
from .summary import TaskNote

NOTED = (Outcome.FAILED, Outcome.STILL_BUSY)


@dataclass(slots=True)
class Ledger:
    """What happened to every task of one run."""

    ended: dict[str, Outcome] = field(default_factory=dict)
    """Every task's terminal outcome, in the order they ended."""
    outcomes: Counter[Outcome] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)
    notes: dict[Outcome, list[TaskNote]] = field(default_factory=dict)
    events: Counter[str] = field(default_factory=Counter)
    """Non-terminal task events written, by name (deleting, deferred, retrying, ...)."""
    statuses_seen: Counter[str] = field(default_factory=Counter)
    unknown_statuses: Counter[str] = field(default_factory=Counter)

    def end(self, outcome: Outcome, task: Task, why: str | None, reason: str | None) -> None:
        if task.task_id in self.ended:
            raise RuntimeError(f"task {task.task_id} already has a terminal audit event")
        self.ended[task.task_id] = outcome
        self.outcomes[outcome] += 1
        if outcome is Outcome.SKIPPED and reason:
            self.skip_reasons[reason] += 1
        if outcome in NOTED:
            self.notes.setdefault(outcome, []).append(
                TaskNote(task.task_id, task.task_name, why or "")
            )

    def count_unwritten(self, reason: str, number: int = 1) -> None:
        """Tasks no name or age filter selected: counted, no line each."""
        self.skip_reasons[reason] += number

    def counts(self) -> dict[str, int]:
        counts = {o.value: self.outcomes[o] for o in Outcome}
        unwritten = sum(self.skip_reasons.values()) - self.outcomes[Outcome.SKIPPED]
        counts[Outcome.SKIPPED.value] += unwritten
        return counts

    def task_ids(self) -> dict[str, tuple[str, ...]]:
        """The tasks of each outcome, in the order they ended: built at the end, straight
        into tuples (lists kept all along would cost a pointer per task more)."""
        ended = self.ended
        return {o.value: tuple(t for t, e in ended.items() if e is o) for o in Outcome}

    def has(self, task_id: str) -> bool:
        return task_id in self.ended


class Recorder:
    """Writes audit events and books them; the one way outcomes are recorded.

    Once a line cannot be written (``AuditWriteError``), nothing more is written:
    outcomes are still booked (the summary counts them), ``on_failure`` is told once
    (the executor stops sending DELETEs), and only a write-ahead ``deleting`` line
    raises, so its DELETE is never sent.
    """

    def __init__(self, audit: AuditLog, ledger: Ledger, *, skipped_lines: str = "selected"):
        self.audit = audit
        self.ledger = ledger
        self.all_skipped = skipped_lines == "all"
        self.on_failure: Callable[[AuditWriteError], None] | None = None

    def finish(self, outcome: Outcome, task: Task, **fields: Any) -> None:
        """A task's terminal event (written, then booked; a second one is a bug)."""
        if self.ledger.has(task.task_id):
            raise RuntimeError(f"task {task.task_id} already has a terminal audit event")
        why = fields.get("error") or fields.get("reason") or fields.get("detail")
        self._write(outcome.value, task, fields)
        self.ledger.end(outcome, task, None if why is None else str(why), fields.get("reason"))

    def skipped_quietly(self, task: Task, reason: str, detail: str | None) -> None:
        """A task no filter selected: a line only with ``--audit-skipped all``."""
        if self.all_skipped:
            self.finish(Outcome.SKIPPED, task, reason=reason, detail=detail)
        else:
            self.ledger.count_unwritten(reason)

    def event(self, event: str, task: Task, *, write_ahead: bool = False, **fields: Any) -> None:
        """A non-terminal task event (deleting, deferred, retrying, ...); a write-ahead
        one raises ``AuditWriteError`` when it cannot be written."""
        self._write(event, task, fields, write_ahead=write_ahead)
        self.ledger.events[event] += 1

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Record a burst of outcomes (nothing sent in between) with fewer writes; a
        failed write is handled at the end as a line's would be (``on_failure``)."""
        first = self.audit.failure is None
        try:
            with self.audit.batch():
                yield
        except AuditWriteError as exc:
            self._failed(exc, first)

    def _write(
        self, event: str, task: Task, fields: dict[str, Any], *, write_ahead: bool = False
    ) -> None:
        if write_ahead and self.audit.batching:
            raise RuntimeError(f"a write-ahead {event} line would be held in a batch")
        first = self.audit.failure is None
        try:
            self.audit.task(event, task, fields)
        except AuditWriteError as exc:
            self._failed(exc, first)
            if write_ahead:
                raise

    def _failed(self, error: AuditWriteError, first: bool) -> None:
        if first and self.on_failure is not None:
            self.on_failure(error)
