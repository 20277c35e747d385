"""Load and validate a policy file (version 1) into frozen dataclasses.

Every error names the file, the key path and what was expected, and is raised
before any request is sent (``PolicyError``, exit 2). SPEC.md "Policy file" is the
contract; ``policy_reader`` holds the safe YAML reading and the typed checks.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from .model import valid_task_id
from .policy_reader import SELECTABLE_STATUSES, Reader, read_policy_yaml
from .times import parse_duration

__all__ = [
    "DEFAULT_STATUSES",
    "SELECTABLE_STATUSES",
    "Account",
    "Api",
    "Filters",
    "Limits",
    "Policy",
    "Protect",
    "Retry",
    "Review",
    "Selection",
    "load_policy",
    "parse_duration",
    "policy_from_mapping",
    "valid_task_id",
]

# Registered is opt-in: deleting a registered task cancels the training job that was
# just submitted for it (the Create task page), so a sweep must ask for it by name.
DEFAULT_STATUSES = frozenset({"completed", "failed"})


@dataclass(frozen=True, slots=True)
class Selection:
    """Where candidates come from: the full listing and/or explicit IDs."""

    all: bool = False
    ids: tuple[str, ...] = ()
    ids_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Account:
    """The access key IDs this policy may run with (``None``: any)."""

    access_key_ids: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Filters:
    """Rules a task must all match to be deleted; statuses are lower-case, canonical."""

    statuses: frozenset[str] = DEFAULT_STATUSES
    name_glob: str | None = None
    name_regex: re.Pattern[str] | None = None
    older_than_s: float | None = None
    created_before: datetime | None = None
    keep_latest: int | None = None
    keep_latest_by: re.Pattern[str] | None = None


@dataclass(frozen=True, slots=True)
class Protect:
    """Tasks never deleted; ``ids`` are casefolded (compared case-insensitively)."""

    ids: frozenset[str] = frozenset()
    name_globs: tuple[str, ...] = ()
    referenced: bool = True
    used_within_s: float | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """Rate, concurrency and the safety caps (``None``: no cap)."""

    rate: float = 1.0
    concurrency: int = 8
    max_deletions: int | None = None
    max_deletions_percent: float = 50.0
    max_deletions_per_run: int | None = None
    max_failure_percent: float = 20.0


@dataclass(frozen=True, slots=True)
class Retry:
    """Transient-error retries and the busy loop, all in seconds."""

    max_attempts: int = 6
    busy_interval_s: float = 60.0
    busy_deadline_s: float = 1800.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    request_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Review:
    """The age a plan must have for ``--apply --plan`` (``min <= max`` when both given)."""

    min_plan_age_s: float | None = None
    max_plan_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class Api:
    """How to read the API: the zone of zone-less timestamps, and delete verification."""

    timezone: tzinfo = UTC
    verify: bool = True


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. ``sha256`` identifies it in plans and the audit log."""

    selection: Selection
    account: Account = field(default_factory=Account)
    filters: Filters = field(default_factory=Filters)
    protect: Protect = field(default_factory=Protect)
    limits: Limits = field(default_factory=Limits)
    retry: Retry = field(default_factory=Retry)
    review: Review = field(default_factory=Review)
    api: Api = field(default_factory=Api)
    endpoint: str | None = None
    source: str = "<policy>"
    sha256: str = ""


_TOP_KEYS = {
    "version",
    "endpoint",
    "select",
    "account",
    "filters",
    "protect",
    "limits",
    "retry",
    "review",
    "api",
}
_FILTER_KEYS = {
    "statuses",
    "name_glob",
    "name_regex",
    "older_than",
    "created_before",
    "keep_latest",
    "keep_latest_by",
}
_LIMIT_KEYS = {
    "rate",
    "concurrency",
    "max_deletions",
    "max_deletions_percent",
    "max_deletions_per_run",
    "max_failure_percent",
}
_RETRY_NAMES = {
    "max_attempts": "max_attempts",
    "busy_interval": "busy_interval_s",
    "busy_deadline": "busy_deadline_s",
    "backoff_base": "backoff_base_s",
    "backoff_max": "backoff_max_s",
    "request_timeout": "request_timeout_s",
}


