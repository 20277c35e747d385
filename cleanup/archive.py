"""The audit archive: a run's audit log, summary and plan, uploaded to S3-compatible storage.

``--audit-archive s3://bucket/prefix`` (with ``--archive-endpoint`` for NCP Object Storage,
``https://kr.object.ncloudstorage.com``, or any S3-compatible store) writes, when a run ends::

    prefix/YYYY/MM/DD/<run_id>.jsonl          the audit log      application/x-ndjson
    prefix/YYYY/MM/DD/<run_id>.plan.json      the plan (dry run) application/json
    prefix/YYYY/MM/DD/<run_id>.summary.json   the summary        application/json

The date is the UTC date of the run's start; the summary goes last, so a summary in the
bucket means the rest of that run is there too.

Credentials, first match wins (``load_archive_credentials``):

1. ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` (and ``AWS_SESSION_TOKEN``) in the
   environment;
2. ``credentials_file``: a mounted Kubernetes Secret directory with files of those names,
   or a ``KEY=value`` file holding them (names case-insensitive, so the ``[default]``
   section of ``~/.aws/credentials`` works; the first occurrence of a name wins);
3. boto3's default chain (``AWS_PROFILE``, ``~/.aws/credentials``, container and instance
   metadata).

The key needs HeadBucket (``s3:ListBucket``) for the preflight and ``s3:PutObject``;
``s3:GetObject`` lets the overwrite check below see existing objects.

Overwrites: each PUT follows a HEAD. The same sha256 (``x-amz-meta-sha256``) already
there skips the PUT, so a retried archive is harmless; other content fails the upload
rather than replace another run's trail; a 403 (a write-only key) skips the check.
``If-None-Match: *`` would close the HEAD-PUT window, but not every S3-compatible store
honours it, and with UUID run IDs two writers of one key do not happen.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from .errors import CleanupError, CredentialsError, UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

NCP_ENDPOINT = "https://kr.object.ncloudstorage.com"
DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0
MAX_ATTEMPTS = 3
"""Attempts per S3 request, the first included (botocore's standard retry mode)."""
PREFLIGHT_TIMEOUT_S = 15.0
ARCHIVE_TIMEOUT_S = 30.0
"""Bounds on the whole preflight and the whole upload, retries included."""

ACCESS_ENV = "AWS_ACCESS_KEY_ID"
SECRET_ENV = "AWS_SECRET_ACCESS_KEY"
TOKEN_ENV = "AWS_SESSION_TOKEN"
_NAMES = (ACCESS_ENV, SECRET_ENV, TOKEN_ENV)

_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NCP_HOST_RE = re.compile(r"([a-z]{2})\.object\.(?:(?:gov-|fin-)?ncloudstorage|ncpstorage)\.com")
_SHA_META = "sha256"
_T = TypeVar("_T")
NDJSON = "application/x-ndjson"
JSON = "application/json"


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


@dataclass(frozen=True, slots=True)
class _Upload:
    key: str
    body: bytes
    content_type: str


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


async def preflight(
    target: ArchiveTarget,
    creds: ArchiveCredentials | None,
    *,
    attempts: int = MAX_ATTEMPTS,
    timeout_s: float = PREFLIGHT_TIMEOUT_S,
) -> None:
    """Check that the bucket answers to these credentials (HeadBucket), before the run.

    Raises ``UsageError`` (exit 2) in one line: no such bucket, access denied, endpoint
    unreachable or too slow, no credentials.
    """
    try:
        await _off_loop(timeout_s, _head_bucket, target, creds, attempts)
    except TimeoutError:
        raise UsageError(
            f"--audit-archive {target.url()}: no answer within {timeout_s:g} s"
        ) from None


def _head_bucket(target: ArchiveTarget, creds: ArchiveCredentials | None, attempts: int) -> None:
    try:
        _client(target, creds, attempts).head_bucket(Bucket=target.bucket)
    except ClientError as exc:
        reason = {
            404: f"no such bucket at {target.endpoint_url or 'AWS S3'}",
            403: "access denied: check the access key, secret key and the bucket's permissions",
        }.get(_status(exc)) or _reason(exc, creds)
        raise UsageError(f"--audit-archive {target.url()}: {reason}") from exc
    except BotoCoreError as exc:
        raise UsageError(f"--audit-archive {target.url()}: {_reason(exc, creds)}") from exc


async def archive_run(
    target: ArchiveTarget,
    creds: ArchiveCredentials | None,
    *,
    run_id: str,
    started_at: datetime,
    audit_lines: bytes,
    summary: Mapping[str, Any],
    plan_path: str | Path | None = None,
    attempts: int = MAX_ATTEMPTS,
    timeout_s: float = ARCHIVE_TIMEOUT_S,
) -> list[str]:
    """Upload the run's audit log, plan (if ``plan_path``) and summary; return the keys.

    Raises ``ArchiveError`` naming the object and the reason, never a secret, also when
    the whole upload takes longer than ``timeout_s``.
    """
    base = _base_key(target, run_id, started_at)
    uploads = [_Upload(f"{base}.jsonl", audit_lines, NDJSON)]
    if plan_path is not None:
        plan = await asyncio.to_thread(_read_plan, Path(plan_path))
        uploads.append(_Upload(f"{base}.plan.json", plan, JSON))
    body = json.dumps(dict(summary), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    uploads.append(_Upload(f"{base}.summary.json", body.encode(), JSON))
    try:
        return await _off_loop(timeout_s, _put_all, target, creds, uploads, attempts)
    except TimeoutError:
        raise ArchiveError(f"{target.url(base)}.*: upload gave up after {timeout_s:g} s") from None


async def _off_loop(timeout_s: float, fn: Callable[..., _T], *args: Any) -> _T:
    """``fn(*args)`` in a daemon thread, awaited at most ``timeout_s``.

    Not ``asyncio.to_thread``: its executor's threads are joined at exit, so an upload
    stuck in a socket would hold the pod past its grace period after SIGTERM.
    """
    done: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def work() -> None:
        with contextlib.suppress(concurrent.futures.InvalidStateError):  # given up on
            try:
                done.set_result(fn(*args))
            except BaseException as exc:  # handed to the awaiting task
                done.set_exception(exc)

    threading.Thread(target=work, name="audit-archive", daemon=True).start()
    return await asyncio.wait_for(asyncio.wrap_future(done), timeout_s)


def _read_plan(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArchiveError(f"{path}: cannot read the plan ({exc.strerror})") from None


def _base_key(target: ArchiveTarget, run_id: str, started_at: datetime) -> str:
    """``prefix/YYYY/MM/DD/<run_id>`` for the UTC date of ``started_at``."""
    if not _RUN_ID_RE.fullmatch(run_id):
        raise ArchiveError(
            f"run ID {run_id[:40]!r} cannot be an object name (letters, digits, '.', '_', '-')"
        )
    if started_at.utcoffset() is None:
        raise ValueError("started_at must be timezone-aware")
    day = started_at.astimezone(UTC).strftime("%Y/%m/%d")
    return "/".join(p for p in (target.prefix, day, run_id) if p)


def _put_all(
    target: ArchiveTarget, creds: ArchiveCredentials | None, uploads: list[_Upload], attempts: int
) -> list[str]:
    written: list[str] = []
    key = uploads[0].key
    try:
        client = _client(target, creds, attempts)
        for upload in uploads:
            key = upload.key
            _put_once(client, target, upload)
            written.append(key)
    except (ClientError, BotoCoreError) as exc:
        done = f" (written before: {', '.join(written)})" if written else ""
        raise ArchiveError(
            f"{target.url(key)}: upload failed: {_reason(exc, creds)}{done}"
        ) from exc
    return written


def _put_once(client: S3Client, target: ArchiveTarget, upload: _Upload) -> None:
    """PUT unless the same bytes are already there; refuse to replace other content."""
    digest = hashlib.sha256(upload.body).hexdigest()
    try:
        head = client.head_object(Bucket=target.bucket, Key=upload.key)
    except ClientError as exc:
        if _status(exc) not in (403, 404):
            raise
    else:
        if head.get("Metadata", {}).get(_SHA_META) == digest:
            return
        raise ArchiveError(
            f"{target.url(upload.key)}: already exists with other content; not overwriting"
        )
    md5 = hashlib.md5(upload.body, usedforsecurity=False).digest()
    client.put_object(
        Bucket=target.bucket,
        Key=upload.key,
        Body=upload.body,
        ContentType=upload.content_type,
        ContentMD5=base64.b64encode(md5).decode(),
        Metadata={_SHA_META: digest},
    )


def _client(target: ArchiveTarget, creds: ArchiveCredentials | None, attempts: int) -> S3Client:
    """An S3 client with short timeouts, few retries, SigV4, path-style for custom endpoints.

    Checksums only where an operation requires them: botocore's newer default (CRC32 on
    every upload) is refused by many S3-compatible stores.
    """
    session = boto3.session.Session(
        aws_access_key_id=creds.access_key if creds else None,
        aws_secret_access_key=creds.secret_key if creds else None,
        aws_session_token=creds.session_token if creds else None,
    )
    config = Config(
        region_name=target.region,
        signature_version="s3v4",
        connect_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
        retries={"total_max_attempts": attempts, "mode": "standard"},
        s3={"addressing_style": "path" if target.endpoint_url else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client("s3", endpoint_url=target.endpoint_url, config=config)


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _reason(exc: ClientError | BotoCoreError, creds: ArchiveCredentials | None) -> str:
    """One line for the error: status and code, or what failed on the way; no secrets."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        text = f"{_status(exc)} {code}" if code != str(_status(exc)) else code
        message = " ".join(str(error.get("Message", "")).split())[:200]
        text = f"{text}: {message}" if message else text
    elif isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        text = f"endpoint unreachable: {exc}"
    elif isinstance(exc, ReadTimeoutError):
        text = f"no answer within {READ_TIMEOUT_S:g} s"
    elif isinstance(exc, NoCredentialsError):
        text = f"no credentials: set {ACCESS_ENV} and {SECRET_ENV} or mount them as files"
    else:
        text = f"{type(exc).__name__}: {exc}"
    for secret in (creds.secret_key, creds.session_token) if creds else ():
        if secret:
            text = text.replace(secret, "***")
    return text
