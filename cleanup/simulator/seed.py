"""Filling a simulated account: a seeded generator and a YAML / JSON file loader.

``generate_account`` builds a realistic account from a seed alone: task names in
groups (so ``keep_latest`` has something to keep), a mix of statuses, creation times
spread over the last 120 days, busy tasks that finish on their own, runs that hold
otherwise deletable tasks for a while, and (on request) shopping-intent profiles that
hold tasks or merely reference them.

``load_seed`` reads an explicit account from a file::

    tasks:
      - {task_id: t1, task_name: exp-1, status: completed, created_at: 2026-01-01T00:00:00Z}
      - {task_id: t2, task_name: exp-1, status: in_progress, created_at: ...,
         busy_for_s: 5, final_status: failed, train_bucket: my-bucket}
    runs:
      - {run_id: r1, task_id: t1, status: in_progress, busy_for_s: 3}
    profiles:
      - {profile_id: p1, task_id: t1, status: pending, busy_for_s: 4, disk_usage: 2048}
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from cleanup.errors import UsageError
from cleanup.simulator.state import BUSY_TASK_STATUSES, SimState, as_utc, iso_z

DEFAULT_STATUS_WEIGHTS: Mapping[str, float] = {
    "completed": 0.55,
    "failed": 0.2,
    "registered": 0.25,
}
"""Status mix of tasks that are not made busy by ``busy_fraction``."""

_NAME_FAMILIES = (
    "exp-churn-{:03d}",
    "exp-ctr-{:03d}",
    "exp-ltv-{:03d}",
    "retrain-ctr-v{}",
    "retrain-churn-v{}",
    "ablation-lr-{:03d}",
    "hcx-intent-{:03d}",
    "shopping-intent-v{}",
    "custom-attr-age-{:03d}",
    "nightly-profile-{:03d}",
    "sandbox-{:03d}",
)
_FIXED_NAMES = ("prod-recommender", "prod-churn-scorer", "prod-ctr-ranker", "baseline-gbdt")
_ACCOUNT_AGE = timedelta(days=120)
_TRAIN_BUCKET = "nclue-training-data"
_TASK_KEYS = frozenset(
    {"task_id", "task_name", "status", "created_at", "completed_at", "busy_for_s", "final_status"}
)


class SeedError(UsageError):
    """A seed file is unreadable or does not describe an account."""


def _rng_uuid(rng: random.Random) -> str:
    """Return a uuid4-shaped id drawn from ``rng`` (reproducible, unlike uuid4())."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _name_groups(rng: random.Random, n: int) -> list[str]:
    """Return ``n`` task names in groups of 1..10 tasks sharing a name."""
    names: list[str] = []
    used: set[str] = set()
    fixed = list(_FIXED_NAMES)
    while len(names) < n:
        if fixed and rng.random() < 0.3:
            name = fixed.pop(0)
        else:
            name = rng.choice(_NAME_FAMILIES).format(rng.randint(1, 999))
        if name in used:
            name = f"{name}-{len(used)}"
        used.add(name)
        names.extend([name] * rng.randint(1, 10))
    del names[n:]
    rng.shuffle(names)
    return names


def _extra_fields(
    rng: random.Random, name: str, features: dict[str, tuple[str, str]]
) -> dict[str, Any]:
    """Return the training fields of a task; tasks of one name share their feature."""
    feature = features.get(name)
    if feature is None:
        feature = features[name] = (_rng_uuid(rng), f"{name}-features")
    return {
        "train_feature_id": feature[0],
        "train_feature_name": feature[1],
        "train_bucket": _TRAIN_BUCKET,
        "train_file_path": f"features/{name}/part-{rng.randint(0, 99):05d}.csv",
    }


