"""The policy loader: every documented key, every documented error, and nothing else raised."""

from __future__ import annotations

import hashlib
import operator
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleanup.errors import PolicyError
from cleanup.policy import (
    Account,
    Api,
    Limits,
    Policy,
    Retry,
    Review,
    load_policy,
    parse_duration,
    policy_from_mapping,
    valid_task_id,
)

BASE = "version: 1\nselect: {all: true}\n"
UTC = UTC


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
    # durations: every unit and fractions (a bare number is an error: see ERRORS)
    ("filters:\n  older_than: 500ms\n", "filters.older_than_s", 0.5),
    ("filters:\n  older_than: 90s\n", "filters.older_than_s", 90.0),
    ("filters:\n  older_than: 30m\n", "filters.older_than_s", 1800.0),
    ("filters:\n  older_than: 12h\n", "filters.older_than_s", 43200.0),
    ("filters:\n  older_than: 1.5h\n", "filters.older_than_s", 5400.0),
    ("filters:\n  older_than: 30d\n", "filters.older_than_s", 30 * 86400.0),
    ("filters:\n  older_than: 2w\n", "filters.older_than_s", 14 * 86400.0),
    ("filters:\n  older_than: 0s\n", "filters.older_than_s", 0.0),
    ("filters:\n  older_than: ' 7 d '\n", "filters.older_than_s", 7 * 86400.0),
    # created_before: a string or a YAML timestamp with a zone, in UTC (zone-less: ERRORS)
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
        "filters:\n  created_before: 2026-01-01 10:00:00+01:00\n",
        "filters.created_before",
        datetime(2026, 1, 1, 9, tzinfo=UTC),
    ),
    (
        "filters:\n  created_before: '2026-01-01T09:00:00+09:00'\n",
        "filters.created_before",
        datetime(2026, 1, 1, tzinfo=UTC),
    ),
    # statuses: default completed and failed; case-insensitive; complete means completed
    ("", "filters.statuses", frozenset({"completed", "failed"})),
    ("filters: {}\n", "filters.statuses", frozenset({"completed", "failed"})),
    ("filters:\n  statuses: [Completed]\n", "filters.statuses", frozenset({"completed"})),
    ("filters:\n  statuses: [complete]\n", "filters.statuses", frozenset({"completed"})),
    (
        "filters:\n  statuses: [COMPLETE, Failed, completed]\n",
        "filters.statuses",
        frozenset({"completed", "failed"}),
    ),
    (
        "filters:\n  statuses: [registered, completed, failed]\n",
        "filters.statuses",
        frozenset({"registered", "completed", "failed"}),
    ),
    # names, keep_latest
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
    ("retry:\n  request_timeout: 10s\n", "retry.request_timeout_s", 10.0),
    ("retry:\n  max_attempts: 2\n", "retry.busy_interval_s", 60.0),
    # endpoint and selection
    ("endpoint: https://example.test/api/v1/\n", "endpoint", "https://example.test/api/v1"),
    ("endpoint: http://127.0.0.1:8080/api/v1\n", "endpoint", "http://127.0.0.1:8080/api/v1"),
    ("", "endpoint", None),
    ("", "selection.all", True),
    # filters.keep_latest_by: a regex with group 1 or a group named family
    ("filters:\n  keep_latest: 3\n", "filters.keep_latest_by", None),
    (
        "filters:\n  keep_latest: 3\n  keep_latest_by: '^(.+)-v[0-9]+$'\n",
        "filters.keep_latest_by.pattern",
        "^(.+)-v[0-9]+$",
    ),
    (
        "filters:\n  keep_latest: 1\n  keep_latest_by: '^(?P<family>[a-z]+)-'\n",
        "filters.keep_latest_by.groupindex",
        {"family": 1},
    ),
    (
        "filters:\n  keep_latest: 0\n  keep_latest_by: '(v)(?P<family>.+)'\n",
        "filters.keep_latest_by.groups",
        2,
    ),
    # account
    ("", "account", Account()),
    ("", "account.access_key_ids", None),
    ("account:\n", "account.access_key_ids", None),
    (
        "account:\n  access_key_ids: [ncp_iam_A, ' ncp_iam_B ']\n",
        "account.access_key_ids",
        frozenset({"ncp_iam_A", "ncp_iam_B"}),
    ),
    # protect: ids casefolded, referenced (default true), used_within
    ("protect:\n  ids: [T-1, t-1, Ab]\n", "protect.ids", frozenset({"t-1", "ab"})),
    ("", "protect.referenced", True),
    ("protect:\n  referenced: false\n", "protect.referenced", False),
    ("protect:\n  name_globs: [a]\n", "protect.referenced", True),
    ("", "protect.used_within_s", None),
    ("protect:\n  used_within: 14d\n", "protect.used_within_s", 14 * 86400.0),
    # limits: the caps and the circuit breaker
    ("", "limits.max_deletions_percent", 50.0),
    ("limits:\n  max_deletions_percent: 100\n", "limits.max_deletions_percent", 100.0),
    ("limits:\n  max_deletions_percent: 0.5\n", "limits.max_deletions_percent", 0.5),
    ("", "limits.max_deletions_per_run", None),
    ("limits:\n  max_deletions_per_run: 1\n", "limits.max_deletions_per_run", 1),
    ("limits:\n  max_deletions_per_run: 200\n", "limits.max_deletions_per_run", 200),
    ("", "limits.max_failure_percent", 20.0),
    ("limits:\n  max_failure_percent: 0\n", "limits.max_failure_percent", 0.0),
    ("limits:\n  max_failure_percent: 100\n", "limits.max_failure_percent", 100.0),
    ("limits:\n  max_failure_percent: 12.5\n", "limits.max_failure_percent", 12.5),
    ("limits:\n  max_deletions: null\n", "limits.max_deletions", None),
    # retry: backoff_max may equal backoff_base
    ("retry:\n  backoff_base: 2s\n  backoff_max: 2s\n", "retry.backoff_max_s", 2.0),
    # review
    ("", "review", Review()),
    ("review:\n  min_plan_age: 24h\n", "review.min_plan_age_s", 86400.0),
    ("review:\n  min_plan_age: 24h\n", "review.max_plan_age_s", None),
    ("review:\n  max_plan_age: 7d\n", "review.max_plan_age_s", 7 * 86400.0),
    ("review:\n  min_plan_age: 0s\n  max_plan_age: 1h\n", "review.min_plan_age_s", 0.0),
    ("review:\n  min_plan_age: 1h\n  max_plan_age: 1h\n", "review.max_plan_age_s", 3600.0),
    # api
    ("", "api", Api()),
    ("", "api.timezone", UTC),
    ("api:\n  timezone: UTC\n", "api.timezone", UTC),
    ("api:\n  timezone: Asia/Seoul\n", "api.timezone", ZoneInfo("Asia/Seoul")),
    ("api:\n  timezone: '+09:00'\n", "api.timezone", timezone(timedelta(hours=9))),
    ("api:\n  timezone: +09:00\n", "api.timezone", timezone(timedelta(hours=9))),
    ("api:\n  timezone: '-0530'\n", "api.timezone", timezone(-timedelta(hours=5.5))),
    ("", "api.verify", True),
    ("api:\n  verify: false\n", "api.verify", False),
    ("api:\n  verify: false\n", "api.timezone", UTC),
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
    # a bare number is never seconds: it is an error saying which unit to add
    (BASE + "filters:\n  older_than: 7\n", "filters.older_than", "7 has no unit: write 7d"),
    (BASE + "filters:\n  older_than: '7'\n", "filters.older_than", "7 has no unit"),
    (BASE + "filters:\n  older_than: 45\n", "filters.older_than", "45 has no unit"),
    (BASE + "filters:\n  older_than: 2.5\n", "filters.older_than", "2.5 has no unit"),
    (BASE + "filters:\n  older_than: 0\n", "filters.older_than", "0 has no unit"),
    (BASE + "retry:\n  request_timeout: 10\n", "retry.request_timeout", "10 has no unit"),
    (BASE + "retry:\n  busy_deadline: 1800\n", "retry.busy_deadline", "1800 has no unit"),
    (BASE + "retry:\n  busy_interval: 60\n", "retry.busy_interval", "60 has no unit"),
    (BASE + "retry:\n  backoff_max: 2\n", "retry.backoff_max", "2 has no unit"),
    (BASE + "filters:\n  older_than: -5s\n", "filters.older_than", "a duration"),
    (BASE + "filters:\n  older_than: d\n", "filters.older_than", "a duration"),
    (BASE + "filters:\n  older_than: .nan\n", "filters.older_than", "a duration"),
    (BASE + "filters:\n  older_than: [30d]\n", "filters.older_than", "a duration"),
    (BASE + "retry:\n  busy_interval: soon\n", "retry.busy_interval", "a duration"),
    (BASE + "retry:\n  busy_deadline: 1y\n", "retry.busy_deadline", "a duration"),
    (BASE + "retry:\n  backoff_max: ''\n", "retry.backoff_max", "a duration"),
    (BASE + "retry:\n  busy_interval: 0s\n", "retry.busy_interval", "above zero"),
    (BASE + "retry:\n  backoff_base: 0\n", "retry.backoff_base", "0 has no unit"),
    (BASE + "retry:\n  backoff_base: 0s\n", "retry.backoff_base", "above zero"),
    (BASE + "retry:\n  request_timeout: 0ms\n", "retry.request_timeout", "above zero"),
    # regexes that do not compile
    (BASE + "filters:\n  name_regex: 'exp-('\n", "filters.name_regex", "regular expression"),
    (BASE + "filters:\n  name_regex: '*exp'\n", "filters.name_regex", "regular expression"),
    (BASE + "filters:\n  name_regex: '(?<=a+)b'\n", "filters.name_regex", "regular expression"),
    # statuses: busy ones are not selectable, nor unknown ones, nor none at all
    (BASE + "filters:\n  statuses: [in_progress]\n", "filters.statuses", "deferred automatically"),
    (BASE + "filters:\n  statuses: [failed, pending]\n", "filters.statuses", "non-empty subset"),
    (BASE + "filters:\n  statuses: [deleted]\n", "filters.statuses", "non-empty subset"),
    (BASE + "filters:\n  statuses: [Pending]\n", "filters.statuses", "deferred automatically"),
    (BASE + "filters:\n  statuses: [completes]\n", "filters.statuses", "non-empty subset"),
    (
        BASE + "filters:\n  statuses: [unknown]\n",
        "filters.statuses",
        "completed, failed, registered",
    ),
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
    # a timestamp without a zone
    (
        BASE + "filters:\n  created_before: '2026-01-01T10:00:00'\n",
        "filters.created_before",
        "add one, e.g. 2026-01-01T10:00:00Z",
    ),
    (
        BASE + "filters:\n  created_before: 2026-01-01 10:00:00\n",
        "filters.created_before",
        "this one has none",
    ),
    (BASE + "filters:\n  created_before: 2026-01-01\n", "filters.created_before", "bare date"),
    # keep_latest_by
    (
        BASE + "filters:\n  keep_latest_by: '^(.+)-v[0-9]+$'\n",
        "filters.keep_latest_by",
        "keep_latest beside it",
    ),
    (
        BASE + "filters:\n  keep_latest: null\n  keep_latest_by: '^(.+)$'\n",
        "filters.keep_latest_by",
        "keep_latest beside it",
    ),
    (
        BASE + "filters:\n  keep_latest: 3\n  keep_latest_by: '^exp-[0-9]+$'\n",
        "filters.keep_latest_by",
        "with a group",
    ),
    (
        BASE + "filters:\n  keep_latest: 3\n  keep_latest_by: '^(?:exp)-'\n",
        "filters.keep_latest_by",
        "with a group",
    ),
    (
        BASE + "filters:\n  keep_latest: 3\n  keep_latest_by: '^(.+'\n",
        "filters.keep_latest_by",
        "regular expression",
    ),
    (
        BASE + "filters:\n  keep_latest: 3\n  keep_latest_by: [a]\n",
        "filters.keep_latest_by",
        "a non-empty string",
    ),
    # account
    (BASE + "account: [ncp_iam_A]\n", "account", "a mapping"),
    (BASE + "account: {}\n", "account.access_key_ids", "a non-empty list"),
    (BASE + "account:\n  access_key_ids: null\n", "account.access_key_ids", "non-empty list"),
    (BASE + "account:\n  access_key_ids: []\n", "account.access_key_ids", "non-empty list"),
    (BASE + "account:\n  access_key_ids: ncp_iam_A\n", "account.access_key_ids", "a list"),
    (BASE + "account:\n  access_key_ids: ['']\n", "account.access_key_ids", "non-empty"),
    (BASE + "account:\n  access_key_ids: [1]\n", "account.access_key_ids", "strings"),
    (BASE + "account:\n  access_key: [a]\n", "account.access_key", "unknown key"),
    # protect.referenced and protect.used_within
    (BASE + "protect:\n  referenced: 'no'\n", "protect.referenced", "true or false"),
    (BASE + "protect:\n  referenced: 0\n", "protect.referenced", "true or false"),
    (BASE + "protect:\n  used_within: 14\n", "protect.used_within", "14 has no unit"),
    (BASE + "protect:\n  used_within: 0s\n", "protect.used_within", "above zero"),
    (BASE + "protect:\n  used_within: 2y\n", "protect.used_within", "a duration"),
    (BASE + "protect:\n  used_in: 14d\n", "protect.used_in", "unknown key"),
    # limits: caps, drain and the circuit breaker
    (BASE + "limits:\n  max_deletions_percent: 0\n", "limits.max_deletions_percent", "above 0"),
    (BASE + "limits:\n  max_deletions_percent: -5\n", "limits.max_deletions_percent", "above 0"),
    (
        BASE + "limits:\n  max_deletions_percent: 101\n",
        "limits.max_deletions_percent",
        "at most 100",
    ),
    (BASE + "limits:\n  max_deletions_percent: '50'\n", "limits.max_deletions_percent", "number"),
    (BASE + "limits:\n  max_deletions_percent: '50%'\n", "limits.max_deletions_percent", "number"),
    (BASE + "limits:\n  max_deletions_percent: true\n", "limits.max_deletions_percent", "number"),
    (BASE + "limits:\n  max_deletions_percent: .nan\n", "limits.max_deletions_percent", "100"),
    (BASE + "limits:\n  max_deletions_percent: .inf\n", "limits.max_deletions_percent", "100"),
    (BASE + "limits:\n  max_deletions_per_run: 0\n", "limits.max_deletions_per_run", "least 1"),
    (BASE + "limits:\n  max_deletions_per_run: -1\n", "limits.max_deletions_per_run", "least 1"),
    (BASE + "limits:\n  max_deletions_per_run: 1.5\n", "limits.max_deletions_per_run", "whole"),
    (BASE + "limits:\n  max_deletions_per_run: '9'\n", "limits.max_deletions_per_run", "whole"),
    (BASE + "limits:\n  max_deletions_per_run: true\n", "limits.max_deletions_per_run", "whole"),
    (BASE + "limits:\n  max_failure_percent: -1\n", "limits.max_failure_percent", "0 to 100"),
    (BASE + "limits:\n  max_failure_percent: 100.5\n", "limits.max_failure_percent", "0 to 100"),
    (BASE + "limits:\n  max_failure_percent: '20'\n", "limits.max_failure_percent", "a number"),
    (BASE + "limits:\n  max_failure_percent: false\n", "limits.max_failure_percent", "a number"),
    (BASE + "limits:\n  max_failure_percent: .nan\n", "limits.max_failure_percent", "0 to 100"),
    (BASE + "limits:\n  max_deletion: 5\n", "limits.max_deletion", "unknown key"),
    # retry: backoff_max below backoff_base
    (
        BASE + "retry:\n  backoff_base: 2s\n  backoff_max: 1s\n",
        "retry.backoff_max",
        "at least retry.backoff_base",
    ),
    (BASE + "retry:\n  backoff_max: 500ms\n", "retry.backoff_max", "at least retry.backoff_base"),
    # review
    (BASE + "review: 24h\n", "review", "a mapping"),
    (BASE + "review:\n  min_plan_age: 24\n", "review.min_plan_age", "24 has no unit"),
    (BASE + "review:\n  max_plan_age: 7\n", "review.max_plan_age", "7 has no unit"),
    (BASE + "review:\n  max_plan_age: 0s\n", "review.max_plan_age", "above zero"),
    (BASE + "review:\n  min_plan_age: -1h\n", "review.min_plan_age", "a duration"),
    (
        BASE + "review:\n  min_plan_age: 7d\n  max_plan_age: 24h\n",
        "review.max_plan_age",
        "at least review.min_plan_age",
    ),
    (BASE + "review:\n  min_age: 1h\n", "review.min_age", "unknown key"),
    # api
    (BASE + "api: UTC\n", "api", "a mapping"),
    (BASE + "api:\n  timezone: +9:00\n", "api.timezone", "YAML reads +9:00 as the number"),
    (BASE + "api:\n  timezone: 9\n", "api.timezone", "a time zone such as UTC"),
    (BASE + "api:\n  timezone: Mars/Olympus\n", "api.timezone", "not a zone this system knows"),
    (BASE + "api:\n  timezone: Asia\n", "api.timezone", "not a zone this system knows"),
    (BASE + "api:\n  timezone: '+25:00'\n", "api.timezone", "a time zone such as UTC"),
    (BASE + "api:\n  timezone: ../../etc/passwd\n", "api.timezone", "a time zone"),
    (BASE + "api:\n  timezone: ''\n", "api.timezone", "a time zone"),
    (BASE + "api:\n  verify: 'yes'\n", "api.verify", "true or false"),
    (BASE + "api:\n  zone: UTC\n", "api.zone", "unknown key"),
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
    ],
)
def test_parse_duration_units(value, seconds: float):
    """parse_duration turns a number and a unit into seconds."""
    assert parse_duration(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value",
    [
        *("", "30", "30x", "s", "1.s", "-1s", "1e3s", "1 d 2h", "30D", True, False, -1, None, []),
        *(7, 0, 0.25, "7"),
    ],
)
def test_parse_duration_rejects(value):
    """parse_duration raises ValueError for anything but a non-negative number with a unit."""
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


