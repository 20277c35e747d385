"""The audit archive against a real S3-compatible server: moto's standalone server on loopback."""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer

from cleanup.archive import (
    NCP_ENDPOINT,
    ArchiveCredentials,
    ArchiveError,
    ArchiveTarget,
    archive_run,
    load_archive_credentials,
    parse_archive_url,
    preflight,
)
from cleanup.errors import CredentialsError, UsageError

KEY, SECRET = "AKIAARCHIVETEST00001", "archive-secret-Zq81x"
CREDS = ArchiveCredentials(KEY, SECRET)
STARTED = datetime(2026, 11, 30, 23, 40, tzinfo=UTC)
AUDIT = b'{"event":"run_started"}\n{"event":"run_finished"}\n'
SUMMARY = {"run_id": "r", "counts": {"deleted": 3}, "exit_code": 0}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy and no instance metadata: every request stays on loopback."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """moto's S3-compatible HTTP server on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def s3(endpoint: str, creds: ArchiveCredentials = CREDS) -> Any:
    """A plain boto3 client for setting up and reading back, independent of archive.py."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def bucket(endpoint: str) -> str:
    """A fresh, empty bucket."""
    name = f"audit-{uuid.uuid4().hex[:12]}"
    s3(endpoint).create_bucket(Bucket=name)
    return name


@dataclass(frozen=True, slots=True)
class Users:
    """IAM users on the moto server: one allowed s3:*, one that may only write objects."""

    admin: ArchiveCredentials
    writer: ArchiveCredentials


@pytest.fixture
def auth_on(endpoint: str) -> Iterator[Users]:
    """moto checks signatures and IAM policies from here on, for two fresh users."""
    iam = boto3.client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
    )

    def user(*actions: str) -> ArchiveCredentials:
        name = f"archiver-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=name)
        statement = {"Effect": "Allow", "Action": list(actions), "Resource": "*"}
        policy = {"Version": "2012-10-17", "Statement": [statement]}
        iam.put_user_policy(UserName=name, PolicyName="s3", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return ArchiveCredentials(key["AccessKeyId"], key["SecretAccessKey"])

    # AWS authorizes HeadBucket as s3:ListBucket; moto calls it s3:HeadBucket.
    writer = user("s3:ListBucket", "s3:HeadBucket", "s3:PutObject")
    users = Users(admin=user("s3:*"), writer=writer)
    _reset_auth(endpoint, "0")
    try:
        yield users
    finally:
        _reset_auth(endpoint, "inf")


def _reset_auth(endpoint: str, count: str) -> None:
    """moto's switch: signatures are checked after ``count`` unauthenticated requests."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that takes connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def target(endpoint: str, bucket: str, prefix: str = "nclue/prod") -> ArchiveTarget:
    return parse_archive_url(f"s3://{bucket}/{prefix}", endpoint_url=endpoint)


# --- parsing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "endpoint_url", "region", "expected"),
    [
        ("s3://audit", None, None, ArchiveTarget("audit", "", None, None)),
        ("s3://audit/nclue/prod/", None, None, ArchiveTarget("audit", "nclue/prod", None, None)),
        ("S3://audit//a///b", None, None, ArchiveTarget("audit", "a/b", None, None)),
        (
            "s3://a.b-c/p",
            NCP_ENDPOINT,
            None,
            ArchiveTarget("a.b-c", "p", NCP_ENDPOINT, "kr-standard"),
        ),
        (
            "s3://audit",
            "https://jp.object.ncpstorage.com/",
            None,
            ArchiveTarget("audit", "", "https://jp.object.ncpstorage.com", "jp-standard"),
        ),
        (
            "s3://audit",
            "http://127.0.0.1:9000",
            None,
            ArchiveTarget("audit", "", "http://127.0.0.1:9000", "us-east-1"),
        ),
        (
            "s3://audit",
            NCP_ENDPOINT,
            "us-standard",
            ArchiveTarget("audit", "", NCP_ENDPOINT, "us-standard"),
        ),
        ("s3://audit", None, "eu-west-1", ArchiveTarget("audit", "", None, "eu-west-1")),
    ],
)
def test_parse_archive_url_accepts(
    url: str, endpoint_url: str | None, region: str | None, expected: ArchiveTarget
) -> None:
    """s3://bucket[/prefix] becomes a target with a normalized prefix, endpoint and region."""
    assert parse_archive_url(url, endpoint_url, region) == expected


