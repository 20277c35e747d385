"""``plan show``: a whole plan rendered for review, as a table, Markdown, CSV or JSON.

The plan is read through ``load_plan_document`` (format, version, sha256, counts and
IDs are checked) but not bound to a policy, endpoint or account: a reviewer needs none
of them. Every name and reason is untrusted text: it goes through ``printable`` and is
never read as console markup or left able to break out of a Markdown table or a CSV cell.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .plans import load_plan_document, parse_plan_time, short_age
from .untrusted import MESSAGE_LIMIT, NAME_LIMIT, printable

FORMATS = ("table", "markdown", "csv", "json")
MARKDOWN_DETAILS_ROWS = 20
"""A Markdown plan with more rows than this folds its table into ``<details>``."""
GITHUB_COMMENT_LIMIT = 65536
_NO_NAME = "(no name)"
_REASON_MIN = 12
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def add_parser(plan_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``plan show PLAN [--format ...]`` on the ``plan`` command's subparsers."""
    show = plan_subparsers.add_parser("show", help="render a whole plan for review")
    show.add_argument("plan", metavar="PLAN", help="a plan file written by run --plan-out")
    show.add_argument("--format", choices=FORMATS, default="table", help="default table")
    show.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    """Print the plan on stdout; a bad plan raises ``PlanError`` (exit 2)."""
    document = load_plan_document(args.plan)
    width = shutil.get_terminal_size((80, 24)).columns
    text = render(document, args.format, width=width, now=datetime.now(UTC))
    if args.format == "markdown" and len(text) > GITHUB_COMMENT_LIMIT:
        print(
            f"nclue-cleanup: warning: {len(text)} characters, more than a GitHub comment "
            f"holds ({GITHUB_COMMENT_LIMIT}); attach the CSV instead",
            file=sys.stderr,
        )
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # plan show ... | head: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def render(document: dict[str, Any], fmt: str, *, width: int = 80, now: datetime) -> str:
    """The plan ``document`` (from ``load_plan_document``) as ``fmt`` text."""
    renderers: dict[str, Callable[[dict[str, Any], int, datetime], str]] = {
        "table": _table,
        "markdown": _markdown,
        "csv": _csv,
        "json": lambda doc, _width, _now: json.dumps(doc, indent=2, ensure_ascii=True) + "\n",
    }
    if fmt not in renderers:
        raise ValueError(f"unknown plan format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return renderers[fmt](document, width, now)


def _sorted_tasks(document: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(
        document["tasks"],
        key=lambda t: (t["task_name"] or "", t["created_at"] or "", t["task_id"]),
    )


def _groups(document: dict[str, Any]) -> Iterator[tuple[str | None, list[dict[str, Any]]]]:
    """The plan's tasks, sorted, in runs of one task name."""
    for name, tasks in itertools.groupby(_sorted_tasks(document), key=lambda t: t["task_name"]):
        yield name, list(tasks)


def _name(task_name: str | None) -> str:
    return _NO_NAME if task_name is None else printable(task_name, NAME_LIMIT)


def _status(task: dict[str, Any]) -> str:
    return "?" if task["status"] is None else printable(task["status"], 20)


def _reason(task: dict[str, Any]) -> str:
    reason = printable(task["reason"], 60)
    return reason if task["detail"] is None else f"{reason} ({printable(task['detail'])})"


def _age(entry: dict[str, Any], now: datetime) -> str:
    """How old a task (or the plan itself) is at ``now``."""
    created = parse_plan_time(entry["created_at"])
    return "?" if created is None else short_age((now - created).total_seconds())


def _counts(document: dict[str, Any]) -> str:
    counts = document["counts"]
    return f"{counts['delete']} to delete, {counts['wait']} busy to wait for"


# -- table ---------------------------------------------------------------------------------


def _table(document: dict[str, Any], width: int, now: datetime) -> str:
    tasks = document["tasks"]
    widths = (
        max([len("task ID"), *(len(t["task_id"]) for t in tasks)]),
        max([len("status"), *(cell_len(_status(t)) for t in tasks)]),
        max([len("age"), *(len(_age(t, now)) for t in tasks)]),
        len("action"),
    )
    # An ID is never cut or folded: a plan with longer IDs than fit is printed wider.
    table_width = max(width, sum(widths) + len(widths) + _REASON_MIN)
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=table_width,
        color_system=None,
        force_terminal=False,
        highlight=False,
        markup=False,
        emoji=False,
    )
    for label, value in _header_lines(document, now):
        console.print(Text.assemble((f"{label}: ", ""), value), overflow="fold", width=width)
    console.print()
    if not tasks:
        console.print(Text("The plan is empty: nothing to delete or wait for."), width=width)
    else:
        console.print(_grid(widths, header=True))
        console.print(Text("─" * table_width, no_wrap=True, overflow="crop"))
    for name, group in _groups(document):
        console.print(_group_title(name, group, table_width))
        grid = _grid(widths, header=False)
        for task in group:
            grid.add_row(
                Text(task["task_id"]),
                Text(_status(task)),
                Text(_age(task, now)),
                Text(task["action"]),
                Text(_reason(task)),
            )
        console.print(grid)
    return "".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines())