@pytest.mark.parametrize("value", ["'2026-01-01'", "2026-01-01"], ids=["quoted-date", "yaml-date"])
def test_created_before_as_a_bare_date_is_refused(tmp_path: Path, value: str):
    """created_before: 2026-01-01, quoted or a YAML date, is refused: add a time and a zone."""
    path = write(tmp_path, BASE + f"filters:\n  created_before: {value}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: filters.created_before: expected ")
    assert "add a zone, e.g. 2026-01-01T00:00:00Z" in str(caught.value)


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
    "": [
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
    ],
    "select": ["all", "ids", "ids_file"],
    "account": ["access_key_ids"],
    "filters": [
        "statuses",
        "name_glob",
        "name_regex",
        "older_than",
        "created_before",
        "keep_latest",
        "keep_latest_by",
    ],
    "protect": ["ids", "name_globs", "referenced", "used_within"],
    "limits": [
        "rate",
        "concurrency",
        "max_deletions",
        "max_deletions_percent",
        "max_deletions_per_run",
        "max_failure_percent",
    ],
    "retry": [
        "max_attempts",
        "busy_interval",
        "busy_deadline",
        "backoff_base",
        "backoff_max",
        "request_timeout",
    ],
    "review": ["min_plan_age", "max_plan_age"],
    "api": ["timezone", "verify"],
}