@pytest.mark.parametrize(
    ("url", "endpoint_url", "region", "flag"),
    [
        ("https://audit/p", None, None, "--audit-archive"),
        ("audit/p", None, None, "--audit-archive"),
        ("s3://", None, None, "--audit-archive"),
        ("s3://Audit", None, None, "--audit-archive"),
        ("s3://ab", None, None, "--audit-archive"),
        ("s3://audit:9000/p", None, None, "--audit-archive"),
        (f"s3://{KEY}:{SECRET}@audit/p", None, None, "--audit-archive"),
        (f"s3://audit/p?secret={SECRET}", None, None, "--audit-archive"),
        ("s3://audit/p/../q", None, None, "--audit-archive"),
        ("s3://audit", "ftp://kr.object.ncloudstorage.com", None, "--archive-endpoint"),
        (
            "s3://audit",
            f"https://{KEY}:{SECRET}@kr.object.ncloudstorage.com",
            None,
            "--archive-endpoint",
        ),
        ("s3://audit", "https://kr.object.ncloudstorage.com/bucket", None, "--archive-endpoint"),
        ("s3://audit", "https://127.0.0.1:99999", None, "--archive-endpoint"),
        ("s3://audit", None, "Korea Standard", "--archive-region"),
    ],
)
def test_parse_archive_url_refuses(
    url: str, endpoint_url: str | None, region: str | None, flag: str
) -> None:
    """Anything but a valid s3:// target is a usage error naming the flag, never echoing keys."""
    with pytest.raises(UsageError) as info:
        parse_archive_url(url, endpoint_url, region)
    assert info.value.exit_code == 2
    assert str(info.value).startswith(flag)
    assert SECRET not in str(info.value)


# --- credentials ---------------------------------------------------------------------------


def test_credentials_from_environment_first(tmp_path: Path) -> None:
    """The environment's AWS_* keys win over a credentials file."""
    (tmp_path / "creds").write_text("AWS_ACCESS_KEY_ID=file\nAWS_SECRET_ACCESS_KEY=file\n")
    env = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": "tok"}
    assert load_archive_credentials(env, tmp_path / "creds") == ArchiveCredentials(
        KEY, SECRET, "tok"
    )


def test_credentials_from_secret_directory(tmp_path: Path) -> None:
    """A Kubernetes Secret mount (files behind ..data symlinks) gives the keys."""
    data = tmp_path / "..2026_12_01"
    data.mkdir()
    (data / "AWS_ACCESS_KEY_ID").write_text(KEY + "\n")
    (data / "AWS_SECRET_ACCESS_KEY").write_text(SECRET + "\n")
    (data / "NCLOUD_SECRET_KEY").write_text("other\n")
    (tmp_path / "..data").symlink_to(data.name)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "NCLOUD_SECRET_KEY"):
        (tmp_path / name).symlink_to(f"..data/{name}")
    assert load_archive_credentials({}, tmp_path) == ArchiveCredentials(KEY, SECRET)


@pytest.mark.parametrize(
    "text",
    [
        f"# archive\nexport AWS_ACCESS_KEY_ID={KEY}\nAWS_SECRET_ACCESS_KEY = '{SECRET}'\n",
        f"[default]\naws_access_key_id = {KEY}\naws_secret_access_key = {SECRET}\n",
    ],
)
def test_credentials_from_key_value_file(tmp_path: Path, text: str) -> None:
    """KEY=value lines (export and quotes allowed) or ~/.aws/credentials give the keys."""
    (tmp_path / "creds").write_text(text)
    assert load_archive_credentials({}, str(tmp_path / "creds")) == ArchiveCredentials(KEY, SECRET)