def generate_account(
    n: int,
    *,
    seed: int = 0,
    now: datetime | None = None,
    busy_fraction: float = 0.0,
    busy_duration_s: float = 2.0,
    held_fraction: float = 0.0,
    names: Sequence[str] | None = None,
    status_weights: Mapping[str, float] | None = None,
    profile_fraction: float = 0.0,
    referenced_fraction: float = 0.0,
) -> SimState:
    """Build a deterministic account of ``n`` tasks from ``seed``.

    ``busy_fraction`` of the tasks are pending / in_progress and finish (mostly to
    completed, sometimes failed) within ``busy_duration_s``; ``held_fraction`` of the
    deletable tasks have a pending / in_progress run that finishes within
    ``busy_duration_s``. Some deletable tasks also get completed or failed runs, which
    hold nothing. A busy status drawn from ``status_weights`` is busy the same way.
    ``profile_fraction`` of the deletable tasks are held by a pending / in_progress
    shopping-intent profile that finishes within ``busy_duration_s``;
    ``referenced_fraction`` of them have a finished (completed or failed) profile, which
    references the task but holds nothing. Profiles draw from a generator of their own,
    so an account without them is the same as before they existed.
    """
    rng = random.Random(seed)
    moment = as_utc(now) if now is not None else datetime.now(UTC)
    weights = dict(status_weights or DEFAULT_STATUS_WEIGHTS)
    statuses, status_odds = list(weights), list(weights.values())
    task_names = [rng.choice(names) for _ in range(n)] if names else _name_groups(rng, n)
    busy = set(rng.sample(range(n), round(n * busy_fraction)))
    features: dict[str, tuple[str, str]] = {}
    state = SimState()
    deletable: list[str] = []
    for position, name in enumerate(task_names):
        created = moment - timedelta(seconds=rng.randrange(int(_ACCOUNT_AGE.total_seconds())))
        if position in busy:
            status = rng.choice(("pending", "in_progress"))
        else:
            status = rng.choices(statuses, weights=status_odds)[0]
        task_id = _rng_uuid(rng)
        finished = min(created + timedelta(minutes=rng.randint(5, 600)), moment)
        state.add_task(
            task_id,
            name,
            status,
            created,
            completed_at=finished if status in ("completed", "failed") else None,
            busy_for_s=rng.uniform(0.0, busy_duration_s) if status in BUSY_TASK_STATUSES else None,
            final_status="failed" if rng.random() < 0.1 else "completed",
            extra=_extra_fields(rng, name, features),
        )
        if status not in BUSY_TASK_STATUSES:
            deletable.append(task_id)
    _add_runs(state, rng, deletable, moment, held_fraction, busy_duration_s)
    if profile_fraction > 0 or referenced_fraction > 0:
        profile_rng = random.Random(f"profiles-{seed}")
        fractions = (profile_fraction, referenced_fraction)
        _add_profiles(state, profile_rng, deletable, moment, fractions, busy_duration_s)
    return state


def _add_profiles(
    state: SimState,
    rng: random.Random,
    deletable: list[str],
    now: datetime,
    fractions: tuple[float, float],
    busy_duration_s: float,
) -> None:
    """Give some deletable tasks a busy profile (holds) or a finished one (references)."""
    busy_count = round(len(deletable) * fractions[0])
    done_count = min(round(len(deletable) * fractions[1]), len(deletable) - busy_count)
    chosen = rng.sample(deletable, busy_count + done_count)
    for number, task_id in enumerate(chosen):
        busy = number < busy_count
        state.add_profile(
            _rng_uuid(rng),
            task_id,
            rng.choice(("pending", "in_progress")) if busy else rng.choice(("completed", "failed")),
            busy_for_s=rng.uniform(0.0, busy_duration_s) if busy else None,
            created_at=now - timedelta(seconds=rng.randint(1, 86400 * 30)),
            disk_usage=rng.randint(1, 500) * 1024 * 1024,
        )


def _add_runs(
    state: SimState,
    rng: random.Random,
    deletable: list[str],
    now: datetime,
    held_fraction: float,
    busy_duration_s: float,
) -> None:
    """Give ``held_fraction`` of ``deletable`` a busy run, and some others finished runs."""
    held = rng.sample(deletable, round(len(deletable) * held_fraction))
    for task_id in held:
        state.add_run(
            _rng_uuid(rng),
            task_id,
            "in_progress" if rng.random() < 0.7 else "pending",
            busy_for_s=rng.uniform(0.0, busy_duration_s),
            created_at=now - timedelta(seconds=rng.randint(1, 3600)),
        )
    for task_id in deletable:
        if rng.random() < 0.15:
            for _ in range(rng.randint(1, 3)):
                state.add_run(
                    _rng_uuid(rng),
                    task_id,
                    "completed" if rng.random() < 0.85 else "failed",
                    created_at=now - timedelta(seconds=rng.randrange(86400 * 100)),
                )