# Integers and floats are unrestricted: huge numbers must be PolicyErrors too.
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
all_keys = [key for keys in REAL_KEYS.values() for key in keys]
str_keys = st.sampled_from(all_keys) | st.text(max_size=8)
any_keys = str_keys | st.integers(-3, 3) | st.booleans() | st.none() | st.floats(-2, 2)


def _trees(keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5)
        ),
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
        [
            "2026-01-01T00:00:00Z",
            "2026-01-01",
            "2026-13-01",
            "yesterday",
            "2026-01-01T09:00+09:00",
            "2026-01-01T09:00:00",
        ]
    )
    | st.datetimes(timezones=st.none() | st.just(UTC))
    | st.dates()
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "all": st.booleans(),
    "ids": ids,
    "ids_file": st.sampled_from(["ids.txt", "lists/ids.txt", "../ids.txt", "", " "]),
    "statuses": st.lists(
        st.sampled_from(
            ["registered", "completed", "Complete", "failed", "pending", "in_progress", "x"]
        ),
        max_size=4,
    ),
    "access_key_ids": st.lists(st.sampled_from(["ncp_iam_A", "", " ", 5]), max_size=3),
    "keep_latest_by": patterns | st.sampled_from(["^(.+)-v[0-9]+$", "(?P<family>.+)-", "x"]),
    "referenced": st.booleans() | st.sampled_from(["yes", 0]),
    "used_within": durations,
    "max_deletions_percent": st.floats(-1, 120) | st.integers(-1, 120),
    "max_deletions_per_run": st.integers(-1, 10**4),
    "max_failure_percent": st.floats(-1, 120) | st.integers(-1, 120),
    "min_plan_age": durations,
    "max_plan_age": durations,
    "timezone": st.sampled_from(["UTC", "Asia/Seoul", "+09:00", "Mars/X", "", "../x"])
    | st.integers(-600, 600),
    "verify": st.booleans() | st.sampled_from(["no", 1]),
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
    for section in ("select", "account", "filters", "protect", "limits", "retry", "review", "api"):
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


