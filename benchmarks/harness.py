"""Processes and measurements the benchmarks share.

- ``SimProcess``: a fresh simulator in its own process (``benchmarks.sim_server``), so
  the client's CPU and memory are measured alone; its counters, arrival log and
  remaining task IDs over the unsigned control routes;
- ``run_cleanup``: the nclue-cleanup CLI in a subprocess (``benchmarks.measured``),
  returning its summary JSON and what it cost; ``CleanupRun`` starts one without
  waiting, for runs that overlap;
- ``run_module``: any other benchmark client in a subprocess;
- ``max_in_window`` and ``interval_rate``: figures from the server's timestamps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = {"NCLOUD_ACCESS_KEY": "sim-access-key", "NCLOUD_SECRET_KEY": "sim-secret-key"}
START_TIMEOUT_S = 120.0
"""A 100,000-task account takes a few seconds to generate; anything past this is a hang."""

FAST_RETRY = {
    "max_attempts": 6,
    "busy_interval": "100ms",
    "busy_deadline": "2s",
    "backoff_base": "50ms",
    "backoff_max": "1s",
    "request_timeout": "30s",
}
"""Nothing is busy in a benchmark account; short intervals keep a surprise short."""


class BenchmarkError(RuntimeError):
    """A benchmark could not produce its figure (a process failed, a count is off)."""


_PINNED = False


@contextlib.contextmanager
def pinned() -> Iterator[None]:
    """Inside: the simulator runs on CPU 0 and the measured client on CPU 1 (with two
    or more CPUs), so the two do not take turns on one core and the scheduler does
    not move them around mid-run; CPU figures then spread far less between runs."""
    global _PINNED
    _PINNED, before = (os.cpu_count() or 1) >= 2, _PINNED
    try:
        yield
    finally:
        _PINNED = before


def _on_cpu(cpu: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` putting the child on ``cpu`` while ``pinned()``, else None."""
    if not _PINNED:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def child_env() -> dict[str, str]:
    """The environment of every child: simulator credentials, the repository importable."""
    env = {**os.environ, **CREDENTIALS}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("NCLUE_ENDPOINT", None)
    return env


@dataclass
class ServerLog:
    """What the simulator saw, on its own ``time.monotonic()`` clock."""

    requests: list[tuple[float, float, str, str, int]]
    """(arrived, answered, method, path, status) of every API request, in arrival order."""
    deletes: list[float]
    """When each task was actually removed."""

    def arrivals(self, method: str | None = None) -> list[float]:
        return sorted(r[0] for r in self.requests if method is None or r[2] == method)

    def answered(self, method: str | None = None) -> list[float]:
        return sorted(r[1] for r in self.requests if method is None or r[2] == method)

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for request in self.requests:
            counts[request[4]] = counts.get(request[4], 0) + 1
        return counts


@dataclass
class SimProcess:
    """A simulator process with a fresh, all-deletable account of ``tasks`` tasks."""

    tasks: int
    workdir: Path
    rate_limit: float | None = None
    latency_s: float = 0.0
    seed: int = 1
    busy_fraction: float = 0.0
    held_fraction: float = 0.0
    busy_duration_s: float = 2.0
    url: str = ""
    base_url: str = ""
    _process: subprocess.Popen[str] | None = field(default=None, repr=False)

    def __enter__(self) -> SimProcess:
        command = [sys.executable, "-m", "benchmarks.sim_server", "--tasks", str(self.tasks)]
        command += ["--seed", str(self.seed), "--latency", str(self.latency_s)]
        if self.rate_limit is not None:
            command += ["--rate-limit", str(self.rate_limit)]
        command += ["--busy-fraction", str(self.busy_fraction)]
        command += ["--held-fraction", str(self.held_fraction)]
        command += ["--busy-duration", str(self.busy_duration_s)]
        stderr = (self.workdir / "sim.stderr").open("w")
        self._process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            preexec_fn=_on_cpu(0),
        )
        stderr.close()
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.__exit__()
            message = (self.workdir / "sim.stderr").read_text()[-2000:]
            raise BenchmarkError(f"the simulator did not start: {message}")
        ready = json.loads(line)
        self.url, self.base_url = ready["url"], ready["base_url"]
        return self

    def __exit__(self, *exc_info: object) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.base_url + path, timeout=60) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """``/_sim/stats``: request counters by route and status, deletes, remaining."""
        result: dict[str, Any] = self._get("/_sim/stats")
        return result

    def log(self) -> ServerLog:
        """The arrival log of every API request and the delete log."""
        body = self._get("/_bench/log")
        requests = [(r[0], r[1], r[2], r[3], r[4]) for r in body["requests"]]
        return ServerLog(requests=requests, deletes=list(body["deletes"]))

    def task_ids(self) -> list[str]:
        """The IDs still in the account (listing order is not implied)."""
        ids: list[str] = self._get("/_sim/tasks")["task_ids"]
        return ids


