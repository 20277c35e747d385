"""plan show: the whole plan, sorted and grouped, in four formats, with untrusted text inert."""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from cleanup.errors import PlanError
from cleanup.model import Action, Decision, Task
from cleanup.plans import load_plan_document, write_plan
from cleanup.planview import add_parser, render
from cleanup.policy import policy_from_mapping

UTC = UTC
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=3, minutes=12)
POLICY = policy_from_mapping({"version": 1, "select": {"all": True}}, source="nightly.yaml")
HOSTILE = "evil|<script>alert(1)</script>\x1b[31m[bold]red[/bold] *x* _y_ `z` [l](u)\nnext"
UUIDS = [f"0b1e2c3d-0000-4000-8000-{n:012d}" for n in range(12)]


def decision(
    task_id: str, name: str | None, action: Action = Action.DELETE, days: int = 3
) -> Decision:
    """A delete (or wait) decision on a task created ``days`` before NOW."""
    status = "in_progress" if action is Action.DEFER else "completed"
    detail = "task is in_progress" if action is Action.DEFER else "status completed"
    task = Task(task_id, name, status, NOW - timedelta(days=days))
    return Decision(task, action, "busy" if action is Action.DEFER else "selected", detail)


DECISIONS = [
    decision(UUIDS[0], "exp-b", days=5),
    decision(UUIDS[1], "exp-a", days=2),
    decision(UUIDS[2], "exp-a", Action.DEFER, days=1),
    decision(UUIDS[3], "exp-a", days=9),
    decision(UUIDS[4], HOSTILE),
    decision(UUIDS[5], '=HYPERLINK("http://x")'),
    decision(UUIDS[6], "-2+3"),
    decision(UUIDS[7], "@SUM(A1)"),
    decision(UUIDS[8], "+1"),
    decision(UUIDS[9], "한국어-모델-" + "긴" * 60),
]


def plan_file(tmp_path: Path, decisions: list[Decision] = DECISIONS) -> Path:
    """A plan of ``decisions`` written at NOW."""
    path = tmp_path / "plan.json"
    write_plan(
        path,
        decisions,
        policy=POLICY,
        endpoint="https://nclue.apigw.ntruss.com/api/v1",
        access_key_id="ncp_iam_KEY1",
        run_id="run-7",
        now=NOW,
    )
    return path


@pytest.fixture
def document(tmp_path: Path) -> dict[str, Any]:
    """The DECISIONS plan, loaded through its integrity checks."""
    return load_plan_document(plan_file(tmp_path))


def test_table_fits_80_columns_and_never_splits_an_id(document: dict[str, Any]) -> None:
    """At width 80 every line fits and each 36-character ID is whole on one line."""
    text = render(document, "table", width=80, now=LATER)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    for task_id in UUIDS[:10]:
        assert sum(task_id in line for line in lines) == 1, task_id
    assert "\x1b" not in text


def test_table_groups_sorted_names_with_header(document: dict[str, Any]) -> None:
    """The table has the plan's header, then one title per task name, in order, over its tasks."""
    lines = render(document, "table", width=80, now=LATER).splitlines()
    assert lines[0] == "plan: 9 to delete, 1 busy to wait for, 8 task names"
    assert lines[1] == "made: 2026-12-01T09:00:00Z (3h12m ago), run run-7"
    assert lines[2].startswith("policy: nightly.yaml (sha256 ")
    assert lines[3] == "endpoint: https://nclue.apigw.ntruss.com/api/v1"
    assert lines[4] == "access key ID: ncp_iam_KEY1"
    start = lines.index("exp-a  (2 delete, 1 wait)")
    pad = " " * 61
    assert lines[start + 1 : start + 7] == [
        f"{UUIDS[3]} completed   9d3h delete selected (status",
        f"{pad}completed)",
        f"{UUIDS[1]} completed   2d3h delete selected (status",
        f"{pad}completed)",
        f"{UUIDS[2]} in_progress 1d3h wait   busy (task is",
        f"{pad}in_progress)",
    ]
    assert lines[start + 7] == "exp-b  (1 delete)"
    assert lines.index("+1  (1 delete)") < lines.index("-2+3  (1 delete)") < start


