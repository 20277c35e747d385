"""``nclue-cleanup simulate`` (serve the simulator) and ``nclue-cleanup demo``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path

from ..credentials import Credentials
from ..policy import load_policy
from ..settings import Settings
from .config import SimConfig
from .seed import generate_account, load_seed
from .server import Simulator, running_in_thread, serve_forever


def add_simulator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    simulate = commands.add_parser("simulate", help="serve the bundled NCLUE simulator")
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8080)
    simulate.add_argument("--tasks", type=int, default=500, help="generated account size")
    simulate.add_argument("--seed", type=int, default=0, help="generator and fault seed")
    simulate.add_argument("--seed-file", help="YAML/JSON account instead of a generated one")
    simulate.add_argument("--index-mode", choices=("offset", "page"), default="offset")
    simulate.add_argument("--rate-limit", type=float, help="requests/s the server accepts")
    simulate.add_argument("--quota", type=int, help="total requests before Quota Exceeded")
    simulate.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    simulate.add_argument("--busy-fraction", type=float, default=0.05)
    simulate.add_argument("--held-fraction", type=float, default=0.03)
    simulate.add_argument("--busy-duration", type=float, default=30.0, help="seconds")
    simulate.add_argument("--refusal-status", type=int, choices=(400, 409), default=400)
    simulate.add_argument("--fail-before-delete", type=float, default=0.0)
    simulate.add_argument("--fail-after-delete", type=float, default=0.0)
    simulate.add_argument("--drop-connection", type=float, default=0.0)
    simulate.add_argument("--clock-offset", type=float, default=0.0, help="server clock skew, s")
    simulate.add_argument("--hang", type=float, default=0.0, help="probability a request hangs")
    simulate.add_argument("--hang-s", type=float, default=30.0, help="how long a hang lasts, s")
    hostile = simulate.add_argument_group("hostile responses (probabilities; see SimConfig)")
    for knob in ("html_error", "truncated_json", "non_object_body", "throttle_storm"):
        hostile.add_argument("--" + knob.replace("_", "-"), type=float, default=0.0)
    hostile.add_argument("--wrong-types", type=float, default=0.0)
    hostile.add_argument("--missing-task-id", type=float, default=0.0)
    hostile.add_argument("--total-offset", type=int, default=0, help="listing total lies by N")
    hostile.add_argument("--duplicate-across-pages", action="store_true")
    hostile.add_argument("--retry-after", help="Retry-After value added to every 429")
    simulate.add_argument("--access-key", default=SimConfig.access_key)
    simulate.add_argument("--secret-key", default=SimConfig.secret_key)
    simulate.set_defaults(handler=_simulate)

    demo = commands.add_parser("demo", help="run the real pipeline against a local simulator")
    demo.add_argument("--policy", help="policy file (default: the bundled demo policy)")
    demo.add_argument("--tasks", type=int, default=400, help="simulated account size")
    demo.add_argument("--audit-log", help="default: a file in a new temporary directory")
    demo.add_argument("--dry-run", action="store_true", help="plan only, delete nothing")
    demo.set_defaults(handler=_demo)


def _simulate(args: argparse.Namespace) -> int:
    config = SimConfig(
        access_key=args.access_key,
        secret_key=args.secret_key,
        index_mode=args.index_mode,
        rate_limit=args.rate_limit,
        quota=args.quota,
        latency_s=args.latency,
        clock_offset_s=args.clock_offset,
        busy_duration_s=args.busy_duration,
        refusal_status=args.refusal_status,
        fail_before_delete=args.fail_before_delete,
        fail_after_delete=args.fail_after_delete,
        drop_connection=args.drop_connection,
        hang=args.hang,
        hang_s=args.hang_s,
        html_error=args.html_error,
        truncated_json=args.truncated_json,
        non_object_body=args.non_object_body,
        throttle_storm=args.throttle_storm,
        wrong_types=args.wrong_types,
        missing_task_id=args.missing_task_id,
        total_offset=args.total_offset,
        duplicate_across_pages=args.duplicate_across_pages,
        retry_after=args.retry_after,
        seed=args.seed,
    )
    if args.seed_file:
        state = load_seed(args.seed_file)
    else:
        state = generate_account(
            args.tasks,
            seed=args.seed,
            busy_fraction=args.busy_fraction,
            held_fraction=args.held_fraction,
            busy_duration_s=args.busy_duration,
        )

    def started(sim: Simulator) -> None:
        print(
            f"NCLUE simulator with {len(state.tasks)} tasks on {sim.url}\n"
            f"  export NCLUE_ENDPOINT={sim.url}\n"
            f"  export NCLOUD_ACCESS_KEY={config.access_key}\n"
            f"  export NCLOUD_SECRET_KEY={config.secret_key}   # simulator-only key\n"
            f"  counters: {sim.base_url}/_sim/stats   (Ctrl-C stops)",
            flush=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_forever(config, state, args.host, args.port, on_started=started))
    return 0


def demo_policy_path() -> Path:
    """The bundled demo policy (``config/demo-policy.yaml`` links to the same file)."""
    return Path(str(resources.files("cleanup") / "data" / "demo-policy.yaml"))


def _demo(args: argparse.Namespace) -> int:
    from ..cli import execute

    policy = load_policy(args.policy or demo_policy_path())
    audit_log = args.audit_log or os.path.join(
        tempfile.mkdtemp(prefix="nclue-demo-"), "audit.jsonl"
    )
    config = SimConfig(
        rate_limit=policy.limits.rate * 1.25,
        fail_before_delete=0.02,
        fail_after_delete=0.02,
        drop_connection=0.01,
        seed=7,
    )
    state = generate_account(
        args.tasks, seed=7, busy_fraction=0.06, held_fraction=0.04, busy_duration_s=8.0
    )
    print(
        f"demo: a simulated NCLUE account of {args.tasks} tasks on loopback, "
        f"policy {args.policy or 'config/demo-policy.yaml'}, "
        f"{'dry run' if args.dry_run else 'deleting'} (simulator only, no network)",
        flush=True,
    )

    with running_in_thread(config, state) as sim:
        settings = Settings(apply=not args.dry_run, endpoint=sim.url, audit_log=audit_log)
        code = execute(policy, settings, Credentials(config.access_key, config.secret_key))
    print(f"verify the audit log with: nclue-cleanup audit verify {audit_log}", file=sys.stderr)
    return code
