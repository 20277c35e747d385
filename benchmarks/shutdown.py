"""``python -m benchmarks.shutdown``: how long the CLI takes to exit after SIGTERM in each
phase (listing, deleting, the busy wait, and deleting with a Pushgateway that never
answers), against the bundled simulator with 0.5 s latency. Prints one line per phase:
the exit code, the seconds from SIGTERM to exit, and the audit log's last event.

For sizing ``terminationGracePeriodSeconds`` (deploy/k8s/base/cronjob.yaml); a
measurement, not a test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from cleanup.simulator import SimConfig, SimState, Simulator, generate_account


def _policy(rate: float, busy_interval: str = "1s") -> dict[str, Any]:
    return {
        "version": 1,
        "select": {"all": True},
        "filters": {"statuses": ["registered", "completed", "failed"]},
        "limits": {"rate": rate, "concurrency": 4, "max_deletions_percent": 100},
        "retry": {"busy_interval": busy_interval, "busy_deadline": "10m", "request_timeout": "10s"},
    }


async def _phase(
    name: str,
    config: SimConfig,
    state: SimState,
    policy: dict[str, Any],
    when: Callable[[Simulator], bool],
    extra: tuple[str, ...] = (),
) -> None:
    async with Simulator(config, state) as sim:
        workdir = Path(tempfile.mkdtemp(prefix="nclue-shutdown-"))
        path = workdir / "policy.yaml"
        path.write_text(yaml.safe_dump(policy))
        audit = workdir / "audit.jsonl"
        env = {
            **os.environ,
            "NCLOUD_ACCESS_KEY": config.access_key,
            "NCLOUD_SECRET_KEY": config.secret_key,
            "NCLUE_ENDPOINT": sim.url,
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cleanup", "run", "--policy", str(path), "--apply",
            "--audit-log", str(audit), *extra,
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(6000):
            if when(sim):
                break
            await asyncio.sleep(0.01)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await proc.wait()
        took = time.monotonic() - sent
        last = json.loads(audit.read_text().splitlines()[-1])["event"]
        print(f"{name}: exit {code} after {took:.2f} s, last audit line {last}", flush=True)


async def main() -> None:
    await _phase(
        "listing (20,000 tasks, 2 requests/s)",
        SimConfig(latency_s=0.5),
        generate_account(20000, seed=1),
        _policy(2),
        lambda s: s.state.count(route="list_tasks") >= 3,
    )
    await _phase(
        "deleting",
        SimConfig(latency_s=0.5),
        generate_account(300, seed=2),
        _policy(20),
        lambda s: s.state.count(method="DELETE") >= 10,
    )
    await _phase(
        "busy wait",
        SimConfig(),
        generate_account(50, seed=3, busy_fraction=0.5, busy_duration_s=600),
        _policy(50, "30s"),
        lambda s: len(s.state.deleted) >= 20,
    )
    with socket.socket() as hung:  # accepts connections, never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        gateway = f"http://127.0.0.1:{hung.getsockname()[1]}"
        await _phase(
            "deleting, with a Pushgateway that never answers",
            SimConfig(latency_s=0.5),
            generate_account(300, seed=4),
            _policy(20),
            lambda s: s.state.count(method="DELETE") >= 10,
            ("--pushgateway", gateway),
        )


if __name__ == "__main__":
    asyncio.run(main())
