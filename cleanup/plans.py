"""Plan files: what a reviewed dry run would delete, bound to its policy, endpoint and account.

A dry run with ``--plan-out`` writes the plan (JSON, format ``nclue-cleanup-plan``,
version 2); ``run --apply --plan`` reads it back and deletes only its IDs. The plan
carries a ``sha256`` over its own canonical JSON: an integrity check that catches an
accidental or naive edit (an ID added, one cut while ``counts`` still says more), not a
signature, since anyone can recompute it. What binds a plan to one run is the check
of the policy's sha256, the endpoint and the access key ID against the run's own, and
the review window (``review.min_plan_age`` / ``review.max_plan_age``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .errors import PlanError
from .fsutil import atomic_write, json_chunks
from .model import Action, Decision, valid_task_id
from .policy import Policy
from .untrusted import cut_name, printable

PLAN_FORMAT = "nclue-cleanup-plan"
PLAN_VERSION = 2
MAX_PLAN_BYTES = 64 * 1024 * 1024
"""A plan larger than this is refused before it is read."""
_MB = MAX_PLAN_BYTES // (1024 * 1024)
FUTURE_TOLERANCE_S = 300.0
"""Clock difference allowed between the machine that made a plan and the one applying it."""

_ACTIONS = {Action.DELETE: "delete", Action.DEFER: "wait"}
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_HEADER = ("created_at", "run_id", "policy", "policy_sha256", "endpoint", "access_key_id")
_OPTIONAL_TEXT = ("task_name", "status", "created_at", "detail")


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan that passed every check: the IDs ``--apply --plan`` may act on."""

    delete_ids: tuple[str, ...]
    wait_ids: tuple[str, ...]
    created_at: datetime
    run_id: str
    path: str

    @property
    def task_ids(self) -> tuple[str, ...]:
        """Every task of the plan: those to delete, then the busy ones to wait for."""
        return self.delete_ids + self.wait_ids


def write_plan(
    path: str | Path,
    decisions: Sequence[Decision],
    *,
    policy: Policy,
    endpoint: str,
    access_key_id: str,
    run_id: str,
    now: datetime,
) -> None:
    """Write the plan of ``decisions`` (deletes and waits only) atomically to ``path``."""
    tasks = [_task_entry(d) for d in decisions if d.action in _ACTIONS]
    ids = [t["task_id"] for t in tasks]
    if len(set(ids)) != len(ids):
        raise ValueError("write_plan: a task ID appears in more than one decision")
    tasks.sort(key=lambda t: (t["task_name"] or "", t["created_at"] or "", t["task_id"]))
    document: dict[str, Any] = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "created_at": _timestamp(now),
        "run_id": run_id,
        "policy": policy.source,
        "policy_sha256": policy.sha256,
        "endpoint": endpoint,
        "access_key_id": access_key_id,
        "counts": {
            "delete": sum(t["action"] == "delete" for t in tasks),
            "wait": sum(t["action"] == "wait" for t in tasks),
        },
        "tasks": tasks,
    }
    document["sha256"] = document_sha256(document)
    atomic_write(path, json_chunks(document, indent=1, ensure_ascii=False))


def _task_entry(decision: Decision) -> dict[str, Any]:
    task = decision.task
    if not valid_task_id(task.task_id):
        raise ValueError("write_plan: a decision carries an invalid task ID")
    name = None if task.task_name is None else _clean(cut_name(task.task_name)[0])
    return {
        "task_id": task.task_id,
        "task_name": name,
        "status": None if task.status is None else _clean(task.status),
        "created_at": None if task.created_at is None else _timestamp(task.created_at),
        "action": _ACTIONS[decision.action],
        "reason": _clean(decision.reason),
        "detail": None if decision.detail is None else _clean(decision.detail),
    }


