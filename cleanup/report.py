"""What people read at the end of a run: the dry run's plan, the run summary, its JSON.

Untrusted text (task names, statuses, server messages, errors) goes through
``untrusted.printable`` and is printed as ``rich.text.Text``: console markup is never
interpreted and control characters appear as visible escapes.
"""

from __future__ import annotations

import heapq
import os
import shlex
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .exitcodes import MEANING
from .fsutil import json_chunks, write_json
from .model import Action, Decision, Outcome
from .progress import format_duration
from .summary import RunSummary, TaskNote
from .untrusted import NAME_LIMIT, printable

EXIT_MEANING = MEANING
"""What each exit code means (SPEC.md's table, kept in ``cleanup.exitcodes``)."""

MIN_WIDTH = 80
"""Width of output that is not a terminal when ``COLUMNS`` is unset, and its floor: the
plan table needs about 78 columns to show a 36-character task ID without folding it."""
NOTES_SHOWN = 5
"""Failed and still-busy tasks named on the console; all of them are in --summary-json."""
_INTERRUPTED = ("interrupted", "run_stopped")
_NAME_MIN, _REASON_MIN, _GAP = 8, 10, 2


def make_console(*, stderr: bool, width: int | None = None) -> Console:
    """A console for the tool's human output on stderr or stdout.

    ``NO_COLOR`` set to anything non-empty (no-color.org): no colour and no other escape
    sequence either. Markup, emoji codes and highlighting are off, so nothing a server
    sent is ever interpreted. Width: ``width`` when given; on a terminal its own width
    (``COLUMNS`` overrides); elsewhere ``COLUMNS`` when set, else 80, never below 80
    (``MIN_WIDTH``: narrower would fold task IDs in the plan table).
    """
    stream: TextIO = sys.stderr if stderr else sys.stdout
    no_color = os.environ.get("NO_COLOR", "") != ""
    if width is None and not _isatty(stream):
        columns = os.environ.get("COLUMNS", "")
        width = max(int(columns) if columns.isdigit() else MIN_WIDTH, MIN_WIDTH)
    return Console(
        stderr=stderr,
        width=width,
        no_color=no_color,
        color_system=None if no_color else "auto",
        markup=False,
        emoji=False,
        highlight=False,
    )


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


def _styled(console: Console, style: str) -> str:
    """``style``, or no style at all when the console must not colour (NO_COLOR)."""
    return "" if console.no_color or console.color_system is None else style


# -- the dry run's plan ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Row:
    name: str
    task: str
    status: str
    age: str
    action: str
    reason: str


def plan_reason(decision: Decision) -> str:
    """Why the plan acts on a task, beyond its status; empty when the status says it all."""
    text = decision.detail or decision.reason
    spellings = {(decision.task.status or "").casefold(), decision.task.state or ""}
    plain = {"selected", "busy"} | {f"{p} {s}" for p in ("status", "task is") for s in spellings}
    return "" if text.casefold() in plain else text


def plan_order(decisions: Iterable[Decision], first: int) -> tuple[list[Decision], int]:
    """The first ``first`` tasks the plan acts on, grouped by task name, oldest first
    within a name, and how many it acts on in all. Only those kept are held: a plan
    of 300,000 tasks is not copied and sorted to print fifty of them."""
    acting = 0

    def counted() -> Iterator[Decision]:
        nonlocal acting
        for d in decisions:
            if d.action is not Action.SKIP:
                acting += 1
                yield d

    def key(d: Decision) -> tuple[bool, str, str, float, str]:
        name, created = d.task.task_name, d.task.created_at
        when = created.timestamp() if created is not None else float("inf")
        return (name is None, (name or "").casefold(), name or "", when, d.task.task_id)

    if first <= 0:  # nsmallest would not even look
        return [], sum(1 for _ in counted())
    shown = heapq.nsmallest(first, counted(), key=key)
    return shown, acting


