"""``audit show``: what a run did, for people (who, when, trigger, what was deleted and
why, what was left), as a table, Markdown or JSON, read as a stream."""

from __future__ import annotations

import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .auditview import Verification, iter_records, verify
from .errors import UsageError
from .exitcodes import MEANING as EXIT_MEANING
from .untrusted import NAME_LIMIT, printable

_TASK_ROWS = {
    # event: (section title, the fields that say why, in order)
    "deleted": ("deleted", ("detail", "evidence", "attempts")),
    "would_delete": ("would delete", ("detail",)),
    "already_absent": ("already absent", ("evidence",)),
    "still_busy": ("still busy", ("reason", "detail", "attempts")),
    "failed": ("failed", ("error", "http_status", "server_message")),
}
_LABELS = {"attempts": "attempts: {}", "http_status": "HTTP {}"}
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


@dataclass(slots=True)
class RunView:
    """What one run did, gathered from its lines: only what ``audit show`` prints."""

    run_id: str
    first_line: int
    last_line: int = 0
    started: dict[str, Any] = field(default_factory=dict)
    finished: dict[str, Any] | None = None
    rows: dict[str, list[tuple[str, str, str]]] = field(
        default_factory=lambda: {event: [] for event in _TASK_ROWS}
    )
    skipped: Counter[str] = field(default_factory=Counter)
    unreadable: int = 0

    def add(self, record: dict[str, Any]) -> None:
        event = record.get("event")
        if event in ("run_started", "run_finished"):
            fields = {k: v for k, v in record.items() if k not in ("event", "prev_sha256")}
            if event == "run_started":
                self.started = fields
            else:
                self.finished = fields
        elif event == "skipped":
            self.skipped[str(record.get("reason"))] += 1
        elif isinstance(event, str) and event in self.rows:
            name = record.get("task_name")
            why = _why(record, _TASK_ROWS[event][1]) or str(record.get("reason") or "")
            self.rows[event].append(
                (str(record.get("task_id")), "" if name is None else str(name), why)
            )

    def facts(self, integrity: Verification) -> list[tuple[str, str]]:
        """(label, value) pairs: who, when, how, and how it ended."""
        s, f = self.started, self.finished or {}
        shard = s.get("shard") if isinstance(s.get("shard"), dict) else {}
        facts: list[tuple[str, object]] = [
            ("run", self.run_id),
            ("operator", s.get("operator")),
            ("started", s.get("timestamp")),
            ("duration", _duration(f.get("duration_s"))),
            ("trigger", s.get("trigger")),
            ("mode", _mode(s)),
            ("policy", s.get("policy")),
            ("policy sha256", s.get("policy_sha256")),
            ("endpoint", s.get("endpoint")),
            ("version", s.get("version")),
            ("shard", f"{shard.get('index')} of {shard.get('count')}" if shard else None),
            ("lines", f"{self.first_line}-{self.last_line}"),
        ]
        if self.finished is None:
            facts.append(("finished", "no: no run_finished (killed, still running, or cut)"))
        else:
            code = f.get("exit_code")
            meaning = EXIT_MEANING.get(code) if isinstance(code, int) else None
            facts += [
                ("exit code", f"{code} ({meaning})" if meaning else code),
                ("error", f.get("error")),
                ("stopped by", f.get("stopped_by")),
                ("outcomes", _counts(f.get("counts"))),
                ("requests", f.get("requests_total")),
            ]
        if self.unreadable:
            facts.append(("unreadable", f"{self.unreadable} lines"))
        verdict = "intact" if integrity.ok else f"NOT intact: {integrity.problem}"
        facts.append(("audit log", f"{verdict} (audit verify)"))
        return [(k, str(v)) for k, v in facts if v not in (None, "")]

    def sections(self) -> Iterator[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
        """(title, columns, rows) per kind of outcome, tasks sorted by name then ID."""
        for event in ("deleted", "would_delete", "already_absent"):
            yield from self._tasks(event)
        reasons = (self.finished or {}).get("skip_reasons")
        skipped = Counter(reasons) if isinstance(reasons, dict) and reasons else self.skipped
        if skipped:
            rows: list[tuple[str, ...]] = [(str(r), str(n)) for r, n in skipped.most_common()]
            yield f"skipped ({sum(skipped.values())})", ("reason", "tasks"), rows
        for event in ("still_busy", "failed"):
            yield from self._tasks(event)

    def _tasks(self, event: str) -> Iterator[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
        rows = sorted(self.rows[event], key=lambda row: (row[1], row[0]))
        title = _TASK_ROWS[event][0]
        if event == "still_busy" and _mode(self.started) == "dry run":
            title = "would wait (busy)"  # a dry run waits for nothing: not the exit-4 word
        if rows:
            yield f"{title} ({len(rows)})", ("task", "name", "why"), list(rows)

    def to_json(self, integrity: Verification) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "lines": [self.first_line, self.last_line],
            "finished": self.finished is not None,
            "run_started": self.started,
            "run_finished": self.finished,
            "skipped": dict(self.skipped),
            "unreadable_lines": self.unreadable,
            "log_intact": integrity.ok,
            "log_problem": integrity.problem,
        }
        for event, rows in self.rows.items():
            data[event] = [{"task_id": i, "task_name": n, "why": w} for i, n, w in rows]
        return data


def _mode(started: dict[str, Any]) -> str | None:
    if not started:
        return None  # its run_started line is not there
    return "dry run" if started.get("mode") == "dry_run" or started.get("dry_run") else "apply"


def _duration(seconds: object) -> str | None:
    if not isinstance(seconds, (int, float)):
        return None
    whole = int(seconds)
    hours, minutes = divmod(whole // 60, 60)
    if not whole // 60:
        return f"{seconds:g} s"
    human = f"{hours}h {minutes:02d}m" if hours else f"{minutes}m"
    return f"{human} {whole % 60:02d}s ({seconds:g} s)"


def _why(record: dict[str, Any], fields: tuple[str, ...]) -> str:
    parts = []
    for key in fields:
        value = record.get(key)
        if value is not None and value != "":
            parts.append(_LABELS.get(key, "{}").format(value))
    return "; ".join(parts)


def _counts(counts: object) -> str | None:
    if not isinstance(counts, dict):
        return None
    return ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"


def _runs(path: str | Path, run: str | None) -> Iterator[RunView]:
    """The runs of the log, one at a time; only a wanted run gathers its lines."""
    view: RunView | None = None
    for number, record in iter_records(path):
        if record is None:
            if view is not None:
                view.unreadable += 1
                view.last_line = number
            continue
        run_id = str(record.get("run_id"))
        if view is None or view.run_id != run_id or record.get("event") == "run_started":
            if view is not None and run in (None, "all", view.run_id):
                yield view
            view = RunView(run_id, number)
        view.last_line = number
        if run in (None, "all", run_id):
            view.add(record)
    if view is not None and run in (None, "all", view.run_id):
        yield view


def _last(views: Iterable[RunView]) -> Iterator[RunView]:
    last = None
    for last in views:  # noqa: B007 - only the last one is kept
        pass
    if last is not None:
        yield last


def render_show(path: str | Path, fmt: str, run: str | None = None, width: int = 80) -> str:
    """``audit show`` as one string (see ``iter_show``)."""
    return "".join(iter_show(path, fmt, run, width))


def iter_show(path: str | Path, fmt: str, run: str | None = None, width: int = 80) -> Iterator[str]:
    """The last run (``run=None``), one run by run_id, or every run (``"all"``), rendered.

    ``fmt`` is table, markdown or json; json is one object, or a list for ``"all"``.
    Raises ``UsageError`` when the log has no such run, ``OSError`` when unreadable.
    """
    integrity = verify(path)
    views = _last(_runs(path, None)) if run is None else _runs(path, run)
    render: Callable[[RunView], str] = {
        "table": lambda v: _table(v, integrity, width),
        "markdown": lambda v: _markdown(v, integrity),
        "json": lambda v: json.dumps(v.to_json(integrity), indent=2, ensure_ascii=True),
    }[fmt]
    many = fmt == "json" and run == "all"
    count = 0
    for view in views:
        count += 1
        if many:
            yield "[\n" if count == 1 else ",\n"
        elif count > 1:
            yield "\n"
        yield render(view) + "\n"
    if count == 0:
        which = "no run" if run in (None, "all") else f"no run {printable(run, 64)}"
        raise UsageError(f"{printable(str(path), None)}: {which} in this audit log")
    if many:
        yield "]\n"


def _table(view: RunView, integrity: Verification, width: int) -> str:
    out = io.StringIO()
    console = Console(
        file=out, width=width, color_system=None, highlight=False, markup=False, emoji=False
    )
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, min_width=13)  # the longest label: same column every run
    grid.add_column(overflow="fold")
    for label, value in view.facts(integrity):
        grid.add_row(Text(label), Text(printable(value, None)))
    console.print(grid)
    for title, columns, rows in view.sections():
        console.print()
        table = Table(title=Text(title), title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
        longest = [max(len(printable(row[i], NAME_LIMIT)) for row in rows) for i in (0, 1)]
        # The ID is never folded; a name keeps up to 24 columns; the why folds first.
        table.add_column(columns[0], no_wrap=True, min_width=min(longest[0], width // 2))
        table.add_column(columns[1], overflow="fold", min_width=min(longest[1], 24))
        for column in columns[2:]:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(Text(printable(cell, NAME_LIMIT)) for cell in row))
        console.print(table)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


def _markdown(view: RunView, integrity: Verification) -> str:
    lines = [f"## nclue-cleanup run {_md(view.run_id)}", ""]
    lines += [f"- **{label}:** {_md(value)}" for label, value in view.facts(integrity)]
    for title, columns, rows in view.sections():
        lines += ["", f"### {title}", "", f"| {' | '.join(columns)} |"]
        lines.append("|" + " --- |" * len(columns))
        lines += [f"| {' | '.join(_md(cell) for cell in row)} |" for row in rows]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    """Untrusted text for Markdown: escaped controls, and no markup, links or HTML."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", printable(text, NAME_LIMIT))
