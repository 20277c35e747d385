"""audit verify (chain, runs, head) and audit show (a run, for people).

Logs are written here with the writer's chain rule (``prev_sha256`` = sha256 of the
previous line's bytes, GENESIS for the first), not with cleanup.audit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cleanup.auditcli import add_parsers
from cleanup.auditshow import render_show
from cleanup.auditview import verify
from cleanup.errors import UsageError

GENESIS = "0" * 64
TERMINAL = ("would_delete", "deleted", "already_absent", "skipped", "failed", "still_busy")
PROGRESS = ("deferred", "deleting", "delete_accepted", "retrying")


def sha(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def run_records(
    run_id: str,
    tasks: list[tuple[str, dict[str, Any]]],
    *,
    dry_run: bool = False,
    finished: bool = True,
    exit_code: int = 0,
) -> list[dict[str, Any]]:
    """A run's records: run_started, the task events, and run_finished with its counts."""
    started = {
        "event": "run_started",
        "timestamp": "2026-12-01T10:00:00.000000Z",
        "policy": "/etc/nclue/retention.yaml",
        "policy_sha256": "ab" * 32,
        "dry_run": dry_run,
        "mode": "dry_run" if dry_run else "apply",
        "endpoint": "http://127.0.0.1:9/api/v1",
        "version": "0.1.0",
        "shard": {"index": 0, "count": 1},
        "trigger": "cron",
        "operator": "ops@host",
    }
    body = [{"event": e, "timestamp": "2026-12-01T10:00:01.000000Z", **f} for e, f in tasks]
    seen = Counter(r["event"] for r in body)
    records = [started, *body]
    if finished:
        records.append(
            {
                "event": "run_finished",
                "timestamp": "2026-12-01T10:00:07.500000Z",
                "counts": {e: seen[e] for e in TERMINAL},
                "progress_events": {e: seen[e] for e in PROGRESS if seen[e]},
                "skip_reasons": dict(Counter(r["reason"] for r in body if r["event"] == "skipped")),
                "requests_total": 9,
                "duration_s": 7.5,
                "exit_code": exit_code,
                "error": None,
                "stopped_by": None,
            }
        )
    return [{**r, "run_id": run_id} for r in records]


def chain(records: list[dict[str, Any]], prev: str = GENESIS) -> list[bytes]:
    """Lines as the writer writes them: each carries the sha256 of the line before."""
    lines = []
    for record in records:
        line = json.dumps({**record, "prev_sha256": prev}).encode()
        lines.append(line)
        prev = sha(line)
    return lines


def write(path: Path, lines: list[bytes], *, torn_end: bool = False) -> Path:
    path.write_bytes(b"\n".join(lines) + (b"" if torn_end else b"\n"))
    return path


def task(task_id: str, name: str = "exp", **fields: Any) -> dict[str, Any]:
    return {"task_id": task_id, "task_name": name, "status": "completed", **fields}


APPLY = [
    ("deleting", task("t1", attempt=1)),
    ("deleted", task("t1", evidence="404 on GET after 2xx")),
    ("deleting", task("t2", attempt=1)),
    ("deleted", task("t2", attempts=1)),
    ("skipped", task("t3", reason="protect", detail="protect.ids")),
    ("failed", task("t4", error="RefusedError: 400", http_status=400, server_message="bad")),
    ("still_busy", task("t5", status="running", reason="task is running", detail="deadline")),
]
DRY = [
    ("would_delete", task("d1", detail="status completed")),
    ("would_delete", task("d2", detail="status completed")),
    ("skipped", task("d3", reason="keep_latest")),
]


def three_runs() -> list[bytes]:
    """An apply run (lines 1-9), a dry run (10-14), another apply run (15-18)."""
    records = run_records("run-a", APPLY, exit_code=1) + run_records("run-b", DRY, dry_run=True)
    records += run_records("run-c", APPLY[:2])
    return chain(records)


def test_intact_multi_run_log(tmp_path: Path) -> None:
    """A log of three whole runs is intact, with every run and event counted."""
    result = verify(write(tmp_path / "a.jsonl", three_runs()))
    assert result.ok and result.problem is None and result.broken_line is None
    assert result.lines == 18
    assert [(r.run_id, r.finished, r.first_line, r.last_line) for r in result.runs] == [
        ("run-a", True, 1, 9),
        ("run-b", True, 10, 14),
        ("run-c", True, 15, 18),
    ]
    assert result.events["deleted"] == 3 and result.events["run_started"] == 3