def test_credentials_fall_back_to_default_chain(tmp_path: Path) -> None:
    """No AWS_* keys in env or file means None: boto3's default chain decides."""
    (tmp_path / "creds").write_text("NCLOUD_ACCESS_KEY=x\nNCLOUD_SECRET_KEY=y\n")
    assert load_archive_credentials({"NCLOUD_ACCESS_KEY": "x"}) is None
    assert load_archive_credentials({}, tmp_path / "creds") is None


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"AWS_ACCESS_KEY_ID": KEY}, "AWS_SECRET_ACCESS_KEY"),
        ({"AWS_SECRET_ACCESS_KEY": SECRET}, "AWS_ACCESS_KEY_ID"),
    ],
)
def test_credentials_half_a_pair_is_an_error(env: dict[str, str], missing: str) -> None:
    """One key without the other is a usage error naming the missing one, not the secret."""
    with pytest.raises(CredentialsError, match=missing) as info:
        load_archive_credentials(env)
    assert SECRET not in str(info.value)


def test_credentials_unreadable_file(tmp_path: Path) -> None:
    """A credentials file that cannot be read is a usage error naming it."""
    with pytest.raises(CredentialsError, match="cannot read archive credentials"):
        load_archive_credentials({}, tmp_path / "missing")


def test_credentials_repr_hides_secrets() -> None:
    """Neither the secret nor the session token appears in repr."""
    text = repr(ArchiveCredentials(KEY, SECRET, "session-token-xyz"))
    assert SECRET not in text
    assert "session-token-xyz" not in text


# --- preflight -----------------------------------------------------------------------------


async def test_preflight_passes_for_an_existing_bucket(endpoint: str, bucket: str) -> None:
    """An existing bucket with working keys passes the preflight."""
    await preflight(target(endpoint, bucket), CREDS)


async def test_preflight_missing_bucket(endpoint: str) -> None:
    """A bucket that does not exist fails the preflight with exit 2, naming it."""
    with pytest.raises(UsageError, match="no such bucket") as info:
        await preflight(target(endpoint, "no-such-bucket-here"), CREDS)
    assert "s3://no-such-bucket-here/" in str(info.value)
    assert info.value.exit_code == 2


async def test_preflight_unreachable_endpoint() -> None:
    """A closed loopback port fails the preflight as unreachable."""
    where = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(UsageError, match="endpoint unreachable"):
        await preflight(parse_archive_url("s3://audit", where), CREDS, attempts=1)


async def test_preflight_wrong_secret(endpoint: str, bucket: str, auth_on: Users) -> None:
    """Right access key, wrong secret: access denied, and the secret is not in the message."""
    await preflight(target(endpoint, bucket), auth_on.admin)
    wrong = ArchiveCredentials(auth_on.admin.access_key, SECRET)
    with pytest.raises(UsageError, match="access denied") as info:
        await preflight(target(endpoint, bucket), wrong)
    assert SECRET not in str(info.value)