def _clean(text: str) -> str:
    """``text`` with lone surrogates (from a server's JSON) spelled out: UTF-8 can hold it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _timestamp(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_plan_time(text: object) -> datetime | None:
    """A plan's timestamp (``2026-01-01T00:00:00Z``, as written) or ``None``."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def document_sha256(document: dict[str, Any]) -> str:
    """The sha256 of the plan's canonical JSON, without its ``sha256`` key."""
    body = {key: value for key, value in document.items() if key != "sha256"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def read_plan(
    path: str | Path, *, policy: Policy, endpoint: str, access_key_id: str, now: datetime
) -> Plan:
    """Read a plan for ``--apply --plan``: intact, made for this run, and within review ages.

    Raises ``PlanError`` (exit 2) with one line naming the file for anything else.
    """
    document = load_plan_document(path)
    where = printable(str(path))
    _check_binding(where, document, policy=policy, endpoint=endpoint, key=access_key_id)
    created_at = _created_at(where, document)
    _check_age(where, created_at, policy, now if now.tzinfo else now.replace(tzinfo=UTC))
    tasks = document["tasks"]
    return Plan(
        delete_ids=tuple(t["task_id"] for t in tasks if t["action"] == "delete"),
        wait_ids=tuple(t["task_id"] for t in tasks if t["action"] == "wait"),
        created_at=created_at,
        run_id=document["run_id"],
        path=str(path),
    )


def load_plan_document(path: str | Path) -> dict[str, Any]:
    """Read a plan and check it is whole: format, version, sha256, counts and task IDs.

    It does not bind the plan to a policy, endpoint or account (``read_plan`` does):
    ``plan show`` uses it to render a plan for review.
    """
    where = printable(str(path))
    document = _parse(where, _read_bytes(where, Path(path)))
    if document.get("version") == 1:
        raise PlanError(
            f"{where}: a version 1 plan (from an older nclue-cleanup); "
            "make a new one with run --plan-out"
        )
    if document.get("format") != PLAN_FORMAT or document.get("version") != PLAN_VERSION:
        raise PlanError(
            f"{where}: not a plan file (expected format {PLAN_FORMAT} version {PLAN_VERSION}, "
            "as written by run --plan-out)"
        )
    _check_sha256(where, document)
    for key in _HEADER:
        if not isinstance(document.get(key), str):
            raise PlanError(f"{where}: {key}: expected a string")
    _created_at(where, document)
    _check_tasks(where, document.get("tasks"))
    _check_counts(where, document)
    return document


def _read_bytes(where: str, path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_PLAN_BYTES:
            raise PlanError(f"{where}: the plan is {size} bytes, over the {_MB} MB limit")
        with path.open("rb") as stream:
            data = stream.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        raise PlanError(f"{where}: cannot read the plan ({exc.strerror or exc})") from None
    if len(data) > MAX_PLAN_BYTES:  # a device or pipe reports no size
        raise PlanError(f"{where}: the plan is over the {_MB} MB limit")
    return data


def _parse(where: str, data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(
            data.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except (UnicodeDecodeError, RecursionError):
        raise PlanError(f"{where}: not a JSON plan file (write one with run --plan-out)") from None
    except ValueError as exc:
        detail = f": {exc.args[0]}" if isinstance(exc, _DuplicateKey) else ""
        raise PlanError(
            f"{where}: not a JSON plan file{detail} (write one with run --plan-out)"
        ) from None
    if not isinstance(document, dict):
        raise PlanError(f"{where}: expected a JSON object (a plan written by run --plan-out)")
    return document


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Refuse a key given twice: a reviewer would read the first, ``json`` keeps the last."""
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _DuplicateKey(f"the key {printable(key, 60)!r} is given twice")
        document[key] = value
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _check_sha256(where: str, document: dict[str, Any]) -> None:
    recorded = document.get("sha256")
    if not isinstance(recorded, str):
        raise PlanError(f"{where}: the plan has no sha256; make a new one with run --plan-out")
    try:
        actual = document_sha256(document)
    except UnicodeEncodeError:
        raise PlanError(f"{where}: the plan holds text that is not valid Unicode") from None
    if actual != recorded:
        raise PlanError(
            f"{where}: the plan was edited after it was made (its sha256 does not match "
            "its content); make a new one with run --plan-out"
        )


def _check_tasks(where: str, tasks: object) -> None:
    if not isinstance(tasks, list):
        raise PlanError(f"{where}: tasks: expected a list")
    seen: dict[str, int] = {}
    for index, task in enumerate(tasks):
        at = f"{where}: tasks[{index}]"
        if not isinstance(task, dict):
            raise PlanError(f"{at}: expected an object")
        task_id = task.get("task_id")
        if not isinstance(task_id, str) or not valid_task_id(task_id):
            raise PlanError(f"{at}: task_id is not a valid task ID")
        if task_id in seen:
            raise PlanError(f"{at}: task_id repeats the one of tasks[{seen[task_id]}]")
        seen[task_id] = index
        if task.get("action") not in ("delete", "wait"):
            raise PlanError(f"{at}: action: expected delete or wait")
        if not isinstance(task.get("reason"), str):
            raise PlanError(f"{at}: reason: expected a string")
        for key in _OPTIONAL_TEXT:
            if not isinstance(task.get(key), (str, type(None))):
                raise PlanError(f"{at}: {key}: expected a string or null")


def _check_counts(where: str, document: dict[str, Any]) -> None:
    counts = document.get("counts")
    actions = [task["action"] for task in document["tasks"]]
    for action in ("delete", "wait"):
        stated = counts.get(action) if isinstance(counts, dict) else None
        if type(stated) is not int or stated != actions.count(action):
            raise PlanError(
                f"{where}: counts.{action} does not match the {actions.count(action)} "
                f"{action} tasks listed; make a new plan with run --plan-out"
            )


def _created_at(where: str, document: dict[str, Any]) -> datetime:
    moment = parse_plan_time(document["created_at"])
    if moment is None:
        raise PlanError(f"{where}: created_at: expected a UTC time such as 2026-01-01T00:00:00Z")
    return moment


def _check_binding(
    where: str, document: dict[str, Any], *, policy: Policy, endpoint: str, key: str
) -> None:
    if document["policy_sha256"] != policy.sha256:
        raise PlanError(
            f"{where}: the plan was made from a different policy (its policy sha256 "
            f"{printable(document['policy_sha256'], 16)}, {printable(policy.source)} has "
            f"{policy.sha256[:15]}…); make a new plan with run --plan-out"
        )
    if document["endpoint"].rstrip("/") != endpoint.rstrip("/"):
        raise PlanError(
            f"{where}: the plan was made for another endpoint "
            f"({printable(document['endpoint'], 120)}, this run uses {printable(endpoint, 120)})"
        )
    if document["access_key_id"] != key:
        raise PlanError(
            f"{where}: the plan was made for another account (access key ID "
            f"…{printable(document['access_key_id'][-4:])}, this run uses …{printable(key[-4:])})"
        )


def _check_age(where: str, created_at: datetime, policy: Policy, now: datetime) -> None:
    age = (now - created_at).total_seconds()
    if age < -FUTURE_TOLERANCE_S:
        raise PlanError(
            f"{where}: the plan's created_at is {short_age(-age)} in the future; "
            "check this machine's clock, or make a new plan"
        )
    review = getattr(policy, "review", None)
    minimum = getattr(review, "min_plan_age_s", None)
    maximum = getattr(review, "max_plan_age_s", None)
    if minimum is not None and age < minimum:
        ready = _timestamp(created_at + timedelta(seconds=minimum))
        raise PlanError(
            f"{where}: the plan is {short_age(age)} old, younger than "
            f"review.min_plan_age {short_age(minimum)}; it may be applied from {ready}"
        )
    if maximum is not None and age > maximum:
        raise PlanError(
            f"{where}: the plan is {short_age(age)} old, older than "
            f"review.max_plan_age {short_age(maximum)}; make a new one with run --plan-out"
        )


def short_age(seconds: float) -> str:
    """A short age such as ``45s``, ``12m``, ``3h12m`` or ``8d2h`` (rounded down)."""
    whole = max(0, int(seconds))
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for index, (unit, size) in enumerate(units[:-1]):
        if whole >= size:
            smaller, small_size = units[index + 1]
            rest = (whole % size) // small_size
            return f"{whole // size}{unit}" + (f"{rest}{smaller}" if rest else "")
    return f"{whole}s"
