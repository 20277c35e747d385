"""The policy loader: every documented key, every documented error, and nothing else raised."""

from __future__ import annotations

import hashlib
import operator
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanup.errors import PolicyError
from cleanup.policy import (
    Limits,
    Policy,
    Retry,
    load_policy,
    parse_duration,
    policy_from_mapping,
    valid_task_id,
)

BASE = "version: 1\nselect: {all: true}\n"
UTC = timezone.utc


def write(directory: Path, text: str | bytes, name: str = "policy.yaml") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# -- every key of the README's policy reference ------------------------------------------

LOADS = [
    # durations: every unit, fractions and plain numbers of seconds
    ("filters:\n  older_than: 500ms\n", "filters.older_than_s", 0.5),
    ("filters:\n  older_than: 90s\n", "filters.older_than_s", 90.0),
    ("filters:\n  older_than: 30m\n", "filters.older_than_s", 1800.0),
    ("filters:\n  older_than: 12h\n", "filters.older_than_s", 43200.0),
    ("filters:\n  older_than: 1.5h\n", "filters.older_than_s", 5400.0),
    ("filters:\n  older_than: 30d\n", "filters.older_than_s", 30 * 86400.0),
    ("filters:\n  older_than: 2w\n", "filters.older_than_s", 14 * 86400.0),
    ("filters:\n  older_than: 45\n", "filters.older_than_s", 45.0),
    ("filters:\n  older_than: 2.5\n", "filters.older_than_s", 2.5),
    ("filters:\n  older_than: 0\n", "filters.older_than_s", 0.0),
    ("filters:\n  older_than: ' 7 d '\n", "filters.older_than_s", 7 * 86400.0),
    # created_before: a string, a YAML timestamp, naive read as UTC, an offset kept
    (
        "filters:\n  created_before: '2026-01-01T00:00:00Z'\n",
        "filters.created_before",
        datetime(2026, 1, 1, tzinfo=UTC),
    ),
    (
        "filters:\n  created_before: 2026-01-01T00:00:00Z\n",
        "filters.created_before",
        datetime(2026, 1, 1, tzinfo=UTC),
    ),
    (
        "filters:\n  created_before: '2026-01-01T10:00:00'\n",
        "filters.created_before",
        datetime(2026, 1, 1, 10, tzinfo=UTC),
    ),
    (
        "filters:\n  created_before: 2026-01-01 10:00:00\n",
        "filters.created_before",
        datetime(2026, 1, 1, 10, tzinfo=UTC),
    ),
    (
        "filters:\n  created_before: '2026-01-01T09:00:00+09:00'\n",
        "filters.created_before",
        datetime(2026, 1, 1, tzinfo=UTC),
    ),
    # statuses, names, keep_latest
    ("", "filters.statuses", frozenset({"registered", "completed", "failed"})),
    ("filters:\n  statuses: [failed]\n", "filters.statuses", frozenset({"failed"})),
    (
        "filters:\n  statuses: [completed, failed, completed]\n",
        "filters.statuses",
        frozenset({"completed", "failed"}),
    ),
    ("filters:\n  name_glob: 'exp-*'\n", "filters.name_glob", "exp-*"),
    ("filters:\n  name_regex: '^exp-[0-9]+$'\n", "filters.name_regex.pattern", "^exp-[0-9]+$"),
    ("filters:\n  keep_latest: 3\n", "filters.keep_latest", 3),
    ("filters:\n  keep_latest: 0\n", "filters.keep_latest", 0),
    ("", "filters.keep_latest", None),
    ("filters: {}\n", "filters.older_than_s", None),
    ("filters:\n  name_glob: null\n", "filters.name_glob", None),
    # protect
    ("protect:\n  ids: [a-1, b_2]\n", "protect.ids", frozenset({"a-1", "b_2"})),
    ("protect:\n  ids: [123]\n", "protect.ids", frozenset({"123"})),
    ("protect:\n  name_globs: ['prod-*', 'live']\n", "protect.name_globs", ("prod-*", "live")),
    ("", "protect.ids", frozenset()),
    # limits
    ("", "limits", Limits()),
    ("limits:\n  rate: 0.5\n", "limits.rate", 0.5),
    ("limits:\n  rate: 3\n", "limits.rate", 3.0),
    ("limits:\n  concurrency: 2\n", "limits.concurrency", 2),
    ("limits:\n  concurrency: 2\n", "limits.rate", 1.0),
    ("limits:\n  max_deletions: 500\n", "limits.max_deletions", 500),
    ("limits:\n  max_deletions: 0\n", "limits.max_deletions", 0),
    # retry
    ("", "retry", Retry()),
    ("retry:\n  max_attempts: 3\n", "retry.max_attempts", 3),
    ("retry:\n  busy_interval: 20ms\n", "retry.busy_interval_s", 0.02),
    ("retry:\n  busy_deadline: 30m\n", "retry.busy_deadline_s", 1800.0),
    ("retry:\n  busy_deadline: 0s\n", "retry.busy_deadline_s", 0.0),
    ("retry:\n  backoff_base: 5ms\n", "retry.backoff_base_s", 0.005),
    ("retry:\n  backoff_max: 2m\n", "retry.backoff_max_s", 120.0),
    ("retry:\n  request_timeout: 10\n", "retry.request_timeout_s", 10.0),
    ("retry:\n  max_attempts: 2\n", "retry.busy_interval_s", 60.0),
    # endpoint and selection
    ("endpoint: https://example.test/api/v1/\n", "endpoint", "https://example.test/api/v1"),
    ("endpoint: http://127.0.0.1:8080/api/v1\n", "endpoint", "http://127.0.0.1:8080/api/v1"),
    ("", "endpoint", None),
    ("", "selection.all", True),
]


