"""Command line: argument parsing and wiring only; the decisions live elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO, cast

import structlog
from rich.console import Console

from . import __version__
from .audit import verify
from .credentials import Credentials, load_credentials
from .errors import UsageError
from .pipeline import run_policy
from .policy import Policy, load_policy
from .progress import LiveProgress, LogProgress, ProgressReporter
from .report import export_metrics, print_plan, print_summary, write_summary_json
from .settings import (
    DEFAULT_AUDIT_LOG,
    TRIGGERS,
    Settings,
    resolve_endpoint,
    resolve_shard,
    resolve_trigger,
)
from .source import read_ids

log = structlog.get_logger("nclue_cleanup")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nclue-cleanup`` and ``python -m cleanup``."""
    args = build_parser().parse_args(argv)
    configure_logging(verbose=getattr(args, "verbose", False))
    try:
        code: int = args.handler(args)
    except UsageError as exc:
        print(f"nclue-cleanup: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


def configure_logging(*, verbose: bool = False) -> None:
    """structlog once: readable on a terminal, JSON lines (to stderr) everywhere else."""
    level = logging.DEBUG if verbose else logging.INFO
    renderer: structlog.types.Processor
    if sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer()
    processors: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not sys.stderr.isatty():
        processors.append(structlog.processors.dict_tracebacks)
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _Stderr())),
        cache_logger_on_first_use=False,
    )


