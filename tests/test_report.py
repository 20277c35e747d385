"""The plan table, the run summary and its JSON, as people and programs read them."""

from __future__ import annotations

import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cleanup.model import Action, Decision, Task
from cleanup.report import (
    EXIT_MEANING,
    make_console,
    plan_order,
    print_plan,
    print_summary,
    summary_json,
    write_summary_json,
)
from cleanup.summary import RunSummary, TaskNote

NOW = datetime(2026, 12, 1, tzinfo=UTC)
LONG = "exp-a-rather-long-experiment-name-that-cannot-fit"


def uid(n: int) -> str:
    return str(uuid.UUID(int=n + 0xABCDEF0123456789))


def delete(n: int, name: str | None = LONG, days: int = 40, detail: str = "status completed"):
    task = Task(uid(n), name, "completed", NOW - timedelta(days=days))
    return Decision(task, Action.DELETE, "selected", detail)


def defer(n: int, name: str | None = LONG, days: int = 40, detail: str = "task is in_progress"):
    task = Task(uid(n), name, "in_progress", NOW - timedelta(days=days))
    return Decision(task, Action.DEFER, "busy", detail)


def skip(n: int, reason: str) -> Decision:
    return Decision(Task(uid(n), "prod", "completed", NOW), Action.SKIP, reason, "kept")


def render(fn: Any, *args: Any, width: int = 80, **kwargs: Any) -> str:
    """What ``fn`` prints on a plain 80-column console that would interpret markup."""
    out = io.StringIO()
    fn(*args, Console(file=out, width=width, color_system=None), **kwargs)
    return out.getvalue()


def summary(**changes: Any) -> RunSummary:
    counts = {"would_delete": 0, "deleted": 3, "already_absent": 0, "skipped": 0}
    counts |= {"failed": 0, "still_busy": 0}
    base: dict[str, Any] = {
        "run_id": "run-1",
        "dry_run": False,
        "exit_code": 0,
        "counts": counts,
        "task_ids": {"deleted": (uid(1), uid(2), uid(3))},
        "requests": {"DELETE /tasks/{id}": {"204": 3}, "GET /tasks": {"200": 1}},
        "requests_total": 4,
        "duration_s": 12.34,
        "endpoint": "http://127.0.0.1:1/api/v1",
        "policy_sha256": "f" * 64,
    }
    return RunSummary(**(base | changes))


@pytest.mark.parametrize(
    "extra",
    [[], [defer(90, detail="held by run r-12 (in_progress), started by the nightly job")]],
    ids=["no-reason-column", "reason-column"],
)
def test_plan_at_80_columns_never_splits_a_task_id(extra: list[Decision]) -> None:
    """Every 36-character ID appears whole on one line of an 80-column plan; names are cut."""
    decisions = [delete(i, f"{LONG}-{i}") for i in range(6)] + [defer(50)] + extra
    text = render(print_plan, decisions, NOW, plan_path=None)
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for d in decisions:
        assert sum(d.task.task_id in line for line in lines) == 1
    assert re.search(r"^exp-a-rath… +" + uid(0), text, re.MULTILINE)
    assert LONG not in text


def test_plan_at_80_columns_puts_a_reason_under_its_row() -> None:
    """At 80 columns a reason too wide for a column is a line of its own under its task."""
    held = "held by run r-12 (in_progress), started by the nightly training job of team x"
    decisions = [delete(1, "a"), defer(2, "b", detail=held)]
    lines = render(print_plan, decisions, NOW, plan_path=None).splitlines()
    row = next(i for i, line in enumerate(lines) if uid(2) in line)
    assert lines[row + 1] == (
        "      why: held by run r-12 (in_progress), started by the nightly training job …"
    )
    assert len(lines[row + 1]) == 80


def test_plan_shows_a_held_reason_but_never_repeats_the_status() -> None:
    """The reason column says what holds a task, and not "status completed" again."""
    decisions = [delete(1, "a"), defer(2, "b"), defer(3, "c", detail="held by run r-12")]
    text = render(print_plan, decisions, NOW, plan_path=None, width=100)
    assert re.search(uid(3) + r"  in_progress  40d  wait \(busy\)  held by run r-12$", text, re.M)
    assert "status completed" not in text
    assert "task is in_progress" not in text
    rows = [line.split() for line in text.splitlines() if uid(1) in line or uid(2) in line]
    assert rows == [
        ["a", uid(1), "completed", "40d", "delete"],
        ["b", uid(2), "in_progress", "40d", "wait", "(busy)"],
    ]


