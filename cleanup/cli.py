"""Command line: argument parsing and wiring only; the decisions live elsewhere."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

import structlog

from . import __version__
from .auditcli import add_parsers as add_audit_parsers
from .console import Outputs, execute
from .credentials import Credentials, load_credentials
from .describe import describe, policy_warnings
from .errors import CleanupError, UsageError
from .planview import add_parser as add_plan_parser
from .policy import Policy, load_policy
from .settings import (
    DEFAULT_AUDIT_LOG,
    TRIGGERS,
    Settings,
    resolve_endpoint,
    resolve_shard,
    resolve_trigger,
)
from .simulator.cli import add_simulator_commands
from .source import read_ids
from .untrusted import printable

log = structlog.get_logger("nclue_cleanup")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nclue-cleanup`` and ``python -m cleanup``."""
    args = build_parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    configure_logging(verbose=verbose)
    try:
        code: int = args.handler(args)
    except CleanupError as exc:
        print(f"nclue-cleanup: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _quiet_stdout()
        print("nclue-cleanup: stdout was closed; stopped", file=sys.stderr)
        return 1
    except Exception as exc:
        if verbose:
            raise
        print(
            f"nclue-cleanup: internal error: {type(exc).__name__}: {printable(str(exc))} "
            "(run with -v for the traceback)",
            file=sys.stderr,
        )
        return 1
    return code


def _quiet_stdout() -> None:
    """After a closed pipe, point stdout at /dev/null so the interpreter's flush is quiet."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _drop_traceback(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event.pop("exc_info", None)
    return event


def configure_logging(*, verbose: bool = False) -> None:
    """structlog once: readable on a terminal, JSON lines (to stderr) everywhere else.

    Tracebacks only with ``-v``, and never with local variables (they can hold signed
    request headers).
    """
    level = logging.DEBUG if verbose else logging.INFO
    colors = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
    renderer: structlog.types.Processor
    processors: list[structlog.types.Processor] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if not verbose:
        processors.append(_drop_traceback)
    if sys.stderr.isatty():
        renderer = structlog.dev.ConsoleRenderer(
            colors=colors, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        processors.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
        renderer = structlog.processors.JSONRenderer()
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


def _parser(commands: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, allow_abbrev=False, **kwargs)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nclue-cleanup",
        description="Bulk, rate-limited, audited cleanup of NCLUE task models.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands)

    validate = _parser(commands, "validate", help="check a policy and say what it selects")
    validate.add_argument("--policy", required=True)
    validate.add_argument(
        "--estimate-tasks", type=int, metavar="N", help="estimate a run over N tasks"
    )
    validate.set_defaults(handler=_validate)

    plan = _parser(commands, "plan", help="reviewed plans")
    add_plan_parser(plan.add_subparsers(dest="plan_command", required=True))
    audit = _parser(commands, "audit", help="audit log tools")
    add_audit_parsers(audit.add_subparsers(dest="audit_command", required=True))
    add_simulator_commands(commands)
    return parser


def _add_run(commands: Any) -> None:
    run = _parser(commands, "run", help="plan (dry run) or --apply a policy")
    run.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    run.add_argument("--policy", help="policy YAML file")
    mode = run.add_mutually_exclusive_group()
    mode.add_argument("--apply", action="store_true", help="delete (default: dry run)")
    mode.add_argument("--dry-run", action="store_true", help="plan only (the default)")
    run.add_argument("--yes", action="store_true", help="do not ask before --apply deletes")
    run.add_argument("--endpoint", help="API base URL (env NCLUE_ENDPOINT, policy, default)")
    run.add_argument("--audit-log", default=DEFAULT_AUDIT_LOG, help="JSON lines file, - = stdout")
    run.add_argument("--audit-skipped", choices=("selected", "all"), default="selected")
    run.add_argument("--summary-json", help="write the run summary as JSON here (- = stdout)")
    run.add_argument("--output", choices=("table", "json"), default="table")
    run.add_argument("--credentials-file", help="Secret mount, KEY=value file or configure")
    run.add_argument("--ids-from", help="extra task IDs, one per line (- = stdin)")
    plan = run.add_mutually_exclusive_group()
    plan.add_argument("--plan-out", help="dry run: write the plan here for review")
    plan.add_argument("--plan", dest="plan_in", help="--apply exactly this reviewed plan")
    run.add_argument("--trigger", choices=TRIGGERS, help="env NCLUE_CLEANUP_TRIGGER, default adhoc")
    run.add_argument("--shard-index", type=int, help="default env JOB_COMPLETION_INDEX")
    run.add_argument("--shard-count", type=int, help="number of shards (pods)")
    run.add_argument("--accounts", help="run several accounts from this file (no --policy)")
    run.add_argument("--shared-budget", help="coordination service URL (env NCLUE_SHARED_BUDGET)")
    run.add_argument("--metrics-textfile", help="Prometheus textfile collector path")
    run.add_argument("--pushgateway", help="Prometheus Pushgateway URL")
    run.add_argument("--notify", help="webhook URL for the summary (Slack-compatible)")
    run.add_argument("--audit-archive", help="s3://bucket/prefix for the audit log and summary")
    run.add_argument("--archive-endpoint", help="S3-compatible endpoint (NCP Object Storage)")
    run.add_argument("--archive-region", help="S3 region (default from the endpoint)")
    run.add_argument("--archive-credentials-file", help="Secret mount or KEY=value file")
    run.add_argument(
        "--shutdown-grace",
        type=float,
        default=20.0,
        help="seconds in-flight calls get after SIGTERM/SIGINT/SIGHUP (default 20)",
    )
    run.set_defaults(handler=_run)


def _outputs(args: argparse.Namespace) -> Outputs:
    return Outputs(
        output=args.output,
        yes=args.yes,
        notify=args.notify,
        audit_archive=args.audit_archive,
        archive_endpoint=args.archive_endpoint,
        archive_region=args.archive_region,
        archive_credentials_file=args.archive_credentials_file,
    )


def _run(args: argparse.Namespace) -> int:
    if args.accounts:
        if args.policy:
            raise UsageError("--accounts runs each account's own policy: drop --policy")
        from .accounts import run_accounts

        return run_accounts(args, _outputs(args))
    if not args.policy:
        raise UsageError("run needs --policy FILE (or --accounts FILE)")
    policy = load_policy(args.policy, ids_elsewhere=bool(args.ids_from or args.plan_in))
    credentials = load_credentials(credentials_file=args.credentials_file)
    settings = settings_from(args, policy, credentials)
    return execute(policy, settings, credentials, _outputs(args), confirm=_confirmer(args))


def settings_from(
    args: argparse.Namespace, policy: Policy, credentials: Credentials, **overrides: Any
) -> Settings:
    index, count = resolve_shard(args.shard_index, args.shard_count, os.environ)
    ids = _ids_from(args.ids_from, credentials) if args.ids_from else ()
    fields: dict[str, Any] = {
        "apply": args.apply,
        "endpoint": resolve_endpoint(args.endpoint, os.environ, policy.endpoint),
        "audit_log": args.audit_log,
        "audit_skipped": args.audit_skipped,
        "summary_json": args.summary_json,
        "extra_ids": tuple(ids),
        "plan_out": args.plan_out,
        "plan_in": args.plan_in,
        "trigger": resolve_trigger(args.trigger, os.environ),
        "shard_index": index,
        "shard_count": count,
        "metrics_textfile": args.metrics_textfile,
        "pushgateway": args.pushgateway,
        "shutdown_grace_s": args.shutdown_grace,
        "shared_budget": args.shared_budget or os.environ.get("NCLUE_SHARED_BUDGET") or None,
    }
    fields.update(overrides)
    return Settings(**fields)


def read_ids_source(source: str) -> list[str]:
    """The lines of ``--ids-from FILE`` or ``-`` (stdin), read once."""
    if source == "-":
        return sys.stdin.read().splitlines()
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"--ids-from {source}: cannot read ({exc.strerror})") from None
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise UsageError(f"--ids-from {source}: not UTF-8 text") from None


def checked_ids(lines: list[str], source: str, credentials: Credentials) -> list[str]:
    """Task IDs of ``--ids-from``, never a loaded credential, and at least one."""
    where = "stdin" if source == "-" else source
    ids = read_ids(lines, where, secrets=(credentials.secret_key,))
    if not ids:
        raise UsageError(
            f"--ids-from {where}: no task IDs in it (empty, or only comments); nothing to do"
        )
    return ids


def _ids_from(source: str, credentials: Credentials) -> list[str]:
    return checked_ids(read_ids_source(source), source, credentials)


def _confirmer(args: argparse.Namespace) -> Any:
    """On a terminal, --apply asks first (type the number of tasks); --yes skips it."""
    if not args.apply or args.yes or not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None

    async def confirm(count: int) -> bool:
        prompt = f"--apply will delete up to {count} tasks. Type {count} to go on: "
        answer = await _read_line(prompt)
        return answer.strip() == str(count)

    return confirm


async def _read_line(prompt: str) -> str:
    """Read a line from the terminal without blocking the event loop (or its exit)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[str] = loop.create_future()

    def answer(line: str) -> None:
        if not future.done():
            future.set_result(line)

    def reader() -> None:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        loop.call_soon_threadsafe(answer, sys.stdin.readline())

    threading.Thread(target=reader, name="nclue-cleanup-confirm", daemon=True).start()
    return await future


def _validate(args: argparse.Namespace) -> int:
    # A policy may leave the IDs to --ids-from (post-training); `run` enforces that.
    policy = load_policy(args.policy, ids_elsewhere=True)
    if args.estimate_tasks is not None and args.estimate_tasks < 0:
        raise UsageError("--estimate-tasks: expected a whole number of at least 0")
    print(describe(policy, estimate_tasks=args.estimate_tasks))
    for warning in policy_warnings(policy):
        print(f"warning: {warning}")
    return 0
