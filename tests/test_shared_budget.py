"""The shared rate budget against a real redis-server on loopback, in several processes."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from cleanup.budget import LocalBudget, RateBudget, spaced
from cleanup.errors import UsageError
from cleanup.shared_budget import CLIENT_NAME, RedisBudget, budget_key, open_budget

from .conftest import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
SECRET = "pw-s3cret-budget"
RATE = 50.0
INTERVAL = 1 / RATE
# Starts carry the machine's wake-up jitter: asyncio rounds sleeps up to the millisecond
# and a busy 2-CPU box adds stalls of a few ms now and then (measured, the same for one
# LocalBudget in one process). So spacing is asserted for nearly every gap, and the rate
# as the most starts in any window of WINDOW intervals, which a stall barely moves.
JITTER_S = 0.002
WINDOW = 25
TOTAL = 200


# One child process: open the budget, say ready, wait for "go", then acquire COUNT slots
# from four concurrent workers and print the start times (CLOCK_MONOTONIC, system-wide).
CHILD = r"""
import asyncio, json, sys, time
import structlog
structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
from cleanup.shared_budget import open_budget

async def main(url, key, rate, count):
    budget = await open_budget(url or None, account_key=key, rate=rate)
    print("ready", flush=True)
    sys.stdin.readline()
    starts = []
    async def worker(n):
        for _ in range(n):
            await budget.acquire()
            starts.append(time.monotonic())
    await asyncio.gather(*(worker(count // 4 + (i < count % 4)) for i in range(4)))
    await budget.aclose()
    print(json.dumps({"budget": type(budget).__name__, "starts": starts}), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])))
"""


@dataclass
class RedisServer:
    """A redis-server process on a loopback port, persistence off."""

    port: int
    proc: subprocess.Popen[bytes]

    def url(self, password: str | None = None, scheme: str = "redis") -> str:
        auth = f":{password}@" if password else ""
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def start_redis(*extra: str) -> RedisServer:
    """Start redis-server on a free loopback port and wait until it accepts connections.

    With ``--tls-port`` among ``extra`` (and ``--port 0``), that port is the one given.
    """
    port = free_port()
    listen = ["--tls-port", str(port)] if "--tls-port" in extra else ["--port", str(port)]
    rest = [arg for arg in extra if arg != "--tls-port"]
    args = [REDIS_SERVER, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, *rest], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(port, proc)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            time.sleep(0.01)
    server.stop()
    raise RuntimeError("redis-server did not start listening")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, made with the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def redis_servers() -> Iterator[Callable[..., RedisServer]]:
    """A factory of real redis-servers, each stopped after the test."""
    if not os.path.exists(REDIS_SERVER):
        message = "redis-server is not installed (Debian package redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    started: list[RedisServer] = []

    def factory(*extra: str) -> RedisServer:
        started.append(start_redis(*extra))
        return started[-1]

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def server(redis_servers: Callable[..., RedisServer]) -> RedisServer:
    """One real redis-server for the test."""
    return redis_servers()


async def run_children(url: str, keys: list[str], count: int) -> list[list[float]]:
    """Run one child per key at RATE, started together; returns each child's start times."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            url,
            key,
            str(RATE),
            str(count),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for key in keys
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
    results = []
    for proc in procs:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        report = json.loads(out.decode().splitlines()[-1])
        assert report["budget"] == ("RedisBudget" if url else "LocalBudget")
        results.append(report["starts"])
    return results


def gaps(starts: list[float]) -> list[float]:
    """The spacing between consecutive starts, in time order."""
    ordered = sorted(starts)
    return [b - a for a, b in itertools.pairwise(ordered)]


def spaced_share(starts: list[float]) -> float:
    """The share of consecutive starts at least one interval apart (less the jitter)."""
    spacing = gaps(starts)
    return sum(gap >= INTERVAL - JITTER_S for gap in spacing) / len(spacing)