@pytest.mark.parametrize(
    ("extra", "attr", "expected"), LOADS, ids=[f"{a}={e!r}" for _, a, e in LOADS]
)
def test_documented_key_loads_into_dataclass(tmp_path: Path, extra: str, attr: str, expected):
    """Each documented policy key loads into the dataclass field it documents, with its unit."""
    policy = load_policy(write(tmp_path, BASE + extra))
    assert operator.attrgetter(attr)(policy) == expected


@pytest.mark.parametrize(
    ("select", "expected_ids", "expected_all"),
    [
        ("{ids: [t1, t2]}", ("t1", "t2"), False),
        ("{ids: [' t1 ', 42]}", ("t1", "42"), False),
        ("{all: true, ids: [t1]}", ("t1",), True),
        ("{all: false, ids: [t1]}", ("t1",), False),
    ],
)
def test_select_ids_and_all(tmp_path: Path, select: str, expected_ids, expected_all):
    """select.ids become a tuple of stripped string IDs next to select.all."""
    policy = load_policy(write(tmp_path, f"version: 1\nselect: {select}\n"))
    assert policy.selection.ids == expected_ids
    assert policy.selection.all is expected_all
    assert policy.selection.ids_file is None


def test_ids_file_is_relative_to_the_policy_directory(tmp_path: Path):
    """select.ids_file is resolved against the policy file's directory, not the cwd."""
    path = write(tmp_path, "version: 1\nselect:\n  ids_file: lists/ids.txt\n", "conf/p.yaml")
    policy = load_policy(path)
    assert policy.selection.ids_file == tmp_path / "conf" / "lists" / "ids.txt"
    assert policy.selection.all is False


def test_ids_elsewhere_allows_a_policy_without_its_own_selection(tmp_path: Path):
    """With IDs from --ids-from or a plan, a policy may omit select or leave it empty."""
    for text in ("version: 1\n", "version: 1\nselect: {}\n", "version: 1\nselect: {all: false}\n"):
        policy = load_policy(write(tmp_path, text), ids_elsewhere=True)
        assert policy.selection.all is False
        assert policy.selection.ids == ()


