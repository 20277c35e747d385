"""Reading an audit log: ``audit verify`` (is the record whole?) and ``audit show``.

How ``verify`` reads the chain. Let h(i) be the sha256 of line i (its bytes without the
newline) and p(i) its ``prev_sha256``; h(0) is ``GENESIS``. A whole log has p(i) = h(i-1)
for every line. At the first line j where that fails, with q = p(j) and k = j - 1:

- q is h(m) of an earlier line m < k (or GENESIS, m = 0): lines m+1..k were inserted
  (they sit between two lines that were neighbours when written).
- q is h(j+1) and p(j+1) = h(k): lines j and j+1 were swapped; q is the hash of any
  other later line: line j is out of order.
- q matches no line: line k was edited, or lines after it were removed; the hashes alone
  cannot tell these apart. The run's ``run_finished`` counts can: when the run of line k
  finished after it and counts more events than its lines show (and no event has more
  lines than its count), lines were removed; otherwise line k was edited. Without
  ``run_finished`` both are named. A line k that is not JSON was edited (it is there).
- j = 1 with p(1) != GENESIS: line 1 was edited, or lines before it were removed.

Only the first broken link is explained (``broken_line``, ``problem``); a later break that
it does not explain is reported as "the chain breaks again".

Limits. An edit of the very last line breaks no link: only ``expect_head`` (the
``audit_head_sha256`` of the summary and the metrics) shows it, as it shows a tail cut at
a line boundary or rewritten with a recomputed chain. Removing a non-terminal line
is seen as an edit unless ``run_finished`` counts that event (``progress_events``).

Runs. A run without ``run_finished`` that another run follows was killed: the next
run's first line chains to its last one, so nothing after it was lost (a note, not a
problem); if that last line is torn (not JSON; the writer closes it off with a newline
before appending) it is said. At the end of the file nothing proves the tail whole: a
torn last line (no newline) is a truncated log, complete lines are a killed run or a cut
tail. Both are problems, as is a run's ``run_finished`` counting other lines than the log.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .audit import GENESIS
from .errors import UsageError
from .exitcodes import MEANING as EXIT_MEANING
from .untrusted import NAME_LIMIT, printable

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run's lines in the file: lines ``first_line``..``last_line`` (1-based)."""

    run_id: str
    finished: bool
    first_line: int
    last_line: int
    torn: bool = False
    """Its last line is cut mid-write (not JSON, or no newline at the end of the file)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing ``verify`` found; a note (``problem=False``) leaves the log intact."""

    line: int | None
    message: str
    problem: bool = True


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking an audit log: chain, runs and (optionally) the head."""

    ok: bool
    lines: int
    broken_line: int | None = None
    problem: str | None = None
    events: Counter[str] = field(default_factory=Counter)
    runs: tuple[RunInfo, ...] = ()
    findings: tuple[Finding, ...] = ()
    head_line: int | None = None
    """The line whose sha256 is ``expect_head``, when it was given and found."""


@dataclass(slots=True)
class _Run:
    run_id: str
    first: int
    started: bool
    last: int = 0
    finished_at: int | None = None
    torn: bool = False
    seen: Counter[str] = field(default_factory=Counter)
    claimed: dict[str, int] = field(default_factory=dict)

    def gap(self) -> tuple[int, int]:
        """(lines missing, lines too many) against the counts in ``run_finished``."""
        missing = extra = 0
        for event, count in self.claimed.items():
            seen = self.seen.get(event, 0)
            extra += max(0, seen - count)
            if event != "skipped":  # tasks no filter selected are counted, not written
                missing += max(0, count - seen)
        return missing, extra


@dataclass(slots=True)
class _Break:
    """The first line j whose prev_sha256 is not the sha256 of line k = j - 1."""

    line: int
    prev: object  # p(j)
    sha_before: str  # h(k)
    run: int  # index of the run of line k
    after_garbage: bool  # line k is not JSON: it exists, so it was edited
    next_prev: object = None  # p(j+1)


class _Scan:
    """One streaming pass: the chain, the runs, and the first broken link."""

    def __init__(self, expect_head: str | None) -> None:
        self.expect = expect_head
        self.head_line: int | None = None  # the last line whose sha256 is expect_head
        self.lines = 0
        self.events: Counter[str] = Counter()
        self.runs: list[_Run] = []
        self.findings: list[Finding] = []
        self.prev = GENESIS
        self.torn_end = False
        self.invalid: int | None = None  # a line that is not JSON, until the next line
        self.brk: _Break | None = None
        self.breaks: list[int] = []  # the next few broken links after the first
        self.chain: Finding | None = None  # what the first broken link means

    def feed(self, number: int, raw: bytes) -> None:
        line = raw.removesuffix(b"\n")
        digest = hashlib.sha256(line).hexdigest()
        record = _parse(line)
        if self.invalid is not None and record is None:
            self._problem(self.invalid, f"line {self.invalid} is not a JSON object")
        if record is None:
            self.invalid = number
            if self.runs and self.runs[-1].finished_at is None:
                self.runs[-1].last = number
        else:
            self._link(number, record)
        if digest == self.expect:
            self.head_line = number
        self.prev = digest
        self.lines = number
        self.torn_end = not raw.endswith(b"\n")

    def _link(self, number: int, record: dict[str, Any]) -> None:
        prev, event = record.get("prev_sha256"), str(record.get("event"))
        chained = prev == self.prev
        after_garbage = self.invalid is not None
        if self.invalid is not None:
            run = self.runs[-1] if self.runs else None
            if chained and event == "run_started" and run and run.last == self.invalid:
                run.torn = True  # closed off by this run: killed mid-write
            elif chained and event == "run_started":
                why = "torn (a run was killed while writing it); the next run chains to it"
                self.findings.append(Finding(self.invalid, f"line {self.invalid} is {why}", False))
            elif chained:
                self._problem(self.invalid, f"line {self.invalid} is not a JSON object")
            self.invalid = None
        if self.brk is not None and number == self.brk.line + 1:
            self.brk.next_prev = prev
        if not chained:
            if self.brk is None:
                self.brk = _Break(number, prev, self.prev, len(self.runs) - 1, after_garbage)
            elif len(self.breaks) < 3:
                self.breaks.append(number)
        self.events[event] += 1
        self._segment(number, record, event)

    def _segment(self, number: int, record: dict[str, Any], event: str) -> None:
        run_id = str(record.get("run_id"))
        run = self.runs[-1] if self.runs else None
        if event == "run_started" or run is None or run.run_id != run_id:
            if event != "run_started":
                self._problem(number, f"line {number} begins run {_id(run_id)} without run_started")
            run = _Run(run_id, number, started=event == "run_started")
            self.runs.append(run)
        elif run.finished_at is not None:
            self._problem(number, f"line {number} follows its run's run_finished")
        run.last = number
        if run.finished_at is None:
            run.seen[event] += 1
        if event == "run_finished":
            run.finished_at = number
            for key in ("counts", "progress_events"):
                counts = record.get(key)
                if isinstance(counts, dict):
                    run.claimed.update(
                        (k, v) for k, v in counts.items() if type(v) is int and k != "run_finished"
                    )

    def _problem(self, line: int | None, message: str) -> None:
        self.findings.append(Finding(line, message))

    def finish(self, back: int | None, later: int | None) -> Verification:
        """The verdict; ``back``/``later``: the lines before/after the break with hash p(j)."""
        if self.invalid is not None and not self.torn_end:
            self._problem(self.invalid, f"line {self.invalid} is not a JSON object")
        if self.torn_end and self.runs and self.runs[-1].finished_at is None:
            self.runs[-1].torn = True
        elif self.torn_end:
            self._problem(self.lines, f"the log is truncated: line {self.lines} is cut off")
        broken = self._classify(back, later)
        self._runs_end(broken_removed=broken)
        if self.expect is not None:
            self._head()
        findings = sorted(self.findings, key=lambda f: (f.line is None, f.line or 0))
        problems = [f for f in findings if f.problem]
        first = self.chain or (problems[0] if problems else None)
        return Verification(
            ok=not problems,
            lines=self.lines,
            broken_line=first.line if first else None,
            problem=first.message if first else None,
            events=self.events,
            runs=tuple(
                RunInfo(r.run_id, r.finished_at is not None, r.first, r.last, r.torn)
                for r in self.runs
            ),
            findings=tuple(findings),
            head_line=self.head_line,
        )

    def _classify(self, back: int | None, later: int | None) -> bool:
        """Name the first broken link; True when it was a removal the counts proved."""
        if self.brk is None:
            return False
        j, k, mark = self.brk.line, self.brk.line - 1, len(self.findings)
        removed = False
        if back is not None:
            what = (
                f"line {k} was inserted" if back == k - 1 else f"lines {back + 1}-{k} were inserted"
            )
            of = "GENESIS (a file's first line)" if back == 0 else f"that of line {back}"
            self._problem(back + 1, f"{what} (line {j}'s prev_sha256 is {of})")
        elif later is not None and later > j:
            if later == j + 1 and self.brk.next_prev == self.brk.sha_before:
                self._problem(j, f"lines {j} and {j + 1} were swapped")
            else:
                self._problem(
                    j, f"line {j} is out of order (its prev_sha256 is that of line {later})"
                )
        elif j == 1:
            self._problem(
                1,
                "line 1 was edited, or lines before it were removed (its "
                "prev_sha256 is not GENESIS)",
            )
        else:
            removed = self._edited_or_removed(self.brk)
        self.chain = self.findings[mark]
        explained = (j + 1, j + 2) if self.chain.message.endswith("swapped") else ()
        again = [b for b in self.breaks if b not in explained]
        if again:
            self._problem(again[0], f"line {again[0]}: the chain breaks again")
        return removed

    def _edited_or_removed(self, brk: _Break) -> bool:
        j, k = brk.line, brk.line - 1
        run = self.runs[brk.run] if brk.run >= 0 else None
        link = f"its sha256 does not match line {j}'s prev_sha256"
        if brk.after_garbage:
            self._problem(k, f"line {k} was edited: it is not a JSON object ({link})")
            return False
        if run is None or run.finished_at is None:
            self._problem(k, f"line {k} was edited, or lines after it were removed ({link})")
            return False
        missing, extra = run.gap()
        if run.finished_at > k and missing and not extra:
            self._problem(
                j,
                f"lines were removed before line {j} (line {j}'s prev_sha256 "
                f"matches no line; run {_id(run.run_id)}'s run_finished counts "
                f"{missing} more events than its lines)",
            )
            return True
        self._problem(k, f"line {k} was edited ({link})")
        return False

    def _runs_end(self, *, broken_removed: bool) -> None:
        for index, run in enumerate(self.runs):
            span = f"run {_id(run.run_id)} (lines {run.first}-{run.last})"
            last = index == len(self.runs) - 1
            if run.finished_at is not None:
                missing, extra = run.gap()
                if (missing or extra) and not (
                    broken_removed and self.brk and self.brk.run == index
                ):
                    self._problem(
                        run.finished_at,
                        f"{span}: its run_finished counts "
                        f"{missing} events the log lacks and {extra} it does not count",
                    )
            elif last and run.torn:
                self._problem(
                    run.last,
                    f"the log is truncated: line {run.last} is cut off "
                    f"mid-write; {span} has no run_finished",
                )
            elif last:
                self._problem(
                    run.last,
                    f"{span} has no run_finished: it was killed or is "
                    "still running, or the log's tail was cut (--expect-head tells)",
                )
            else:
                torn = f"; its last line ({run.last}) is torn" if run.torn else ""
                self.findings.append(
                    Finding(
                        run.last,
                        f"{span} was killed: no run_finished before the next run{torn}",
                        problem=False,
                    )
                )

    def _head(self) -> None:
        line = self.head_line
        if line is None:
            self._problem(
                None, f"the tail was cut or rewritten (expected head {self.expect:.16}… not found)"
            )
        elif line < self.lines and not any(r.started and r.first == line + 1 for r in self.runs):
            self._problem(
                line + 1,
                f"the log was rewritten after the head: line {line} has "
                f"the expected sha256, line {line + 1} after it is not a run_started",
            )


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _id(run_id: str) -> str:
    return printable(run_id, 40)


def verify(path: str | Path, *, expect_head: str | None = None) -> Verification:
    """Check an audit log's hash chain, its runs and, given ``expect_head``, its tail.

    Raises ``UsageError`` for a malformed ``expect_head`` and ``OSError`` when the file
    cannot be read.
    """
    if expect_head is not None:
        expect_head = expect_head.strip().lower()
        if not _SHA256.fullmatch(expect_head):
            raise UsageError("--expect-head takes a sha256: 64 hexadecimal characters")
    scan = _Scan(expect_head)
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            scan.feed(number, raw)
    if scan.brk is None:
        return scan.finish(None, None)
    return scan.finish(*_lines_with(path, scan.brk.prev, scan.brk.line))


def _lines_with(path: str | Path, sha256: object, j: int) -> tuple[int | None, int | None]:
    """The last line before ``j`` (0 for GENESIS) and the first after it hashing to sha256.

    A second pass, made only when the chain is broken: the first holds no hashes.
    """
    back = 0 if sha256 == GENESIS else None
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if number != j and hashlib.sha256(raw.removesuffix(b"\n")).hexdigest() == sha256:
                if number > j:
                    return back, number
                back = number
    return back, None


def iter_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, record) for each line; ``None`` for a line that is not a JSON object."""
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            yield number, _parse(raw.removesuffix(b"\n"))


