"""``python -m benchmarks [--quick] [--out FILE] [--only NAME ...]``: run and report.

Each benchmark starts its own simulator process(es) with a fresh account and runs the
client in another process; the table goes to stdout (and to ``--out`` with the machine
it ran on and the exact command). Progress goes to stderr. The exit code is 0 when
every benchmark produced its figures (targets missed or not), 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from benchmarks.cases import CASES
from benchmarks.harness import ROOT, BenchmarkError
from benchmarks.rows import FULL, QUICK, Row


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cores} cores (nproc), {cpu_model()}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| # | benchmark | value | target | result | runs |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        cells = (row.key, row.benchmark, row.value, row.target, row.verdict, str(row.runs))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- {row.key}: {row.note}" for row in rows if row.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def code_version() -> str:
    """The commit the figures belong to, and whether the tree had uncommitted changes."""
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def load() -> str:
    """The 1-minute load average: other work on the machine skews CPU and wall figures."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "?"


def report(rows: list[Row], command: str, elapsed: float, load_before: str, code: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{table(rows)}\n\n"
        f"Machine: {machine()}; 1-minute load average {load_before} before the run, "
        f"{load()} after.  \n"
        f"Code: `{code}` when the run started, `{code_version()}` when it ended.  \n"
        f"Command: `{command}` (from the repository root), {elapsed / 60:.1f} min, {stamp}.\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--out", help="also write the table, machine and command here")
    names = [name for name, _keys, _case in CASES]
    parser.add_argument("--only", nargs="+", choices=names, help="run only these benchmarks")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    command = shlex.join(["python", "-m", "benchmarks", *(sys.argv[1:] if argv is None else argv)])
    rows: list[Row] = []
    failed = False
    started, load_before, code = time.perf_counter(), load(), code_version()
    with tempfile.TemporaryDirectory(prefix="nclue-bench-") as tmp:
        for name, keys, case in CASES:
            if args.only and name not in args.only:
                continue
            print(f"benchmark: {name} ...", file=sys.stderr, flush=True)
            case_started = time.perf_counter()
            workdir = Path(tmp) / name.replace(" ", "-")
            workdir.mkdir()
            try:
                rows += case(sizes, workdir)
            except BenchmarkError as exc:
                failed = True
                print(f"benchmark {name} failed: {exc}", file=sys.stderr, flush=True)
                rows += [Row(key, name, "error", met=False, note=str(exc)[:300]) for key in keys]
            took = time.perf_counter() - case_started
            print(f"benchmark: {name} done in {took:.1f} s", file=sys.stderr, flush=True)
    text = report(rows, command, time.perf_counter() - started, load_before, code)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