def policy(
    select: dict[str, Any], rate: float, concurrency: int = 8, **sections: Any
) -> dict[str, Any]:
    """A benchmark policy: the selection, one rate budget, fast (unused) retries.

    ``sections`` are added as they are (``filters=...``, ``api={"verify": False}``);
    ``retry=...`` is merged over ``FAST_RETRY``.
    """
    retry = {**FAST_RETRY, **sections.pop("retry", {})}
    return {
        "version": 1,
        "select": select,
        "limits": {"rate": rate, "concurrency": concurrency, "max_deletions_percent": 100},
        "retry": retry,
        **sections,
    }


class CleanupRun:
    """``nclue-cleanup run`` started in a subprocess (``benchmarks.measured``), not awaited.

    ``result()`` waits for it and returns ``summary`` (the ``--summary-json``), ``cost``
    (``cpu_s``, ``wall_s``, ``maxrss_mb`` from ``benchmarks.measured``) and ``audit_log``;
    an exit code outside ``ok_codes`` is a ``BenchmarkError``.
    """

    def __init__(
        self,
        sim: SimProcess,
        doc: dict[str, Any],
        workdir: Path,
        name: str,
        *,
        apply: bool = True,
        ids: Sequence[str] = (),
        extra: Sequence[str] = (),
        ok_codes: Sequence[int] = (0,),
    ) -> None:
        self.name, self.ok_codes = name, tuple(ok_codes)
        policy_path = workdir / f"{name}.policy.yaml"
        policy_path.write_text(json.dumps(doc, indent=1))  # JSON is YAML
        self.audit = workdir / f"{name}.audit.jsonl"
        self.summary = workdir / f"{name}.summary.json"
        self.cost = workdir / f"{name}.cost.json"
        command = [sys.executable, "-m", "benchmarks.measured", str(self.cost), "run"]
        command += ["--policy", str(policy_path), "--endpoint", sim.url]
        command += ["--audit-log", str(self.audit), "--summary-json", str(self.summary)]
        if apply:
            command.append("--apply")
        if ids:
            command += ["--ids-from", str(write_ids(ids, workdir, name))]
        command += list(extra)
        self.stderr = workdir / f"{name}.stderr"
        with self.stderr.open("w") as err:
            self._process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=child_env(),
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=_on_cpu(1),
            )

    def result(self) -> dict[str, Any]:
        """Wait for the run; its summary, cost and audit log path."""
        code = self._process.wait()
        if code != 0 or not self.cost.exists() or not self.summary.exists():
            message = self.stderr.read_text()[-2000:]
            raise BenchmarkError(f"{self.name}: nclue-cleanup failed: {message}")
        result = {"summary": json.loads(self.summary.read_text())}
        result["cost"] = json.loads(self.cost.read_text())
        result["audit_log"] = str(self.audit)
        if result["cost"]["exit_code"] not in self.ok_codes:
            summary = {k: v for k, v in result["summary"].items() if k != "task_ids"}
            raise BenchmarkError(f"{self.name}: exit code {result['cost']['exit_code']}: {summary}")
        return result


def run_cleanup(
    sim: SimProcess,
    doc: dict[str, Any],
    workdir: Path,
    name: str,
    *,
    apply: bool = True,
    ids: Sequence[str] = (),
    extra: Sequence[str] = (),
    ok_codes: Sequence[int] = (0,),
) -> dict[str, Any]:
    """Run ``nclue-cleanup run`` in a subprocess and wait; see ``CleanupRun``."""
    run = CleanupRun(sim, doc, workdir, name, apply=apply, ids=ids, extra=extra, ok_codes=ok_codes)
    return run.result()


def run_module(module: str, args: Sequence[str], workdir: Path, name: str) -> dict[str, Any]:
    """Run ``python -m module args... --out OUT`` in a subprocess; return OUT's JSON."""
    out = workdir / f"{name}.json"
    stderr = workdir / f"{name}.stderr"
    with stderr.open("w") as err:
        done = subprocess.run(
            [sys.executable, "-m", module, *args, "--out", str(out)],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=_on_cpu(1),
        )
    if done.returncode != 0 or not out.exists():
        raise BenchmarkError(f"{name}: {module} failed: {stderr.read_text()[-2000:]}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def write_ids(ids: Sequence[str], workdir: Path, name: str) -> Path:
    path = workdir / f"{name}.ids"
    path.write_text("\n".join(ids) + "\n")
    return path


def max_in_window(times: Sequence[float], window: float = 1.0) -> int:
    """The most timestamps in any half-open window ``[t, t + window)``."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, moment in enumerate(ordered):
        while moment - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def interval_rate(times: Sequence[float]) -> float | None:
    """Events per second between the first and the last: (n - 1) intervals / span."""
    if len(times) < 2:
        return None
    span = max(times) - min(times)
    return (len(times) - 1) / span if span > 0 else None
