"""Load and validate a policy file (version 1) into frozen dataclasses.

Every error names the file, the key path and what was expected, and is raised
before any request is sent (``PolicyError``, exit 2).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import PolicyError
from .model import BUSY_STATUSES, DELETABLE_STATUSES, valid_task_id

T = TypeVar("T")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
MAX_DURATION_S = 100 * 365 * 86400.0
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True, slots=True)
class Selection:
    all: bool = False
    ids: tuple[str, ...] = ()
    ids_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Filters:
    statuses: frozenset[str] = DELETABLE_STATUSES
    name_glob: str | None = None
    name_regex: re.Pattern[str] | None = None
    older_than_s: float | None = None
    created_before: datetime | None = None
    keep_latest: int | None = None


@dataclass(frozen=True, slots=True)
class Protect:
    ids: frozenset[str] = frozenset()
    name_globs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    rate: float = 1.0
    concurrency: int = 8
    max_deletions: int | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    max_attempts: int = 6
    busy_interval_s: float = 60.0
    busy_deadline_s: float = 1800.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    request_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. ``sha256`` identifies it in plans and the audit log."""

    selection: Selection
    filters: Filters = field(default_factory=Filters)
    protect: Protect = field(default_factory=Protect)
    limits: Limits = field(default_factory=Limits)
    retry: Retry = field(default_factory=Retry)
    endpoint: str | None = None
    source: str = "<policy>"
    sha256: str = ""


