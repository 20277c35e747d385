"""The audit log: fixed fields, owner-only file, hash chain across runs, verify."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanup.audit import GENESIS, AuditLog, FileSink, StreamSink
from cleanup.auditview import verify
from cleanup.errors import AuditWriteError, UsageError
from cleanup.ledger import Ledger, Recorder
from cleanup.model import Outcome, Task

from .conftest import account, policy, read_audit


def _write(path: Path, run_id: str = "r1") -> None:
    log = AuditLog(FileSink(path), run_id)
    ledger = Ledger()
    record = Recorder(log, ledger)
    log.write("run_started", policy="p.yaml")
    record.event("deleting", Task("a", "exp", "completed"), attempt=1)
    record.finish(Outcome.DELETED, Task("a", "exp", "completed"))
    log.write("run_finished", counts=ledger.counts())
    log.close()


def test_lines_have_the_fixed_fields_and_owner_only_mode(tmp_path: Path):
    """Every line has event, timestamp (UTC), run_id, prev_sha256; the file is 0600."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    records = read_audit(path)
    assert [r["event"] for r in records] == ["run_started", "deleting", "deleted", "run_finished"]
    for r in records:
        assert r["run_id"] == "r1" and r["timestamp"].endswith("Z")
    assert records[0]["prev_sha256"] == GENESIS
    assert records[2] | {"timestamp": "", "prev_sha256": ""} == {
        "event": "deleted",
        "timestamp": "",
        "run_id": "r1",
        "task_id": "a",
        "task_name": "exp",
        "status": "completed",
        "prev_sha256": "",
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_chain_continues_across_runs_and_verify_passes(tmp_path: Path):
    """A second run appends to the same chain; verify accepts the whole file."""
    path = tmp_path / "audit.jsonl"
    _write(path, "r1")
    _write(path, "r2")
    result = verify(path)
    assert result.ok and result.lines == 8
    assert result.events is not None and result.events["deleted"] == 2


def test_verify_finds_the_first_modified_line(tmp_path: Path):
    """Changing one line is reported at that line (SPEC: the edited line, not the next)."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = path.read_text().splitlines()
    record = json.loads(lines[2])
    record["task_id"] = "someone-else"
    lines[2] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.broken_line == 3


def test_verify_finds_a_removed_line(tmp_path: Path):
    """Removing a line breaks the chain: the last line the chain still vouches for is named."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    result = verify(path)
    assert not result.ok and result.broken_line == 1


def test_torn_last_line_is_closed_off_by_the_next_run(tmp_path: Path):
    """After a kill mid-write the next run starts on a fresh line; verify names the torn one."""
    path = tmp_path / "audit.jsonl"
    _write(path)
    with path.open("ab") as fh:
        fh.write(b'{"event": "dele')
    _write(path, "r2")
    lines = path.read_text().splitlines()
    assert lines[4] == '{"event": "dele'
    assert json.loads(lines[5])["event"] == "run_started"
    result = verify(path)
    assert result.ok and [f.line for f in result.findings] == [5]
    assert "torn" in result.findings[0].message


async def test_run_audit_matches_server_state(make_sim, run, tmp_path: Path):
    """After a mixed run, terminal lines match what the server holds, and the log verifies."""
    state = account(6)
    state.add_task("prod-1", "prod-model", "completed", state.tasks["t0000"].created_at)
    sim = await make_sim(state)
    doc = policy(
        {"all": True, "ids": ["gone-1"]},
        protect={"name_globs": ["prod-*"]},
        filters={"keep_latest": 2},
    )
    summary = await run(sim, doc)
    records = read_audit(tmp_path / "audit.jsonl")
    deleted = {r["task_id"] for r in records if r["event"] == "deleted"}
    assert deleted == set(state.deleted)
    assert sim.state.remaining_ids() == {"prod-1", "t0004", "t0005"}
    assert {r["task_id"] for r in records if r["event"] == "already_absent"} == {"gone-1"}
    finished = records[-1]
    assert finished["event"] == "run_finished" and finished["exit_code"] == summary.exit_code
    assert finished["counts"] == summary.counts
    assert verify(tmp_path / "audit.jsonl").ok


def test_symlinked_audit_path_is_refused(tmp_path: Path):
    """An audit path that is a symlink is refused (exit 2), the target left untouched."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me\n")
    link = tmp_path / "audit.jsonl"
    link.symlink_to(target)
    with pytest.raises(UsageError, match="symlink"):
        FileSink(link)
    assert target.read_text() == "keep me\n"


def test_a_second_writer_on_one_file_is_refused(tmp_path: Path):
    """Two runs on one audit file: the second is told the file is in use (exit 2)."""
    path = tmp_path / "audit.jsonl"
    first = FileSink(path)
    try:
        with pytest.raises(UsageError, match="another run"):
            FileSink(path)
    finally:
        first.close()
    FileSink(path).close()  # free again once the first is closed


@pytest.mark.parametrize("where", ["dir", "no-parent", "device"])
def test_unusable_audit_paths_are_usage_errors(tmp_path: Path, where: str):
    """A directory, a missing directory or a device is a usage error naming the path."""
    path = {
        "dir": tmp_path,
        "no-parent": tmp_path / "missing" / "audit.jsonl",
        "device": Path("/dev/full"),
    }[where]
    with pytest.raises(UsageError, match=str(path)):
        FileSink(path)


def test_a_full_disk_stops_writing_with_one_error():
    """A write that fails (ENOSPC) raises AuditWriteError, then every later write does too."""
    fd = os.open("/dev/full", os.O_WRONLY)
    log = AuditLog(StreamSink(fd), "r1")
    try:
        with pytest.raises(AuditWriteError, match="cannot write"):
            log.write("run_started")
        with pytest.raises(AuditWriteError):
            log.write("run_finished")
    finally:
        os.close(fd)


def test_closed_pipe_is_an_audit_write_error():
    """stdout closed by the reader (``| head``) is an AuditWriteError, not a traceback."""
    read, write = os.pipe()
    os.close(read)
    log = AuditLog(StreamSink(write), "r1")
    with pytest.raises(AuditWriteError, match="closed the pipe"):
        log.write("run_started")
    os.close(write)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.dictionaries(st.sampled_from(["error", "attempt", "evidence", "x", "é"]), _VALUES),
    name=st.none() | st.text(max_size=300),
    status=st.none() | st.text(max_size=80),
)
def test_a_task_line_says_exactly_its_fields(tmp_path: Path, fields, name, status):
    """The hand-rolled line reads back as the task's fields, then the caller's (None
    left out), then run_id and prev_sha256, in that order; it is one line to
    ``str.splitlines`` too (U+0085, U+2028 and U+2029 are escaped)."""
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.jsonl"
    log = AuditLog(FileSink(path), "r1")
    log.task("retrying", Task("t1", name, status), fields)
    log.close()
    (record,) = read_audit(path)
    expected: dict[str, object] = {"event": "retrying", "timestamp": record["timestamp"]}
    expected["task_id"] = "t1"
    if name is not None:
        expected["task_name"] = name[:256]
        if len(name) > 256:
            expected["task_name_truncated"] = True
    if status is not None:
        expected["status"] = status[:64]
    expected |= {k: v for k, v in fields.items() if v is not None}
    expected |= {"run_id": "r1", "prev_sha256": GENESIS}
    assert list(record) == list(expected) and record == expected


def test_a_lone_surrogate_in_a_name_is_written_as_its_escape(tmp_path: Path):
    """A server's JSON can spell a lone surrogate (\\ud800); the line is still written
    whole, reads back as the same name, and the chain verifies."""
    name = json.loads('"exp-\\ud800-x"')
    path = tmp_path / "audit.jsonl"
    log = AuditLog(FileSink(path), "r1")
    log.write("run_started")
    Recorder(log, Ledger()).finish(Outcome.DELETED, Task("t1", name, "completed"))
    log.write("run_finished")
    log.close()
    assert b"exp-\\ud800-x" in path.read_bytes()
    assert read_audit(path)[1]["task_name"] == name
    assert verify(path).ok


def test_fields_cannot_overwrite_the_logs_own_keys(tmp_path: Path):
    """A caller's ``run_id`` or ``prev_sha256`` never doubles a key or breaks the chain."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(FileSink(path), "r1")
    log.write("run_started", run_id="forged", prev_sha256="0" * 64, timestamp="x", n=1)
    log.write("run_finished")
    log.close()
    lines = path.read_bytes().splitlines()
    assert lines[0].count(b'"run_id"') == 1 and lines[0].count(b'"timestamp"') == 1
    first = read_audit(path)[0]
    assert first["run_id"] == "r1" and first["n"] == 1 and first["timestamp"] != "x"
    assert verify(path).ok


class _CountingSink(FileSink):
    """A real file that also keeps every write() it was given."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[bytes] = []

    def write(self, line: bytes) -> None:
        self.writes.append(line)
        super().write(line)


def test_a_batch_shares_writes_and_each_line_stays_whole(tmp_path: Path):
    """A burst of 2,000 outcomes in a batch takes a few writes (at most 64 KiB each,
    whole lines only); the file reads and verifies as if written line by line."""
    path = tmp_path / "audit.jsonl"
    sink = _CountingSink(path)
    log = AuditLog(sink, "r1")
    recorder = Recorder(log, Ledger())
    log.write("run_started")
    with recorder.batch():
        for i in range(2000):
            recorder.finish(Outcome.WOULD_DELETE, Task(f"t{i}", "exp", "completed"))
        assert len(sink.writes) < 20
    log.write("run_finished")
    log.close()
    assert 3 < len(sink.writes) < 20
    for data in sink.writes:
        assert data.endswith(b"\n") and len(data) <= 64 * 1024 + 400
    assert [r["task_id"] for r in read_audit(path)[1:-1]] == [f"t{i}" for i in range(2000)]
    assert verify(path).ok


def test_a_full_disk_in_a_batch_is_told_once_and_stops_the_log():
    """The batch's write fails at its end: ``on_failure`` is told once, nothing more
    is written, and the outcomes are still counted."""
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        log = AuditLog(StreamSink(fd), "r1")
        recorder = Recorder(log, Ledger())
        told: list[AuditWriteError] = []
        recorder.on_failure = told.append
        with recorder.batch():
            recorder.finish(Outcome.WOULD_DELETE, Task("t1", "exp", "completed"))
            recorder.finish(Outcome.WOULD_DELETE, Task("t2", "exp", "completed"))
        assert len(told) == 1 and log.failure is told[0]
        recorder.finish(Outcome.WOULD_DELETE, Task("t3", "exp", "completed"))
        assert len(told) == 1
        assert recorder.ledger.counts()["would_delete"] == 3
    finally:
        os.close(fd)


def test_a_write_ahead_line_is_never_held_in_a_batch(tmp_path: Path):
    """``deleting`` must be written before its DELETE: inside a batch it is a bug."""
    recorder = Recorder(AuditLog(FileSink(tmp_path / "a.jsonl"), "r1"), Ledger())
    with pytest.raises(RuntimeError, match="write-ahead"), recorder.batch():
        recorder.event("deleting", Task("t1"), write_ahead=True, attempt=1)


def test_syncs_run_off_the_event_loop_and_a_failed_one_stops_the_log(tmp_path, monkeypatch):
    """Every few seconds the file is fsynced in a thread of its own (an fsync can take
    tens of milliseconds); the end of the run syncs in place; a sync that failed (EIO)
    makes the next write an AuditWriteError."""
    import threading

    real_fsync, synced_on = os.fsync, []

    def fsync(fd: int) -> None:
        synced_on.append(threading.current_thread().name)
        if len(synced_on) == 3:
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr("cleanup.audit.os.fsync", fsync)
    now = [0.0]
    sink = FileSink(tmp_path / "audit.jsonl", clock=lambda: now[0])
    log = AuditLog(sink, "r1")
    log.write("run_started")
    now[0] = 5.0
    log.write("run_finished")  # due: handed to the sync thread
    sink.sync()  # waits for it, then syncs here
    assert synced_on[0].startswith("audit-fsync") and synced_on[1] == "MainThread"
    now[0] = 10.0
    log.write("run_started")  # the third sync fails in the thread
    sink._syncer.submit(lambda: None).result()  # the thread is done with it
    with pytest.raises(AuditWriteError, match="cannot sync"):
        log.write("run_finished")
    sink._syncer.shutdown()


def test_an_error_inside_a_batch_is_not_hidden_by_a_failed_write():
    """A bug raised inside a batch reaches the caller even when the held lines then
    cannot be written (the log keeps that failure; nothing more is written)."""
    fd = os.open("/dev/full", os.O_WRONLY)
    try:
        log = AuditLog(StreamSink(fd), "r1")
        recorder = Recorder(log, Ledger())
        with pytest.raises(ZeroDivisionError), recorder.batch():
            recorder.finish(Outcome.WOULD_DELETE, Task("t1", "exp", "completed"))
            _ = 1 / 0
        assert log.failure is not None and not log.batching
    finally:
        os.close(fd)