def test_policy_records_its_source_path(tmp_path: Path):
    """A loaded policy names the file it came from (for the audit log and errors)."""
    path = write(tmp_path, BASE)
    policy = load_policy(path)
    assert isinstance(policy, Policy)
    assert policy.source == str(path)


def test_bundled_example_policies_load():
    """Every example policy in config/ and the demo policy passes the loader."""
    root = Path(__file__).resolve().parent.parent
    paths = [*sorted((root / "config").glob("*.yaml")), root / "cleanup/data/demo-policy.yaml"]
    for path in paths:
        if path.exists():
            load_policy(path, ids_elsewhere=True)


# -- the same file, the same sha256 --------------------------------------------------------


def test_same_file_same_sha256_changed_file_different(tmp_path: Path):
    """The policy's sha256 is the file's bytes: equal files agree, any edit changes it."""
    first = load_policy(write(tmp_path, BASE, "a.yaml"))
    again = load_policy(write(tmp_path, BASE, "b.yaml"))
    edited = load_policy(write(tmp_path, BASE + "# reviewed\n", "c.yaml"))
    assert first.sha256 == again.sha256 == hashlib.sha256(BASE.encode()).hexdigest()
    assert edited.sha256 != first.sha256


def test_mapping_sha256_ignores_key_order_but_not_values():
    """A policy given as a mapping hashes its canonical JSON: key order does not matter."""
    a = policy_from_mapping({"version": 1, "select": {"all": True, "ids": ["x"]}})
    b = policy_from_mapping({"select": {"ids": ["x"], "all": True}, "version": 1})
    c = policy_from_mapping({"version": 1, "select": {"all": True, "ids": ["y"]}})
    assert a.sha256 == b.sha256
    assert a.sha256 != c.sha256


# -- errors: file, key path, expectation --------------------------------------------------