def edit(line: bytes) -> bytes:
    """The same line with one field changed and its prev_sha256 kept."""
    record = json.loads(line)
    record["timestamp"] = "2020-01-01T00:00:00.000000Z"
    return json.dumps(record).encode()


@pytest.mark.parametrize("number", [1, 5, 9, 12])
def test_an_edited_line_is_named_not_the_one_after_it(tmp_path: Path, number: int) -> None:
    """Editing line N (first, middle, a run's last) reports line N as edited."""
    lines = three_runs()
    lines[number - 1] = edit(lines[number - 1])
    result = verify(write(tmp_path / "a.jsonl", lines))
    assert not result.ok and result.broken_line == number
    assert result.problem == (
        f"line {number} was edited (its sha256 does not match line {number + 1}'s prev_sha256)"
    )


def test_an_edited_last_line_needs_the_expected_head(tmp_path: Path) -> None:
    """An edit of the very last line breaks no link; --expect-head shows it."""
    lines = three_runs()
    head = sha(lines[-1])
    lines[-1] = edit(lines[-1])
    path = write(tmp_path / "a.jsonl", lines)
    assert verify(path).ok
    result = verify(path, expect_head=head)
    assert not result.ok
    assert result.problem == f"the tail was cut or rewritten (expected head {head[:16]}… not found)"


def test_a_removed_line_is_told_from_an_edit_by_the_run_counts(tmp_path: Path) -> None:
    """Removing a terminal line of a finished run says lines were removed, before which line."""
    lines = three_runs()
    del lines[3]  # run-a's first deleted line
    result = verify(write(tmp_path / "a.jsonl", lines))
    assert not result.ok and result.broken_line == 4
    assert result.problem is not None
    assert result.problem.startswith("lines were removed before line 4 (line 4's prev_sha256")
    assert "counts 1 more events than its lines" in result.problem


def test_a_removed_line_of_an_unfinished_run_names_both_readings(tmp_path: Path) -> None:
    """Without run_finished, a missing link is an edit or a removal, and both are said."""
    lines = chain(run_records("run-a", APPLY, finished=False))
    del lines[3]
    result = verify(write(tmp_path / "a.jsonl", lines))
    assert result.problem == (
        "line 3 was edited, or lines after it were removed "
        "(its sha256 does not match line 4's prev_sha256)"
    )


def test_an_inserted_line_is_named(tmp_path: Path) -> None:
    """A forged line chained to its predecessor is named as inserted, not the line after it."""
    lines = three_runs()
    forged = json.dumps({**json.loads(lines[4]), "task_id": "t9", "prev_sha256": sha(lines[4])})
    lines.insert(5, forged.encode())
    result = verify(write(tmp_path / "a.jsonl", lines))
    assert not result.ok and result.broken_line == 6
    assert result.problem == "line 6 was inserted (line 7's prev_sha256 is that of line 5)"


def test_lines_added_in_front_are_named(tmp_path: Path) -> None:
    """Lines put before a chain that starts at GENESIS are named as inserted."""
    lines = three_runs()
    forged = chain(run_records("run-x", DRY[:1], finished=False))
    result = verify(write(tmp_path / "a.jsonl", forged + lines))
    assert result.problem == (
        "lines 1-2 were inserted (line 3's prev_sha256 is GENESIS (a file's first line))"
    )


def test_a_swapped_pair_is_named(tmp_path: Path) -> None:
    """Two neighbouring lines exchanged are reported as swapped, at the first of them."""
    lines = three_runs()
    lines[5], lines[6] = lines[6], lines[5]
    result = verify(write(tmp_path / "a.jsonl", lines))
    assert not result.ok and result.broken_line == 6
    assert result.problem == "lines 6 and 7 were swapped"


def test_a_line_moved_further_is_out_of_order(tmp_path: Path) -> None:
    """A line moved before others it followed is named out of order, by its new place."""
    lines = three_runs()
    lines.insert(2, lines.pop(5))  # line 6 now sits at 3
    result = verify(write(tmp_path / "a.jsonl", lines))
    assert result.problem == "line 3 is out of order (its prev_sha256 is that of line 6)"


