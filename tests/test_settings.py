"""Run settings, accounts files and output paths: every bad input is a usage error naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cleanup.accounts import load_accounts
from cleanup.errors import UsageError
from cleanup.fsutil import atomic_write, check_writable
from cleanup.settings import check_endpoint, operator, resolve_shard, resolve_trigger


@pytest.mark.parametrize(
    ("index", "count", "env", "match"),
    [
        (1, None, {}, "needs --shard-count"),
        (None, 0, {}, "at least 1"),
        (None, 2, {}, "JOB_COMPLETION_INDEX"),
        (None, 2, {"JOB_COMPLETION_INDEX": "x"}, "whole number"),
        (5, 2, {}, "expected 0 to 1"),
    ],
)
def test_bad_shard_settings_are_usage_errors(index, count, env, match):
    """Shard flags that cannot name this process's shard say which and why."""
    with pytest.raises(UsageError, match=match):
        resolve_shard(index, count, env)


def test_shard_index_defaults_to_the_indexed_jobs_completion_index():
    """--shard-count alone takes the index from JOB_COMPLETION_INDEX; no flags: one shard."""
    assert resolve_shard(None, 3, {"JOB_COMPLETION_INDEX": "2"}) == (2, 3)
    assert resolve_shard(None, None, {}) == (0, 1)


def test_trigger_from_flag_or_environment():
    """--trigger wins over NCLUE_CLEANUP_TRIGGER; an unknown trigger names both sources."""
    assert resolve_trigger(None, {"NCLUE_CLEANUP_TRIGGER": "cron"}) == "cron"
    assert resolve_trigger("retrain", {"NCLUE_CLEANUP_TRIGGER": "cron"}) == "retrain"
    with pytest.raises(UsageError, match="NCLUE_CLEANUP_TRIGGER"):
        resolve_trigger(None, {"NCLUE_CLEANUP_TRIGGER": "weekly"})


@pytest.mark.parametrize(
    ("endpoint", "match"),
    [("ftp://x/api/v1", "http"), ("https://user:pw@host/api/v1", "credentials do not belong")],
)
def test_bad_endpoints_are_refused(endpoint, match):
    """Only http(s) endpoints, and never with credentials in the URL."""
    with pytest.raises(UsageError, match=match):
        check_endpoint(endpoint)


def test_operator_is_the_pod_in_kubernetes_else_user_at_host():
    """The audit's operator: pod/NAME in a cluster, user@host elsewhere."""
    env = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "nclue-cleanup-abc"}
    assert operator(env) == "pod/nclue-cleanup-abc"
    assert "@" in operator({})


@pytest.mark.parametrize(
    ("document", "match"),
    [
        ("not: [valid", "malformed YAML"),
        (yaml.safe_dump({"version": 2, "accounts": []}), "version: 1"),
        (yaml.safe_dump({"version": 1, "accounts": []}), "non-empty list"),
        (yaml.safe_dump({"version": 1, "accounts": ["dev"]}), r"accounts\[0\]: expected a mapping"),
        (
            yaml.safe_dump({"version": 1, "accounts": [{"name": "dev", "colour": "x"}]}),
            r"accounts\[0\]\.colour: unknown key",
        ),
        (
            yaml.safe_dump({"version": 1, "accounts": [{"name": "dev", "policy": "p"}]}),
            r"accounts\[0\]\.credentials: expected a path",
        ),
        (
            yaml.safe_dump(
                {
                    "version": 1,
                    "accounts": [{"name": "dev", "credentials": "c", "policy": "p", "mode": "go"}],
                }
            ),
            r"\.mode: expected apply or dry_run",
        ),
        (
            yaml.safe_dump(
                {
                    "version": 1,
                    "accounts": [{"name": "dev", "credentials": "c", "policy": "p", "endpoint": 3}],
                }
            ),
            r"\.endpoint: expected a URL",
        ),
    ],
)
def test_bad_accounts_files_name_the_entry_and_key(tmp_path: Path, document, match):
    """An accounts file that cannot be used is exit 2, naming the entry and the key."""
    path = tmp_path / "accounts.yaml"
    path.write_text(document)
    with pytest.raises(UsageError, match=match):
        load_accounts(path)


def test_accounts_file_that_cannot_be_read_or_is_too_big(tmp_path: Path):
    """A missing accounts file and one over 1 MB are refused without parsing."""
    with pytest.raises(UsageError, match="cannot read"):
        load_accounts(tmp_path / "missing.yaml")
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * 1_000_001)
    with pytest.raises(UsageError, match="over 1 MB"):
        load_accounts(big)


def test_accounts_paths_are_relative_to_the_file_and_mode_defaults_to_dry_run(tmp_path: Path):
    """credentials and policy are read relative to the accounts file; mode defaults dry_run."""
    path = tmp_path / "sub" / "accounts.yaml"
    path.parent.mkdir()
    path.write_text(
        yaml.safe_dump(
            {"version": 1, "accounts": [{"name": "dev", "credentials": "s", "policy": "p"}]}
        )
    )
    [spec] = load_accounts(path)
    assert spec.credentials == path.parent / "s" and spec.policy == path.parent / "p"
    assert spec.apply is False


@pytest.mark.parametrize("where", ["dir", "no-parent"])
def test_unwritable_output_paths_are_found_before_the_run(tmp_path: Path, where):
    """A directory or a path whose directory is missing is a usage error naming the flag."""
    path = tmp_path if where == "dir" else tmp_path / "missing" / "summary.json"
    with pytest.raises(UsageError, match="--summary-json"):
        check_writable(path, "--summary-json")


def test_atomic_write_leaves_no_temporary_file_when_it_fails(tmp_path: Path):
    """A write that cannot be renamed into place leaves the directory as it was."""
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(OSError):
        atomic_write(target, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]
    atomic_write(tmp_path / "ok.json", b"{}")
    assert (tmp_path / "ok.json").read_bytes() == b"{}"