def load_policy(path: str | Path, *, ids_elsewhere: bool = False) -> Policy:
    """Read, parse and validate a policy file.

    ``ids_elsewhere``: task IDs also come from ``--ids-from`` or a plan, so ``select``
    may name no source of its own.
    """
    raw, data = read_policy_yaml(path)
    return policy_from_mapping(
        data,
        source=str(path),
        base_dir=Path(path).parent,
        sha256=hashlib.sha256(raw).hexdigest(),
        ids_elsewhere=ids_elsewhere,
    )


def policy_from_mapping(
    data: object,
    *,
    source: str = "<policy>",
    base_dir: Path | None = None,
    sha256: str | None = None,
    ids_elsewhere: bool = False,
) -> Policy:
    """Validate an already-parsed policy (a YAML document or a dict from Python)."""
    r = Reader(source)
    root = r.mapping(data, "")
    r.only(root, "", _TOP_KEYS)
    if "version" not in root:
        raise r.error("version", "the key version: 1")
    if type(root["version"]) is not int or root["version"] != 1:
        raise r.error("version", f"1, got {root['version']!r}")
    policy = Policy(
        selection=_selection(r, root.get("select"), base_dir, ids_elsewhere),
        account=_account(r, root),
        filters=_filters(r, root),
        protect=_protect(r, root),
        limits=_limits(r, root),
        retry=_retry(r, root),
        review=_review(r, root),
        api=_api(r, root),
        endpoint=r.opt(root, "", "endpoint", r.url),
        source=source,
    )
    if sha256 is None:  # only now: validation has refused keys json could not sort
        canonical = json.dumps(data, sort_keys=True, default=str).encode()
        sha256 = hashlib.sha256(canonical).hexdigest()
    return replace(policy, sha256=sha256)


