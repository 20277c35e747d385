"""The audit archive: a run's audit log, summary and plan, uploaded to S3-compatible storage.

``--audit-archive s3://bucket/prefix`` (with ``--archive-endpoint`` for NCP Object Storage,
``https://kr.object.ncloudstorage.com``, or any S3-compatible store) writes, when a run ends::

    prefix/YYYY/MM/DD/<run_id>.jsonl          the audit log      application/x-ndjson
    prefix/YYYY/MM/DD/<run_id>.plan.json      the plan (dry run) application/json
    prefix/YYYY/MM/DD/<run_id>.summary.json   the summary        application/json

The date is the UTC date of the run's start; the summary goes last, so a summary in the
bucket means the rest of that run is there too.

Credentials and the URL: ``archive_target.py``.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

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

from .archive_target import (
    ACCESS_ENV,
    NCP_ENDPOINT,
    SECRET_ENV,
    ArchiveCredentials,
    ArchiveError,
    ArchiveTarget,
    load_archive_credentials,
    parse_archive_url,
)
from .errors import UsageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 20.0
MAX_ATTEMPTS = 3
"""Attempts per S3 request, the first included (botocore's standard retry mode)."""
PREFLIGHT_TIMEOUT_S = 15.0
ARCHIVE_TIMEOUT_S = 30.0
"""Bounds on the whole preflight and the whole upload, retries included."""


_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA_META = "sha256"
_T = TypeVar("_T")
NDJSON = "application/x-ndjson"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class _Upload:
    key: str
    body: bytes
    content_type: str


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


__all__ = [  # the archive's whole interface, URL and credentials included
    "NCP_ENDPOINT",
    "ArchiveCredentials",
    "ArchiveError",
    "ArchiveTarget",
    "archive_run",
    "load_archive_credentials",
    "parse_archive_url",
    "preflight",
]
