"""Shared test bed: the bundled simulator on loopback and a fast policy.

Intervals (backoff, busy_interval, busy_deadline, timeouts) are policy settings;
tests shrink them here, so no test sleeps through real backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from cleanup import Credentials, Settings, run_policy
from cleanup.budget import LocalBudget
from cleanup.client import NclueClient
from cleanup.listing import Lister
from cleanup.retrying import RetryPolicy
from cleanup.simulator import SimConfig, SimState, Simulator
from cleanup.source import Source
from cleanup.stopping import Stopping
from cleanup.summary import RunSummary
from cleanup.transport import Transport

AK, SK = "sim-access-key", "sim-secret-key"
CREDS = Credentials(AK, SK)
OLD = datetime.now(UTC) - timedelta(days=60)

FAST_RETRY = {
    "max_attempts": 6,
    "busy_interval": "50ms",
    "busy_deadline": "5s",
    "backoff_base": "5ms",
    "backoff_max": "50ms",
    "request_timeout": "5s",
}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any NCLOUD_/NCLUE_ setting, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NCLOUD_", "NCLUE_"))}
    return {**base, **extra}


async def cli(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> tuple[int, str, str]:
    """Run ``python -m cleanup`` as a user would; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cleanup",
        *args,
        env=clean_env(**(env or {})),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def policy(select: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A policy mapping with fast retries and a high rate, overridable per section."""
    doc: dict[str, Any] = {
        "version": 1,
        "select": select,
        "limits": {"rate": 2000, "concurrency": 8, "max_deletions_percent": 100},
        "retry": dict(FAST_RETRY),
    }
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return doc


def account(n: int, *, name: str = "exp", status: str = "completed") -> SimState:
    """``n`` old tasks t0000.. named ``name``, one minute apart (t0000 is oldest)."""
    state = SimState()
    for i in range(n):
        state.add_task(f"t{i:04d}", name, status, OLD + timedelta(minutes=i))
    return state


def read_audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def terminal_by_task(records: list[dict[str, Any]]) -> dict[str, list[str]]:
    """task_id -> terminal events it got (each list must hold exactly one)."""
    terminal = {"would_delete", "deleted", "already_absent", "skipped", "failed", "still_busy"}
    out: dict[str, list[str]] = {}
    for r in records:
        if r["event"] in terminal:
            out.setdefault(r["task_id"], []).append(r["event"])
    return out


@pytest.fixture
async def make_sim() -> AsyncIterator[Callable[..., Any]]:
    """Start simulators on loopback (closed after the test): ``await make_sim(state, **cfg)``."""
    started: list[Simulator] = []

    async def start(state: SimState | None = None, **config: Any) -> Simulator:
        sim = Simulator(SimConfig(**config), state or SimState())
        await sim.start("127.0.0.1", 0)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.close()


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Any]:
    """Run a policy against a simulator; audit log at ``tmp_path / 'audit.jsonl'``."""

    async def go(
        sim: Simulator,
        doc: dict[str, Any],
        *,
        apply: bool = True,
        creds: Credentials = CREDS,
        **settings: Any,
    ) -> RunSummary:
        settings.setdefault("audit_log", str(tmp_path / "audit.jsonl"))
        return await run_policy(
            doc,
            apply=apply,
            settings=Settings(endpoint=sim.url, **settings),
            credentials=creds,
        )

    return go


@contextlib.asynccontextmanager
async def api_stack(
    sim: Simulator,
    creds: Credentials = CREDS,
    *,
    max_attempts: int = 6,
    timeout_s: float = 5.0,
    rate: float = 5000,
    concurrency: int = 4,
    url: str | None = None,
) -> AsyncIterator[SimpleNamespace]:
    """The client stack the pipeline uses (transport, client, lister, source) on ``sim``."""
    stopping = Stopping()
    transport = Transport(
        url or sim.url, creds, LocalBudget(rate), concurrency=concurrency, timeout_s=timeout_s
    )
    retry = RetryPolicy(max_attempts=max_attempts, base_s=0.001, max_s=0.01, rng=random.Random(0))
    client = NclueClient(transport, retry, stopping)
    lister = Lister(client, stopping)
    async with transport:
        yield SimpleNamespace(
            client=client,
            source=Source(client, lister),
            lister=lister,
            transport=transport,
            stopping=stopping,
        )


def required_binary(*names: str) -> str:
    """The first of ``names`` on PATH; missing fails the test in CI (scripts/test.sh
    installs it) and skips it elsewhere, never silently."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"none of {', '.join(names)} is on PATH (scripts/test.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    """A free TCP port on loopback for a service a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
