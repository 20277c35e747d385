"""Where the audit archive goes and with which keys: ``s3://bucket/prefix`` parsed and
checked, the endpoint's region, and the archive credentials (no S3 client needed).

Credentials, first match wins (``load_archive_credentials``): ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``) in the environment; then
``credentials_file``, a mounted Secret directory or a ``KEY=value`` file with those
names (case-insensitive, so ``~/.aws/credentials``'s ``[default]`` works); then None,
boto3's default chain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import CleanupError, CredentialsError, UsageError

NCP_ENDPOINT = "https://kr.object.ncloudstorage.com"
DEFAULT_REGION = "us-east-1"
ACCESS_ENV = "AWS_ACCESS_KEY_ID"
SECRET_ENV = "AWS_SECRET_ACCESS_KEY"
TOKEN_ENV = "AWS_SESSION_TOKEN"
_NAMES = (ACCESS_ENV, SECRET_ENV, TOKEN_ENV)
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_NCP_HOST_RE = re.compile(r"([a-z]{2})\.object\.(?:(?:gov-|fin-)?ncloudstorage|ncpstorage)\.com")


class ArchiveError(CleanupError):
    """Uploading the audit archive failed; the message names the object and why."""


@dataclass(frozen=True, slots=True)
class ArchiveTarget:
    """Where the archive goes: a bucket, a key prefix ("" for none), endpoint and region."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None

    def url(self, key: str = "") -> str:
        """``s3://bucket/key``, for messages."""
        return f"s3://{self.bucket}/{key}"


@dataclass(frozen=True, slots=True)
class ArchiveCredentials:
    """An S3 access key, its secret and an optional session token; secrets stay out of repr."""

    access_key: str
    secret_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"ArchiveCredentials(access_key={self.access_key[:4]}…, secret_key=***)"


def parse_archive_url(
    url: str, endpoint_url: str | None = None, region: str | None = None
) -> ArchiveTarget:
    """``s3://bucket[/prefix]`` plus ``--archive-endpoint`` / region as a target.

    The region defaults to NCP's for an NCP endpoint (``kr-standard`` for
    ``kr.object.ncloudstorage.com``, ``jp-standard`` for ``jp.object.ncpstorage.com``),
    ``us-east-1`` for any other endpoint, and boto3's own choice (``AWS_REGION`` ...)
    for AWS S3 itself (no endpoint).
    """
    parts = urlsplit(url.strip())
    if "@" in parts.netloc:
        raise UsageError(
            "--audit-archive: credentials in the URL are not accepted; "
            f"set {ACCESS_ENV} and {SECRET_ENV} or mount them as files"
        )
    if parts.scheme.lower() != "s3":
        raise UsageError("--audit-archive: expected s3://bucket[/prefix]")
    if parts.query or parts.fragment:
        raise UsageError("--audit-archive: s3://bucket[/prefix] takes no query or fragment")
    if not _BUCKET_RE.fullmatch(parts.netloc):
        raise UsageError(
            f"--audit-archive: bucket {parts.netloc[:63]!r} is not a valid name "
            "(3-63 lowercase letters, digits, dots and hyphens)"
        )
    segments = [s for s in parts.path.split("/") if s]
    if any(s in (".", "..") or not s.isprintable() for s in segments):
        raise UsageError(
            "--audit-archive: the prefix may not contain '.', '..' or control characters"
        )
    endpoint = _parse_endpoint(endpoint_url) if endpoint_url else None
    return ArchiveTarget(parts.netloc, "/".join(segments), endpoint, _region(endpoint, region))


def _parse_endpoint(endpoint_url: str) -> str:
    parts = urlsplit(endpoint_url.strip())
    if "@" in parts.netloc:
        raise UsageError("--archive-endpoint: credentials in the URL are not accepted")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            "--archive-endpoint: expected http(s)://host[:port], for NCP "
            f"Object Storage {NCP_ENDPOINT}"
        )
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise UsageError("--archive-endpoint: give only scheme, host and port, no path")
    try:
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError:
        raise UsageError("--archive-endpoint: the port is not a number in 1-65535") from None
    return f"{parts.scheme}://{parts.netloc}"


def _region(endpoint: str | None, region: str | None) -> str | None:
    if region:
        if not _REGION_RE.fullmatch(region):
            raise UsageError(f"--archive-region: {region[:63]!r} is not a region name")
        return region
    if endpoint is None:
        return None
    ncp = _NCP_HOST_RE.fullmatch(urlsplit(endpoint).hostname or "")
    return f"{ncp[1]}-standard" if ncp else DEFAULT_REGION


def load_archive_credentials(
    env: Mapping[str, str], credentials_file: str | Path | None = None
) -> ArchiveCredentials | None:
    """Credentials from ``env``, else ``credentials_file``; None means boto3's default chain.

    Raises ``CredentialsError`` for an unreadable file or half a key pair.
    """
    values = {n: env.get(n, "").strip() for n in _NAMES}
    source = "the environment"
    if not (values[ACCESS_ENV] or values[SECRET_ENV]) and credentials_file is not None:
        path = Path(credentials_file).expanduser()
        values, source = _read_values(path), str(path)
    access, secret = values.get(ACCESS_ENV, ""), values.get(SECRET_ENV, "")
    if not (access or secret):
        return None
    if not (access and secret):
        missing = SECRET_ENV if access else ACCESS_ENV
        raise CredentialsError(f"archive credentials: {missing} is missing in {source}")
    return ArchiveCredentials(access, secret, values.get(TOKEN_ENV) or None)


def _read_values(path: Path) -> dict[str, str]:
    """A Secret directory (one file per name) or ``KEY=value`` lines."""
    try:
        if path.is_dir():
            return {
                p.name.upper(): p.read_text().strip()
                for p in path.iterdir()
                if p.name.upper() in _NAMES and p.is_file()
            }
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise CredentialsError(
            f"{path}: cannot read archive credentials ({exc.strerror})"
        ) from None
    values: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.strip().removeprefix("export ").partition("=")
        if sep and name.strip().upper() in _NAMES:
            values.setdefault(name.strip().upper(), value.strip().strip("'\""))
    return values