# -- the shape other modules rely on -------------------------------------------------------


def test_dataclass_fields_are_the_documented_interface():
    """Policy and its sections expose exactly the attribute names the pipeline uses."""
    from dataclasses import fields

    from cleanup import policy as module

    expected = {
        "Policy": "selection account filters protect limits retry review api endpoint source "
        "sha256",
        "Selection": "all ids ids_file",
        "Account": "access_key_ids",
        "Filters": "statuses name_glob name_regex older_than_s created_before keep_latest "
        "keep_latest_by",
        "Protect": "ids name_globs referenced used_within_s",
        "Limits": "rate concurrency max_deletions max_deletions_percent max_deletions_per_run "
        "max_failure_percent",
        "Retry": "max_attempts busy_interval_s busy_deadline_s backoff_base_s backoff_max_s "
        "request_timeout_s",
        "Review": "min_plan_age_s max_plan_age_s",
        "Api": "timezone verify",
    }
    for name, attrs in expected.items():
        cls = getattr(module, name)
        assert [f.name for f in fields(cls)] == attrs.split(), name
        assert not hasattr(cls, "__dict__") or "__slots__" in vars(cls), name


def test_created_before_is_aware_utc(tmp_path: Path):
    """created_before comes out aware and in UTC whatever offset the policy wrote."""
    text = BASE + "filters:\n  created_before: '2026-01-01T09:00:00+09:00'\n"
    moment = load_policy(write(tmp_path, text)).filters.created_before
    assert moment is not None and moment.tzinfo == UTC


