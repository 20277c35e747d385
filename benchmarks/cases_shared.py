"""Concurrent runs on one account, with and without a budget shared through Redis.

Every run has the same policy (the whole account, ``limits.rate`` = the server's limit)
and starts at the same moment against one simulator that enforces the account's rate.
The shared budget is a real ``redis-server`` on a free loopback port, started here and
stopped after.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.harness import BenchmarkError, CleanupRun, SimProcess, policy
from benchmarks.rows import Row, Sizes, ratio

REDIS_START_S = 10.0
FALLBACK_WARNINGS = ("shared_budget_unavailable", "shared_budget_lost")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """A throw-away ``redis-server`` on 127.0.0.1 (no persistence); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchmarkError("redis-server is not installed (Debian: redis-server)")
    port = _free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(workdir)]
    log = (workdir / "redis.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        deadline = time.monotonic() + REDIS_START_S
        while not _answers_ping(port):
            if process.poll() is not None or time.monotonic() > deadline:
                message = (workdir / "redis.log").read_text()[-1000:]
                raise BenchmarkError(f"redis-server did not start: {message}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _together(sizes: Sizes, workdir: Path, runs: int, shared: str | None) -> dict[str, Any]:
    """``runs`` processes at once on one fresh account; the server's figures."""
    name = f"shared-{runs}-{'redis' if shared else 'local'}"
    rate = sizes.shared_rate
    extra = ["--shared-budget", shared] if shared else []
    with SimProcess(sizes.shared_tasks, workdir, rate_limit=rate, seed=13) as sim:
        doc = policy({"all": True}, rate, 8)
        started = [
            CleanupRun(sim, doc, workdir, f"{name}-{i}", extra=extra, ok_codes=(0, 1, 4, 5))
            for i in range(runs)
        ]
        results = [run.result() for run in started]
        stats, log = sim.stats(), sim.log()
    if shared:
        for run in started:
            text = run.stderr.read_text()
            if any(warning in text for warning in FALLBACK_WARNINGS):
                raise BenchmarkError(f"{run.name}: fell back to a per-process budget: {text}")
    if stats["remaining"] != 0:
        raise BenchmarkError(f"{name}: {stats['remaining']} tasks left: {stats}")
    return {
        "throttled": stats["by_status"].get("429", 0),
        "deletes": stats["by_route"].get("delete_task", 0) / stats["deleted"],
        "wall": max(log.answered()) - min(log.arrivals()),
        "codes": [r["cost"]["exit_code"] for r in results],
        "requests": stats["total_requests"],
        "statuses": stats["by_status"],
    }


def concurrent_runs(sizes: Sizes, workdir: Path) -> list[Row]:
    """10: two and three overlapping runs on one account, per-process and shared budget."""
    n, rate = sizes.shared_tasks, sizes.shared_rate
    alone = _together(sizes, workdir, 1, None)
    rows = [
        Row(
            "10a",
            f"one run deleting a {n:,}-task account at {rate:g} request/s (server limit "
            f"{rate:g}/s): wall time",
            f"{alone['wall']:.1f} s",
            note=f"{alone['requests']:,} requests, statuses {alone['statuses']}",
        )
    ]
    keys = iter("bcdefghijklm")
    with redis_server(workdir) as url:
        for shared in (None, url):
            for runs in (2, 3):
                figures = _together(sizes, workdir, runs, shared)
                rows += _scenario_rows(keys, runs, shared is not None, figures, alone["wall"])
    return rows


def _scenario_rows(
    keys: Iterator[str], runs: int, shared: bool, got: dict[str, Any], alone_s: float
) -> list[Row]:
    """The three rows of one scenario; targets apply with the shared budget."""
    how = f"{runs} concurrent runs, " + (
        "`--shared-budget redis://127.0.0.1:PORT/0`" if shared else "per-process budgets"
    )
    note = (
        f"{got['requests']:,} requests, statuses {got['statuses']}, exit codes {got['codes']}; "
        f"wall {got['wall']:.1f} s"
    )
    return [
        Row(
            f"10{next(keys)}",
            f"{how}: 429 responses",
            str(got["throttled"]),
            "0" if shared else "(reported)",
            got["throttled"] == 0 if shared else None,
            note,
        ),
        Row(
            f"10{next(keys)}",
            f"{how}: DELETEs per deleted task",
            ratio(got["deletes"]),
            "<= 1.02" if shared else "(reported)",
            got["deletes"] <= 1.02 if shared else None,
        ),
        Row(
            f"10{next(keys)}",
            f"{how}: wall time / one run doing all the work",
            ratio(got["wall"] / alone_s),
        ),
    ]