ERRORS = [
    # unknown keys, top level and nested
    ("selec: {all: true}\nversion: 1\n", "selec", "unknown key"),
    (BASE + "filters:\n  name_glb: 'exp-*'\n", "filters.name_glb", "unknown key"),
    (BASE + "limits:\n  rates: 1\n", "limits.rates", "unknown key"),
    (BASE + "retry:\n  busy_interva: 1s\n", "retry.busy_interva", "unknown key"),
    (BASE + "protect:\n  name_glob: ['a']\n", "protect.name_glob", "unknown key"),
    ("version: 1\nselect: {all: true, id: [a]}\n", "select.id", "unknown key"),
    # wrong types
    ("- version\n", "(top level)", "a mapping"),
    ("", "(top level)", "a mapping, got nothing"),
    ("just text\n", "(top level)", "a mapping, got str"),
    (BASE + "filters: [a]\n", "filters", "a mapping"),
    (BASE + "limits: 5\n", "limits", "a mapping"),
    (BASE + "retry: fast\n", "retry", "a mapping"),
    (BASE + "protect: prod-*\n", "protect", "a mapping"),
    ("version: 1\nselect: [a]\n", "select", "a mapping"),
    ("version: 1\nselect: {all: 'yes'}\n", "select.all", "true or false"),
    ("version: 1\nselect: {all: 1}\n", "select.all", "true or false"),
    ("version: 1\nselect: {ids: t1}\n", "select.ids", "a list of task IDs"),
    ("version: 1\nselect: {ids_file: 5}\n", "select.ids_file", "a non-empty string"),
    ("version: 1\nselect: {ids_file: ' '}\n", "select.ids_file", "a non-empty string"),
    (BASE + "filters:\n  statuses: completed\n", "filters.statuses", "a list"),
    (BASE + "filters:\n  name_glob: 5\n", "filters.name_glob", "a non-empty string"),
    (BASE + "filters:\n  name_glob: ''\n", "filters.name_glob", "a non-empty string"),
    (BASE + "filters:\n  name_regex: [a]\n", "filters.name_regex", "a non-empty string"),
    (BASE + "filters:\n  created_before: 5\n", "filters.created_before", "ISO 8601"),
    (BASE + "filters:\n  created_before: tomorrow\n", "filters.created_before", "ISO 8601"),
    (BASE + "filters:\n  keep_latest: '3'\n", "filters.keep_latest", "whole number"),
    (BASE + "filters:\n  keep_latest: 1.5\n", "filters.keep_latest", "whole number"),
    (BASE + "filters:\n  keep_latest: -1\n", "filters.keep_latest", "at least 0"),
    (BASE + "protect:\n  ids: a\n", "protect.ids", "a list of task IDs"),
    (BASE + "protect:\n  name_globs: prod-*\n", "protect.name_globs", "a list"),
    (BASE + "protect:\n  name_globs: [1]\n", "protect.name_globs", "non-empty strings"),
    (BASE + "protect:\n  name_globs: ['']\n", "protect.name_globs", "non-empty strings"),
    (BASE + "endpoint: ftp://example.test\n", "endpoint", "http(s) URL"),
    (BASE + "endpoint: 8080\n", "endpoint", "a non-empty string"),
    (BASE + "limits:\n  max_deletions: -1\n", "limits.max_deletions", "at least 0"),
    (BASE + "retry:\n  max_attempts: 2.5\n", "retry.max_attempts", "whole number"),
    # bad durations
    (BASE + "filters:\n  older_than: 30x\n", "filters.older_than", "'30x'"),
    (BASE + "filters:\n  older_than: 30\u00a0days\n", "filters.older_than", "a duration"),
    (BASE + "filters:\n  older_than: -5\n", "filters.older_than", "a duration"),
    (BASE + "filters:\n  older_than: -5s\n", "filters.older_than", "a duration"),
    (BASE + "filters:\n  older_than: d\n", "filters.older_than", "a duration"),
    (BASE + "filters:\n  older_than: .nan\n", "filters.older_than", "a duration"),
    (BASE + "filters:\n  older_than: [30d]\n", "filters.older_than", "a duration"),
    (BASE + "retry:\n  busy_interval: soon\n", "retry.busy_interval", "a duration"),
    (BASE + "retry:\n  busy_deadline: 1y\n", "retry.busy_deadline", "a duration"),
    (BASE + "retry:\n  backoff_max: ''\n", "retry.backoff_max", "a duration"),
    (BASE + "retry:\n  busy_interval: 0s\n", "retry.busy_interval", "above zero"),
    (BASE + "retry:\n  backoff_base: 0\n", "retry.backoff_base", "above zero"),
    (BASE + "retry:\n  request_timeout: 0ms\n", "retry.request_timeout", "above zero"),
    # regexes that do not compile
    (BASE + "filters:\n  name_regex: 'exp-('\n", "filters.name_regex", "regular expression"),
    (BASE + "filters:\n  name_regex: '*exp'\n", "filters.name_regex", "regular expression"),
    (BASE + "filters:\n  name_regex: '(?<=a+)b'\n", "filters.name_regex", "regular expression"),
    # statuses: busy ones are not selectable, nor unknown ones, nor none at all
    (BASE + "filters:\n  statuses: [in_progress]\n", "filters.statuses", "deferred automatically"),
    (BASE + "filters:\n  statuses: [failed, pending]\n", "filters.statuses", "non-empty subset"),
    (BASE + "filters:\n  statuses: [deleted]\n", "filters.statuses", "non-empty subset"),
    (BASE + "filters:\n  statuses: [Completed]\n", "filters.statuses", "non-empty subset"),
    (BASE + "filters:\n  statuses: []\n", "filters.statuses", "non-empty subset"),
    # empty selections
    ("version: 1\n", "select", "at least one of"),
    ("version: 1\nselect:\n", "select", "at least one of"),
    ("version: 1\nselect: {}\n", "select", "at least one of"),
    ("version: 1\nselect: {all: false}\n", "select", "at least one of"),
    ("version: 1\nselect: {ids: []}\n", "select", "at least one of"),
    # limits that make no sense
    (BASE + "limits:\n  rate: 0\n", "limits.rate", "above zero"),
    (BASE + "limits:\n  rate: -1\n", "limits.rate", "above zero"),
    (BASE + "limits:\n  rate: .inf\n", "limits.rate", "finite"),
    (BASE + "limits:\n  rate: .nan\n", "limits.rate", "above zero"),
    (BASE + "limits:\n  rate: '1'\n", "limits.rate", "a number"),
    (BASE + "limits:\n  concurrency: 0\n", "limits.concurrency", "at least 1"),
    (BASE + "limits:\n  concurrency: -3\n", "limits.concurrency", "at least 1"),
    (BASE + "retry:\n  max_attempts: 0\n", "retry.max_attempts", "at least 1"),
    # a bool where a number is expected
    (BASE + "limits:\n  rate: true\n", "limits.rate", "a number"),
    (BASE + "limits:\n  concurrency: true\n", "limits.concurrency", "whole number"),
    (BASE + "limits:\n  max_deletions: false\n", "limits.max_deletions", "whole number"),
    (BASE + "filters:\n  keep_latest: true\n", "filters.keep_latest", "whole number"),
    (BASE + "filters:\n  older_than: true\n", "filters.older_than", "a duration"),
    (BASE + "retry:\n  max_attempts: true\n", "retry.max_attempts", "whole number"),
    (BASE + "retry:\n  busy_deadline: false\n", "retry.busy_deadline", "a duration"),
    # the version
    ("select: {all: true}\n", "version", "version: 1"),
    ("version: 2\nselect: {all: true}\n", "version", "1, got 2"),
    ("version: '1'\nselect: {all: true}\n", "version", "1, got '1'"),
    ("version: true\nselect: {all: true}\n", "version", "1, got True"),
    ("version: null\nselect: {all: true}\n", "version", "1, got None"),
    # task IDs that are not IDs (and would not be safe in a URL path)
    ("version: 1\nselect: {ids: ['bad id']}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: ['../etc']}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: ['a/b']}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: ['a?x=1']}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: ['']}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: [1.5]}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: [true]}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: [null]}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: [[a]]}\n", "select.ids", "task IDs"),
    ("version: 1\nselect: {ids: ['" + "x" * 129 + "']}\n", "select.ids", "task IDs"),
    (BASE + "protect:\n  ids: ['a b']\n", "protect.ids", "task IDs"),
    (BASE + "protect:\n  ids: ['-a']\n", "protect.ids", "task IDs"),
    (BASE + "protect:\n  ids: ['t%2F1']\n", "protect.ids", "task IDs"),
]


