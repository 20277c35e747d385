"""NCP API Gateway signature v2: the published vector and the documented openssl recipe."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from cleanup.signing import sign, signed_headers, string_to_sign, verify

TS = 1668407407855


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/cluster/kubeconfig", "LTJli9+OKT2KvUXxiKslMfu5FIOmDN83avehOvgUFp0="),
        (
            "/iam/krs-v1/user?clusterUuid=D11328F1-ECA9-4F1B-BA22-921F61D9C5FF",
            "emeahfW4CmzsxIQ5ip0cd9yqERXJ+ZJsRfQpGNmKdXk=",
        ),
    ],
)
def test_published_vector(uri: str, expected: str) -> None:
    """The signature matches NAVER Cloud's own published test vector."""
    assert sign("GET", uri, TS, "access", "secret") == expected


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize(
    ("method", "uri"),
    [
        ("GET", "/api/v1/tasks?index=0&limit=100"),
        ("GET", "/api/v1/task-runs?index=200&limit=100"),
        ("DELETE", "/api/v1/tasks/f5aebc0c-1111-2222-3333-b201bc64b1c9"),
        ("GET", "/api/v1/tasks/abc"),
    ],
)
def test_matches_openssl_recipe(method: str, uri: str) -> None:
    """The signature equals the documented shell recipe's output byte for byte."""
    message = f"{method} {uri}\n{TS}\nAKIDEXAMPLE"
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-hmac", "s3cr3t/with+chars", "-binary"],
        input=message.encode(),
        capture_output=True,
        check=True,
    ).stdout
    b64 = (
        subprocess.run(["openssl", "enc", "-base64"], input=digest, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    assert sign(method, uri, TS, "AKIDEXAMPLE", "s3cr3t/with+chars") == b64


def test_string_to_sign_layout() -> None:
    """The signed text is METHOD SP URI LF TIMESTAMP LF ACCESS_KEY, method upper-cased."""
    assert string_to_sign("delete", "/api/v1/tasks/x", 5, "ak") == "DELETE /api/v1/tasks/x\n5\nak"


def test_verify_round_trip_and_rejections() -> None:
    """verify accepts its own headers and rejects a wrong secret, key or URI."""
    headers = signed_headers("GET", "/api/v1/tasks?index=0&limit=1", TS, "ak", "sk")
    assert verify("GET", "/api/v1/tasks?index=0&limit=1", headers, "ak", "sk")
    assert not verify("GET", "/api/v1/tasks?index=0&limit=1", headers, "ak", "other")
    assert not verify("GET", "/api/v1/tasks?limit=1&index=0", headers, "ak", "sk")
    assert not verify("GET", "/api/v1/tasks?index=0&limit=1", headers, "other", "sk")