async def test_preflight_without_any_credentials(
    endpoint: str, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No keys anywhere in boto3's chain fails the preflight with a hint where to put them."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(UsageError, match="no credentials: set AWS_ACCESS_KEY_ID"):
        await preflight(target(endpoint, bucket), None)


# --- archive_run ---------------------------------------------------------------------------


async def test_archive_round_trip(endpoint: str, bucket: str) -> None:
    """The audit log and summary land under prefix/YYYY/MM/DD/<run_id>, readable back as sent."""
    run_id = str(uuid.uuid4())
    keys = await archive_run(
        target(endpoint, bucket),
        CREDS,
        run_id=run_id,
        started_at=STARTED,
        audit_lines=AUDIT,
        summary=SUMMARY,
    )
    base = f"nclue/prod/2026/11/30/{run_id}"
    assert keys == [f"{base}.jsonl", f"{base}.summary.json"]
    client = s3(endpoint)
    listed = client.list_objects(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(keys)
    audit = client.get_object(Bucket=bucket, Key=keys[0])
    assert audit["Body"].read() == AUDIT
    assert audit["ContentType"] == "application/x-ndjson"
    summary = client.get_object(Bucket=bucket, Key=keys[1])
    assert json.loads(summary["Body"].read()) == SUMMARY
    assert summary["ContentType"] == "application/json"


async def test_archive_date_is_utc_date_of_start(endpoint: str, bucket: str) -> None:
    """A run started 00:30 in Seoul on 1 March is filed under the UTC date, 28 February."""
    seoul = timezone(timedelta(hours=9))
    keys = await archive_run(
        target(endpoint, bucket, prefix=""),
        CREDS,
        run_id="run-1",
        started_at=datetime(2026, 3, 1, 0, 30, tzinfo=seoul),
        audit_lines=AUDIT,
        summary=SUMMARY,
    )
    assert keys == ["2026/02/28/run-1.jsonl", "2026/02/28/run-1.summary.json"]


async def test_archive_uploads_the_plan_when_given(
    endpoint: str, bucket: str, tmp_path: Path
) -> None:
    """With plan_path the plan goes up as <run_id>.plan.json, before the summary."""
    plan = tmp_path / "plan.json"
    plan.write_bytes(b'{"decisions": []}\n')
    keys = await archive_run(
        target(endpoint, bucket),
        CREDS,
        run_id="dry-1",
        started_at=STARTED,
        audit_lines=AUDIT,
        summary=SUMMARY,
        plan_path=plan,
    )
    base = "nclue/prod/2026/11/30/dry-1"
    assert keys == [f"{base}.jsonl", f"{base}.plan.json", f"{base}.summary.json"]
    body = s3(endpoint).get_object(Bucket=bucket, Key=keys[1])
    assert body["Body"].read() == plan.read_bytes()
    assert body["ContentType"] == "application/json"


async def test_archive_retry_is_harmless_but_never_overwrites(endpoint: str, bucket: str) -> None:
    """Uploading the same run again succeeds; other content under that key is refused."""
    where = target(endpoint, bucket)
    args: dict[str, Any] = {"run_id": "run-2", "started_at": STARTED, "summary": SUMMARY}
    first = await archive_run(where, CREDS, audit_lines=AUDIT, **args)
    assert await archive_run(where, CREDS, audit_lines=AUDIT, **args) == first
    with pytest.raises(ArchiveError, match="already exists with other content") as info:
        await archive_run(where, CREDS, audit_lines=b'{"event":"other"}\n', **args)
    assert first[0] in str(info.value)
    assert s3(endpoint).get_object(Bucket=bucket, Key=first[0])["Body"].read() == AUDIT


async def test_archive_missing_bucket(endpoint: str) -> None:
    """A bucket gone by the end of the run is an ArchiveError naming bucket, key and reason."""
    with pytest.raises(ArchiveError) as info:
        await archive_run(
            target(endpoint, "gone-bucket"),
            CREDS,
            run_id="run-3",
            started_at=STARTED,
            audit_lines=AUDIT,
            summary=SUMMARY,
        )
    assert "s3://gone-bucket/nclue/prod/2026/11/30/run-3.jsonl" in str(info.value)
    assert "NoSuchBucket" in str(info.value)


@pytest.mark.parametrize("token", [None, "session-token-xyz"])
async def test_archive_refused_never_shows_secrets(
    endpoint: str, bucket: str, auth_on: Users, token: str | None
) -> None:
    """A refused upload (bad secret or token) is an ArchiveError without secret or token."""
    secret = SECRET if token is None else auth_on.admin.secret_key
    creds = ArchiveCredentials(auth_on.admin.access_key, secret, token)
    with pytest.raises(ArchiveError, match=r"upload failed: 40[03]") as info:
        await archive_run(
            target(endpoint, bucket),
            creds,
            run_id="run-4",
            started_at=STARTED,
            audit_lines=AUDIT,
            summary=SUMMARY,
        )
    text = f"{info.value} {info.value!r}"
    assert f"s3://{bucket}/nclue/prod/2026/11/30/run-4.jsonl" in text
    assert secret not in text
    assert "session-token-xyz" not in text


async def test_archive_with_a_write_only_key(endpoint: str, bucket: str, auth_on: Users) -> None:
    """A key that may only list the bucket and put objects passes preflight and uploads."""
    where = target(endpoint, bucket)
    await preflight(where, auth_on.writer)
    keys = await archive_run(
        where,
        auth_on.writer,
        run_id="run-8",
        started_at=STARTED,
        audit_lines=AUDIT,
        summary=SUMMARY,
    )
    assert (
        s3(endpoint, auth_on.admin).get_object(Bucket=bucket, Key=keys[0])["Body"].read() == AUDIT
    )
    with pytest.raises(ClientError, match="AccessDenied"):
        s3(endpoint, auth_on.writer).get_object(Bucket=bucket, Key=keys[0])


async def test_archive_unreachable_endpoint() -> None:
    """An endpoint that refuses connections is an ArchiveError, not a hang."""
    where = parse_archive_url("s3://audit", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(ArchiveError, match="endpoint unreachable"):
        await archive_run(
            where,
            CREDS,
            run_id="run-5",
            started_at=STARTED,
            audit_lines=AUDIT,
            summary=SUMMARY,
            attempts=1,
        )


async def test_archive_gives_up_on_a_silent_endpoint(silent_endpoint: str) -> None:
    """An endpoint that never answers costs at most timeout_s, then an ArchiveError."""
    where = parse_archive_url("s3://audit/p", silent_endpoint)
    with pytest.raises(ArchiveError, match=r"s3://audit/p/2026/11/30/run-9\.\*: upload gave up"):
        await archive_run(
            where,
            CREDS,
            run_id="run-9",
            started_at=STARTED,
            audit_lines=AUDIT,
            summary=SUMMARY,
            timeout_s=0.3,
        )


async def test_preflight_gives_up_on_a_silent_endpoint(silent_endpoint: str) -> None:
    """A preflight against an endpoint that never answers is a usage error after timeout_s."""
    with pytest.raises(UsageError, match=r"no answer within 0\.3 s"):
        await preflight(parse_archive_url("s3://audit", silent_endpoint), CREDS, timeout_s=0.3)


async def test_archive_unreadable_plan(endpoint: str, bucket: str, tmp_path: Path) -> None:
    """A plan file that cannot be read fails before any upload."""
    with pytest.raises(ArchiveError, match="cannot read the plan"):
        await archive_run(
            target(endpoint, bucket),
            CREDS,
            run_id="run-6",
            started_at=STARTED,
            audit_lines=AUDIT,
            summary=SUMMARY,
            plan_path=tmp_path / "none.json",
        )
    assert "Contents" not in s3(endpoint).list_objects(Bucket=bucket)


@pytest.mark.parametrize("run_id", ["", "../etc", "a/b", "run id", ".hidden"])
async def test_archive_refuses_unsafe_run_id(endpoint: str, bucket: str, run_id: str) -> None:
    """A run ID that is not a plain object name is refused, nothing uploaded."""
    with pytest.raises(ArchiveError, match="cannot be an object name"):
        await archive_run(
            target(endpoint, bucket),
            CREDS,
            run_id=run_id,
            started_at=STARTED,
            audit_lines=AUDIT,
            summary=SUMMARY,
        )
    assert "Contents" not in s3(endpoint).list_objects(Bucket=bucket)


async def test_archive_refuses_naive_start_time(endpoint: str, bucket: str) -> None:
    """A start time without a timezone has no UTC date: a programming error."""
    with pytest.raises(ValueError, match="timezone-aware"):
        await archive_run(
            target(endpoint, bucket),
            CREDS,
            run_id="run-7",
            started_at=datetime(2026, 1, 1),
            audit_lines=AUDIT,
            summary=SUMMARY,
        )