# -- size and alias limits: refused before anything is expanded -----------------------------

LIMIT = 1_000_000


def test_file_of_exactly_one_megabyte_loads(tmp_path: Path):
    """A policy file of exactly 1 MB (padded with a comment) still loads."""
    text = BASE + "#" * (LIMIT - len(BASE) - 1) + "\n"
    assert len(text.encode()) == LIMIT
    assert load_policy(write(tmp_path, text)).selection.all is True


def test_file_over_one_megabyte_is_refused_unread(tmp_path: Path):
    """A policy file one byte over 1 MB is refused by its size, though it is valid YAML."""
    path = write(tmp_path, BASE + "#" * (LIMIT - len(BASE)) + "\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == f"{path}: the policy file is over 1 MB; refused unread"


def _laughs(levels: int, width: int = 10) -> str:
    """``filters.older_than`` as a list whose last item expands to width**levels strings."""
    lines = ["filters:", "  older_than:", '    - &l0 "lollollollollollollollollollollol"']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"    - &l{level} [{refs}]")
    return BASE + "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_without_expanding(tmp_path: Path):
    """Nine levels of ten aliases (10^9 strings in 1 KB) are refused from the node graph."""
    path = write(tmp_path, _laughs(9))
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message == f"{path}: the YAML's aliases expand past 1 MB; refused unexpanded"
    assert "lol" not in message


