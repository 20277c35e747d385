"""Run the nclue-cleanup CLI in this process and write what it cost.

    python -m benchmarks.measured OUT.json run --policy P --apply --endpoint URL ...

The arguments after ``OUT.json`` go to ``cleanup.cli.main`` unchanged. ``OUT.json``
gets the CLI's exit code, its CPU seconds (user + sys, ``getrusage(RUSAGE_SELF)``
deltas taken around ``main``: interpreter start-up and imports excluded), its wall
time, and the process's peak RSS (``ru_maxrss``, start-up included).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cleanup.cli import main as cleanup_main


def cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def measure(work: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Call ``work`` and return its result with its CPU seconds, wall time and peak RSS."""
    (user, system), wall = cpu_seconds(), time.perf_counter()
    result = work()
    user_after, system_after = cpu_seconds()
    cost = {
        "cpu_s": user_after - user + system_after - system,
        "user_s": user_after - user,
        "sys_s": system_after - system,
        "wall_s": time.perf_counter() - wall,
        # Linux reports ru_maxrss in KiB.
        "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    return result, cost


def main(argv: list[str]) -> int:
    out, cli_args = argv[0], argv[1:]
    code, cost = measure(lambda: cleanup_main(cli_args))
    Path(out).write_text(json.dumps({"exit_code": code, **cost}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