def _parse_time(value: Any, where: str) -> datetime:
    """Read an ISO 8601 string (or a YAML timestamp) as an aware datetime."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
    raise SeedError(f"{where}: expected an ISO 8601 time, got {value!r}")


def _jsonable(value: Any) -> Any:
    """Turn a YAML timestamp among a task's extra fields into the API's ISO string."""
    if isinstance(value, datetime):
        return iso_z(as_utc(value))
    if isinstance(value, date):
        return value.isoformat()
    return value


def _required(item: Mapping[str, Any], key: str, where: str) -> str:
    """Return a required string field of a seed entry."""
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise SeedError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    return value


def _busy_for(item: Mapping[str, Any], where: str) -> float | None:
    """Return the optional ``busy_for_s`` of a seed entry."""
    value = item.get("busy_for_s")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SeedError(f"{where}.busy_for_s: expected a non-negative number, got {value!r}")
    return float(value)


def _entries(document: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    """Return the list under ``key``, checking that every entry is a mapping."""
    entries = document.get(key) or []
    if not isinstance(entries, list):
        raise SeedError(f"{source}: {key}: expected a list")
    for number, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise SeedError(f"{source}: {key}[{number}]: expected a mapping")
    return entries


def load_seed(path: str | Path) -> SimState:
    """Load an account from a YAML or JSON seed file (see the module docstring)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
        document = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise SeedError(f"{source}: cannot read seed file: {exc}") from exc
    if not isinstance(document, Mapping):
        raise SeedError(f"{source}: expected a mapping with 'tasks', 'runs' and 'profiles'")
    state = SimState()
    for kind, add in (("tasks", _seed_task), ("runs", _seed_run), ("profiles", _seed_profile)):
        for number, item in enumerate(_entries(document, kind, source)):
            where = f"{source}: {kind}[{number}]"
            try:
                add(state, item, where)
            except ValueError as exc:
                raise SeedError(f"{where}: {exc}") from exc
    return state


def _optional_time(item: Mapping[str, Any], key: str, where: str) -> datetime | None:
    value = item.get(key)
    return _parse_time(value, f"{where}.{key}") if value else None


def _seed_task(state: SimState, item: Mapping[str, Any], where: str) -> None:
    state.add_task(
        _required(item, "task_id", where),
        _required(item, "task_name", where),
        _required(item, "status", where),
        _parse_time(item.get("created_at"), f"{where}.created_at"),
        completed_at=_optional_time(item, "completed_at", where),
        busy_for_s=_busy_for(item, where),
        final_status=str(item.get("final_status", "completed")),
        extra={k: _jsonable(v) for k, v in item.items() if k not in _TASK_KEYS},
    )


def _seed_run(state: SimState, item: Mapping[str, Any], where: str) -> None:
    state.add_run(
        _required(item, "run_id", where),
        _required(item, "task_id", where),
        _required(item, "status", where),
        busy_for_s=_busy_for(item, where),
        created_at=_optional_time(item, "created_at", where),
        final_status=str(item.get("final_status", "completed")),
    )


def _seed_profile(state: SimState, item: Mapping[str, Any], where: str) -> None:
    usage = item.get("disk_usage", 0)
    if isinstance(usage, bool) or not isinstance(usage, int) or usage < 0:
        raise SeedError(f"{where}.disk_usage: expected a non-negative integer, got {usage!r}")
    name = item.get("profile_name")
    state.add_profile(
        _required(item, "profile_id", where),
        _required(item, "task_id", where),
        _required(item, "status", where),
        busy_for_s=_busy_for(item, where),
        created_at=_optional_time(item, "created_at", where),
        final_status=str(item.get("final_status", "completed")),
        profile_name=str(name) if name is not None else None,
        disk_usage=usage,
    )