def test_plan_is_sorted_and_grouped_by_name_oldest_first() -> None:
    """Rows come by task name, oldest first within a name, the name on its first row only."""
    decisions = [
        delete(1, "zeta", days=50),
        delete(2, "alpha", days=31),
        defer(3, "alpha", days=90),
        delete(4, "Beta", days=40),
    ]
    text = render(print_plan, decisions, NOW, plan_path=None)
    lines = [line for line in text.splitlines() if re.search(r"[0-9a-f]{8}-", line)]
    assert [line.split()[:2] for line in lines] == [
        ["alpha", uid(3)],
        [uid(2), "completed"],
        ["Beta", uid(4)],
        ["zeta", uid(1)],
    ]


def test_a_dry_run_plan_never_says_still_busy() -> None:
    """Busy tasks in a dry run are "wait (busy)", never the exit-4 word still_busy."""
    text = render(print_plan, [defer(1), delete(2)], NOW, plan_path=None)
    assert "wait (busy)" in text
    assert "still_busy" not in text and "still busy" not in text


def test_plan_cut_after_rows_says_where_the_whole_plan_is() -> None:
    """Past ``rows`` rows, one line counts the rest and names the plan file and command."""
    decisions = [delete(i, f"n{i:03d}") for i in range(8)]
    text = render(print_plan, decisions, NOW, plan_path="out/my plan.json", rows=5)
    assert sum(re.search(r"[0-9a-f]{8}-", line) is not None for line in text.splitlines()) == 5
    assert (
        "and 3 more not shown; full plan: out/my plan.json — "
        "nclue-cleanup plan show 'out/my plan.json'" in " ".join(text.split())
    )


def test_plan_cut_without_a_plan_file_says_how_to_keep_one() -> None:
    """Without --plan-out, the cut plan says how to keep the whole plan for review."""
    text = render(print_plan, [delete(i) for i in range(3)], NOW, plan_path=None, rows=1)
    assert "and 2 more not shown; pass --plan-out FILE to keep the whole plan for review" in (
        " ".join(text.split())
    )


@pytest.mark.parametrize("rows", [0, 1, 3, 50])
def test_the_plan_shows_the_first_rows_of_the_whole_order(rows: int) -> None:
    """The rows shown are the first of the whole plan's order (name, then oldest, then
    ID; skipped tasks left out), and the count of the rest is exact, with no rows too."""
    names = ["b", "A", "a", None, "b"]
    decisions = [delete(i, names[i % 5], days=i % 7) for i in range(40)]
    decisions += [defer(100 + i, names[i % 5], days=i % 3) for i in range(9)] + [skip(7, "x")]
    shown, acting = plan_order(decisions, rows)

    def key(d: Decision) -> tuple[bool, str, str, float, str]:
        name, created = d.task.task_name, d.task.created_at
        assert created is not None
        return (
            name is None,
            (name or "").casefold(),
            name or "",
            created.timestamp(),
            d.task.task_id,
        )

    whole = sorted((d for d in decisions if d.action is not Action.SKIP), key=key)
    assert shown == whole[:rows] and acting == 49
    text = render(print_plan, decisions, NOW, plan_path=None, rows=rows)
    if rows < 49:
        assert f"and {49 - rows} more not shown" in text


def test_a_whole_plan_shown_still_names_its_file() -> None:
    """A plan that fits on screen still says where its file is, and nothing about more."""
    text = render(print_plan, [delete(1)], NOW, plan_path="plan.json")
    assert "full plan: plan.json — nclue-cleanup plan show plan.json\n" in text
    assert "more not shown" not in text


def test_plan_ends_with_what_apply_would_do_and_keep() -> None:
    """The last line counts deletes, busy waits and keeps by reason, largest first."""
    decisions = [delete(1), delete(2), defer(3), skip(4, "keep_latest")]
    decisions += [skip(5, "protect"), skip(6, "protect")]
    text = render(print_plan, decisions, NOW, plan_path=None)
    assert text.splitlines()[-1] == (
        "would delete 2, would wait for 1 busy, would keep 3 (protect 2, keep_latest 1)"
    )