def busiest_window(starts: list[float]) -> int:
    """The most starts in any window of WINDOW intervals."""
    ordered, best, lo = sorted(starts), 0, 0
    for hi, start in enumerate(ordered):
        while start - ordered[lo] >= WINDOW * INTERVAL:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.parametrize("processes", [2, 3])
async def test_processes_on_one_account_share_the_spacing(server: RedisServer, processes: int):
    """N processes on one account start requests one interval apart, counted all together."""
    per_child = TOTAL // processes
    runs = await run_children(server.url(), ["acct"] * processes, per_child)
    merged = [start for run in runs for start in run]
    assert len(merged) == per_child * processes
    assert busiest_window(merged) <= WINDOW + 2
    assert spaced_share(merged) >= 0.9
    # The processes really overlapped: each one's starts interleave with the others'.
    assert all(min(run) < max(other) for run in runs for other in runs)


async def test_per_process_budgets_collide_where_the_shared_one_does_not():
    """Without a shared budget, two processes on one account exceed its rate (harness check)."""
    runs = await run_children("", ["acct", "acct"], TOTAL // 2)
    merged = [start for run in runs for start in run]
    assert busiest_window(merged) >= 1.8 * WINDOW
    assert spaced_share(merged) < 0.8


async def test_accounts_are_independent(server: RedisServer):
    """Budgets on different account keys space their own starts but not each other's."""
    runs = await run_children(server.url(), ["acct-a", "acct-b"], TOTAL // 2)
    for run in runs:
        assert busiest_window(run) <= WINDOW + 2
        assert spaced_share(run) >= 0.9
    assert busiest_window([start for run in runs for start in run]) >= 1.8 * WINDOW


async def test_throttle_in_one_process_pauses_and_slows_the_other(server: RedisServer):
    """A 429 seen by one budget pauses the other's next start and lowers its rate too."""
    a = await open_budget(server.url(), account_key="acct", rate=100)
    b = await open_budget(server.url(), account_key="acct", rate=100)
    await a.acquire()
    await b.acquire()
    thrown = time.monotonic()
    a.throttled(0.3)
    await a.aclose()  # the pause has reached Redis once aclose returns
    await b.acquire()
    resumed = time.monotonic()
    await b.acquire()
    assert resumed - thrown >= 0.3 - JITTER_S
    assert time.monotonic() - resumed >= 1 / 75 - JITTER_S
    assert b.effective_rate == pytest.approx(75)
    await b.aclose()


async def test_successes_recover_the_shared_rate_without_round_trips(server: RedisServer):
    """Successes are counted locally and ride on the next reservation, raising everyone's rate."""
    admin = redis.Redis(host="127.0.0.1", port=server.port)
    a = await open_budget(server.url(), account_key="acct", rate=1000)
    b = await open_budget(server.url(), account_key="acct", rate=1000)
    a.throttled(0.0)
    await a.acquire()
    await b.acquire()
    assert b.effective_rate == pytest.approx(750)
    before = (await admin.info("stats"))["total_commands_processed"]
    for _ in range(15):
        a.succeeded()
    after = (await admin.info("stats"))["total_commands_processed"]
    assert after == before + 1  # the INFO call itself
    assert a.effective_rate == pytest.approx(1000)
    await a.acquire()
    await b.acquire()
    assert b.effective_rate == pytest.approx(1000)
    for budget in (a, b):
        await budget.aclose()
    await admin.aclose()


async def test_state_is_one_hashed_key_that_expires(server: RedisServer):
    """The account's state is one key named by a hash of the account, with an expiry."""
    admin = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    budget = await open_budget(server.url(), account_key="ncp_iam_ACCOUNT", rate=50)
    await budget.acquire()
    digest = hashlib.sha256(b"ncp_iam_ACCOUNT").hexdigest()[:16]
    assert await admin.keys("*") == [f"nclue-cleanup:budget:{digest}"]
    assert budget_key("ncp_iam_ACCOUNT") == f"nclue-cleanup:budget:{digest}"
    assert 0 < await admin.pttl(budget_key("ncp_iam_ACCOUNT")) <= 61_000
    await budget.aclose()
    await admin.aclose()


async def test_no_url_is_the_local_budget_silently():
    """Without a URL the per-process budget is used and nothing is logged."""
    with capture_logs() as logs:
        budget = await open_budget(None, account_key="acct", rate=5)
    assert isinstance(budget, LocalBudget) and budget.rate == 5
    assert logs == []


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
async def test_unreachable_service_falls_back_with_a_warning(scheme: str):
    """A URL nobody answers gives the per-process budget and one warning naming host:port."""
    port = free_port()
    url = f"{scheme}://:{SECRET}@127.0.0.1:{port}/0"
    with capture_logs() as logs:
        budget = await open_budget(url, account_key="acct", rate=5)
    assert isinstance(budget, LocalBudget) and budget.rate == 5
    assert logs == [
        {
            "event": "shared_budget_unavailable",
            "log_level": "warning",
            "service": f"127.0.0.1:{port}",
            "error": "ConnectionError",
            "fallback": "per-process budget",
        }
    ]
    assert SECRET not in repr(logs)


async def test_tls_to_a_plain_server_falls_back(server: RedisServer):
    """rediss:// to a server that does not speak TLS is unreachable, not a crash."""
    with capture_logs() as logs:
        budget = await open_budget(
            server.url(scheme="rediss"), account_key="acct", rate=5, connect_timeout_s=0.5
        )
    assert isinstance(budget, LocalBudget)
    assert [e["event"] for e in logs] == ["shared_budget_unavailable"]
    assert logs[0]["error"] in {"ConnectionError", "TimeoutError"}


async def test_tls_budget_is_shared(redis_servers: Callable[..., RedisServer], tmp_path: Path):
    """rediss:// reaches a TLS-only server that it trusts, and reserves slots through it."""
    cert, key = self_signed_certificate(tmp_path)
    server = redis_servers(
        "--port", "0", "--tls-port", "--tls-auth-clients", "no",
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
    )  # fmt: skip
    url = server.url(scheme="rediss") + f"?ssl_ca_certs={cert}"
    budget = await open_budget(url, account_key="acct", rate=1000)
    assert isinstance(budget, RedisBudget)
    await budget.acquire()
    admin = redis.Redis(host="127.0.0.1", port=server.port, ssl=True, ssl_ca_certs=str(cert))
    assert await admin.exists(budget_key("acct")) == 1
    await admin.aclose()
    await budget.aclose()


async def test_password_is_used_and_never_logged(redis_servers: Callable[..., RedisServer]):
    """The right password opens the shared budget, a wrong one falls back; neither is logged."""
    server = redis_servers("--requirepass", SECRET)
    with capture_logs() as logs:
        wrong = await open_budget(server.url("not-" + SECRET), account_key="acct", rate=5)
        right = await open_budget(server.url(SECRET), account_key="acct", rate=5)
    assert isinstance(wrong, LocalBudget) and isinstance(right, RedisBudget)
    assert isinstance(right, RateBudget)
    assert [(e["event"], e.get("error")) for e in logs] == [
        ("shared_budget_unavailable", "AuthenticationError"),
        ("shared_budget_connected", None),
    ]
    assert logs[1]["service"] == f"127.0.0.1:{server.port}"
    assert SECRET not in repr(logs)
    await right.acquire()
    await right.aclose()


@pytest.mark.parametrize(
    "url",
    [
        f"http://:{SECRET}@127.0.0.1:6379/0",
        f"unix://:{SECRET}@/run/redis.sock",
        f"redis://:{SECRET}@127.0.0.1:port/0",
        f"redis://:{SECRET}@:6379/0",
        f"redis://:{SECRET}@127.0.0.1:6379/zero",
        f"redis://:{SECRET}@127.0.0.1:6379/0?socket_timeout=soon",
    ],
)
async def test_malformed_url_is_a_usage_error_without_the_password(url: str):
    """A URL that is not redis:// or rediss://host:port/db is a UsageError that never quotes it."""
    with capture_logs() as logs, pytest.raises(UsageError) as caught:
        await open_budget(url, account_key="acct", rate=5)
    assert SECRET not in str(caught.value) and caught.value.__cause__ is None
    assert logs == []


async def test_redis_lost_mid_run_falls_back_without_raising(server: RedisServer):
    """When Redis dies mid-run, acquire keeps spacing starts from a local budget, warning once."""
    budget = await open_budget(server.url(), account_key="acct", rate=RATE)
    assert isinstance(budget, RedisBudget)
    for _ in range(3):
        await budget.acquire()
    server.stop()
    starts: list[float] = []

    async def worker() -> None:
        for _ in range(10):
            await budget.acquire()
            starts.append(time.monotonic())

    with capture_logs() as logs:
        budget.throttled(0.0)
        await asyncio.gather(*(worker() for _ in range(4)))
        budget.succeeded()
    assert [e["event"] for e in logs] == ["shared_budget_lost", "rate_lowered"]
    assert logs[0]["service"] == f"127.0.0.1:{server.port}"
    assert len(starts) == 40
    assert spaced_share(starts) >= 0.9
    await budget.aclose()


async def test_aclose_closes_every_connection(server: RedisServer):
    """After aclose the server holds no connection of the budget, and nothing leaks."""
    admin = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)

    async def budget_clients() -> int:
        return sum(c["name"] == CLIENT_NAME for c in await admin.client_list())

    budget = await open_budget(server.url(), account_key="acct", rate=1000)
    await asyncio.gather(*(budget.acquire() for _ in range(8)))
    assert await budget_clients() >= 1
    await budget.aclose()
    for _ in range(200):  # the server notices a closed socket on its next event loop turn
        if await budget_clients() == 0:
            break
        await asyncio.sleep(0.01)
    assert await budget_clients() == 0
    await admin.aclose()
    gc.collect()


async def test_two_runs_sharing_a_budget_delete_each_task_once(
    server: RedisServer, make_sim, tmp_path
):
    """Two overlapping runs on one account with --shared-budget: each task gets one DELETE
    (the other run leaves a task it sees claimed, reason claimed), none is lost."""
    from cleanup import Settings, run_policy

    from .conftest import CREDS, account, policy

    sim = await make_sim(account(120), latency_s=0.002)
    doc = policy({"all": True}, limits={"rate": 400, "concurrency": 4})

    async def one(name: str) -> object:
        budget = await open_budget(server.url(), account_key="ak@sim", rate=400)
        try:
            return await run_policy(
                doc,
                apply=True,
                settings=Settings(endpoint=sim.url, audit_log=str(tmp_path / f"{name}.jsonl")),
                credentials=CREDS,
                budget=budget,
            )
        finally:
            await budget.aclose()

    first, second = await asyncio.gather(one("a"), one("b"))
    assert sim.state.remaining_ids() == set()
    assert sim.state.count(method="DELETE") == 120
    assert set(sim.state.deleted.values()) == {1}
    claimed = first.skip_reasons.get("claimed", 0) + second.skip_reasons.get("claimed", 0)
    assert claimed + len(first.deleted) + len(second.deleted) >= 120


@pytest.mark.parametrize("rate", [1.0, 50.0])
async def test_the_shared_budget_spaces_slots_like_the_local_one(server: RedisServer, rate: float):
    """Slots reserved back to back are ``budget.spaced(1 / rate)`` apart in Redis, the
    per-process budget's spacing (margin 2 %, at most 20 ms)."""
    admin = redis.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    budget = await open_budget(server.url(), account_key=f"spacing-{rate}", rate=rate)
    key = budget_key(f"spacing-{rate}")
    await budget._call(successes=0, pause_s=None, reserve=True)
    first = float(await admin.hget(key, "next"))
    await budget._call(successes=0, pause_s=None, reserve=True)
    second = float(await admin.hget(key, "next"))
    assert (second - first) / 1e6 == pytest.approx(spaced(1 / rate), abs=2e-6)
    assert spaced(1 / rate) == pytest.approx(LocalBudget(rate).interval_s)
    await budget.aclose()
    await admin.aclose()
