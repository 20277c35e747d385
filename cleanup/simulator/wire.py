"""How records appear on the wire under each reading of the ambiguous API pages.

``Wire`` turns the canonical bodies of ``records.py`` into what the configured server
would send: statuses spelt ``completed``, ``complete`` or in mixed case, and times as
ISO 8601 with or without a zone, Korean offsets, epoch numbers or seven fractional
digits (``SimConfig.status_spelling`` and ``SimConfig.timestamp_format``). Each reshaped
body is counted in ``SimState.faults``.
"""

from __future__ import annotations

import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from cleanup.simulator.config import SimConfig, TimestampFormat
from cleanup.simulator.records import SimProfile, SimRun, SimTask

KST = timezone(timedelta(hours=9), "KST")
"""Asia/Seoul: UTC+9 all year (no daylight saving since 1988)."""

MIXED_CASE: dict[str, tuple[str, ...]] = {
    "completed": ("Completed", "COMPLETE", "Complete", "COMPLETED"),
    "failed": ("Failed", "FAILED"),
    "in_progress": ("In_Progress", "IN_PROGRESS"),
    "pending": ("Pending", "PENDING"),
    "registered": ("Registered", "REGISTERED"),
}
"""The spellings ``mixed_case`` picks from, by a stable hash of the task id."""

TIME_FIELDS = ("created_at", "completed_at")


def spell_status(status: str, task_id: str, spelling: str) -> str:
    """Return ``status`` as a server with ``spelling`` writes it for ``task_id``."""
    if spelling == "complete" and status == "completed":
        return "complete"
    if spelling == "mixed_case" and status in MIXED_CASE:
        variants = MIXED_CASE[status]
        return variants[zlib.crc32(task_id.encode()) % len(variants)]
    return status


def format_time(moment: datetime, style: TimestampFormat) -> str | int:
    """Return an aware ``moment`` in ``style`` (see ``SimConfig.timestamp_format``)."""
    utc = moment.astimezone(UTC)
    if style == "epoch_s":
        return int(utc.timestamp())
    if style == "epoch_ms":
        return int(utc.timestamp() * 1000)
    if style == "naive":
        return utc.replace(tzinfo=None).isoformat()
    if style == "naive_kst":
        return utc.astimezone(KST).replace(tzinfo=None).isoformat()
    if style == "kst_offset":
        return utc.astimezone(KST).isoformat()
    if style == "kst_offset_nocolon":
        return utc.astimezone(KST).isoformat()[:-3] + "00"
    if style == "fraction_7":
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond:06d}0Z"
    return utc.isoformat().replace("+00:00", "Z")


class Wire:
    """Renders records for one simulator's live ``config``, counting what it reshapes."""

    def __init__(self, config: SimConfig, faults: Counter[str]) -> None:
        """Share the simulator's live config and fault counters."""
        self.config = config
        self.faults = faults

    def task(self, task: SimTask, status: str | None = None) -> dict[str, Any]:
        """The body of ``task`` (with ``status`` instead of the real one, if given)."""
        body = task.to_json()
        if status is not None:
            body["status"] = status
        spelling = self.config.status_spelling
        if spelling != "completed":
            spelt = spell_status(body["status"], task.task_id, spelling)
            if spelt != body["status"]:
                self.faults["status_spelling"] += 1
                body["status"] = spelt
        moments = {"created_at": task.created_at, "completed_at": task.completed_at}
        return self._times(body, moments)

    def run(self, run: SimRun) -> dict[str, Any]:
        """The body of one task run."""
        return self._times(run.to_json(), {"created_at": run.created_at})

    def profile(self, profile: SimProfile) -> dict[str, Any]:
        """The body of one shopping-intent profile."""
        return self._times(profile.to_json(), {"created_at": profile.created_at})

    def _times(self, body: dict[str, Any], moments: dict[str, datetime | None]) -> dict[str, Any]:
        style = self.config.timestamp_format
        if style == "iso_z":
            return body
        self.faults["timestamp_format"] += 1
        for name, moment in moments.items():
            if moment is not None:
                body[name] = format_time(moment, style)
        return body
