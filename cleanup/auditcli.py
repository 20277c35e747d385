"""``audit verify`` and ``audit show`` on the command line."""

from __future__ import annotations

import argparse
import shutil
import sys

from .auditshow import iter_show
from .auditview import verify
from .errors import UsageError
from .untrusted import printable


def add_parsers(audit_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``audit verify`` and ``audit show`` on the ``audit`` command's subparsers."""
    check = audit_subparsers.add_parser(
        "verify", help="check an audit log's hash chain", allow_abbrev=False
    )
    check.add_argument("path", metavar="PATH")
    check.add_argument(
        "--expect-head",
        metavar="SHA",
        help="the sha256 of the last line (audit_head_sha256 in the summary and metrics)",
    )
    check.set_defaults(handler=verify_command)
    show = audit_subparsers.add_parser(
        "show", help="what a run did, for people", allow_abbrev=False
    )
    show.add_argument("path", metavar="PATH")
    show.add_argument("--format", choices=("table", "markdown", "json"), default="table")
    show.add_argument("--run", metavar="RUN_ID", help="a run_id, or 'all' (default: the last run)")
    show.set_defaults(handler=show_command)


def verify_command(args: argparse.Namespace) -> int:
    """``audit verify``: one line per finding; 0 intact, 1 not, 2 unreadable."""
    name = printable(str(args.path), None)
    try:
        result = verify(args.path, expect_head=args.expect_head)
    except OSError as exc:
        raise UsageError(f"{name}: cannot read ({exc.strerror})") from None
    for finding in result.findings:
        print(f"{name}: {finding.message}")
    if not result.ok:
        problems = sum(f.problem for f in result.findings)
        print(f"{name}: NOT intact: {problems} problem(s) in {result.lines} lines")
        return 1
    events = ", ".join(f"{k} {v}" for k, v in sorted(result.events.items()))
    head = f"; head is line {result.head_line}" if result.head_line else ""
    print(f"{name}: intact, {result.lines} lines, {len(result.runs)} run(s){head} ({events})")
    return 0


def show_command(args: argparse.Namespace) -> int:
    """``audit show``: a run (or every run) for people, on stdout."""
    width = min(shutil.get_terminal_size((80, 24)).columns, 160)
    try:
        for chunk in iter_show(args.path, args.format, args.run, width):
            sys.stdout.write(chunk)
    except BrokenPipeError:
        raise  # `audit show PATH | head`: the CLI ends quietly with one line
    except OSError as exc:
        name = printable(str(args.path), None)
        raise UsageError(f"{name}: cannot read ({exc.strerror})") from None
    return 0