def _header_lines(document: dict[str, Any], now: datetime) -> list[tuple[str, str]]:
    made = f"{printable(document['created_at'], 40)} ({_age(document, now)} ago)"
    sha = printable(document["policy_sha256"], 13)
    return [
        ("plan", f"{_counts(document)}, {len(list(_groups(document)))} task names"),
        ("made", f"{made}, run {printable(document['run_id'], 80)}"),
        ("policy", f"{printable(document['policy'])} (sha256 {sha})"),
        ("endpoint", printable(document["endpoint"])),
        ("access key ID", printable(document["access_key_id"], 80)),
    ]


def _grid(widths: tuple[int, int, int, int], *, header: bool) -> Table:
    """Columns of fixed width but the reason's, so every group's table lines up."""
    grid = Table(
        box=None,
        show_header=header,
        header_style="none",
        pad_edge=False,
        collapse_padding=True,
        padding=(0, 1),
        expand=True,
    )
    for title, column_width in zip(("task ID", "status", "age", "action"), widths, strict=True):
        grid.add_column(title, width=column_width, no_wrap=True)
    grid.add_column("reason", ratio=1, overflow="fold")
    return grid


def _group_title(name: str | None, group: list[dict[str, Any]], width: int) -> Text:
    deletes = sum(t["action"] == "delete" for t in group)
    parts = [f"{deletes} delete"] if deletes else []
    if len(group) > deletes:
        parts.append(f"{len(group) - deletes} wait")
    suffix = f"  ({', '.join(parts)})"
    title = Text(_name(name), no_wrap=True)
    title.truncate(max(8, width - len(suffix)), overflow="ellipsis")
    title.append(suffix)
    return title


# -- markdown ------------------------------------------------------------------------------

_MD_ESCAPES = {
    **{char: f"\\{char}" for char in "\\`*_[]|~#"},
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
}


def markdown_text(text: str, limit: int | None = MESSAGE_LIMIT) -> str:
    """Untrusted ``text`` as inert Markdown: no markup, HTML, table cell break or new line."""
    return "".join(_MD_ESCAPES.get(char, char) for char in printable(text, limit))


def _markdown(document: dict[str, Any], _width: int, now: datetime) -> str:
    tasks = document["tasks"]
    groups = list(_groups(document))
    md = markdown_text
    lines = [
        f"**nclue-cleanup plan**: {_counts(document)}, {len(groups)} task names.",
        "",
        f"- made: {md(document['created_at'], 40)} ({_age(document, now)} before this "
        f"view), run {md(document['run_id'], 80)}",
        f"- policy: {md(document['policy'])} (sha256 {md(document['policy_sha256'], 13)})",
        f"- endpoint: {md(document['endpoint'])}",
        f"- access key ID: {md(document['access_key_id'], 80)}",
        "",
    ]
    if not tasks:
        return "\n".join([*lines, "The plan is empty: nothing to delete or wait for."]) + "\n"
    fold = len(tasks) > MARKDOWN_DETAILS_ROWS
    if fold:
        lines += [f"<details><summary>All {len(tasks)} tasks</summary>", ""]
    lines += [
        "| task name | task ID | status | age | action | reason |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, group in groups:
        for index, task in enumerate(group):
            shown = md(_name(name), None) if index == 0 else ""
            cells = (
                shown,
                f"`{task['task_id']}`",  # a valid ID is [A-Za-z0-9._-]: safe in a code span
                md(_status(task), None),
                _age(task, now),
                task["action"],
                md(_reason(task), None),
            )
            lines.append("| " + " | ".join(cells) + " |")
    if fold:
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


# -- csv -----------------------------------------------------------------------------------

_CSV_COLUMNS = ("task_name", "task_id", "status", "created_at", "age", "action", "reason", "detail")


def csv_cell(text: str) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading '."""
    return f"'{text}" if text.startswith(_FORMULA_LEAD) else text


def _csv(document: dict[str, Any], _width: int, now: datetime) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_CSV_COLUMNS)
    for task in _sorted_tasks(document):
        row = (
            "" if task["task_name"] is None else printable(task["task_name"], NAME_LIMIT),
            task["task_id"],
            "" if task["status"] is None else printable(task["status"], 20),
            "" if task["created_at"] is None else printable(task["created_at"], 40),
            _age(task, now),
            task["action"],
            printable(task["reason"], 60),
            "" if task["detail"] is None else printable(task["detail"]),
        )
        writer.writerow([csv_cell(cell) for cell in row])
    return out.getvalue()
