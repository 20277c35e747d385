"""Credentials: --credentials-file first, then the environment, then ~/.ncloud/configure."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cleanup.credentials import Credentials, load_credentials
from cleanup.errors import CredentialsError

ENV = {"NCLOUD_ACCESS_KEY": "ak", "NCLOUD_SECRET_KEY": "sk"}


def test_environment_is_used_without_a_file(tmp_path: Path):
    """NCLOUD_ACCESS_KEY / NCLOUD_SECRET_KEY are used when both are set and no file is given."""
    assert load_credentials(ENV, home=tmp_path) == Credentials("ak", "sk")


def test_explicit_file_wins_over_stale_environment(tmp_path: Path):
    """An explicit --credentials-file beats whatever is left in the environment."""
    path = tmp_path / "creds.env"
    path.write_text("NCLOUD_ACCESS_KEY=file-ak\nNCLOUD_SECRET_KEY=file-sk\n")
    path.chmod(0o600)
    assert load_credentials(ENV, path) == Credentials("file-ak", "file-sk")


def test_ncloud_configure_in_home_is_read_last(tmp_path: Path):
    """With neither a file nor the environment, ~/.ncloud/configure is read when it exists."""
    (tmp_path / ".ncloud").mkdir()
    configure = tmp_path / ".ncloud" / "configure"
    configure.write_text("[DEFAULT]\nncloud_access_key_id = AKH\nncloud_secret_access_key = SKH\n")
    configure.chmod(0o600)
    assert load_credentials({}, home=tmp_path) == Credentials("AKH", "SKH")
    assert load_credentials(ENV, home=tmp_path) == Credentials("ak", "sk")


@pytest.mark.parametrize(
    "env",
    [
        {"NCLOUD_ACCESS_KEY": "ak", "NCLOUD_SECRET_KEY": "s\udcffk"},
        {"NCLOUD_ACCESS_KEY": "ak", "NCLOUD_SECRET_KEY": "s\x1bk"},
    ],
)
def test_unprintable_secret_is_a_usage_error_that_never_shows_it(env, tmp_path: Path):
    """A secret with an invalid byte or a control character is exit 2, not a traceback."""
    with pytest.raises(CredentialsError, match="not printable ASCII") as info:
        load_credentials(env, home=tmp_path)
    assert env["NCLOUD_SECRET_KEY"] not in str(info.value)


def test_credentials_file_with_invalid_utf8_is_a_usage_error(tmp_path: Path):
    """A credentials file that is not UTF-8 is named, its content never shown."""
    path = tmp_path / "creds.env"
    path.write_bytes(b"NCLOUD_ACCESS_KEY=ak\nNCLOUD_SECRET_KEY=s\xffk\n")
    path.chmod(0o600)
    with pytest.raises(CredentialsError, match="not valid UTF-8"):
        load_credentials({}, path)


def test_missing_credentials_name_what_to_set():
    """No credentials at all is a usage error naming the variables (exit 2)."""
    with pytest.raises(CredentialsError, match="NCLOUD_SECRET_KEY") as info:
        load_credentials({"NCLOUD_ACCESS_KEY": "ak"}, home=Path("/nonexistent"))
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