@pytest.mark.parametrize(
    ("text", "key", "expected"), ERRORS, ids=[f"{k}:{e}" for _, k, e in ERRORS]
)
def test_invalid_policy_names_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
):
    """An invalid policy raises PolicyError (exit 2) naming the file, the key path and why."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert expected in message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("version: 1\nselect:\n  all: true\n  ids: [a, b\n", 5),
        ("version: 1\nselect: {all: true}\nfilters:\n  statuses: [failed]\n   keep_latest: 3\n", 5),
        ("version: 1\nselect: {all: true\n", 3),
        ("version: 1\n\tselect: {all: true}\n", 2),
        ("version: 1\nselect: {all: true}\nselect: *nope\n", 3),
    ],
)
def test_malformed_yaml_names_file_and_line(tmp_path: Path, text: str, line: int):
    """Malformed YAML is a PolicyError that names the file and the line of the problem."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: malformed YAML at line {line}, "), message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    "raw",
    [b"version: 1\n\xff\xfe\n", b"version: 1\x00\n", b"--- 1\n--- 2\n"],
    ids=["not-utf8", "nul-byte", "two-documents"],
)
def test_unreadable_yaml_is_a_policy_error(tmp_path: Path, raw: bytes):
    """Bytes YAML cannot read at all are still a PolicyError naming the file."""
    path = write(tmp_path, raw)
    with pytest.raises(PolicyError, match="malformed YAML") as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_missing_file_is_a_policy_error(tmp_path: Path):
    """A policy file that does not exist is a PolicyError naming the path (exit 2)."""
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: cannot read the policy file")
    assert caught.value.exit_code == 2