def parse_duration(value: object) -> float:
    """Return seconds for ``30d``, ``90s``, ``1.5h`` or a plain number of seconds."""
    expected = "a duration such as 90s, 30m, 12h, 30d or 2w"
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = _finite(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        number = _finite(match.group(1))
        seconds = None if number is None else number * _UNIT_SECONDS[match.group(2)]
    if seconds is None or seconds < 0:
        raise ValueError(expected)
    if seconds > MAX_DURATION_S:
        raise ValueError(f"{expected}, at most 100 years")
    return seconds


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (OverflowError, ValueError):
        return None
    return number if math.isfinite(number) else None


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice (the last would silently win,
    and a second ``protect:`` block would drop the first one's rules)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_policy(path: str | Path, *, ids_elsewhere: bool = False) -> Policy:
    """Read, parse and validate a policy file.

    ``ids_elsewhere``: task IDs also come from ``--ids-from`` or a plan, so ``select``
    may name no source of its own.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{source}: cannot read the policy file ({exc.strerror})") from exc
    try:
        data = yaml.load(raw, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PolicyError(f"{source}: malformed YAML{at}: {problem}") from exc
    except RecursionError:
        raise PolicyError(f"{source}: malformed YAML: nested too deeply") from None
    return policy_from_mapping(
        data,
        source=source,
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
    reader = _Reader(source)
    root = reader.mapping(data, "")
    reader.only(
        root, "", {"version", "endpoint", "select", "filters", "protect", "limits", "retry"}
    )
    if "version" not in root:
        raise reader.error("version", "the key version: 1")
    if type(root["version"]) is not int or root["version"] != 1:
        raise reader.error("version", f"1, got {root['version']!r}")
    policy = Policy(
        selection=_selection(reader, root.get("select"), base_dir, ids_elsewhere),
        filters=_filters(reader, root.get("filters")),
        protect=_protect(reader, root.get("protect")),
        limits=_limits(reader, root.get("limits")),
        retry=_retry(reader, root.get("retry")),
        endpoint=reader.opt(root, "", "endpoint", reader.url),
        source=source,
    )
    if sha256 is None:  # only now: validation has refused keys json could not sort
        canonical = json.dumps(data, sort_keys=True, default=str).encode()
        sha256 = hashlib.sha256(canonical).hexdigest()
    return replace(policy, sha256=sha256)


def _selection(r: _Reader, data: object, base_dir: Path | None, ids_elsewhere: bool) -> Selection:
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


def _filters(r: _Reader, data: object) -> Filters:
    if data is None:
        return Filters()
    m = r.mapping(data, "filters")
    keys = {"statuses", "name_glob", "name_regex", "older_than", "created_before", "keep_latest"}
    r.only(m, "filters", keys)
    statuses = r.opt(m, "filters", "statuses", r.statuses)
    return Filters(
        statuses=statuses if statuses is not None else DELETABLE_STATUSES,
        name_glob=r.opt(m, "filters", "name_glob", r.string),
        name_regex=r.opt(m, "filters", "name_regex", r.regex),
        older_than_s=r.opt(m, "filters", "older_than", r.duration),
        created_before=r.opt(m, "filters", "created_before", r.timestamp),
        keep_latest=r.opt(m, "filters", "keep_latest", r.non_negative_int),
    )


def _protect(r: _Reader, data: object) -> Protect:
    if data is None:
        return Protect()
    m = r.mapping(data, "protect")
    r.only(m, "protect", {"ids", "name_globs"})
    return Protect(
        ids=frozenset(r.opt(m, "protect", "ids", r.id_list) or ()),
        name_globs=tuple(r.opt(m, "protect", "name_globs", r.string_list) or ()),
    )


def _limits(r: _Reader, data: object) -> Limits:
    if data is None:
        return Limits()
    m = r.mapping(data, "limits")
    r.only(m, "limits", {"rate", "concurrency", "max_deletions"})
    default = Limits()
    rate = r.opt(m, "limits", "rate", r.positive_number)
    concurrency = r.opt(m, "limits", "concurrency", r.positive_int)
    return Limits(
        rate=rate if rate is not None else default.rate,
        concurrency=concurrency if concurrency is not None else default.concurrency,
        max_deletions=r.opt(m, "limits", "max_deletions", r.non_negative_int),
    )


def _retry(r: _Reader, data: object) -> Retry:
    if data is None:
        return Retry()
    m = r.mapping(data, "retry")
    names = {
        "max_attempts": "max_attempts",
        "busy_interval": "busy_interval_s",
        "busy_deadline": "busy_deadline_s",
        "backoff_base": "backoff_base_s",
        "backoff_max": "backoff_max_s",
        "request_timeout": "request_timeout_s",
    }
    r.only(m, "retry", set(names))
    values: dict[str, Any] = {}
    for key, attr in names.items():
        convert = r.positive_int if key == "max_attempts" else r.duration
        value = r.opt(m, "retry", key, convert)
        if value is not None:
            values[attr] = value
    for key in ("busy_interval", "backoff_base", "request_timeout"):
        if values.get(names[key]) == 0:
            raise r.error(f"retry.{key}", "a duration above zero")
    return Retry(**values)


class _Reader:
    """Type checks that raise ``PolicyError`` naming the file and key path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, expected: str) -> PolicyError:
        where = f"{self.source}: {key}" if key else self.source
        return PolicyError(f"{where}: expected {expected}")

    def mapping(self, data: object, key: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.error(key or "(top level)", f"a mapping, got {_kind(data)}")
        return data

    def only(self, data: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            prefix = f"{key}." if key else ""
            raise PolicyError(
                f"{self.source}: {prefix}{unknown[0]}: unknown key "
                f"(allowed here: {', '.join(sorted(allowed))})"
            )

    def opt(
        self, data: Mapping[str, Any], section: str, key: str, convert: Callable[[object], T]
    ) -> T | None:
        if key not in data or data[key] is None:
            return None
        path = f"{section}.{key}" if section else key
        try:
            return convert(data[key])
        except ValueError as exc:
            raise self.error(path, f"{exc}, got {data[key]!r}") from None

    @staticmethod
    def string(value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a non-empty string")
        return value

    @staticmethod
    def url(value: object) -> str:
        text = _Reader.string(value)
        if not text.startswith(("https://", "http://")):
            raise ValueError("an http(s) URL such as https://nclue.apigw.ntruss.com/api/v1")
        return text.rstrip("/")

    @staticmethod
    def boolean(value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError("true or false")
        return value

    @staticmethod
    def string_list(value: object) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise ValueError("a list of non-empty strings")
        return list(value)

    @staticmethod
    def id_list(value: object) -> list[str]:
        if not isinstance(value, list):
            raise ValueError("a list of task IDs")
        ids = []
        for item in value:
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                raise ValueError("a list of task IDs (strings)")
            text = str(item).strip()
            if not valid_task_id(text):
                raise ValueError(f"task IDs of letters, digits, '-', '_' or '.'; bad: {text!r}")
            ids.append(text)
        return ids

    @staticmethod
    def statuses(value: object) -> frozenset[str]:
        items = _Reader.string_list(value)
        bad = [s for s in items if s not in DELETABLE_STATUSES]
        if bad or not items:
            busy = " (busy statuses are deferred automatically)" if set(bad) & BUSY_STATUSES else ""
            raise ValueError(f"a non-empty subset of {', '.join(sorted(DELETABLE_STATUSES))}{busy}")
        return frozenset(items)

    @staticmethod
    def regex(value: object) -> re.Pattern[str]:
        text = _Reader.string(value)
        try:
            return re.compile(text)
        except re.error as exc:
            raise ValueError(f"a valid regular expression ({exc})") from None
        except (OverflowError, RecursionError):
            raise ValueError("a regular expression Python can compile") from None

    @staticmethod
    def duration(value: object) -> float:
        return parse_duration(value)

    @staticmethod
    def timestamp(value: object) -> datetime:
        if isinstance(value, datetime):
            parsed = value
        elif isinstance(value, date):  # an unquoted YAML date: midnight UTC
            parsed = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
        elif isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError("an ISO 8601 time such as 2026-01-01T00:00:00Z") from None
        else:
            raise ValueError("an ISO 8601 time such as 2026-01-01T00:00:00Z")
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)

    @staticmethod
    def positive_number(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("a number above zero")
        number = _finite(value)
        if number is None or not number > 0:
            raise ValueError("a finite number above zero")
        return number

    @staticmethod
    def positive_int(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("a whole number of at least 1")
        return value

    @staticmethod
    def non_negative_int(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("a whole number of at least 0")
        return value


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