def test_a_line_edited_into_garbage_is_named(tmp_path: Path) -> None:
    """A line that is no longer JSON is the edited one, not the line after it."""
    lines = three_runs()
    lines[4] = b"not json at all"
    result = verify(write(tmp_path / "a.jsonl", lines))
    assert result.broken_line == 5 and result.problem is not None
    assert result.problem.startswith("line 5 was edited")


def test_a_second_break_further_on_is_reported_too(tmp_path: Path) -> None:
    """Two edits far apart: the first is named, and the second break is reported as well."""
    lines = three_runs()
    lines[2], lines[13] = edit(lines[2]), edit(lines[13])
    result = verify(write(tmp_path / "a.jsonl", lines))
    assert [f.message for f in result.findings] == [
        "line 3 was edited (its sha256 does not match line 4's prev_sha256)",
        "line 15: the chain breaks again",
    ]


def test_a_torn_line_after_a_finished_run_is_truncation(tmp_path: Path) -> None:
    """A file ending in half of a new run's first line is truncated, not intact."""
    lines = three_runs()
    torn = chain(run_records("run-d", []), prev=sha(lines[-1]))[0][:25]
    result = verify(write(tmp_path / "a.jsonl", [*lines, torn], torn_end=True))
    assert not result.ok
    assert result.problem == "the log is truncated: line 19 is cut off"


def test_a_torn_last_line_is_a_truncated_log(tmp_path: Path) -> None:
    """A file ending in half a line is truncated, and its run has no run_finished."""
    lines = three_runs()
    lines[-1] = lines[-1][:40]
    result = verify(write(tmp_path / "a.jsonl", lines, torn_end=True))
    assert not result.ok and result.broken_line == 18
    assert result.problem == (
        "the log is truncated: line 18 is cut off mid-write; "
        "run run-c (lines 15-18) has no run_finished"
    )
    assert result.runs[-1].torn and not result.runs[-1].finished


def test_a_killed_run_followed_by_a_new_run_is_a_note(tmp_path: Path) -> None:
    """A run with no run_finished that the next run chains to was killed; the log is intact."""
    records = run_records("run-a", APPLY[:3], finished=False) + run_records("run-b", DRY)
    result = verify(write(tmp_path / "a.jsonl", chain(records)))
    assert result.ok
    assert [(f.message, f.problem) for f in result.findings] == [
        ("run run-a (lines 1-4) was killed: no run_finished before the next run", False)
    ]
    assert not result.runs[0].finished and result.runs[1].finished


def test_a_killed_run_whose_last_line_was_torn(tmp_path: Path) -> None:
    """A torn line the next run closed off and chained to is a killed run's torn last line."""
    first = chain(run_records("run-a", APPLY[:3], finished=False))
    first[-1] = first[-1][:30]  # the writer adds b"\n" and chains to these bytes
    second = chain(run_records("run-b", DRY), prev=sha(first[-1]))
    result = verify(write(tmp_path / "a.jsonl", first + second))
    assert result.ok
    assert [f.message for f in result.findings] == [
        "run run-a (lines 1-4) was killed: no run_finished before the next run; "
        "its last line (4) is torn"
    ]


def test_a_cut_tail_is_not_intact(tmp_path: Path) -> None:
    """A log whose last lines were cut at a line boundary is not called intact."""
    lines = three_runs()
    head = sha(lines[-1])
    path = write(tmp_path / "a.jsonl", lines[:-3])
    result = verify(path)
    assert not result.ok
    assert result.problem == (
        "run run-c (lines 15-15) has no run_finished: it was killed or is still running, "
        "or the log's tail was cut (--expect-head tells)"
    )
    assert "expected head" in str(verify(path, expect_head=head).findings[-1].message)


def test_expect_head_found_at_the_end_or_before_a_later_run(tmp_path: Path) -> None:
    """The head may be the last line, or be followed only by later runs."""
    lines = three_runs()
    path = write(tmp_path / "a.jsonl", lines)
    assert verify(path, expect_head=sha(lines[-1])).head_line == 18
    later = verify(path, expect_head=sha(lines[13]).upper())
    assert later.ok and later.head_line == 14