def test_table_shows_hostile_names_escaped_and_long_names_cut(document: dict[str, Any]) -> None:
    """Markup and escapes in a name print literally; a name too long for the line ends in …."""
    lines = render(document, "table", width=80, now=LATER).splitlines()
    hostile = next(line for line in lines if line.startswith("evil|"))
    assert hostile.startswith("evil|<script>alert(1)</script>\\x1b[31m[bold]red[/bold] *x*")
    assert hostile.endswith("…  (1 delete)") and cell_len(hostile) <= 80
    korean = next(line for line in lines if line.startswith("한국어"))
    assert korean.endswith("…  (1 delete)") and cell_len(korean) <= 80


def test_markdown_escapes_every_cell_and_keeps_the_table_whole(document: dict[str, Any]) -> None:
    """In Markdown a hostile name cannot add a column, a line, HTML, markup or a link."""
    text = render(document, "markdown", now=LATER)
    assert text.startswith(
        "**nclue-cleanup plan**: 9 to delete, 1 busy to wait for, 8 task names.\n"
    )
    row = next(line for line in text.splitlines() if line.startswith("| evil"))
    assert row == (
        "| evil\\|&lt;script&gt;alert(1)&lt;/script&gt;\\\\x1b\\[31m\\[bold\\]red\\[/bold\\] "
        "\\*x\\* \\_y\\_ \\`z\\` \\[l\\](u)\\\\x0anext "
        f"| `{UUIDS[4]}` | completed | 3d3h | delete | selected (status completed) |"
    )
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + 10
    assert all(len(re.findall(r"(?<!\\)\|", line)) == 7 for line in table)
    assert "<script>" not in text


def test_markdown_groups_rows_by_name(document: dict[str, Any]) -> None:
    """A group's name is shown on its first row only, its tasks oldest first."""
    lines = render(document, "markdown", now=LATER).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| exp-a |"))
    assert [line.split(" | ")[0:2] for line in lines[start : start + 3]] == [
        ["| exp-a", f"`{UUIDS[3]}`"],
        ["| ", f"`{UUIDS[1]}`"],
        ["| ", f"`{UUIDS[2]}`"],
    ]


def test_markdown_folds_a_long_plan_into_details(tmp_path: Path) -> None:
    """A plan of more than 20 tasks puts its table inside a collapsible <details>."""
    many = [decision(f"task-{n:03d}", f"exp-{n:03d}") for n in range(25)]
    text = render(load_plan_document(plan_file(tmp_path, many)), "markdown", now=LATER)
    assert "\n<details><summary>All 25 tasks</summary>\n\n| task name |" in text
    assert text.endswith("| `task-024` | completed | 3d3h | delete | selected (status completed) |"
                         "\n\n</details>\n")  # fmt: skip
    short = render(load_plan_document(plan_file(tmp_path, many[:3])), "markdown", now=LATER)
    assert "<details>" not in short


def test_csv_has_a_header_and_guards_formulas(document: dict[str, Any]) -> None:
    """CSV rows parse back; cells that a spreadsheet would run as a formula start with '."""
    rows = list(csv.reader(io.StringIO(render(document, "csv", now=LATER))))
    assert rows[0] == [
        "task_name", "task_id", "status", "created_at", "age", "action", "reason", "detail"
    ]  # fmt: skip
    names = {row[1]: row[0] for row in rows[1:]}
    assert names[UUIDS[5]] == '\'=HYPERLINK("http://x")'
    assert names[UUIDS[6]] == "'-2+3"
    assert names[UUIDS[7]] == "'@SUM(A1)"
    assert names[UUIDS[8]] == "'+1"
    assert names[UUIDS[0]] == "exp-b"
    assert names[UUIDS[4]].startswith("evil|<script>") and "\\x1b" in names[UUIDS[4]]
    assert rows[1:4] == [
        ["'+1", UUIDS[8], "completed", "2026-11-28T09:00:00Z", "3d3h", "delete", "selected",
         "status completed"],
        ["'-2+3", UUIDS[6], "completed", "2026-11-28T09:00:00Z", "3d3h", "delete", "selected",
         "status completed"],
        ["'=HYPERLINK(\"http://x\")", UUIDS[5], "completed", "2026-11-28T09:00:00Z", "3d3h",
         "delete", "selected", "status completed"],
    ]  # fmt: skip
    assert len(rows) == 11