def test_an_empty_plan_prints_no_table() -> None:
    """With nothing to act on, the plan is the one counting line."""
    text = render(print_plan, [skip(1, "name_glob")], NOW, plan_path=None)
    assert text == "would delete 0, would wait for 0 busy, would keep 1 (name_glob 1)\n"


HOSTILE = ["exp-[/x]", "exp-[bold]", "exp-\x1b[31mred", "exp-[link=http://x]y"]


def test_markup_looking_and_ansi_names_print_literally() -> None:
    """Names that look like markup print as they are; an ANSI escape appears escaped."""
    decisions = [delete(i, name) for i, name in enumerate(HOSTILE)]
    notes = tuple(TaskNote(uid(i), name, f"why {name}") for i, name in enumerate(HOSTILE))
    counts = {"deleted": 0, "failed": len(HOSTILE)}
    text = render(print_plan, decisions, NOW, plan_path=None, width=120)
    text += render(print_summary, summary(counts=counts, notes={"failed": notes}), width=120)
    for shown in ("exp-[/x]", "exp-[bold]", "exp-\\x1b[31mred", "exp-[link=http://x]y"):
        assert text.count(shown) >= 3
    assert "\x1b" not in text


def test_make_console_interprets_no_markup() -> None:
    """The tool's console prints text with brackets as written, even the CLI's own."""
    console = make_console(stderr=False, width=80)
    with console.capture() as captured:
        console.print("[bold]x[/] :smile:")
    assert captured.get() == "[bold]x[/] :smile:\n"


def test_summary_shows_rule_skips_and_interrupted_apart() -> None:
    """Interrupted tasks are their own row and line, not counted among the rule skips."""
    reasons = {"interrupted": 2200, "run_stopped": 12, "name_glob": 700, "keep_latest": 37}
    counts = summary().counts | {"skipped": 2949}
    text = render(print_summary, summary(counts=counts, skip_reasons=reasons, exit_code=143))
    table = [line.split() for line in text.splitlines()[1:4]]
    assert table == [["deleted", "3"], ["skipped", "737"], ["interrupted", "2,212"]]
    flat = " ".join(text.split())
    assert "kept by a rule: name_glob 700, keep_latest 37" in flat
    assert (
        "interrupted: 2,212 tasks never reached (interrupted 2,200, run_stopped 12); "
        "running the policy again picks them up" in flat
    )
    assert "exit code 143: interrupted (SIGTERM)" in text


def test_summary_names_the_first_five_failed_and_still_busy_tasks() -> None:
    """Five failed and five still-busy tasks are named with why, then "and N more"."""
    failed = tuple(TaskNote(uid(i), f"f{i}", f"HTTP 500: boom {i}") for i in range(7))
    busy = tuple(TaskNote(uid(20 + i), None, f"held by run r-{i}") for i in range(6))
    counts = summary().counts | {"failed": 7, "still_busy": 6}
    notes = {"failed": failed, "still_busy": busy}
    text = render(print_summary, summary(counts=counts, notes=notes, exit_code=1), width=100)
    lines = text.splitlines()
    assert "still busy at the busy deadline: 6" in lines
    assert "failed: 7" in lines
    for note in failed[:5] + busy[:5]:
        assert [line.split() for line in lines if note.task_id in line] == [
            [note.task_id, *([note.task_name] if note.task_name else []), *note.why.split()]
        ]
    assert uid(5) not in text and uid(25) not in text
    assert "  and 2 more (all in --summary-json)" in lines
    assert "  and 1 more (all in --summary-json)" in lines


def test_summary_counts_named_tasks_even_when_notes_are_missing() -> None:
    """A count with no notes still shows the heading, so a failure is never silent."""
    counts = summary().counts | {"failed": 2}
    text = render(print_summary, summary(counts=counts, exit_code=1))
    assert "failed: 2\n" in text