# -- the command line --------------------------------------------------------------------


def add_parsers(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``audit verify`` and ``audit show`` on the ``audit`` command's subparsers."""
    check = audit_subparsers.add_parser(
        "verify", help="check an audit log's hash chain", allow_abbrev=False
    )
    check.add_argument("path", metavar="PATH")
    check.add_argument(
        "--expect-head",
        metavar="SHA",
        help="the sha256 of the last line (audit_head_sha256 in the summary and metrics)",
    )
    check.set_defaults(handler=verify_command)
    show = audit_subparsers.add_parser(
        "show", help="what a run did, for people", allow_abbrev=False
    )
    show.add_argument("path", metavar="PATH")
    show.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    show.add_argument("--run", metavar="RUN_ID", help="a run_id, or 'all' (default: the last run)")
    show.set_defaults(handler=show_command)


def verify_command(args: argparse.Namespace) -> int:
    """``audit verify``: one line per finding; 0 intact, 1 not, 2 unreadable."""
    name = printable(str(args.path), None)
    try:
        result = verify(args.path, expect_head=args.expect_head)
    except OSError as exc:
        raise UsageError(f"{name}: cannot read ({exc.strerror})") from None
    for finding in result.findings:
        print(f"{name}: {finding.message}")
    if not result.ok:
        problems = sum(f.problem for f in result.findings)
        print(f"{name}: NOT intact: {problems} problem(s) in {result.lines} lines")
        return 1
    events = ", ".join(f"{k} {v}" for k, v in sorted(result.events.items()))
    head = f"; head is line {result.head_line}" if result.head_line else ""
    print(f"{name}: intact, {result.lines} lines, {len(result.runs)} run(s){head} ({events})")
    return 0


def show_command(args: argparse.Namespace) -> int:
    """``audit show``: a run (or every run) for people, on stdout."""
    width = min(shutil.get_terminal_size((80, 24)).columns, 160)
    try:
        for chunk in iter_show(args.path, args.format, args.run, width):
            sys.stdout.write(chunk)
    except OSError as exc:
        name = printable(str(args.path), None)
        raise UsageError(f"{name}: cannot read ({exc.strerror})") from None
    return 0


# -- audit show ---------------------------------------------------------------------------

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