def _age(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _rows(decisions: Sequence[Decision], now: datetime) -> list[_Row]:
    rows, previous = [], object()
    for d in decisions:
        task = d.task
        name = "(no name)" if task.task_name is None else printable(task.task_name, NAME_LIMIT)
        rows.append(
            _Row(
                name="" if task.task_name == previous else name,
                task=task.task_id,
                status=printable(task.status or "?", 20),
                age="?" if task.created_at is None else _age(now - task.created_at),
                action="delete" if d.action is Action.DELETE else "wait (busy)",
                reason=printable(plan_reason(d)),
            )
        )
        previous = task.task_name
    return rows


def _widths(rows: Sequence[_Row], width: int) -> dict[str, int]:
    """Column widths that fit ``width``: the task ID is never cut, names and reasons are.

    Without a ``reason`` width, reasons go on a line of their own under their row.
    """

    def longest(field: str) -> int:
        return max(cell_len(field), *(cell_len(getattr(r, field)) for r in rows))

    widths = {f: longest(f) for f in ("task", "status", "age", "action")}
    name_need, reason_need = longest("name"), longest("reason")
    free = width - sum(widths.values()) - _GAP * 4
    if any(r.reason for r in rows):
        name = min(name_need, max(_NAME_MIN, free - _GAP - reason_need, (free - _GAP) // 2))
        reason = min(reason_need, free - _GAP - name)
        if reason >= _REASON_MIN:
            return {"name": name, **widths, "reason": reason}
    return {"name": max(1, min(name_need, free)), **widths}


def _line(cells: Mapping[str, str], widths: Mapping[str, int], style: str = "") -> Text:
    parts = []
    for field, width in widths.items():
        cell = Text(cells[field])
        cell.truncate(width, overflow="ellipsis")
        cell.align("right" if field == "age" else "left", width)
        parts.append(cell)
    line = Text(" " * _GAP).join(parts)
    line.rstrip()
    line.stylize(style)
    return line


def _plan_lines(rows: Sequence[_Row], console: Console) -> list[Text]:
    """The plan as aligned lines: a header, then a line per task (and its reason)."""
    widths = _widths(rows, console.width)
    lines = [_line({f: f for f in widths}, widths, _styled(console, "bold"))]
    for row in rows:
        lines.append(_line({f: getattr(row, f) for f in widths}, widths))
        if row.reason and "reason" not in widths:
            below = Text(" " * (widths["name"] + _GAP) + "why: " + row.reason)
            below.truncate(console.width, overflow="ellipsis")
            lines.append(below)
    return lines


def print_plan(
    decisions: Sequence[Decision],
    now: datetime,
    console: Console,
    *,
    plan_path: str | None,
    rows: int = 50,
) -> None:
    """The dry run's table of what --apply would do, then where the whole plan is."""
    shown, acting = plan_order(decisions, rows)
    if shown:
        console.print(Text("what --apply would do, by task name:"))
        for line in _plan_lines(_rows(shown, now), console):
            console.print(line, no_wrap=True, overflow="ellipsis")
    more = acting - len(shown)
    where = (
        f"full plan: {plan_path} — nclue-cleanup plan show {shlex.quote(plan_path)}"
        if plan_path
        else "pass --plan-out FILE to keep the whole plan for review"
    )
    if more:
        console.print(Text(f"and {more:,} more not shown; {where}"))
    elif plan_path:
        console.print(Text(where))
    console.print(Text(_plan_line(decisions)))


def _plan_line(decisions: Sequence[Decision]) -> str:
    actions = Counter(d.action for d in decisions)
    kept = Counter(d.reason for d in decisions if d.action is Action.SKIP)
    line = (
        f"would delete {actions[Action.DELETE]:,}, would wait for {actions[Action.DEFER]:,} "
        f"busy, would keep {actions[Action.SKIP]:,}"
    )
    if kept:
        line += f" ({_counts(kept)})"
    return line


def _counts(counts: Mapping[str, int]) -> str:
    """``"name_glob 8, keep_latest 3"``: largest first, names shown escaped."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{printable(str(k), 60)} {v:,}" for k, v in items if v)


# -- the run summary ---------------------------------------------------------------------


def print_summary(summary: RunSummary, console: Console) -> None:
    """The closing report: outcomes, why tasks were kept or left, cost, the exit code."""
    console.print(Text(_title(summary)))
    console.print(Padding(_outcome_table(summary), (0, 0, 0, 2), expand=False))
    rule_skips = {k: v for k, v in summary.skip_reasons.items() if k not in _INTERRUPTED}
    if rule_skips:
        console.print(Text(f"kept by a rule: {_counts(rule_skips)}"))
    if summary.interrupted:
        parts = {k: summary.skip_reasons.get(k, 0) for k in _INTERRUPTED}
        console.print(
            Text(
                f"interrupted: {summary.interrupted:,} tasks never reached ({_counts(parts)}); "
                "running the policy again picks them up"
            )
        )
    busy_title = "would wait (busy)" if summary.dry_run else "still busy at the busy deadline"
    for outcome, title in ((Outcome.STILL_BUSY, busy_title), (Outcome.FAILED, "failed")):
        notes = summary.notes.get(outcome.value, ())
        total = max(len(notes), summary.counts.get(outcome.value, 0))
        if total:
            _print_notes(console, title, notes, total)
    for line in _fact_lines(summary):
        console.print(line)
    warn, error = _styled(console, "yellow"), _styled(console, "red")
    for warning in summary.warnings:  # one line each, never folded (scripts grep them)
        console.print(Text("warning: " + printable(warning, 1000), style=warn), soft_wrap=True)
    if summary.error:
        console.print(Text("error: " + printable(summary.error, 1000), style=error), soft_wrap=True)
    meaning = EXIT_MEANING.get(summary.exit_code)
    code_line = f"exit code {summary.exit_code}" + (f": {meaning}" if meaning else "")
    console.print(Text(code_line, style=error if summary.exit_code else ""))


def _title(summary: RunSummary) -> str:
    kind = "dry run summary (nothing was deleted)" if summary.dry_run else "run summary"
    about = [f"account {printable(summary.account, 60)}"] if summary.account else []
    about += [f"trigger {printable(summary.trigger, 20)}", f"run {summary.run_id}"]
    return f"{kind}: {', '.join(about)}"


def _outcome_table(summary: RunSummary) -> Table:
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    table.add_column("outcome", no_wrap=True)
    table.add_column("tasks", justify="right", no_wrap=True)
    primary = Outcome.WOULD_DELETE if summary.dry_run else Outcome.DELETED
    for outcome in Outcome:
        count = summary.counts.get(outcome.value, 0)
        if outcome is Outcome.SKIPPED:
            count = max(0, count - summary.interrupted)
        label = outcome.value
        if outcome is Outcome.STILL_BUSY and summary.dry_run:
            label = "wait (busy)"
        if count or outcome is primary:
            table.add_row(Text(label), Text(f"{count:,}"))
        if outcome is Outcome.SKIPPED and summary.interrupted:
            table.add_row(Text("interrupted"), Text(f"{summary.interrupted:,}"))
    return table


def _print_notes(console: Console, title: str, notes: Sequence[TaskNote], total: int) -> None:
    console.print(Text(f"{title}: {total:,}"))
    if not notes:
        return
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    table.add_column("task", no_wrap=True)
    table.add_column("name", no_wrap=True, overflow="ellipsis", max_width=20)
    table.add_column("why", overflow="fold")
    for note in notes[:NOTES_SHOWN]:
        name = "" if note.task_name is None else printable(note.task_name, NAME_LIMIT)
        table.add_row(Text(note.task_id), Text(name), Text(printable(note.why)))
    console.print(Padding(table, (0, 0, 0, 2), expand=False))
    if total > NOTES_SHOWN:
        console.print(Text(f"  and {total - NOTES_SHOWN:,} more (all in --summary-json)"))


def _fact_lines(summary: RunSummary) -> list[Text]:
    lines = []
    if summary.unknown_statuses:
        lines.append(
            f"unknown statuses, tasks kept (has the API changed?): "
            f"{_counts(summary.unknown_statuses)}"
        )
    if summary.statuses_seen:
        lines.append(f"statuses seen: {_counts(summary.statuses_seen)}")
    if summary.refusal:
        lines.append(f"first refusal: {_refusal(summary.refusal)}")
    if summary.drain_left is not None:
        lines.append(f"drain: {summary.drain_left:,} left for the next run")
    lines.append(_cost_line(summary))
    events = summary.progress_events
    again = {"busy tasks looked at again": "deferred", "transient errors retried": "retrying"}
    if any(events.get(key) for key in again.values()):
        lines.append("; ".join(f"{what}: {events.get(key, 0):,}" for what, key in again.items()))
    if summary.plan_path and not summary.dry_run:
        lines.append(f"plan: {summary.plan_path}")
    if summary.audit_log:
        lines.append(f"audit log: {summary.audit_log}")
    if summary.audit_head_sha256:
        lines.append(f"head sha256: {summary.audit_head_sha256}")
    return [Text(printable(line, None)) for line in lines]


def _refusal(refusal: Mapping[str, Any]) -> str:
    status = refusal.get("status")
    code = refusal.get("errorCode", refusal.get("error_code"))
    message = refusal.get("message")
    parts = [f"HTTP {status}"] if status is not None else []
    if code is not None:
        parts.append(f"errorCode {code}")
    text = ", ".join(parts) or "no status"
    return text + (f": {printable(str(message))}" if message else "")


def _cost_line(summary: RunSummary) -> str:
    seconds = summary.duration_s
    duration = f"{seconds:.1f}s" if seconds < 60 else format_duration(seconds)
    per_task = summary.to_json()["requests_per_deleted_task"]
    return (
        f"requests: {summary.requests_total:,} sent"
        + (f", {per_task:g} per deleted task" if per_task else "")
        + f"; duration {duration}"
    )


# -- the summary as JSON -----------------------------------------------------------------


def summary_json(summary: RunSummary) -> str:
    """The run summary as one JSON document (non-ASCII and controls escaped)."""
    return b"".join(json_chunks(summary.to_json(), indent=1)).decode()


def write_summary_json(summary: RunSummary, path: str) -> None:
    """Write the JSON summary to ``path`` atomically, or to stdout for ``-``."""
    write_json(summary.to_json(), path, indent=1)
