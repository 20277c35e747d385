"""What people and machines read after a run: the plan table, the summary, metrics."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from .model import Action, Decision
from .settings import Settings
from .summary import RunSummary

EXIT_MEANING = {
    0: "done",
    1: "some tasks failed, or the run could not complete",
    2: "usage, policy, credential or plan error",
    3: "authentication or permission failure: stopped",
    4: "finished, but some tasks were still busy at the deadline",
    5: "refused by the safety guard (limits.max_deletions)",
    130: "interrupted (SIGINT)",
    143: "interrupted (SIGTERM)",
}
_PLAN_ROWS = 200


def print_plan(decisions: Sequence[Decision], now: datetime, console: Console) -> None:
    """The dry run's reviewable table: every task it would delete or wait for."""
    acting = [d for d in decisions if d.action in (Action.DELETE, Action.DEFER)]
    table = Table(title="Dry run: what --apply would do", title_justify="left")
    for column in ("task", "name", "status", "age", "decision", "reason"):
        table.add_column(column, overflow="fold")
    for d in acting[:_PLAN_ROWS]:
        age = "?" if d.task.created_at is None else _age(now - d.task.created_at)
        verb = "delete" if d.action is Action.DELETE else "wait (busy)"
        table.add_row(
            d.task.task_id, d.task.task_name or "", d.task.status or "", age, verb, d.detail or ""
        )
    if acting:
        console.print(table)
    if len(acting) > _PLAN_ROWS:
        console.print(f"... and {len(acting) - _PLAN_ROWS} more (all are in the audit log)")
    by_reason = Counter(d.reason for d in decisions if d.action is Action.SKIP)
    kept = ", ".join(f"{n} by {reason}" for reason, n in by_reason.most_common())
    deletes = sum(d.action is Action.DELETE for d in decisions)
    busy = sum(d.action is Action.DEFER for d in decisions)
    console.print(
        f"would delete {deletes}, would wait for {busy} busy, would keep "
        f"{sum(by_reason.values())}" + (f" ({kept})" if kept else "")
    )


def _age(delta: object) -> str:
    seconds = delta.total_seconds() if hasattr(delta, "total_seconds") else 0.0
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def print_summary(summary: RunSummary, console: Console, audit_log: str) -> None:
    """The closing table: outcomes, requests, and what the exit code means."""
    table = Table(title="dry run summary" if summary.dry_run else "run summary")
    table.add_column("outcome")
    table.add_column("tasks", justify="right")
    for outcome, count in summary.counts.items():
        if count:
            table.add_row(outcome, str(count))
    console.print(table)
    data = summary.to_json()
    per_task = data["requests_per_deleted_task"]
    console.print(
        f"requests sent: {summary.requests_total}"
        + (f" ({per_task} per deleted task)" if per_task else "")
        + f"; duration {summary.duration_s:.1f}s; audit log: {audit_log}"
    )
    waits = summary.progress_events
    if waits.get("deferred") or waits.get("retrying"):
        console.print(
            f"busy tasks looked at again: {waits.get('deferred', 0)} times; "
            f"transient errors retried: {waits.get('retrying', 0)}"
        )
    for warning in summary.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    if summary.error:
        console.print(f"[red]error:[/] {summary.error}")
    meaning = EXIT_MEANING.get(summary.exit_code, "")
    console.print(f"exit code {summary.exit_code}: {meaning}")


def write_summary_json(summary: RunSummary, path: str) -> None:
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(json.dumps(summary.to_json(), indent=1) + "\n")
    os.replace(temporary, target)


def metrics_registry(summary: RunSummary, trigger: str) -> CollectorRegistry:
    """Prometheus gauges for one run, ready for a textfile or a Pushgateway."""
    registry = CollectorRegistry()
    tasks = Gauge(
        "nclue_cleanup_tasks",
        "Tasks by terminal outcome in the last run",
        ["outcome", "mode"],
        registry=registry,
    )
    mode = "dry_run" if summary.dry_run else "apply"
    for outcome, count in summary.counts.items():
        tasks.labels(outcome, mode).set(count)
    requests = Gauge(
        "nclue_cleanup_requests",
        "API requests sent in the last run by route and HTTP status (0: no response)",
        ["route", "status"],
        registry=registry,
    )
    for route, by_status in summary.requests.items():
        for status, count in by_status.items():
            requests.labels(route, status).set(count)
    Gauge("nclue_cleanup_duration_seconds", "Duration of the last run", registry=registry).set(
        summary.duration_s
    )
    Gauge(
        "nclue_cleanup_exit_code", "Exit code of the last run", ["trigger"], registry=registry
    ).labels(trigger).set(summary.exit_code)
    Gauge(
        "nclue_cleanup_last_run_timestamp_seconds", "When the last run ended", registry=registry
    ).set(time.time())
    return registry


def _success_gauge(registry: CollectorRegistry, when: float) -> CollectorRegistry:
    Gauge(
        "nclue_cleanup_last_success_timestamp_seconds",
        "When a run last finished with exit code 0 in apply mode",
        registry=registry,
    ).set(when)
    return registry


def _previous_success(textfile: str) -> float | None:
    """The last-success time a previous run left in the textfile, so a failure keeps it."""
    try:
        text = Path(textfile).read_text()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "nclue_cleanup_last_success_timestamp_seconds":
                return float(sample.value)
    return None


def export_metrics(summary: RunSummary, settings: Settings) -> None:
    """Write the run's metrics; the last-success time survives failed runs.

    Pushgateway groups are per trigger and shard, so the shards of one Job and runs
    of different triggers do not overwrite each other's metrics.
    """
    succeeded = summary.exit_code == 0 and not summary.dry_run
    registry = metrics_registry(summary, settings.trigger)
    if settings.metrics_textfile:
        last = time.time() if succeeded else _previous_success(settings.metrics_textfile)
        if last is not None:
            _success_gauge(registry, last)
        write_to_textfile(settings.metrics_textfile, registry)
    if settings.pushgateway:
        group = {"trigger": settings.trigger, "shard": str(settings.shard_index)}
        push_to_gateway(
            settings.pushgateway, job="nclue-cleanup", grouping_key=group, registry=registry
        )
        if succeeded:  # its own group, so a failed run's push does not erase it
            push_to_gateway(
                settings.pushgateway,
                job="nclue-cleanup-success",
                grouping_key=group,
                registry=_success_gauge(CollectorRegistry(), time.time()),
            )