def test_directory_instead_of_file_is_a_policy_error(tmp_path: Path):
    """A directory given as the policy is a PolicyError, not an IsADirectoryError."""
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path)


def test_mapping_errors_name_the_given_source():
    """policy_from_mapping errors name the caller's source label and the key path."""
    with pytest.raises(PolicyError, match=r"^airflow-dag: filters\.keep_latest: "):
        policy_from_mapping(
            {"version": 1, "select": {"all": True}, "filters": {"keep_latest": "3"}},
            source="airflow-dag",
        )


# -- parse_duration and valid_task_id directly ----------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1ms", 0.001),
        ("90s", 90.0),
        ("2m", 120.0),
        ("12h", 43200.0),
        ("30d", 2592000.0),
        ("2w", 1209600.0),
        ("0.5s", 0.5),
        (" 3 h ", 10800.0),
        (7, 7.0),
        (0, 0.0),
        (0.25, 0.25),
    ],
)
def test_parse_duration_units(value, seconds: float):
    """parse_duration turns a number and a unit (or plain seconds) into seconds."""
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    ["", "30", "30x", "s", "1.s", "-1s", "1e3s", "1 d 2h", "30D", True, False, -1, None, []],
)
def test_parse_duration_rejects(value):
    """parse_duration raises ValueError for anything that is not a non-negative duration."""
    with pytest.raises(ValueError, match="a duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("t0000", True),
        ("a", True),
        ("9", True),
        ("Task.v2_final-1", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("", False),
        ("-a", False),
        (".hidden", False),
        ("_a", False),
        ("a b", False),
        ("a/b", False),
        ("..", False),
        ("a%2F", False),
        ("caf\u00e9", False),
        (" t1", False),
        ("t1\n", False),
    ],
)
def test_valid_task_id(text: str, valid: bool):
    """valid_task_id accepts 1-128 URL-safe characters starting with a letter or digit only."""
    assert valid_task_id(text) is valid


# -- regressions: pathological input (found by these tests, fixed in policy.py) ------------


def test_created_before_as_yaml_date(tmp_path: Path):
    """created_before: 2026-01-01 (a YAML date, unquoted) loads like the quoted string does."""
    quoted = load_policy(write(tmp_path, BASE + "filters:\n  created_before: '2026-01-01'\n"))
    assert quoted.filters.created_before == datetime(2026, 1, 1, tzinfo=UTC)
    path = write(tmp_path, BASE + "filters:\n  created_before: 2026-01-01\n", "date.yaml")
    assert load_policy(path).filters.created_before == datetime(2026, 1, 1, tzinfo=UTC)


HUGE = "1" + "0" * 400


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(BASE + f"limits:\n  rate: {HUGE}\n", id="huge-int-rate"),
        pytest.param(BASE + f"filters:\n  older_than: {HUGE}\n", id="huge-int-duration"),
        pytest.param(BASE + "filters:\n  name_regex: 'a{99999999999}'\n", id="regex-repeat"),
        pytest.param(
            BASE + "filters:\n  name_regex: '" + "(" * 3000 + ")" * 3000 + "'\n",
            id="regex-nesting",
        ),
        pytest.param("[" * 5000 + "]" * 5000, id="deep-yaml"),
    ],
)
def test_pathological_values_are_policy_errors(tmp_path: Path, text: str):
    """Huge numbers, unbuildable regexes and absurd nesting are PolicyErrors, not crashes."""
    with pytest.raises(PolicyError):
        load_policy(write(tmp_path, text))


