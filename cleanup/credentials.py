"""Where the access key and secret key come from, and how they are kept out of sight.

First found wins: ``--credentials-file`` (a mounted Kubernetes Secret directory with
one file per key, a ``KEY=value`` file, or the NCP CLI's configure format), else env
``NCLOUD_ACCESS_KEY`` / ``NCLOUD_SECRET_KEY``, else ``~/.ncloud/configure`` if it
exists. An explicit file always beats stale variables in the environment. Keys must
be printable ASCII; a file is read as bytes and never echoed in an error.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CredentialsError
from .logs import get_logger

log = get_logger(__name__)

ACCESS_ENV = "NCLOUD_ACCESS_KEY"
SECRET_ENV = "NCLOUD_SECRET_KEY"
_ACCESS_NAMES = (ACCESS_ENV, "ncloud_access_key_id", "access_key", "accessKey")
_SECRET_NAMES = (SECRET_ENV, "ncloud_secret_access_key", "secret_key", "secretKey")


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key and its secret. The secret never appears in ``repr``."""

    access_key: str
    secret_key: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key[:4]}…, secret_key=***)"


def load_credentials(
    env: Mapping[str, str] | None = None,
    credentials_file: str | Path | None = None,
    *,
    home: Path | None = None,
) -> Credentials:
    """Credentials from ``credentials_file``, else the environment, else the NCP CLI file."""
    env = os.environ if env is None else env
    if credentials_file is not None:
        return _from_file(Path(credentials_file).expanduser())
    access, secret = env.get(ACCESS_ENV, "").strip(), env.get(SECRET_ENV, "").strip()
    if access and secret:
        return _checked(access, secret, "the environment")
    configure = (home or Path.home()) / ".ncloud" / "configure"
    if not (access or secret) and configure.is_file():
        return _from_file(configure)
    missing = " and ".join(n for n, v in ((ACCESS_ENV, access), (SECRET_ENV, secret)) if not v)
    raise CredentialsError(
        f"no credentials: set {missing} in the environment, pass --credentials-file "
        "(a Kubernetes Secret mount or a KEY=value file), or create ~/.ncloud/configure"
    )


def _checked(access: str, secret: str, where: str) -> Credentials:
    for name, value in (("access key", access), ("secret key", secret)):
        if not value.isascii() or not value.isprintable():
            raise CredentialsError(
                f"{where}: the {name} has characters that are not printable ASCII "
                "(a copy-paste slip?); it is not shown"
            )
    return Credentials(access, secret)


def _from_file(path: Path) -> Credentials:
    try:
        info = path.stat()
        values = _read_dir(path) if path.is_dir() else _read_file(path)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read credentials ({exc.strerror})") from None
    if not path.is_dir() and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning(
            "credentials_file_permissions",
            path=str(path),
            mode=oct(stat.S_IMODE(info.st_mode)),
            advice="make it readable by its owner only: chmod 600",
        )
    access = next((values[n] for n in _ACCESS_NAMES if values.get(n)), "")
    secret = next((values[n] for n in _SECRET_NAMES if values.get(n)), "")
    if not (access and secret):
        raise CredentialsError(
            f"{path}: no access key and secret key found (expected {ACCESS_ENV} and "
            f"{SECRET_ENV}, or ncloud_access_key_id and ncloud_secret_access_key)"
        )
    return _checked(access, secret, str(path))


def _read_dir(path: Path) -> dict[str, str]:
    """A mounted Secret: one file per key, named after the key."""
    names = set(_ACCESS_NAMES) | set(_SECRET_NAMES)
    return {p.name: _text(p).strip() for p in path.iterdir() if p.name in names and p.is_file()}


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not valid UTF-8 text; it is not shown") from None


def _read_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines or an INI file such as ``~/.ncloud/configure``."""
    text = _text(path)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text if text.lstrip().startswith("[") else "[DEFAULT]\n" + text)
    except configparser.Error:
        raise CredentialsError(f"{path}: not a KEY=value or INI credentials file") from None
    values: dict[str, str] = {}
    for section in [parser.defaults(), *(parser[s] for s in parser.sections())]:
        for key, value in section.items():
            values.setdefault(key, value.strip().strip("'\""))
    # configparser lower-cases keys; map the environment-style names back.
    for name in (ACCESS_ENV, SECRET_ENV):
        if name.lower() in values:
            values[name] = values[name.lower()]
    return values