def test_expect_head_followed_by_a_rewritten_tail(tmp_path: Path) -> None:
    """Lines after the head that do not begin a run mean the log was rewritten after it."""
    records = run_records("run-a", APPLY)
    lines = chain(records)
    head = sha(lines[-1])
    extra = chain([{**records[1], "task_id": "t8"}], prev=head)
    result = verify(write(tmp_path / "a.jsonl", lines + extra), expect_head=head)
    assert not result.ok
    assert [f.message for f in result.findings] == [
        "line 10 follows its run's run_finished",
        "the log was rewritten after the head: line 9 has the expected sha256, "
        "line 10 after it is not a run_started",
    ]


def test_run_finished_counts_that_disagree_with_the_lines(tmp_path: Path) -> None:
    """A chain that is whole but whose run_finished counts other lines is not intact."""
    records = run_records("run-a", APPLY)
    records[-1]["counts"]["deleted"] = 5
    result = verify(write(tmp_path / "a.jsonl", chain(records)))
    assert result.problem == (
        "run run-a (lines 1-9): its run_finished counts 3 events the log lacks "
        "and 0 it does not count"
    )


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="nclue-cleanup audit")
    add_parsers(parser.add_subparsers(dest="audit_command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args)
    return code


def test_verify_command_lines_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify prints one line per finding and exits 0 intact, 1 broken, 2 unreadable."""
    lines = three_runs()
    path = write(tmp_path / "audit.jsonl", lines)
    assert cli("verify", str(path), "--expect-head", sha(lines[-1])) == 0
    assert capsys.readouterr().out == (
        f"{path}: intact, 18 lines, 3 run(s); head is line 18 (deleted 3, deleting 3, "
        "failed 1, run_finished 3, run_started 3, skipped 2, still_busy 1, would_delete 2)\n"
    )
    lines[6] = edit(lines[6])
    write(path, lines)
    assert cli("verify", str(path)) == 1
    assert capsys.readouterr().out == (
        f"{path}: line 7 was edited (its sha256 does not match line 8's prev_sha256)\n"
        f"{path}: NOT intact: 1 problem(s) in 18 lines\n"
    )
    with pytest.raises(UsageError, match="cannot read"):
        cli("verify", str(tmp_path / "missing.jsonl"))
    with pytest.raises(UsageError, match="64 hexadecimal"):
        cli("verify", str(path), "--expect-head", "abc")
    with pytest.raises(SystemExit):
        cli("verify", str(path), "--expect", sha(lines[-1]))  # never abbreviated


# -- show ---------------------------------------------------------------------------------


def test_show_table_of_the_last_run_fits_80_columns(tmp_path: Path) -> None:
    """The default is the last run: who, when, mode, policy, counts, tasks and why."""
    records = run_records("run-b", DRY, dry_run=True) + run_records(
        "run-a-0123456789abcdef0123456789", APPLY, exit_code=1
    )
    long_id = "task-" + "0123456789" * 4
    records[-5]["task_id"] = long_id  # the deleted t2 line
    records[-1]["duration_s"] = 3723.4
    out = render_show(write(tmp_path / "a.jsonl", chain(records)), "table")
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0] == "run            run-a-0123456789abcdef0123456789"
    for fact in (
        "operator       ops@host",
        "started        2026-12-01T10:00:00.000000Z",
        "duration       1h 02m 03s (3723.4 s)",
        "trigger        cron",
        "mode           apply",
        "policy         /etc/nclue/retention.yaml",
        "exit code      1 (some tasks failed, or the run could not complete)",
        "outcomes       deleted 2, skipped 1, failed 1, still_busy 1",
        "audit log      intact (audit verify)",
        "policy sha256  " + "ab" * 32,
        "deleted (2)",
        "skipped (1)",
        "still busy (1)",
        "failed (1)",
    ):
        assert fact in lines, fact
    assert any(long_id in line for line in lines)  # an ID is never folded
    assert "404 on GET after 2xx" in out and "protect" in out
    assert "task is running; deadline" in out
    assert "RefusedError: 400; HTTP 400; bad" in out
    assert "would delete" not in out and "d1" not in out


def test_show_dry_run_by_run_id_and_all(tmp_path: Path) -> None:
    """--run picks one run (what would be deleted), 'all' shows every run in order."""
    path = write(tmp_path / "a.jsonl", three_runs())
    dry = render_show(path, "table", run="run-b")
    busy = [("still_busy", task("d0", status="running", reason="task is running"))]
    waits = render_show(
        write(tmp_path / "b.jsonl", chain(run_records("run-w", busy, dry_run=True))), "table"
    )
    assert "mode           dry run" in dry.splitlines()
    assert "would delete (2)" in dry and "status completed" in dry and "keep_latest" in dry
    assert "would wait (busy) (1)" in waits and "still busy" not in waits
    every = render_show(path, "table", run="all")
    assert [line for line in every.splitlines() if line.startswith("run ")] == [
        "run            run-a",
        "run            run-b",
        "run            run-c",
    ]
    with pytest.raises(UsageError, match="no run nope in this audit log"):
        render_show(path, "table", run="nope")


def test_show_a_killed_run_says_so(tmp_path: Path) -> None:
    """A run without run_finished is shown with what it did and that it never finished."""
    records = run_records("run-a", APPLY[:2], finished=False)
    out = render_show(write(tmp_path / "a.jsonl", chain(records)), "table")
    assert "finished       no: no run_finished (killed, still running, or cut)" in out
    assert "NOT intact: run run-a (lines 1-3) has no run_finished" in out
    assert "deleted (1)" in out


HOSTILE = "\x1b[31mred\x1b[0m [/x] [bold]b[/bold] | <!channel> `x`"


def test_show_escapes_untrusted_text(tmp_path: Path) -> None:
    """Names and messages appear escaped: ANSI visible, rich markup shown literally."""
    records = run_records(
        "run-a", [("failed", task("t1", HOSTILE, error="E", server_message="\x1b]8;;x\x07"))]
    )
    path = write(tmp_path / "a.jsonl", chain(records))
    table = render_show(path, "table", width=120)
    assert "\x1b" not in table and "\x07" not in table
    assert "\\x1b[31mred\\x1b[0m [/x] [bold]b[/bold] | <!channel> `x`" in table
    assert "E; \\x1b]8;;x\\x07" in table
    markdown = render_show(path, "markdown")
    cell = r"\\x1b\[31mred\\x1b\[0m \[/x\] \[bold\]b\[/bold\] \| \<!channel\> \`x\`"
    assert rf"| t1 | {cell} | E; \\x1b\]8;;x\\x07 |" in markdown


def test_show_markdown_and_json(tmp_path: Path) -> None:
    """Markdown has headed tables fit for a pull request; JSON carries the same run."""
    path = write(tmp_path / "a.jsonl", three_runs())
    markdown = render_show(path, "markdown", run="run-a")
    assert markdown.startswith("## nclue-cleanup run run-a\n\n- **run:** run-a\n")
    assert "- **policy:** /etc/nclue/retention.yaml\n" in markdown
    assert "### deleted (2)\n\n| task | name | why |\n| --- | --- | --- |\n" in markdown
    assert "| t2 | exp | attempts: 1 |\n" in markdown
    assert "### skipped (1)\n\n| reason | tasks |\n| --- | --- |\n| protect | 1 |\n" in markdown
    one = json.loads(render_show(path, "json"))
    assert one["run_id"] == "run-c" and one["deleted"] == [
        {"task_id": "t1", "task_name": "exp", "why": "404 on GET after 2xx"}
    ]
    assert one["run_started"]["operator"] == "ops@host" and one["log_intact"] is True
    every = json.loads(render_show(path, "json", run="all"))
    assert [r["run_id"] for r in every] == ["run-a", "run-b", "run-c"]
    assert every[1]["would_delete"][0]["why"] == "status completed"


def test_show_command_prints_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """audit show writes the rendering on stdout and exits 0; a missing file is a usage error."""
    path = write(tmp_path / "a.jsonl", three_runs())
    assert cli("show", str(path), "--format", "json", "--run", "run-b") == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == "run-b"
    with pytest.raises(UsageError, match="cannot read"):
        cli("show", str(tmp_path / "missing.jsonl"))


def test_show_reads_a_large_log_one_run_at_a_time(tmp_path: Path) -> None:
    """Showing the small last run of a 100,000-line log holds no more than that run."""
    big = [("deleting", task(f"b{i}", attempt=1)) for i in range(100_000)]
    lines = chain(run_records("run-big", big) + run_records("run-last", APPLY[:2]))
    path = write(tmp_path / "a.jsonl", lines)
    del lines, big
    tracemalloc.start()
    try:
        out = render_show(path, "table")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "run            run-last" in out
    assert peak < 10_000_000  # 100,000 parsed lines would take several times this