@pytest.mark.parametrize(
    "section",
    [
        pytest.param("filters:\n  older_than: .inf\n", id="older_than-inf"),
        pytest.param("filters:\n  older_than: 1000000d\n", id="older_than-2738-years"),
        pytest.param("filters:\n  older_than: " + HUGE + "s\n", id="older_than-1e400s"),
        pytest.param("retry:\n  busy_interval: .inf\n", id="busy_interval-inf"),
        pytest.param("retry:\n  busy_interval: 99999999999w\n", id="busy_interval-huge"),
    ],
)
def test_durations_beyond_datetime_range_are_rejected(tmp_path: Path, section: str):
    """A duration no datetime arithmetic can use (infinite, or thousands of years) is refused."""
    path = write(tmp_path, BASE + section)
    try:
        load_policy(path)
    except PolicyError as exc:
        assert str(exc).startswith(f"{path}: ")
    else:
        raise AssertionError("an unusable duration was accepted")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            BASE + "protect:\n  name_globs: ['prod-*']\nprotect:\n  ids: [t1]\n", id="protect"
        ),
        pytest.param(BASE + "filters:\n  older_than: 30d\n  older_than: 1s\n", id="older_than"),
    ],
)
def test_duplicate_keys_are_policy_errors(tmp_path: Path, text: str):
    """A key given twice is a PolicyError naming it, not a silent last-one-wins (lost protect)."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_mapping_with_mixed_key_types_is_a_policy_error():
    """A nested mapping with non-string keys is a PolicyError, not json.dumps' TypeError."""
    with pytest.raises(PolicyError, match=r"select\.1: unknown key"):
        policy_from_mapping({"version": 1, "select": {"all": True, 1: "x"}})


# -- nothing but Policy or PolicyError ------------------------------------------------------

REAL_KEYS = {
    "": ["version", "endpoint", "select", "filters", "protect", "limits", "retry"],
    "select": ["all", "ids", "ids_file"],
    "filters": [
        "statuses",
        "name_glob",
        "name_regex",
        "older_than",
        "created_before",
        "keep_latest",
    ],
    "protect": ["ids", "name_globs"],
    "limits": ["rate", "concurrency", "max_deletions"],
    "retry": [
        "max_attempts",
        "busy_interval",
        "busy_deadline",
        "backoff_base",
        "backoff_max",
        "request_timeout",
    ],
}

# Integers and floats are unrestricted: huge numbers must be PolicyErrors too.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
)
all_keys = [key for keys in REAL_KEYS.values() for key in keys]
str_keys = st.sampled_from(all_keys) | st.text(max_size=8)
any_keys = str_keys | st.integers(-3, 3) | st.booleans() | st.none() | st.floats(-2, 2)


def _trees(keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(keys, children, max_size=5),
        max_leaves=12,
    )


durations = (
    st.from_regex(r"\A ?[0-9]{1,4}(\.[0-9]{1,2})? ?(ms|s|m|h|d|w|x|) ?\Z")
    | st.integers(-5, 10**6)
    | st.floats(-1, 1e7)
    | st.sampled_from(["30d", "90s", "0s", "1.5h", "30x", "-1s", "", "2w", "20ms"])
)
patterns = st.sampled_from(
    ["exp-*", "^exp-[0-9]+$", "(", "*", "[a-", "prod-?", "x{2,1}"]
) | st.text(alphabet="ab-*?[]()^$.+{}|\\0123", max_size=8)
ids = st.lists(
    st.sampled_from(["t1", "t2", "T-3.x", "bad id", "a/b", 7, 1.5, True, None, "", " t4 "]),
    max_size=4,
)
times = (
    st.sampled_from(
        ["2026-01-01T00:00:00Z", "2026-01-01", "2026-13-01", "yesterday", "2026-01-01T09:00+09:00"]
    )
    | st.datetimes(timezones=st.none() | st.just(timezone.utc))
    | st.dates()
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "all": st.booleans(),
    "ids": ids,
    "ids_file": st.sampled_from(["ids.txt", "lists/ids.txt", "../ids.txt", "", " "]),
    "statuses": st.lists(
        st.sampled_from(["registered", "completed", "failed", "pending", "in_progress", "x"]),
        max_size=4,
    ),
    "name_glob": patterns,
    "name_regex": patterns,
    "older_than": durations,
    "created_before": times,
    "keep_latest": st.integers(-2, 10),
    "name_globs": st.lists(patterns | st.integers(), max_size=3),
    "rate": st.floats(-1, 1e4) | st.integers(-1, 10**4),
    "concurrency": st.integers(-1, 64),
    "max_deletions": st.integers(-1, 10**6),
    "max_attempts": st.integers(-1, 10),
    **{key: durations for key in REAL_KEYS["retry"] if key != "max_attempts"},
}


