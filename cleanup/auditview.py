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

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .audit import GENESIS
from .errors import UsageError
from .untrusted import printable

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
