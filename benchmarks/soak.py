"""Chaos soak: many faulty, interrupted runs of the real CLI against one account, then the truth.

    python -m benchmarks.soak [--tasks 10000] [--seed N] [--sigterms K] [--quick] [--keep DIR]

The simulator runs in this process (its account and counters are read directly); every
worker is ``python -m cleanup run --apply`` in its own process, so SIGTERM and kill -9
are real. One account (``generate_account`` with busy and held tasks, random names,
some ``prod-*``) goes through:

- K runs stopped by SIGTERM and one stopped by kill -9 (at a random position), each
  at a random moment after deleting started, each under a random mix of faults
  (503 before / 504 after a delete, dropped connections, hangs longer than the
  request timeout, HTML 502 pages, a server rate limit below the policy's, and
  short 429 storms), with registered tasks starting and runs grabbing tasks between
  runs;
- a final run with every fault off, which must exit 0.

Then it checks the end state: the server holds exactly what the policy keeps
(``cleanup.planner`` on the final statuses), nothing protected was deleted, nothing
was deleted twice, every audit log verifies (only the killed run's may end in a torn
line), every task that entered a finished run has exactly one terminal event there,
every DELETE the server saw was announced by a ``deleting`` line (per run: equal
counts, except the killed run, which may have announced up to ``concurrency`` calls
that never left the process), and no worker printed a traceback. The report goes to
stdout; the exit code is 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shlex
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from benchmarks.harness import child_env
from cleanup.auditview import verify
from cleanup.model import Action, Task
from cleanup.planner import newest_per_group, plan
from cleanup.policy import load_policy
from cleanup.simulator import SimConfig, SimState, SimTask, Simulator, generate_account
from cleanup.simulator.app import API_PREFIX

RATE, CONCURRENCY = 400, 16
SERVER_RATE = 320.0
"""The server's rate limit in faulty runs that have one: below the policy's rate."""
HANG_S, REQUEST_TIMEOUT = 1.5, "1s"
BUSY_DURATION_S = 3.0
SHUTDOWN_GRACE_S = 10
RUN_TIMEOUT_S = 600.0
SOAK_POLICY: dict[str, Any] = {
    "version": 1,
    "select": {"all": True},
    "filters": {"keep_latest": 2, "statuses": ["registered", "completed", "failed"]},
    "protect": {"name_globs": ["prod-*"]},
    "limits": {"rate": RATE, "concurrency": CONCURRENCY, "max_deletions_percent": 100},
    "retry": {
        "max_attempts": 6,
        "busy_interval": "200ms",
        "busy_deadline": "60s",
        "backoff_base": "20ms",
        "backoff_max": "500ms",
        "request_timeout": REQUEST_TIMEOUT,
    },
}
TERMINAL = frozenset(
    {"would_delete", "deleted", "already_absent", "skipped", "failed", "still_busy"}
)
TASK_EVENTS = TERMINAL | {"deleting", "deferred", "retrying"}
CLEAN_EXITS = frozenset({0, 1, 4, 143})
"""Exit codes of a run that ended by itself or by SIGTERM (1: some tasks failed)."""
_FAMILIES = ("exp-churn", "exp-ctr", "exp-ltv", "retrain-ctr", "ablation-lr", "hcx-intent")
_PROD = ("prod-recommender", "prod-churn-scorer", "prod-ctr-ranker", "prod-search")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlight:
    """Counts API requests the server is still handling (hung ones included)."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        self.count += 1
        self.idle.clear()
        try:
            return await handler(request)
        finally:
            self.count -= 1
            if not self.count:
                self.idle.set()

    async def drained(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


@dataclass
class RunRecord:
    """One worker process: how it was stopped, what it wrote, what the server saw."""

    number: int
    kind: str  # "sigterm", "kill9" or "final"
    knobs: dict[str, Any]
    exit_code: int
    signalled_after: int | None  # tasks removed in this run when the signal went out
    server_deletes: int  # DELETE requests the server answered during the run
    server_requests: int
    removed: int  # tasks actually removed during the run
    bursts: int
    drained: bool  # the server answered every request of the run before it was counted
    events: Counter[str] = field(default_factory=Counter)
    deleting_ids: set[str] = field(default_factory=set)
    reported_gone: set[str] = field(default_factory=set)  # deleted / already_absent lines
    lines: int = 0
    verify_ok: bool = True
    unfinished_only: bool = False
    """verify's only problems are a last run without run_finished (what kill -9 leaves)."""
    broken_line: int | None = None
    torn_last_line: bool = False
    bad_terminals: list[str] = field(default_factory=list)
    traceback: bool = False

    @property
    def finished(self) -> bool:
        return self.events["run_finished"] == 1


@dataclass
class SoakResult:
    """Everything the checks and the report need."""

    tasks: int
    seed: int
    runs: list[RunRecord]
    protected: set[str]
    expected_remaining: set[str]  # what cleanup.planner keeps, on the final statuses
    independent_keep: set[str]  # protected + newest 2 per name, computed here by hand
    remaining: set[str]
    deleted_counts: Counter[str]
    faults: dict[str, int]
    by_status: dict[str, int]
    requests_total: int
    delete_requests: int
    still_busy_on_server: int
    wall_s: float

    def problems(self) -> list[str]:
        """Every end-state property that does not hold, in words (empty: all hold)."""
        out: list[str] = []
        final = self.runs[-1]
        if final.exit_code != 0:
            out.append(f"the final clean run exited {final.exit_code}")
        if self.expected_remaining != self.independent_keep:
            out.append("the planner's keep set differs from protect + newest 2 per name")
        if self.remaining != self.expected_remaining:
            extra, missing = (
                self.remaining - self.expected_remaining,
                self.expected_remaining - self.remaining,
            )
            out.append(
                f"server holds {len(extra)} tasks to delete and lacks {len(missing)} to keep"
            )
        if self.protected & set(self.deleted_counts):
            out.append(f"{len(self.protected & set(self.deleted_counts))} protected tasks deleted")
        if self.deleted_counts and max(self.deleted_counts.values()) != 1:
            out.append("a task was deleted twice")
        announced = set().union(*(r.deleting_ids for r in self.runs))
        if set(self.deleted_counts) - announced:
            out.append(f"{len(set(self.deleted_counts) - announced)} removals never announced")
        reported = set().union(*(r.reported_gone for r in self.runs))
        if reported - set(self.deleted_counts):
            out.append(
                f"{len(reported - set(self.deleted_counts))} reported gone but never removed"
            )
        out += [f"run {r.number}: {p}" for r in self.runs for p in _run_problems(r)]
        return out


def _run_problems(r: RunRecord) -> list[str]:
    out = []
    killed = r.kind == "kill9" and r.signalled_after is not None
    # A killed run leaves a log whose last run has no run_finished (maybe a torn last
    # line): verify says so, and that is the only problem allowed after kill -9.
    killed_only = killed and r.unfinished_only
    if not r.verify_ok and not killed_only:
        out.append(f"audit log does not verify (line {r.broken_line} of {r.lines})")
    if r.torn_last_line and not killed:
        out.append("torn last line in a run that was not killed")
    if not killed:
        if r.exit_code not in CLEAN_EXITS or not r.finished:
            out.append(f"exit {r.exit_code} without a clean end")
        if r.bad_terminals:
            out.append(f"{len(r.bad_terminals)} tasks without exactly one terminal event")
        if r.events["deleting"] != r.server_deletes:
            out.append(f"{r.events['deleting']} deleting lines, {r.server_deletes} DELETEs")
    elif not 0 <= r.events["deleting"] - r.server_deletes <= CONCURRENCY:
        out.append(f"{r.events['deleting']} deleting lines, {r.server_deletes} DELETEs (kill -9)")
    if r.traceback:
        out.append("a traceback on stderr")
    if not r.drained:
        out.append("the server still had requests in flight after the run")
    return out


def soak_names(rng: random.Random, tasks: int) -> list[str]:
    """About five tasks per name; one name in 25 is a protected ``prod-*`` one."""
    names = [f"{rng.choice(_FAMILIES)}-{k:04d}" for k in range(max(10, tasks // 5))]
    for k in range(0, len(names), 25):
        names[k] = f"{_PROD[k // 25 % len(_PROD)]}-{k // 25}"
    return names


def random_faults(rng: random.Random, everything: bool) -> dict[str, Any]:
    """A random mix: each fault on with odds 3/4; all of them, at the top of their
    range, when ``everything`` (the first run, so a short soak sees every kind)."""

    def pick(low: float, high: float) -> float:
        if everything:
            return high
        return round(rng.uniform(low, high), 4) if rng.random() < 0.75 else 0.0

    return {
        "fail_before_delete": pick(0.005, 0.04),
        "fail_after_delete": pick(0.005, 0.04),
        "drop_connection": pick(0.002, 0.02),
        "hang": pick(0.0005, 0.003),
        "html_error": pick(0.002, 0.02),
        "rate_limit": SERVER_RATE if everything or rng.random() < 0.6 else None,
        "bursts": everything or rng.random() < 0.7,
    }


CLEAN: dict[str, Any] = dict.fromkeys(
    ("fail_before_delete", "fail_after_delete", "drop_connection", "hang", "html_error"), 0.0
) | {"rate_limit": None, "bursts": False}


def churn(state: SimState, rng: random.Random, run_ids: Iterator[int]) -> None:
    """Between runs: some registered tasks start, some runs grab deletable tasks."""
    now = time.monotonic()
    registered = [t for t in state.tasks.values() if t.status == "registered"]
    for task in rng.sample(registered, len(registered) // 50):
        task.status, task.busy_until = "pending", now + rng.uniform(0.0, BUSY_DURATION_S)
        task.final_status = "failed" if rng.random() < 0.1 else "completed"
    idle = [t for t in state.tasks.values() if t.status in ("completed", "failed")]
    for task in rng.sample(idle, len(idle) // 100):
        state.add_run(
            f"soak-run-{next(run_ids)}",
            task.task_id,
            "in_progress",
            busy_for_s=rng.uniform(0.0, BUSY_DURATION_S),
        )


async def throttle_bursts(config: SimConfig, rng: random.Random, stop: asyncio.Event) -> int:
    """429 storms of 50-250 ms every 0.3-2 s until ``stop``; returns how many there were."""
    bursts = 0
    while True:
        try:
            await asyncio.wait_for(stop.wait(), rng.uniform(0.3, 2.0))
            return bursts
        except TimeoutError:
            pass
        bursts += 1
        config.throttle_storm = 1.0
        await asyncio.sleep(rng.uniform(0.05, 0.25))
        config.throttle_storm = 0.0


def read_run(record: RunRecord, audit: Path, stderr: Path) -> None:
    """Fill ``record`` from the run's audit log and stderr."""
    lines = audit.read_bytes().split(b"\n") if audit.exists() else []
    if lines and lines[-1] == b"":
        lines.pop()
    terminals: dict[str, int] = {}
    for number, raw in enumerate(lines, start=1):
        try:
            rec = json.loads(raw)
        except ValueError:
            record.torn_last_line = number == len(lines)
            continue
        event = rec.get("event")
        record.events[event] += 1
        if event in TASK_EVENTS:
            terminals.setdefault(rec["task_id"], 0)
        if event in TERMINAL:
            terminals[rec["task_id"]] += 1
        if event == "deleting":
            record.deleting_ids.add(rec["task_id"])
        elif event in ("deleted", "already_absent"):
            record.reported_gone.add(rec["task_id"])
    record.bad_terminals = sorted(t for t, n in terminals.items() if n != 1)
    record.lines = len(lines)
    checked = verify(audit) if audit.exists() else None
    record.verify_ok = checked is not None and checked.ok
    record.unfinished_only = checked is not None and all(
        "has no run_finished" in f.message for f in checked.findings if f.problem
    )
    record.broken_line = checked.broken_line if checked is not None else None
    text = stderr.read_text(errors="replace")
    record.traceback = any(s in text for s in ("Traceback", '"exception"', "task_crashed"))


async def one_run(
    sim: Simulator,
    inflight: InFlight,
    rng: random.Random,
    *,
    number: int,
    kind: str,
    knobs: dict[str, Any],
    policy_path: Path,
    workdir: Path,
    to_delete: int,
) -> RunRecord:
    """Start a worker, stop it as ``kind`` says, wait for the server to go quiet."""
    state, config = sim.state, sim.config
    for name, value in knobs.items():
        if name != "bursts":
            setattr(config, name, value)
    stop_bursts = asyncio.Event()
    bursts = (
        asyncio.ensure_future(throttle_bursts(config, rng, stop_bursts))
        if knobs["bursts"]
        else None
    )
    audit, stderr = workdir / f"run{number}-{kind}.jsonl", workdir / f"run{number}-{kind}.err"
    deletes0, requests0, removed0 = (
        state.count(method="DELETE"),
        state.total_requests(),
        len(state.deleted),
    )
    env = child_env() | {"NCLUE_ENDPOINT": sim.url}
    args = ["run", "--policy", str(policy_path), "--apply", "--audit-log", str(audit)]
    args += ["--shutdown-grace", str(SHUTDOWN_GRACE_S)]
    signalled: int | None = None
    with stderr.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cleanup",
            *args,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )
        waiting = asyncio.ensure_future(proc.wait())
        if kind != "final":
            target = removed0 + max(1, round(rng.uniform(0.05, 0.4) * to_delete))
            while True:  # poll the server's own count: deleting has started, a random share
                if waiting.done() or len(state.deleted) >= target:
                    break
                await asyncio.sleep(0.005)
            if not waiting.done():
                signalled = len(state.deleted) - removed0
                if kind == "sigterm":
                    proc.send_signal(signal.SIGTERM)
                else:
                    proc.kill()
        try:
            code = await asyncio.wait_for(waiting, RUN_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
    stop_bursts.set()
    burst_count = await bursts if bursts is not None else 0
    config.throttle_storm = 0.0
    drained = await inflight.drained(HANG_S + 5)
    record = RunRecord(
        number=number,
        kind=kind,
        knobs=knobs,
        exit_code=code,
        signalled_after=signalled,
        server_deletes=state.count(method="DELETE") - deletes0,
        server_requests=state.total_requests() - requests0,
        removed=len(state.deleted) - removed0,
        bursts=burst_count,
        drained=drained,
    )
    read_run(record, audit, stderr)
    return record


def newest_two(tasks: list[SimTask]) -> set[str]:
    """The newest 2 tasks of each name, by created_at (ties by task_id, as the planner)."""
    by_name: dict[str, list[SimTask]] = {}
    for task in tasks:
        by_name.setdefault(task.task_name, []).append(task)
    keep: set[str] = set()
    for group in by_name.values():
        group.sort(key=lambda t: (-t.created_at.timestamp(), t.task_id))
        keep.update(t.task_id for t in group[:2])
    return keep


def as_task(sim_task: SimTask) -> Task:
    sim_task.refresh(time.monotonic())
    return Task(sim_task.task_id, sim_task.task_name, sim_task.status, sim_task.created_at)


async def soak(tasks: int, seed: int, sigterms: int, workdir: Path) -> SoakResult:
    """Run the whole soak against an in-process simulator; workers are CLI processes."""
    started = time.monotonic()
    rng = random.Random(seed)
    state = generate_account(
        tasks,
        seed=seed,
        busy_fraction=0.05,
        held_fraction=0.03,
        busy_duration_s=BUSY_DURATION_S,
        names=soak_names(rng, tasks),
    )
    everything = dict(state.tasks)  # the SimTask objects outlive their deletion
    policy_path = workdir / "policy.yaml"
    policy_path.write_text(yaml.safe_dump(SOAK_POLICY))
    policy = load_policy(policy_path)
    protected = {t.task_id for t in everything.values() if t.task_name.startswith("prod-")}
    kept = newest_per_group([as_task(t) for t in everything.values()], policy) | protected
    kinds = ["sigterm"] * sigterms
    kinds.insert(rng.randint(1, len(kinds)), "kill9")  # never first: a SIGTERM run opens
    sim = Simulator(SimConfig(seed=seed, hang_s=HANG_S), state)
    inflight = InFlight()
    sim.app.middlewares.append(inflight.middleware)
    await sim.start()
    runs: list[RunRecord] = []
    run_ids = itertools.count(1)
    try:
        for number, kind in enumerate([*kinds, "final"], start=1):
            if 1 < number <= len(kinds):
                churn(state, rng, run_ids)
            knobs = CLEAN if kind == "final" else random_faults(rng, everything=number == 1)
            runs.append(
                await one_run(
                    sim,
                    inflight,
                    rng,
                    number=number,
                    kind=kind,
                    knobs=knobs,
                    policy_path=policy_path,
                    workdir=workdir,
                    to_delete=len(state.remaining_ids() - kept),
                )
            )
            print(f"soak: run {number} ({kind}) exit {runs[-1].exit_code}", file=sys.stderr)
        now = datetime.now(UTC)
        final = [as_task(t) for t in everything.values()]
        decisions = plan(final, policy, now, account=final)
        snapshot = state.snapshot()
        return SoakResult(
            tasks=tasks,
            seed=seed,
            runs=runs,
            protected=protected,
            expected_remaining={d.task.task_id for d in decisions if d.action is not Action.DELETE},
            independent_keep=protected | newest_two(list(everything.values())),
            remaining=state.remaining_ids(),
            deleted_counts=Counter(state.deleted),
            faults=dict(state.faults),
            by_status=snapshot["by_status"],
            requests_total=state.total_requests(),
            delete_requests=state.count(method="DELETE"),
            still_busy_on_server=sum(t.busy for t in final),
            wall_s=time.monotonic() - started,
        )
    finally:
        await sim.close()


def report(result: SoakResult, command: str) -> str:
    """The soak in figures, for a person (and an issue note)."""
    r = result
    deleted = len(r.deleted_counts)
    signals = Counter(run.kind for run in r.runs if run.signalled_after is not None)
    lines = [
        f"nclue-cleanup chaos soak: {r.tasks} tasks, seed {r.seed}, {r.wall_s:.0f} s wall",
        f"command: {command}",
        f"policy: select all, protect prod-*, keep_latest 2, rate {RATE}/s, concurrency "
        f"{CONCURRENCY}; server rate limit {SERVER_RATE:g}/s in runs marked rl",
        f"restarts: {signals['sigterm']} SIGTERM, {signals['kill9']} kill -9; runs: {len(r.runs)}",
        "",
        "run kind    exit signal@ removed DELETEs deleting requests deleted absent failed busy"
        " bursts faults",
    ]
    for run in r.runs:
        knobs = " ".join(
            f"{k.replace('_delete', '').replace('_connection', '')}={v:g}"
            for k, v in run.knobs.items()
            if isinstance(v, float) and v and k != "rate_limit"
        )
        knobs += " rl" if run.knobs["rate_limit"] else ""
        lines.append(
            f"{run.number:>3} {run.kind:<7} {run.exit_code:>4} "
            f"{'-' if run.signalled_after is None else run.signalled_after:>7} {run.removed:>7} "
            f"{run.server_deletes:>7} {run.events['deleting']:>8} {run.server_requests:>8} "
            f"{run.events['deleted']:>7} {run.events['already_absent']:>6} "
            f"{run.events['failed']:>6} {run.events['still_busy']:>4} "
            f"{run.bursts:>6} {knobs or 'none'}{' torn-last-line' if run.torn_last_line else ''}"
        )
    outcomes: Counter[str] = Counter()
    for run in r.runs:
        outcomes.update({k: v for k, v in run.events.items() if k in TERMINAL})
    faults = ", ".join(f"{k} {v}" for k, v in sorted(r.faults.items()))
    statuses = ", ".join(
        f"{k}: {v}" for k, v in sorted(r.by_status.items(), key=lambda i: int(i[0]))
    )
    lines += [
        "",
        f"faults injected (simulator counters): {faults}",
        f"responses by status (0 = connection dropped): {statuses}",
        "terminal events over all runs: "
        + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        f"final state: {len(r.remaining)} tasks remain, {len(r.expected_remaining)} expected "
        f"({len(r.protected)} protected); {deleted} deleted, each "
        f"{'once' if r.deleted_counts and max(r.deleted_counts.values()) == 1 else 'NOT once'}",
        f"requests: {r.requests_total} total, {r.delete_requests} DELETE; "
        f"{r.requests_total / deleted if deleted else float('nan'):.3f} per deleted task",
        f"deleting lines over all logs: {sum(run.events['deleting'] for run in r.runs)}, "
        f"server DELETEs: {r.delete_requests}",
    ]
    problems = r.problems()
    lines.append(
        "checks: all hold" if not problems else "CHECKS FAILED:\n  " + "\n  ".join(problems)
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sigterms", type=int, default=4, help="SIGTERM-and-rerun cycles")
    parser.add_argument("--quick", action="store_true", help="1,500 tasks, 2 SIGTERM cycles")
    parser.add_argument("--keep", help="keep the audit logs and stderr files in this directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.sigterms = 1500, 2
    command = shlex.join(
        ["python", "-m", "benchmarks.soak", *(sys.argv[1:] if argv is None else argv)]
    )
    with tempfile.TemporaryDirectory(prefix="nclue-soak-") as tmp:
        workdir = Path(args.keep or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(soak(args.tasks, args.seed, args.sigterms, workdir))
    print(report(result, command))
    return 1 if result.problems() else 0


if __name__ == "__main__":
    sys.exit(main())