def test_aliases_that_expand_past_the_limit_in_a_value_are_refused(tmp_path: Path):
    """An alias graph refused by size never reaches validation, so no error echoes it."""
    path = write(tmp_path, _laughs(5))
    with pytest.raises(PolicyError, match="expand past 1 MB") as caught:
        load_policy(path)
    assert "lol" not in str(caught.value)


def test_small_aliases_are_allowed(tmp_path: Path):
    """Aliases that stay small (one glob reused) load like the written-out document."""
    text = "version: 1\nselect: {all: true}\nfilters: {name_glob: &g 'exp-*'}\n"
    text += "protect: {name_globs: [*g, *g]}\n"
    policy = load_policy(write(tmp_path, text))
    assert policy.protect.name_globs == ("exp-*", "exp-*")


def test_recursive_alias_is_refused(tmp_path: Path):
    """An anchor that contains its own alias (an endless structure) is refused, not built."""
    path = write(tmp_path, "version: 1\nselect: {all: true}\nprotect: &p {name_globs: [*p]}\n")
    with pytest.raises(PolicyError, match="expand past 1 MB"):
        load_policy(path)


def test_error_never_echoes_a_large_value(tmp_path: Path):
    """A wrong value is echoed cut to 80 characters, however large it is (or expands to)."""
    path = write(tmp_path, _laughs(3))
    with pytest.raises(PolicyError, match=r"filters\.older_than: expected a duration") as caught:
        load_policy(path)
    assert len(str(caught.value)) < len(str(path)) + 200
    assert str(caught.value).endswith("...")


def test_policy_error_for_a_huge_integer(tmp_path: Path):
    """An integer Python refuses to build from text (over 4,300 digits) is a PolicyError."""
    path = write(tmp_path, BASE + "limits:\n  rate: " + "9" * 5000 + "\n")
    with pytest.raises(PolicyError, match="malformed YAML"):
        load_policy(path)


def test_duplicate_key_error_cuts_a_long_key(tmp_path: Path):
    """A long key given twice is named in at most 80 characters."""
    key = "k" * 5000
    path = write(tmp_path, BASE + f"? {key}\n: 1\n? {key}\n: 2\n")
    with pytest.raises(PolicyError, match="given twice") as caught:
        load_policy(path)
    assert len(str(caught.value)) < len(str(path)) + 200
