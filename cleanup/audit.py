"""The audit log: JSON lines with a fixed vocabulary, hash-chained, one write per line.

Every line has ``event``, ``timestamp`` (ISO 8601 UTC), ``run_id`` and
``prev_sha256``: the sha256 of the line before it in the same file (``GENESIS`` for a
file's first line), so ``nclue-cleanup audit verify`` finds the first line that was
altered or lost. A line is written whole with one ``write()`` or not at all: a short
write, a full disk, a read-only file or a closed pipe raises ``AuditWriteError``, and
from then on nothing more is written (the caller sends no further DELETE). Lines
recorded in one go, with nothing sent in between (``AuditLog.batch``: a dry run's
plan, a verification's results), share their ``write()`` calls, each line still
whole in one of them; a write-ahead line is never held back.

Sinks are a seam (``AuditSink``): a regular file, opened without following a
symlink, created owner-only, locked against a second run, appended to and fsynced
every few seconds (in a thread, off the event loop; a failed sync fails the next
write) and at the end; or standard output.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import lru_cache
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Protocol

from .errors import AuditWriteError, UsageError
from .model import Task
from .untrusted import cut_name

GENESIS = "0" * 64
_FSYNC_EVERY_S = 2.0
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_OWN_KEYS = frozenset({"event", "timestamp", "run_id", "prev_sha256"})
"""Written by the log itself, in this order around the caller's fields; never twice."""
_STATUS_LIMIT = 64
_BATCH_BYTES = 64 * 1024
_LINE_BREAKS = re.compile("[\x85\u2028\u2029]")
"""Characters ``str.splitlines`` (and some log shippers) break a line at; escaped."""