def _often(draw: st.DrawFn, out_of: int = 10) -> bool:
    """True but once in ``out_of`` draws (shrinks towards True: a plausible policy)."""
    return draw(st.sampled_from([True] * (out_of - 1) + [False]))


@st.composite
def policy_like(draw: st.DrawFn, keys: st.SearchStrategy[Any]) -> Any:
    """Mostly a plausible policy: real sections and keys, plausible values, some junk."""
    junk = _trees(keys)
    if not _often(draw, 20):
        return draw(junk)
    doc: dict[Any, Any] = {}
    if _often(draw):
        doc["version"] = 1 if _often(draw) else draw(junk)
    if not _often(draw, 4):
        doc["endpoint"] = draw(st.sampled_from(["https://x.test/api/v1/", "ftp://x", ""]) | junk)
    for section in ("select", "filters", "protect", "limits", "retry"):
        if not _often(draw, 10 if section == "select" else 2):
            continue
        if not _often(draw, 20):
            doc[section] = draw(junk)
            continue
        body: dict[Any, Any] = {}
        if section == "select" and _often(draw, 3):
            body["all"] = True
        for key in draw(st.sets(st.sampled_from(REAL_KEYS[section]))):
            body[key] = draw(PLAUSIBLE[key]) if _often(draw, 8) else draw(junk)
        if not _often(draw, 20):
            body[draw(keys)] = draw(junk)
        doc[section] = body
    if not _often(draw, 20):
        doc[draw(keys)] = draw(junk)
    return doc


def _only_policy_or_policy_error(call: Any) -> None:
    try:
        result = call()
    except PolicyError as exc:
        assert str(exc)
    else:
        assert isinstance(result, Policy)


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@settings(max_examples=200, deadline=None)
@given(data=policy_like(str_keys), ids_elsewhere=st.booleans())
def test_policy_from_mapping_returns_policy_or_policy_error(data: Any, ids_elsewhere: bool):
    """policy_from_mapping on any parsed data returns a Policy or raises PolicyError, only."""
    _only_policy_or_policy_error(
        lambda: policy_from_mapping(data, source="<h>", ids_elsewhere=ids_elsewhere)
    )


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=policy_like(any_keys), style=st.sampled_from(["block", "flow"]))
def test_load_policy_of_dumped_yaml_returns_policy_or_policy_error(data: Any, style: str):
    """load_policy of any YAML document (mixed key types too) gives a Policy or a PolicyError."""
    text = yaml.safe_dump(data, default_flow_style=style == "flow", allow_unicode=True)
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), text)
        _only_policy_or_policy_error(lambda: load_policy(path))


yaml_ish_text = st.text(
    alphabet=st.sampled_from(list("version: 1\nselect{all:true}[ids]-'\"#&*!|>%@`?,.0123456789"))
    | st.characters(),
    max_size=200,
)


@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")
@settings(max_examples=200, deadline=None)
@given(
    prefix=st.sampled_from(["", BASE, "version: 1\n", "version: 1\nselect:\n  "]),
    body=yaml_ish_text,
)
def test_load_policy_of_arbitrary_text_returns_policy_or_policy_error(prefix: str, body: str):
    """load_policy of arbitrary text returns a Policy or raises PolicyError, never anything else."""
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), (prefix + body).encode("utf-8", "surrogatepass"))
        _only_policy_or_policy_error(lambda: load_policy(path))