def test_json_is_the_document_in_ascii(document: dict[str, Any]) -> None:
    """JSON output is the plan document itself, ASCII-only so no escape reaches a terminal."""
    text = render(document, "json", now=LATER)
    assert json.loads(text) == document
    assert text.isascii() and "\\u001b" in text


def test_unknown_format_is_an_error(document: dict[str, Any]) -> None:
    """render refuses a format it does not know."""
    with pytest.raises(ValueError, match="unknown plan format 'yaml'"):
        render(document, "yaml", now=LATER)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nclue-cleanup", allow_abbrev=False)
    plan = parser.add_subparsers(dest="command").add_parser("plan")
    add_parser(plan.add_subparsers(dest="plan_command", required=True))
    return parser


def test_command_prints_the_chosen_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`plan show PLAN --format csv` prints the CSV on stdout and exits 0."""
    args = _parser().parse_args(["plan", "show", str(plan_file(tmp_path)), "--format", "csv"])
    assert args.handler(args) == 0
    out, err = capsys.readouterr()
    assert out.startswith("task_name,task_id,status,") and len(out.splitlines()) == 11
    assert err == ""


def test_command_defaults_to_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --format, plan show prints the table."""
    args = _parser().parse_args(["plan", "show", str(plan_file(tmp_path))])
    assert args.handler(args) == 0
    assert capsys.readouterr().out.startswith("plan: 9 to delete, 1 busy to wait for")


def test_command_refuses_an_edited_plan(tmp_path: Path) -> None:
    """plan show checks integrity: an edited plan is a PlanError (exit 2) of one line."""
    path = plan_file(tmp_path)
    document = json.loads(path.read_text())
    document["tasks"][0]["task_id"] = "0b1e2c3d-0000-4000-8000-999999999999"
    path.write_text(json.dumps(document))
    args = _parser().parse_args(["plan", "show", str(path), "--format", "markdown"])
    with pytest.raises(PlanError) as caught:
        args.handler(args)
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"{path}: the plan was edited after it was made (its sha256 does not match its "
        "content); make a new one with run --plan-out"
    )


def test_show_needs_no_binding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A plan for another endpoint and account still shows: review needs no credentials."""
    path = tmp_path / "plan.json"
    write_plan(path, DECISIONS[:1], policy=POLICY, endpoint="https://other.example/api/v1",
               access_key_id="someone-else", run_id="r", now=NOW)  # fmt: skip
    args = _parser().parse_args(["plan", "show", str(path), "--format", "json"])
    assert args.handler(args) == 0
    assert json.loads(capsys.readouterr().out)["access_key_id"] == "someone-else"


def test_table_prints_wider_rather_than_cut_a_long_id(tmp_path: Path) -> None:
    """An ID too long for 80 columns is printed whole on one line, never cut or folded."""
    long_id = "a" * 128
    path = plan_file(tmp_path, [decision(long_id, "long"), decision(UUIDS[0], "short")])
    lines = render(load_plan_document(path), "table", width=80, now=LATER).splitlines()
    assert sum(line.startswith(long_id + " completed") for line in lines) == 1
    assert max(len(line) for line in lines[:5]) <= 80


def test_an_empty_plan_says_so(tmp_path: Path) -> None:
    """A plan with no tasks says it is empty in the table and in Markdown; CSV is its header."""
    document = load_plan_document(plan_file(tmp_path, []))
    empty = "The plan is empty: nothing to delete or wait for."
    assert render(document, "table", now=LATER).splitlines()[-1] == empty
    assert render(document, "markdown", now=LATER).splitlines()[-1] == empty
    assert render(document, "csv", now=LATER).splitlines() == [
        "task_name,task_id,status,created_at,age,action,reason,detail"
    ]