class AuditSink(Protocol):
    """Where audit lines go."""

    name: str
    last_sha256: str
    """sha256 of the last line already there (``GENESIS`` for a new stream)."""

    def write(self, line: bytes) -> None:
        """Write one whole line (newline included) or raise ``AuditWriteError``."""

    def sync(self) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """An append-only regular file, never through a symlink, locked for this run."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = str(path)
        self._clock = clock
        self._synced_at = clock()
        # Threads start on the first sync: nothing to stop if opening fails below.
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-fsync")
        self._syncing: Future[None] | None = None
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            self._fd = os.open(self.name, flags, 0o600)
        except OSError as exc:
            raise UsageError(_open_problem(self.name, exc)) from None
        try:
            if not stat.S_ISREG(os.fstat(self._fd).st_mode):
                raise UsageError(f"audit log {self.name}: not a regular file")
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UsageError(
                    f"audit log {self.name}: another run is writing it now; wait for it or "
                    "use another --audit-log"
                ) from None
            self.last_sha256 = self._close_off_last_line()
        except BaseException:
            os.close(self._fd)
            raise

    def _close_off_last_line(self) -> str:
        last = _last_line(self.name)
        if last is None:
            return GENESIS
        if not last.endswith(b"\n"):  # a torn line from a killed run: close it off
            self.write(b"\n")
        return hashlib.sha256(last.rstrip(b"\n")).hexdigest()

    def write(self, line: bytes) -> None:
        self._synced_ok()
        try:
            written = os.write(self._fd, line)
        except OSError as exc:
            raise AuditWriteError(
                f"audit log {self.name}: cannot write ({exc.strerror}); no further DELETE is sent"
            ) from None
        if written != len(line):
            raise AuditWriteError(
                f"audit log {self.name}: short write ({written} of {len(line)} bytes, disk "
                "full?); no further DELETE is sent"
            )
        if self._clock() - self._synced_at > _FSYNC_EVERY_S and self._syncing is None:
            # In a thread of its own: an fsync can take tens of milliseconds, and on the
            # event loop it would hold back every request that already has its rate
            # slot (at 1 request/s, two would then reach the API under 1 s apart).
            self._synced_at = self._clock()
            self._syncing = self._syncer.submit(self._fsync)

    def sync(self) -> None:
        """Wait for a sync in flight, then sync now (the end of a run)."""
        if self._syncing is not None:
            wait([self._syncing])
        self._synced_ok()
        self._fsync_or_raise()
        self._synced_at = self._clock()

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._syncer.shutdown(wait=True)
            os.close(self._fd)

    def _synced_ok(self) -> None:
        """Raise ``AuditWriteError`` when the last background sync failed."""
        done = self._syncing
        if done is None or not done.done():
            return
        self._syncing = None
        if done.exception() is not None:
            self._fsync_or_raise(done.exception())

    def _fsync(self) -> None:
        os.fsync(self._fd)

    def _fsync_or_raise(self, failed: BaseException | None = None) -> None:
        try:
            if failed is not None:
                raise failed
            self._fsync()
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EROFS):
                raise AuditWriteError(
                    f"audit log {self.name}: cannot sync ({exc.strerror})"
                ) from None


class StreamSink:
    """Standard output (``--audit-log -``): lines for a log pipeline, flushed per line."""

    def __init__(self, fd: int = 1) -> None:
        self.name = "-"
        self.last_sha256 = GENESIS
        self._fd = fd

    def write(self, line: bytes) -> None:
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except BrokenPipeError:
            raise AuditWriteError("audit log on stdout: the reader closed the pipe") from None
        except OSError as exc:
            raise AuditWriteError(f"audit log on stdout: cannot write ({exc.strerror})") from None

    def sync(self) -> None:
        return None

    def close(self) -> None:
        return None


def open_sink(path: str) -> AuditSink:
    return StreamSink() if path == "-" else FileSink(path)


class AuditLog:
    """Renders and chains audit lines; after a failed write it writes nothing more."""

    def __init__(self, sink: AuditSink, run_id: str) -> None:
        self.sink = sink
        self.run_id = run_id
        self.head_sha256 = sink.last_sha256
        self.failure: AuditWriteError | None = None
        self.captured: list[bytes] | None = None
        """This run's lines, kept when they must be archived at the end."""
        self._run_id = _string(run_id)
        self._held: list[bytes] | None = None
        self._held_bytes = 0
        self._second = -1
        self._prefix = ""

    def write(self, event: str, **fields: Any) -> None:
        """Write one line; raises ``AuditWriteError`` (now and on every later call)."""
        self._emit(event, "", fields, skip_none=False)

    def task(self, event: str, task: Task, fields: Mapping[str, Any]) -> None:
        """A task's line: its ID, name and status, then ``fields`` (None values left out)."""
        self._emit(event, _task_part(task), fields, skip_none=True)

    def _emit(self, event: str, head: str, fields: Mapping[str, Any], *, skip_none: bool) -> None:
        if self.failure is not None:
            raise self.failure
        parts = [f'{{"event":{_string(event)},"timestamp":"{self._timestamp()}"', head]
        for key, value in fields.items():
            if (value is None and skip_none) or key in _OWN_KEYS:
                continue
            parts.append(f",{_key(key)}{_value(value)}")
        parts.append(f',"run_id":{self._run_id},"prev_sha256":"{self.head_sha256}"}}')
        text = "".join(parts)
        if not text.isascii():
            # Only strings can hold these (the rest of a line is ASCII): escaped, they
            # are the same string to a JSON reader. A lone surrogate (a server's JSON
            # may spell one) becomes its \uXXXX escape the same way.
            text = _LINE_BREAKS.sub(_escape, text)
        line = text.encode("utf-8", "backslashreplace")
        if self._held is None:
            self._put([line + b"\n"])
        else:
            self._held.append(line + b"\n")
            self._held_bytes += len(line) + 1
            if self._held_bytes >= _BATCH_BYTES:
                self._release()
        self.head_sha256 = hashlib.sha256(line).hexdigest()

    @property
    def batching(self) -> bool:
        return self._held is not None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Hold the lines written inside and write them together at the end (and every
        ``_BATCH_BYTES``): for a burst of lines with nothing sent in between. A write
        that fails raises here, at the end, as a line's would."""
        if self._held is not None:  # already batching: one batch
            yield
            return
        self._held, self._held_bytes = [], 0
        try:
            yield
        except BaseException:
            # The lines held record what happened: written if they can be, and a
            # failure to write them (kept in ``failure``) never hides this exception.
            with contextlib.suppress(AuditWriteError):
                self._release()
            raise
        else:
            self._release()
        finally:
            self._held = None

    def _release(self) -> None:
        held, self._held, self._held_bytes = self._held or [], [], 0
        if held and self.failure is None:
            self._put(held)

    def _put(self, lines: list[bytes]) -> None:
        try:
            self.sink.write(lines[0] if len(lines) == 1 else b"".join(lines))
        except AuditWriteError as exc:
            self.failure = exc
            raise
        if self.captured is not None:
            self.captured.extend(lines)

    def close(self) -> None:
        try:
            self.sink.close()
        except AuditWriteError as exc:
            self.failure = self.failure or exc

    def _timestamp(self) -> str:
        """ISO 8601 UTC with microseconds; the part up to the second is reused."""
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._prefix}.{int((now - second) * 1e6):06d}Z"


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _value(value: Any) -> str:
    """One JSON value, exactly as ``_ENCODE`` writes it inside an object; strings,
    integers and booleans (nearly every field) without building an encoder."""
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    return _ENCODE(value)


_string: Callable[[str], str] = encode_basestring
"""A JSON string (``ensure_ascii=False``: UTF-8 as it is, as ``_ENCODE`` writes it)."""


@lru_cache(maxsize=256)
def _key(key: str) -> str:
    return f"{_string(key)}:"


def _task_part(task: Task) -> str:
    """What a task's line says of it, rendered: ``,"task_id":…`` then the name (cut to
    the limit, with ``task_name_truncated``) and the status when known."""
    part = f',"task_id":{_string(task.task_id)}'
    name = task.task_name
    if name is not None:
        name, cut = cut_name(name)
        part += f',"task_name":{_string(name)}' + (',"task_name_truncated":true' if cut else "")
    if task.status is not None:
        part += f',"status":{_string(task.status[:_STATUS_LIMIT])}'
    return part


def _open_problem(path: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"audit log {path}: is a symlink; give the real path (links are not followed)"
    if exc.errno == errno.EISDIR:
        return f"audit log {path}: is a directory; expected a file path"
    return f"audit log {path}: cannot open for appending ({exc.strerror})"


def _last_line(path: str) -> bytes | None:
    with open(path, "rb") as fh:
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
