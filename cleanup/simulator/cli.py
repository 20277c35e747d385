"""``nclue-cleanup simulate`` (serve the simulator) and ``nclue-cleanup demo``.

Only ``config`` (no aiohttp) is imported here at module level: the server, the seed
generator and the pipeline are imported by the handlers, so building the command line
does not load aiohttp's server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from .config import (
    HOSTILE_ROUTES,
    REFUSAL_STATUSES,
    Order,
    RefusalBody,
    Route404Body,
    SimConfig,
    StatusSpelling,
    TimestampFormat,
    TotalMeaning,
)

if TYPE_CHECKING:
    from .server import Simulator
    from .state import SimState

PROBABILITY_KNOBS = (
    "fail_before_delete",
    "fail_after_delete",
    "drop_connection",
    "hang",
    "html_error",
    "truncated_json",
    "non_object_body",
    "throttle_storm",
    "wrong_types",
    "missing_task_id",
    "wrong_get_body",
    "delete_wrong_body",
    "delete_html_2xx",
    "delete_error_2xx",
    "delete_lies",
    "delete_empty_2xx",
)
"""``SimConfig`` probabilities offered as ``--knob-name P`` flags."""
CHOICE_KNOBS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("refusal_body", get_args(RefusalBody)),
    ("status_spelling", get_args(StatusSpelling)),
    ("total_meaning", get_args(TotalMeaning)),
    ("order", get_args(Order)),
    ("timestamp_format", get_args(TimestampFormat)),
    ("route_404_body", get_args(Route404Body)),
)
"""``SimConfig`` readings offered as ``--knob-name CHOICE`` flags (default: the field's)."""
COUNT_KNOBS = ("create_per_list_page", "delete_per_list_page", "total_offset")
SIZE_KNOBS = ("oversize_body_bytes", "gzip_bomb_bytes")


def _flag(knob: str) -> str:
    return "--" + knob.replace("_", "-")


def add_simulator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``simulate`` and ``demo`` to the tool's sub-commands."""
    simulate = commands.add_parser("simulate", help="serve the bundled NCLUE simulator")
    add_simulate_arguments(simulate)
    simulate.set_defaults(handler=_simulate)

    demo = commands.add_parser("demo", help="run the real pipeline against a local simulator")
    demo.add_argument("--policy", help="policy file (default: the bundled demo policy)")
    demo.add_argument("--tasks", type=int, default=400, help="simulated account size")
    demo.add_argument("--audit-log", help="default: a file in a new temporary directory")
    demo.add_argument("--dry-run", action="store_true", help="plan only, delete nothing")
    demo.set_defaults(handler=_demo)


def add_simulate_arguments(simulate: argparse.ArgumentParser) -> None:
    """The flags of ``simulate``: the account, the gateway, and every ``SimConfig`` knob."""
    simulate.add_argument("--host", default="127.0.0.1")
    simulate.add_argument("--port", type=int, default=8080)
    simulate.add_argument("--tasks", type=int, default=500, help="generated account size")
    simulate.add_argument("--seed", type=int, default=0, help="generator and fault seed")
    simulate.add_argument("--seed-file", help="YAML/JSON account instead of a generated one")
    simulate.add_argument("--busy-fraction", type=float, default=0.05)
    simulate.add_argument("--held-fraction", type=float, default=0.03)
    simulate.add_argument("--profile-fraction", type=float, default=0.0, help="held by profiles")
    simulate.add_argument("--referenced-fraction", type=float, default=0.0)
    simulate.add_argument("--busy-duration", type=float, default=30.0, help="seconds")
    simulate.add_argument("--index-mode", choices=("offset", "page"), default="offset")
    simulate.add_argument("--rate-limit", type=float, help="requests/s the server accepts")
    simulate.add_argument("--quota", type=int, help="total requests before Quota Exceeded")
    simulate.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    simulate.add_argument("--clock-offset", type=float, default=0.0, help="server clock skew, s")
    simulate.add_argument("--hang-s", type=float, default=30.0, help="how long a hang lasts, s")
    simulate.add_argument("--access-key", default=SimConfig.access_key)
    simulate.add_argument("--secret-key", default=SimConfig.secret_key)
    simulate.add_argument("--api-prefix", default=SimConfig.api_prefix)
    readings = simulate.add_argument_group("readings of the API (see SimConfig)")
    readings.add_argument("--refusal-status", type=int, choices=REFUSAL_STATUSES, default=400)
    for knob, choices in CHOICE_KNOBS:
        readings.add_argument(_flag(knob), choices=choices, default=getattr(SimConfig, knob))
    readings.add_argument("--registered-holds", action=argparse.BooleanOptionalAction, default=True)
    hostile = simulate.add_argument_group("hostile responses (see SimConfig)")
    for knob in PROBABILITY_KNOBS:
        hostile.add_argument(_flag(knob), type=float, default=0.0, metavar="P")
    for knob in COUNT_KNOBS:
        hostile.add_argument(_flag(knob), type=int, default=0, metavar="N")
    for knob in SIZE_KNOBS:
        hostile.add_argument(_flag(knob), type=int, metavar="BYTES")
    hostile.add_argument("--duplicate-across-pages", action="store_true")
    hostile.add_argument("--gzip-responses", action="store_true")
    hostile.add_argument("--retry-after", help="Retry-After value added to every 429")
    hostile.add_argument("--conflicting-duplicate", action="append", default=[], metavar="TASK_ID")
    hostile.add_argument(
        "--redirect-route", action="append", default=[], choices=sorted(HOSTILE_ROUTES)
    )
    hostile.add_argument("--redirect-location", default="", help="URL; {path} is replaced")


def simulate_config(args: argparse.Namespace) -> SimConfig:
    """The ``SimConfig`` the ``simulate`` flags ask for."""
    knobs = {knob: getattr(args, knob) for knob in PROBABILITY_KNOBS + COUNT_KNOBS + SIZE_KNOBS}
    knobs.update({knob: getattr(args, knob) for knob, _ in CHOICE_KNOBS})
    return SimConfig(
        access_key=args.access_key,
        secret_key=args.secret_key,
        index_mode=args.index_mode,
        rate_limit=args.rate_limit,
        quota=args.quota,
        latency_s=args.latency,
        clock_offset_s=args.clock_offset,
        busy_duration_s=args.busy_duration,
        refusal_status=args.refusal_status,
        registered_holds=args.registered_holds,
        hang_s=args.hang_s,
        duplicate_across_pages=args.duplicate_across_pages,
        gzip_responses=args.gzip_responses,
        retry_after=args.retry_after,
        conflicting_duplicates=frozenset(args.conflicting_duplicate),
        redirect_routes=frozenset(args.redirect_route),
        redirect_location=args.redirect_location,
        api_prefix=args.api_prefix,
        seed=args.seed,
        **knobs,
    )


def _simulate(args: argparse.Namespace) -> int:
    from .seed import generate_account, load_seed
    from .server import serve_forever

    config = simulate_config(args)
    if args.seed_file:
        state = load_seed(args.seed_file)
    else:
        state = generate_account(
            args.tasks,
            seed=args.seed,
            busy_fraction=args.busy_fraction,
            held_fraction=args.held_fraction,
            profile_fraction=args.profile_fraction,
            referenced_fraction=args.referenced_fraction,
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


DEMO_STATUS_WEIGHTS = {"completed": 0.5, "failed": 0.2, "registered": 0.2, "pending": 0.1}
"""The demo account's status mix (``in_progress`` comes from ``busy_fraction``)."""
DEMO_BUSY_S = 8.0
"""Every busy task, run and profile of the demo account finishes within this."""


def demo_account(tasks: int) -> SimState:
    """The demo's account: every status, busy tasks, runs and profiles that hold tasks
    and finish within ``DEMO_BUSY_S``, and finished profiles that only reference tasks."""
    from .seed import generate_account

    return generate_account(
        tasks,
        seed=7,
        busy_fraction=0.06,
        held_fraction=0.04,
        profile_fraction=0.03,
        referenced_fraction=0.05,
        busy_duration_s=DEMO_BUSY_S,
        status_weights=DEMO_STATUS_WEIGHTS,
    )


def _demo(args: argparse.Namespace) -> int:
    from ..console import execute
    from ..credentials import Credentials
    from ..policy import load_policy
    from ..settings import Settings
    from .server import running_in_thread

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
    state = demo_account(args.tasks)
    print(
        f"demo: a simulated NCLUE account of {args.tasks} tasks on loopback "
        f"({len(state.runs)} runs, {len(state.profiles)} shopping-intent profiles), "
        f"policy {args.policy or 'config/demo-policy.yaml'}, "
        f"{'dry run' if args.dry_run else 'deleting'} (simulator only, no network)",
        flush=True,
    )

    with running_in_thread(config, state) as sim:
        settings = Settings(apply=not args.dry_run, endpoint=sim.url, audit_log=audit_log)
        code = execute(policy, settings, Credentials(config.access_key, config.secret_key))
    print(f"verify the audit log with: nclue-cleanup audit verify {audit_log}", file=sys.stderr)
    return code
