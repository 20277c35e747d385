"""Reading a policy file safely, and the typed checks that name the key path on failure.

``read_policy_yaml`` refuses a file over 1 MB without parsing it, and a document whose
aliases would expand past 1 MB before constructing it (a "billion laughs" file never
expands). ``Reader`` turns each value into its type or raises ``PolicyError`` naming the
file, the key path and what was expected.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .errors import PolicyError
from .model import BUSY_STATUSES, normalize_status, valid_task_id
from .times import parse_duration, parse_policy_time, parse_zone

T = TypeVar("T")

MAX_POLICY_BYTES = 1_000_000
SELECTABLE_STATUSES = frozenset({"registered", "completed", "failed"})
_SHOWN_CHARS = 80
_NODE_COST = 8  # a node's share of the expansion budget beyond its text


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice (the last would silently win,
    and a second ``protect:`` block would drop the first one's rules)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {shown(key)} is given twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_policy_yaml(path: str | Path) -> tuple[bytes, object]:
    """The file's bytes and its parsed YAML; ``PolicyError`` for anything unreadable."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"{source}: cannot read the policy file ({exc.strerror})") from exc
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{source}: the policy file is over 1 MB; refused unread")
    try:
        too_big, data = _parse(raw)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise PolicyError(f"{source}: malformed YAML{at}: {problem}") from None
    except RecursionError:
        raise PolicyError(f"{source}: malformed YAML: nested too deeply") from None
    except ValueError:  # e.g. an integer of more than 4,300 digits
        raise PolicyError(f"{source}: malformed YAML: a value Python cannot build") from None
    if too_big:
        raise PolicyError(f"{source}: the YAML's aliases expand past 1 MB; refused unexpanded")
    return raw, data


def _parse(raw: bytes) -> tuple[bool, object]:
    """Compose the node graph, measure it, and construct it only if it is small enough."""
    loader = _StrictLoader(raw)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}, set()) > MAX_POLICY_BYTES:
            return True, None
        return False, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Characters the document would hold with every alias expanded, counted once per
    distinct node (memoized), so a few lines cannot make the count itself slow."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        return MAX_POLICY_BYTES + 1  # a recursive structure: refuse it like a huge one
    open_nodes.add(key)
    if isinstance(node, yaml.ScalarNode):
        size = _NODE_COST + len(node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = _NODE_COST + sum(_expanded_size(child, sizes, open_nodes) for child in node.value)
    else:
        size = _NODE_COST + sum(
            _expanded_size(k, sizes, open_nodes) + _expanded_size(v, sizes, open_nodes)
            for k, v in node.value
        )
    open_nodes.discard(key)
    sizes[key] = size
    return size


def shown(value: object) -> str:
    """A value as an error message may echo it: ``repr``, cut to 80 characters."""
    try:
        text = repr(value)
    except ValueError:  # an int too long for str()
        return "a number too long to show"
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


class Reader:
    """Type checks that raise ``PolicyError`` naming the file and key path.

    Each converter takes the raw value and returns the typed one or raises ``ValueError``
    whose message completes "expected ..."; ``opt`` adds the path and what was given.
    """

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, key: str, expected: str) -> PolicyError:
        where = f"{self.source}: {key}" if key else self.source
        return PolicyError(f"{where}: expected {expected}")

    def mapping(self, data: object, key: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.error(key or "(top level)", f"a mapping, got {kind(data)}")
        return data

    def section(
        self, data: Mapping[str, Any], key: str, allowed: set[str]
    ) -> Mapping[str, Any] | None:
        """The sub-mapping ``key`` with only ``allowed`` keys, or ``None`` when absent."""
        if data.get(key) is None:
            return None
        sub = self.mapping(data[key], key)
        self.only(sub, key, allowed)
        return sub

    def only(self, data: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            prefix = f"{key}." if key else ""
            raise PolicyError(
                f"{self.source}: {prefix}{unknown[0][:_SHOWN_CHARS]}: unknown key "
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
            raise self.error(path, f"{exc}, got {shown(data[key])}") from None

    @staticmethod
    def string(value: object) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("a non-empty string")
        return value

    @staticmethod
    def url(value: object) -> str:
        text = Reader.string(value)
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
    def key_ids(value: object) -> frozenset[str]:
        items = Reader.string_list(value)
        if not items:
            raise ValueError("a non-empty list of access key IDs")
        return frozenset(item.strip() for item in items)

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
                raise ValueError(
                    f"task IDs of letters, digits, '-', '_' or '.'; bad: {shown(text)}"
                )
            ids.append(text)
        return ids

    @staticmethod
    def statuses(value: object) -> frozenset[str]:
        """Lower-cased, ``complete`` read as ``completed`` (the API spells it both ways)."""
        items = [str(normalize_status(s)) for s in Reader.string_list(value)]
        bad = [s for s in items if s not in SELECTABLE_STATUSES]
        if bad or not items:
            busy = " (busy statuses are deferred automatically)" if set(bad) & BUSY_STATUSES else ""
            raise ValueError(
                f"a non-empty subset of {', '.join(sorted(SELECTABLE_STATUSES))}{busy}"
            )
        return frozenset(items)

    @staticmethod
    def regex(value: object) -> re.Pattern[str]:
        text = Reader.string(value)
        try:
            return re.compile(text)
        except re.error as exc:
            raise ValueError(f"a valid regular expression ({exc})") from None
        except (OverflowError, RecursionError):
            raise ValueError("a regular expression Python can compile") from None

    @staticmethod
    def family_regex(value: object) -> re.Pattern[str]:
        pattern = Reader.regex(value)
        if pattern.groups < 1 and "family" not in pattern.groupindex:
            raise ValueError("a regular expression with a group (the family), e.g. ^(.+)-v[0-9]+$")
        return pattern

    @staticmethod
    def duration(value: object) -> float:
        return parse_duration(value)

    @staticmethod
    def positive_duration(value: object) -> float:
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("a duration above zero")
        return seconds

    timestamp = staticmethod(parse_policy_time)
    zone = staticmethod(parse_zone)

    @staticmethod
    def number(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("a number")
        try:
            return float(value)
        except OverflowError:
            raise ValueError("a finite number") from None

    @staticmethod
    def positive_number(value: object) -> float:
        number = Reader.number(value)
        if not (number > 0 and math.isfinite(number)):
            raise ValueError("a finite number above zero")
        return number

    @staticmethod
    def percent_above_zero(value: object) -> float:
        number = Reader.number(value)
        if not 0 < number <= 100:
            raise ValueError("a percentage above 0 and at most 100")
        return number

    @staticmethod
    def percent(value: object) -> float:
        number = Reader.number(value)
        if not 0 <= number <= 100:
            raise ValueError("a percentage from 0 to 100")
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
