"""Prometheus metrics of a run: a node_exporter textfile and/or a Pushgateway push.

Every run exports its outcome gauges; a successful armed run (exit 0, not a dry run) also
sets ``nclue_cleanup_last_success_timestamp_seconds``, which survives failed runs: the
textfile keeps the previous value, and the Pushgateway holds it in a group of its own
(``job="nclue-cleanup-success"``) that only a success replaces. Export never raises for a
sink that fails: it returns warnings, and every push is bounded by ``timeout_s``.
"""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile
from prometheus_client.parser import text_string_to_metric_families

from .summary import RunSummary
from .untrusted import printable

JOB = "nclue-cleanup"
"""Pushgateway job of every run's gauges."""
SUCCESS_JOB = "nclue-cleanup-success"
"""Pushgateway job of the last-success gauge: a group only a successful run replaces."""
LAST_SUCCESS = "nclue_cleanup_last_success_timestamp_seconds"
STATUS_LABEL_LIMIT = 64
"""Unknown status values (server text) are cut to this many characters as label values."""
STATUS_SERIES_LIMIT = 20
"""At most this many unknown-status series; the rest are summed under ``status="other"``."""


def export_metrics(
    summary: RunSummary,
    *,
    textfile: str | None,
    pushgateway: str | None,
    trigger: str,
    shard: str = "0",
    account: str | None = None,
    timeout_s: float = 5.0,
) -> list[str]:
    """Write the run's gauges to the textfile and push them; return warnings, never raise.

    Every gauge carries the labels ``trigger``, ``shard`` and (when given) ``account``, in
    the textfile as on the Pushgateway, where the same labels are the grouping key: the
    shards of one Job, the accounts of one run and runs of different triggers never
    overwrite each other.
    """
    labels = {"trigger": trigger, "shard": shard, **({"account": account} if account else {})}
    succeeded = summary.exit_code == 0 and not summary.dry_run
    now = time.time()
    warnings: list[str] = []
    if textfile:
        warnings += _write_textfile(summary, textfile, labels, succeeded, now)
    if pushgateway:
        warnings += _push(summary, pushgateway, labels, succeeded, now, timeout_s)
    return warnings


def run_registry(summary: RunSummary, labels: dict[str, str]) -> CollectorRegistry:
    """The gauges of one run (everything but the last-success time)."""
    registry = CollectorRegistry()
    names, values = list(labels), list(labels.values())

    def gauge(name: str, doc: str, extra: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, [*extra, *names], registry=registry)

    mode = "dry_run" if summary.dry_run else "apply"
    tasks = gauge(
        "nclue_cleanup_tasks", "Tasks by terminal outcome in the last run", ("outcome", "mode")
    )
    for outcome, count in summary.counts.items():
        tasks.labels(outcome, mode, *values).set(count)
    requests = gauge(
        "nclue_cleanup_requests",
        "API requests sent in the last run by route and HTTP status (0: no response)",
        ("route", "status"),
    )
    for route, by_status in summary.requests.items():
        for status, count in by_status.items():
            requests.labels(route, status, *values).set(count)
    unknown = gauge(
        "nclue_cleanup_unknown_statuses",
        "Tasks kept in the last run because the API reported a status this version does not know",
        ("status",),
    )
    for status, count in _bounded_statuses(summary.unknown_statuses).items():
        unknown.labels(status, *values).set(count)
    gauge("nclue_cleanup_duration_seconds", "Duration of the last run").labels(*values).set(
        summary.duration_s
    )
    gauge("nclue_cleanup_exit_code", "Exit code of the last run").labels(*values).set(
        summary.exit_code
    )
    gauge("nclue_cleanup_last_run_timestamp_seconds", "When the last run ended").labels(
        *values
    ).set(time.time())
    return registry


def _bounded_statuses(statuses: dict[str, int]) -> dict[str, int]:
    """Unknown statuses as safe label values, at most ``STATUS_SERIES_LIMIT`` series."""
    ranked = sorted(statuses.items(), key=lambda item: (-item[1], item[0]))
    if len(ranked) > STATUS_SERIES_LIMIT:
        rest = sum(count for _, count in ranked[STATUS_SERIES_LIMIT - 1 :])
        ranked = [*ranked[: STATUS_SERIES_LIMIT - 1], ("other", rest)]
    bounded: dict[str, int] = {}
    for status, count in ranked:
        key = printable(status, STATUS_LABEL_LIMIT) or "empty"
        bounded[key] = bounded.get(key, 0) + count
    return bounded


def _success_gauge(registry: CollectorRegistry, when: float, labels: dict[str, str]) -> None:
    Gauge(
        LAST_SUCCESS,
        "When a run last finished with exit code 0 in apply mode",
        list(labels),
        registry=registry,
    ).labels(*labels.values()).set(when)


def _previous_success(textfile: str, labels: dict[str, str]) -> float | None:
    """The last-success time a previous run left in the textfile, so a failure keeps it."""
    try:
        text = Path(textfile).read_text(encoding="utf-8")
        families = list(text_string_to_metric_families(text))
    except (OSError, ValueError):
        return None
    for family in families:
        for sample in family.samples:
            if sample.name == LAST_SUCCESS and sample.labels == labels:
                return float(sample.value)
    return None


def _write_textfile(
    summary: RunSummary,
    textfile: str,
    labels: dict[str, str],
    succeeded: bool,
    now: float,
) -> list[str]:
    registry = run_registry(summary, labels)
    last = now if succeeded else _previous_success(textfile, labels)
    if last is not None:
        _success_gauge(registry, last, labels)
    try:
        write_to_textfile(textfile, registry)
    except OSError as exc:
        return [f"metrics textfile {textfile} not written: {exc.strerror or exc}"]
    return []


def _push(
    summary: RunSummary,
    url: str,
    labels: dict[str, str],
    succeeded: bool,
    now: float,
    timeout_s: float,
) -> list[str]:
    """Push the run's group, then (on success) the last-success group, within ``timeout_s``.

    The budget is shared: a hung Pushgateway costs ``timeout_s`` once, not once per push.
    """
    deadline = time.monotonic() + timeout_s
    pushes = [(JOB, run_registry(summary, labels))]
    if succeeded:
        success = CollectorRegistry()
        _success_gauge(success, now, labels)
        pushes.append((SUCCESS_JOB, success))
    for job, registry in pushes:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return [f"pushgateway: no time left to push job {job} (timeout {timeout_s:g}s)"]
        try:
            push_to_gateway(url, job=job, grouping_key=labels, registry=registry, timeout=remaining)
        except Exception as exc:  # urllib raises OSError, HTTPError, ValueError, ...
            reason = printable(str(getattr(exc, "reason", None) or exc) or type(exc).__name__)
            return [f"pushgateway push of job {job} failed: {reason}"]
    return []