def _given(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values a policy set, so the dataclass defaults fill in the rest."""
    return {key: value for key, value in values.items() if value is not None}


def _selection(r: Reader, data: object, base_dir: Path | None, ids_elsewhere: bool) -> Selection:
    if data is None and not ids_elsewhere:
        raise r.error("select", "a mapping with at least one of all, ids, ids_file")
    m = r.mapping({} if data is None else data, "select")
    r.only(m, "select", {"all", "ids", "ids_file"})
    ids_file = r.opt(m, "select", "ids_file", r.string)
    selection = Selection(
        all=r.opt(m, "select", "all", r.boolean) or False,
        ids=tuple(r.opt(m, "select", "ids", r.id_list) or ()),
        ids_file=(base_dir or Path()) / ids_file if ids_file else None,
    )
    if not (selection.all or selection.ids or selection.ids_file or ids_elsewhere):
        raise r.error(
            "select",
            "at least one of all: true, a non-empty ids, or ids_file (or task IDs from --ids-from)",
        )
    return selection


def _account(r: Reader, root: Mapping[str, Any]) -> Account:
    m = r.section(root, "account", {"access_key_ids"})
    if m is None:
        return Account()
    keys = r.opt(m, "account", "access_key_ids", r.key_ids)
    if keys is None:
        raise r.error(
            "account.access_key_ids", "a non-empty list of access key IDs (or no account:)"
        )
    return Account(access_key_ids=keys)


def _filters(r: Reader, root: Mapping[str, Any]) -> Filters:
    m = r.section(root, "filters", _FILTER_KEYS)
    if m is None:
        return Filters()
    keep_latest = r.opt(m, "filters", "keep_latest", r.non_negative_int)
    keep_latest_by = r.opt(m, "filters", "keep_latest_by", r.family_regex)
    if keep_latest_by is not None and keep_latest is None:
        raise r.error(
            "filters.keep_latest_by",
            "keep_latest beside it (keep_latest_by only names the groups keep_latest keeps)",
        )
    return Filters(
        **_given({"statuses": r.opt(m, "filters", "statuses", r.statuses)}),
        name_glob=r.opt(m, "filters", "name_glob", r.string),
        name_regex=r.opt(m, "filters", "name_regex", r.regex),
        older_than_s=r.opt(m, "filters", "older_than", r.duration),
        created_before=r.opt(m, "filters", "created_before", r.timestamp),
        keep_latest=keep_latest,
        keep_latest_by=keep_latest_by,
    )


def _protect(r: Reader, root: Mapping[str, Any]) -> Protect:
    m = r.section(root, "protect", {"ids", "name_globs", "referenced", "used_within"})
    if m is None:
        return Protect()
    ids = r.opt(m, "protect", "ids", r.id_list) or ()
    return Protect(
        ids=frozenset(task_id.casefold() for task_id in ids),
        name_globs=tuple(r.opt(m, "protect", "name_globs", r.string_list) or ()),
        **_given({"referenced": r.opt(m, "protect", "referenced", r.boolean)}),
        used_within_s=r.opt(m, "protect", "used_within", r.positive_duration),
    )


def _limits(r: Reader, root: Mapping[str, Any]) -> Limits:
    m = r.section(root, "limits", _LIMIT_KEYS)
    if m is None:
        return Limits()
    return Limits(
        **_given(
            {
                "rate": r.opt(m, "limits", "rate", r.positive_number),
                "concurrency": r.opt(m, "limits", "concurrency", r.positive_int),
                "max_deletions": r.opt(m, "limits", "max_deletions", r.non_negative_int),
                "max_deletions_percent": r.opt(
                    m, "limits", "max_deletions_percent", r.percent_above_zero
                ),
                "max_deletions_per_run": r.opt(
                    m, "limits", "max_deletions_per_run", r.positive_int
                ),
                "max_failure_percent": r.opt(m, "limits", "max_failure_percent", r.percent),
            }
        )
    )


def _retry(r: Reader, root: Mapping[str, Any]) -> Retry:
    m = r.section(root, "retry", set(_RETRY_NAMES))
    if m is None:
        return Retry()
    above_zero = {"busy_interval", "backoff_base", "request_timeout"}
    values: dict[str, Any] = {}
    for key, attr in _RETRY_NAMES.items():
        convert: Callable[[object], Any] = r.duration
        if key == "max_attempts":
            convert = r.positive_int
        elif key in above_zero:
            convert = r.positive_duration
        values[attr] = r.opt(m, "retry", key, convert)
    retry = Retry(**_given(values))
    if retry.backoff_max_s < retry.backoff_base_s:
        raise r.error("retry.backoff_max", "a duration of at least retry.backoff_base")
    return retry


def _review(r: Reader, root: Mapping[str, Any]) -> Review:
    m = r.section(root, "review", {"min_plan_age", "max_plan_age"})
    if m is None:
        return Review()
    review = Review(
        min_plan_age_s=r.opt(m, "review", "min_plan_age", r.duration),
        max_plan_age_s=r.opt(m, "review", "max_plan_age", r.positive_duration),
    )
    low, high = review.min_plan_age_s, review.max_plan_age_s
    if low is not None and high is not None and low > high:
        raise r.error("review.max_plan_age", "a duration of at least review.min_plan_age")
    return review


def _api(r: Reader, root: Mapping[str, Any]) -> Api:
    m = r.section(root, "api", {"timezone", "verify"})
    if m is None:
        return Api()
    return Api(
        **_given(
            {
                "timezone": r.opt(m, "api", "timezone", r.zone),
                "verify": r.opt(m, "api", "verify", r.boolean),
            }
        )
    )