def test_summary_reports_the_facts_of_the_run() -> None:
    """Unknown statuses, statuses, refusal, drain, cost, audit head, warnings, error, exit."""
    result = summary(
        exit_code=1,
        unknown_statuses={"archived": 3, "ARCHIVING": 1},
        statuses_seen={"completed": 300, "failed": 20},
        refusal={"status": 409, "errorCode": "77", "message": "Task is [bold]in use\x07"},
        drain_left=150,
        audit_log="audit.jsonl",
        audit_head_sha256="ab" * 32,
        warnings=("keep_latest keeps nothing",),
        error="listing incomplete",
        duration_s=371.2,
        progress_events={"retrying": 3},
    )
    lines = render(print_summary, result).splitlines()
    for line in [
        "unknown statuses, tasks kept (has the API changed?): archived 3, ARCHIVING 1",
        "statuses seen: completed 300, failed 20",
        "first refusal: HTTP 409, errorCode 77: Task is [bold]in use\\x07",
        "drain: 150 left for the next run",
        "requests: 4 sent, 1.3333 per deleted task; duration 6m12s",
        "busy tasks looked at again: 0; transient errors retried: 3",
        "audit log: audit.jsonl",
        "head sha256: " + "ab" * 32,
        "warning: keep_latest keeps nothing",
        "error: listing incomplete",
        "exit code 1: some tasks failed, or the run could not complete",
    ]:
        assert line in lines


def test_dry_run_summary_calls_busy_tasks_waits() -> None:
    """A dry run's summary says "wait (busy)" and never still_busy."""
    counts = summary().counts | {"deleted": 0, "would_delete": 5, "still_busy": 2}
    text = render(print_summary, summary(dry_run=True, counts=counts))
    assert text.splitlines()[0] == "dry run summary (nothing was deleted): trigger adhoc, run run-1"
    assert [line.split() for line in text.splitlines()[1:3]] == [
        ["would_delete", "5"],
        ["wait", "(busy)", "2"],
    ]
    assert "would wait (busy): 2" in text
    assert "still" not in text


def test_exit_meanings_cover_every_exit_code_of_the_spec() -> None:
    """The exit-code table names every code SPEC.md defines."""
    assert set(EXIT_MEANING) == {0, 1, 2, 3, 4, 5, 129, 130, 143}


def colourful() -> RunSummary:
    return summary(warnings=("careful",), error="bad", exit_code=1)


def test_no_color_makes_console_output_free_of_escape_sequences(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """With NO_COLOR set, a forced terminal gets no escape sequence; without, it gets some."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    print_summary(colourful(), make_console(stderr=True))
    print_plan([delete(1), defer(2)], NOW, make_console(stderr=True), plan_path=None)
    assert "\x1b[" in capsys.readouterr().err
    monkeypatch.setenv("NO_COLOR", "1")
    print_summary(colourful(), make_console(stderr=True))
    print_plan([delete(1), defer(2)], NOW, make_console(stderr=True), plan_path=None)
    err = capsys.readouterr().err
    assert "exit code 1" in err and "wait (busy)" in err
    assert "\x1b" not in err


def test_no_color_is_honoured_on_any_rich_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain rich terminal console created under NO_COLOR prints the report unstyled."""
    monkeypatch.setenv("NO_COLOR", "1")
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=80)
    print_summary(colourful(), console)
    print_plan([delete(1), defer(2)], NOW, console, plan_path=None)
    assert "error: bad" in out.getvalue()
    assert "\x1b" not in out.getvalue()


@pytest.mark.parametrize(
    ("columns", "width", "expected"),
    [(None, None, 80), ("132", None, 132), ("40", None, 80), ("40", 100, 100)],
)
def test_make_console_width_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch, columns: str | None, width: int | None, expected: int
) -> None:
    """Off a terminal: COLUMNS when set, else 80, never under 80; an explicit width wins."""
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert make_console(stderr=True, width=width).width == expected


def test_summary_json_is_the_summary_with_a_trailing_newline() -> None:
    """summary_json is the summary's JSON, indented one space, ending in a newline."""
    result = summary(notes={"failed": (TaskNote(uid(1), "exp-\x1b", "HTTP 500"),)})
    text = summary_json(result)
    assert text.endswith("}\n") and text.startswith('{\n "run_id": "run-1",')
    assert json.loads(text) == json.loads(json.dumps(result.to_json()))
    assert json.loads(text)["notes"]["failed"][0]["task_name"] == "exp-\x1b"
    assert "\x1b" not in text


def test_summary_json_dash_writes_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    """``-`` writes the JSON document to stdout and nothing to stderr."""
    write_summary_json(summary(), "-")
    captured = capsys.readouterr()
    assert captured.out == summary_json(summary())
    assert captured.err == ""


def test_summary_json_path_is_replaced_whole(tmp_path: Path) -> None:
    """A path gets the whole document, replacing an old file, with no temporary left."""
    target = tmp_path / "summary.json"
    target.write_text("old")
    write_summary_json(summary(), str(target))
    assert target.read_text() == summary_json(summary())
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