class _Stderr:
    """Writes to whatever ``sys.stderr`` is now (rich's live view redirects it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nclue-cleanup",
        description="Bulk, rate-limited, audited cleanup of NCLUE task models.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="plan (dry run) or --apply a policy")
    run.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    run.add_argument("--policy", required=True, help="policy YAML file")
    run.add_argument("--apply", action="store_true", help="delete (default: dry run)")
    run.add_argument("--endpoint", help="API base URL (env NCLUE_ENDPOINT, policy, default)")
    run.add_argument("--audit-log", default=DEFAULT_AUDIT_LOG, help="JSON lines file, - = stdout")
    run.add_argument("--summary-json", help="write the run summary as JSON here")
    run.add_argument("--credentials-file", help="Secret mount or ~/.ncloud/configure")
    run.add_argument("--ids-from", help="extra task IDs, one per line (- = stdin)")
    plan = run.add_mutually_exclusive_group()
    plan.add_argument("--plan-out", help="dry run: write the plan (IDs, policy sha256) here")
    plan.add_argument("--plan", dest="plan_in", help="--apply exactly this plan's IDs")
    run.add_argument("--trigger", choices=TRIGGERS, help="env NCLUE_CLEANUP_TRIGGER, default adhoc")
    run.add_argument("--shard-index", type=int, help="default env JOB_COMPLETION_INDEX")
    run.add_argument("--shard-count", type=int, help="number of shards (pods)")
    run.add_argument("--metrics-textfile", help="Prometheus textfile collector path")
    run.add_argument("--pushgateway", help="Prometheus Pushgateway URL")
    run.add_argument(
        "--shutdown-grace",
        type=float,
        default=20.0,
        help="seconds in-flight calls get after SIGTERM/SIGINT (default 20)",
    )
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check a policy and say what it selects")
    validate.add_argument("--policy", required=True)
    validate.set_defaults(handler=_validate)

    audit = commands.add_parser("audit", help="audit log tools")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_commands.add_parser("verify", help="check an audit log's hash chain")
    check.add_argument("path")
    check.set_defaults(handler=_audit_verify)

    from .simulator.cli import add_simulator_commands

    add_simulator_commands(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy, ids_elsewhere=bool(args.ids_from or args.plan_in))
    if args.plan_in and not args.apply:
        raise UsageError("--plan applies a reviewed plan: add --apply (or drop --plan)")
    index, count = resolve_shard(args.shard_index, args.shard_count, os.environ)
    settings = Settings(
        apply=args.apply,
        endpoint=resolve_endpoint(args.endpoint, os.environ, policy.endpoint),
        audit_log=args.audit_log,
        summary_json=args.summary_json,
        extra_ids=tuple(_ids_from(args.ids_from)) if args.ids_from else (),
        plan_out=args.plan_out,
        plan_in=args.plan_in,
        trigger=resolve_trigger(args.trigger, os.environ),
        shard_index=index,
        shard_count=count,
        metrics_textfile=args.metrics_textfile,
        pushgateway=args.pushgateway,
        shutdown_grace_s=args.shutdown_grace,
    )
    credentials = load_credentials(credentials_file=args.credentials_file)
    return execute(policy, settings, credentials)


def execute(policy: Policy, settings: Settings, credentials: Credentials) -> int:
    """Run, then report to the console, the summary file and the metrics."""
    live = sys.stderr.isatty()
    progress: ProgressReporter = LiveProgress(Console(stderr=True)) if live else LogProgress()
    summary = asyncio.run(
        run_policy(
            policy,
            settings=settings,
            credentials=credentials,
            handle_signals=True,
            progress=progress if settings.apply else None,
        )
    )
    console = Console(
        file=sys.stderr if settings.audit_log == "-" else sys.stdout,
        width=None if sys.stdout.isatty() else 120,
    )
    if summary.dry_run:
        print_plan(summary.decisions, datetime.now(timezone.utc), console)
    print_summary(summary, console, settings.audit_log)
    if settings.summary_json:
        write_summary_json(summary, settings.summary_json)
    if settings.metrics_textfile or settings.pushgateway:
        try:
            export_metrics(summary, settings)
        except OSError as exc:
            log.error("metrics_export_failed", error=str(exc))
    return summary.exit_code


def _ids_from(source: str) -> list[str]:
    if source == "-":
        return read_ids(sys.stdin, "stdin")
    try:
        lines = Path(source).read_text().splitlines()
    except OSError as exc:
        raise UsageError(f"--ids-from {source}: cannot read ({exc.strerror})") from None
    return read_ids(lines, source)


def _validate(args: argparse.Namespace) -> int:
    # A policy may leave the IDs to --ids-from (post-training); `run` enforces that.
    policy = load_policy(args.policy, ids_elsewhere=True)
    print(describe(policy))
    return 0


def describe(policy: Policy) -> str:
    """The normalized policy, and what it selects, in words."""
    s, f, p, lim, r = policy.selection, policy.filters, policy.protect, policy.limits, policy.retry
    sources = []
    if s.all:
        sources.append("every task in the account (full listing)")
    if s.ids:
        sources.append(f"{len(s.ids)} explicit task IDs")
    if s.ids_file:
        sources.append(f"the IDs listed in {s.ids_file}")
    if not sources:
        sources.append("nothing by itself: give task IDs with run --ids-from FILE|- or --plan")
    rules = [f"status is one of {', '.join(sorted(f.statuses))}"]
    if f.name_glob:
        rules.append(f"name matches {f.name_glob!r}")
    if f.name_regex:
        rules.append(f"name fully matches /{f.name_regex.pattern}/")
    if f.older_than_s is not None:
        rules.append(f"created more than {_duration(f.older_than_s)} ago")
    if f.created_before:
        rules.append(f"created before {f.created_before.isoformat()}")
    lines = [
        f"policy {policy.source} (sha256 {policy.sha256}) is valid.",
        f"selects: {'; '.join(sources)}",
        f"deletes those where: {' and '.join(rules)}",
    ]
    if f.keep_latest:
        lines.append(f"keeps: the newest {f.keep_latest} tasks of each task_name")
    if p.ids or p.name_globs:
        lines.append(
            f"never deletes: {len(p.ids)} protected IDs"
            + (f", names matching {', '.join(p.name_globs)}" if p.name_globs else "")
        )
    lines += [
        "busy tasks (pending, in_progress) that match: deferred and judged again when done",
        f"limits: rate {lim.rate:g} requests/s, concurrency {lim.concurrency}, "
        f"max_deletions {lim.max_deletions if lim.max_deletions is not None else 'none'}",
        f"retry: max_attempts {r.max_attempts}, busy_interval {_duration(r.busy_interval_s)}, "
        f"busy_deadline {_duration(r.busy_deadline_s)}, backoff {_duration(r.backoff_base_s)}"
        f"..{_duration(r.backoff_max_s)}, request_timeout {_duration(r.request_timeout_s)}",
        f"endpoint: {policy.endpoint or '(from --endpoint, NCLUE_ENDPOINT or the default)'}",
    ]
    if lim.rate > 1:
        lines.append(f"warning: rate {lim.rate:g}/s is above the NCLUE guidance of 1 request/s")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _audit_verify(args: argparse.Namespace) -> int:
    try:
        result = verify(args.path)
    except OSError as exc:
        raise UsageError(f"{args.path}: cannot read ({exc.strerror})") from None
    if result.ok:
        events = ", ".join(f"{k} {v}" for k, v in sorted((result.events or {}).items()))
        print(f"{args.path}: intact, {result.lines} lines ({events})")
        return 0
    print(f"{args.path}: broken at line {result.broken_line}: {result.problem}")
    return 1
