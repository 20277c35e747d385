"""Credentials: environment first, then a Secret mount, a KEY=value file or ~/.ncloud/configure."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cleanup.credentials import Credentials, load_credentials
from cleanup.errors import CredentialsError


def test_environment_wins():
    """NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY are used when both are set."""
    creds = load_credentials({"NCLOUD_ACCESS_KEY": "ak", "NCLOUD_SECRET_KEY": "sk"}, "/nope")
    assert creds == Credentials("ak", "sk")


def test_missing_credentials_name_what_to_set():
    """No credentials at all is a usage error naming the variables (exit 2)."""
    with pytest.raises(CredentialsError, match="NCLOUD_SECRET_KEY") as info:
        load_credentials({"NCLOUD_ACCESS_KEY": "ak"})
    assert info.value.exit_code == 2


def test_ncloud_cli_configure_file(tmp_path: Path):
    """The NCP CLI's ~/.ncloud/configure format is read."""
    path = tmp_path / "configure"
    path.write_text("[DEFAULT]\nncloud_access_key_id = AK1\nncloud_secret_access_key = SK1\n")
    path.chmod(0o600)
    assert load_credentials({}, path) == Credentials("AK1", "SK1")


def test_secret_mount_directory(tmp_path: Path):
    """A mounted Kubernetes Secret (one file per key) is read."""
    (tmp_path / "NCLOUD_ACCESS_KEY").write_text("AK2\n")
    (tmp_path / "NCLOUD_SECRET_KEY").write_text("SK2\n")
    assert load_credentials({}, tmp_path) == Credentials("AK2", "SK2")


def test_env_style_file_and_wide_permissions_warning(tmp_path: Path):
    """A KEY=value file works; a file readable by others gets a warning without the secret."""
    path = tmp_path / "creds.env"
    path.write_text("NCLOUD_ACCESS_KEY=AK3\nNCLOUD_SECRET_KEY='SK3-secret'\n")
    path.chmod(0o644)
    with capture_logs() as logs:
        assert load_credentials({}, path) == Credentials("AK3", "SK3-secret")
    assert [entry["event"] for entry in logs] == ["credentials_file_permissions"]
    assert "SK3-secret" not in repr(logs)


def test_unreadable_or_incomplete_file(tmp_path: Path):
    """A missing file or one without both keys is a CredentialsError naming the file."""
    with pytest.raises(CredentialsError, match="cannot read"):
        load_credentials({}, tmp_path / "missing")
    path = tmp_path / "half"
    path.write_text("ncloud_access_key_id = AK\n")
    path.chmod(0o600)
    with pytest.raises(CredentialsError, match="no access key and secret key"):
        load_credentials({}, path)


def test_repr_hides_the_secret():
    """repr() never shows the secret key."""
    assert "topsecret" not in repr(Credentials("AKIDEXAMPLE", "topsecret"))
