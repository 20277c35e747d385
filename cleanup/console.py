"""What the command line does around a run: confirm, report, export, notify, archive.

``execute`` is shared by ``run`` and ``demo``. Human output goes to stdout unless
stdout carries a machine stream (``--output json``, ``--summary-json -``,
``--audit-log -``); then everything for people goes to stderr.
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from .api import run_policy
from .credentials import Credentials
from .errors import UsageError
from .logs import get_logger
from .policy import Policy
from .progress import LiveProgress, LogProgress, ProgressReporter
from .report import make_console, print_plan, print_summary, write_summary_json
from .settings import Settings
from .summary import RunSummary

log = get_logger("nclue_cleanup")


@dataclass(frozen=True, slots=True)
class Outputs:
    """The command line's choices about output and integrations."""

    output: str = "table"
    yes: bool = False
    notify: str | None = None
    audit_archive: str | None = None
    archive_endpoint: str | None = None
    archive_region: str | None = None
    archive_credentials_file: str | None = None

    def stdout_uses(self, settings: Settings) -> list[str]:
        """The machine streams asked to go to stdout (at most one may)."""
        return [
            name
            for name, used in (
                ("--output json", self.output == "json"),
                ("--summary-json -", settings.summary_json == "-"),
                ("--audit-log -", settings.audit_log == "-"),
            )
            if used
        ]

    def stdout_is_machine(self, settings: Settings) -> bool:
        return bool(self.stdout_uses(settings))


def check_outputs(outputs: Outputs, settings: Settings) -> None:
    """Usage errors found before any request: two machine streams on stdout, bad URLs."""
    uses = outputs.stdout_uses(settings)
    if len(uses) > 1:
        raise UsageError(f"{' and '.join(uses)} both want stdout: choose one")
    if outputs.notify:
        from .notify import validate_notify_url

        validate_notify_url(outputs.notify)


def execute(
    policy: Policy,
    settings: Settings,
    credentials: Credentials,
    outputs: Outputs | None = None,
    *,
    confirm: Any = None,
) -> int:
    """Run, then report to the console, the summary file, metrics, webhook and archive."""
    outputs = outputs or Outputs()
    check_outputs(outputs, settings)
    archive = archive_target(outputs)
    people = make_console(stderr=outputs.stdout_is_machine(settings))
    if archive is not None:
        settings = replace(settings, capture_audit=True)
    live = sys.stderr.isatty() and not os.environ.get("NO_COLOR")  # NO_COLOR: plain lines
    progress: ProgressReporter = LiveProgress(make_console(stderr=True)) if live else LogProgress()
    summary = asyncio.run(_run(policy, settings, credentials, outputs, progress, archive, confirm))
    if summary.dry_run and summary.planned:
        print_plan(summary.decisions, datetime.now(UTC), people, plan_path=settings.plan_out)
    print_summary(summary, people)
    if outputs.output == "json":
        write_summary_json(summary, "-")
    if settings.summary_json:
        write_summary_json(summary, settings.summary_json)
    return summary.exit_code


async def _run(
    policy: Policy,
    settings: Settings,
    credentials: Credentials,
    outputs: Outputs,
    progress: ProgressReporter,
    archive: Any,
    confirm: Any,
) -> RunSummary:
    await preflight_archive(archive, outputs)
    return await run_one(
        policy,
        settings,
        credentials,
        outputs,
        archive,
        handle_signals=True,
        progress=progress,
        confirm=confirm,
    )


async def run_one(
    policy: Policy,
    settings: Settings,
    credentials: Credentials,
    outputs: Outputs,
    archive: Any,
    **run_kwargs: Any,
) -> RunSummary:
    """One account's run with its budget (shared when asked), then metrics, the webhook
    and the archive; their failures become the summary's warnings."""
    started = datetime.now(UTC)
    budget = None
    if settings.shared_budget:
        from .shared_budget import open_budget

        # The full rate, not rate / shards: every process reserves slots 1 / rate apart
        # on the shared clock, so together they keep to the account's rate.
        budget = await open_budget(
            settings.shared_budget,
            account_key=f"{credentials.access_key}@{settings.endpoint}",
            rate=policy.limits.rate,
        )
    try:
        summary = await run_policy(
            policy, settings=settings, credentials=credentials, budget=budget, **run_kwargs
        )
    finally:
        if budget is not None:
            await budget.aclose()
    warnings = list(summary.warnings)
    warnings += await _after(summary, settings, outputs, archive, started)
    if len(warnings) != len(summary.warnings):
        summary = replace(summary, warnings=tuple(warnings))
    return summary


async def _after(
    summary: RunSummary, settings: Settings, outputs: Outputs, archive: Any, started: datetime
) -> list[str]:
    """Metrics, the webhook and the archive: a failure is a warning, never an exit code."""
    warnings: list[str] = []
    if settings.metrics_textfile or settings.pushgateway:
        from .metrics import export_metrics

        warnings += await asyncio.to_thread(
            export_metrics,
            summary,
            textfile=settings.metrics_textfile,
            pushgateway=settings.pushgateway,
            trigger=settings.trigger,
            shard=str(settings.shard_index),
            account=settings.account,
        )
    if outputs.notify:
        from .notify import notify, summary_text

        problem = await notify(
            outputs.notify, text=summary_text(summary), payload=summary.to_json()
        )
        if problem:
            warnings.append(problem)
    if archive is not None:
        warnings += await _archive(summary, settings, outputs, archive, started)
    for warning in warnings:
        log.warning("after_run", warning=warning)
    return warnings


async def _archive(
    summary: RunSummary, settings: Settings, outputs: Outputs, target: Any, started: datetime
) -> list[str]:
    from .archive import ArchiveError, archive_run, load_archive_credentials

    creds = load_archive_credentials(os.environ, outputs.archive_credentials_file)
    try:
        await archive_run(
            target,
            creds,
            run_id=summary.run_id,
            started_at=started,
            audit_lines=summary.audit_lines or b"",
            summary=summary.to_json(),
            plan_path=settings.plan_out,
        )
    except ArchiveError as exc:
        return [f"audit archive: {exc}"]
    return []


async def preflight_archive(archive: Any, outputs: Outputs) -> None:
    """Check the archive's bucket before the first API request (exit 2 if unusable)."""
    if archive is None:
        return
    from .archive import load_archive_credentials, preflight

    await preflight(archive, load_archive_credentials(os.environ, outputs.archive_credentials_file))


def archive_target(outputs: Outputs) -> Any:
    if not outputs.audit_archive:
        return None
    try:
        import boto3  # noqa: F401  (found now, before any request, not after the run)
    except ImportError:
        raise UsageError(
            "--audit-archive needs the S3 client: pip install 'nclue-cleanup[s3]'"
        ) from None
    from .archive_target import parse_archive_url

    return parse_archive_url(
        outputs.audit_archive, outputs.archive_endpoint, outputs.archive_region
    )
