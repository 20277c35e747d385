"""The audit log: JSON lines with a fixed vocabulary, hash-chained, flushed per line.

It is a structlog logger of its own (not the debug log). Every line has ``event``,
``timestamp`` (ISO 8601 UTC), ``run_id`` and ``prev_sha256``: the sha256 of the line
before it in the same file (``GENESIS`` for a file's first line), so that
``nclue-cleanup audit verify`` can find the first line that was altered or lost.
The file is created owner-read/write only, appended to, flushed after every line,
and fsynced every few seconds and at the end of the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import structlog

from .model import Outcome, Task

GENESIS = "0" * 64
_FSYNC_EVERY_S = 2.0


class _ChainedWriter:
    """A structlog logger that appends lines and remembers the last line's sha256."""

    def __init__(self, stream: IO[bytes], last_sha256: str, fsync: bool) -> None:
        self._stream = stream
        self.last_sha256 = last_sha256
        self._fsync = fsync
        self._synced_at = time.monotonic()

    def msg(self, message: str) -> None:
        line = message.encode("utf-8")
        self._stream.write(line + b"\n")
        self._stream.flush()
        self.last_sha256 = hashlib.sha256(line).hexdigest()
        if self._fsync and time.monotonic() - self._synced_at > _FSYNC_EVERY_S:
            self.sync()

    def sync(self) -> None:
        self._stream.flush()
        if self._fsync:
            os.fsync(self._stream.fileno())
            self._synced_at = time.monotonic()


class _ChainedRenderer:
    """The audit log's one structlog processor: fixed field order, chain, JSON.

    One processor instead of TimeStamper + a chain step + JSONRenderer: the audit log
    writes two lines per deleted task, so its cost is part of the client's CPU per
    delete (see benchmarks/RESULTS.md).
    """

    def __init__(self, run_id: str, writer: _ChainedWriter) -> None:
        self._run_id = run_id
        self._writer = writer
        self._encode = json.JSONEncoder(ensure_ascii=False, default=str).encode
        self._second = -1
        self._prefix = ""

    def __call__(self, _: object, __: str, fields: MutableMapping[str, Any]) -> str:
        head = {"event": fields.pop("event"), "timestamp": self._timestamp()}
        # run_id and prev_sha256 come last in the merge: no field can overwrite them.
        line = {**head, **fields, "run_id": self._run_id, "prev_sha256": self._writer.last_sha256}
        return self._encode(line)

    def _timestamp(self) -> str:
        """ISO 8601 UTC with microseconds; the part up to the second is reused."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1e6):06d}Z"


class AuditLog:
    """Writes audit events and guarantees one terminal event per task."""

    def __init__(self, path: str | Path, run_id: str) -> None:
        self.path = str(path)
        self.run_id = run_id
        if self.path == "-":
            stream: IO[bytes] = sys.stdout.buffer
            self._writer = _ChainedWriter(stream, GENESIS, fsync=False)
            self._owned = False
        else:
            stream, last = _open_for_append(Path(self.path))
            self._writer = _ChainedWriter(stream, last, fsync=True)
            self._owned = True
        self._stream = stream
        self._log = structlog.wrap_logger(
            self._writer,
            processors=[_ChainedRenderer(run_id, self._writer)],
            wrapper_class=structlog.BoundLogger,  # not the debug log's level filter
            cache_logger_on_first_use=True,
        )
        self.outcomes: dict[Outcome, list[str]] = {o: [] for o in Outcome}
        self._ended: set[str] = set()
        self.progress_events: Counter[str] = Counter()
        """Non-terminal task lines written, by event (deleting, deferred, retrying)."""

    def event(self, event: str, **fields: Any) -> None:
        """Write one line (run-level or non-terminal task events)."""
        self._log.msg(event, **fields)

    def task_event(self, event: str, task: Task, **fields: Any) -> None:
        """Write one non-terminal task line (``deleting``, ``deferred``, ``retrying``)."""
        self.progress_events[event] += 1
        self._log.msg(event, **_task_fields(task), **fields)

    def finish(self, outcome: Outcome, task: Task, **fields: Any) -> None:
        """Write a task's terminal line; a second terminal line for a task is a bug."""
        if task.task_id in self._ended:
            raise RuntimeError(f"task {task.task_id} already has a terminal audit event")
        self._ended.add(task.task_id)
        self.outcomes[outcome].append(task.task_id)
        self._log.msg(outcome.value, **_task_fields(task), **fields)

    def ended(self, task_id: str) -> bool:
        return task_id in self._ended

    @property
    def ended_count(self) -> int:
        return len(self._ended)

    def counts(self) -> dict[str, int]:
        return {o.value: len(ids) for o, ids in self.outcomes.items()}

    def close(self) -> None:
        self._writer.sync()
        if self._owned:
            self._stream.close()


def _task_fields(task: Task) -> dict[str, Any]:
    fields: dict[str, Any] = {"task_id": task.task_id}
    if task.task_name is not None:
        fields["task_name"] = task.task_name
    if task.status is not None:
        fields["status"] = task.status
    return fields


def _open_for_append(path: Path) -> tuple[IO[bytes], str]:
    """Open (creating 0600) for appending; return the sha256 of its last line."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    stream = os.fdopen(fd, "ab", buffering=0)  # one write() per line, no copy, no flush
    last = _last_line(path)
    if last is None:
        return stream, GENESIS
    if not last.endswith(b"\n"):  # a torn line from a killed run: close it off
        stream.write(b"\n")
        stream.flush()
    return stream, hashlib.sha256(last.rstrip(b"\n")).hexdigest()


def _last_line(path: Path) -> bytes | None:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        if end == 0:
            return None
        chunk, pos = b"", end
        while pos > 0:
            step = min(65536, pos)
            pos -= step
            fh.seek(pos)
            chunk = fh.read(step) + chunk
            cut = chunk.rfind(b"\n", 0, len(chunk) - 1)
            if cut >= 0:
                return chunk[cut + 1 :]
        return chunk


@dataclass(frozen=True, slots=True)
class Verification:
    """The result of checking an audit log's hash chain."""

    ok: bool
    lines: int
    broken_line: int | None = None
    problem: str | None = None
    events: Counter[str] | None = None


def verify(path: str | Path) -> Verification:
    """Check every line parses and carries the sha256 of the line before it."""
    events: Counter[str] = Counter()
    previous = GENESIS
    number = 0
    with Path(path).open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            line = raw.rstrip(b"\n")
            try:
                record = json.loads(line)
            except ValueError:
                problem = "not a JSON object (a torn write, or edited)"
                return Verification(False, number, number, problem, events)
            if not isinstance(record, dict):
                return Verification(False, number, number, "not a JSON object", events)
            if record.get("prev_sha256") != previous:
                problem = (
                    "prev_sha256 does not match the line before it (edited, removed or reordered)"
                )
                return Verification(False, number, number, problem, events)
            events[str(record.get("event"))] += 1
            previous = hashlib.sha256(line).hexdigest()
    return Verification(True, number, events=events)
