"""NCP API Gateway signature v2: pure functions, no I/O, no clock.

    string_to_sign = METHOD + " " + URI + "\\n" + TIMESTAMP + "\\n" + ACCESS_KEY
    signature      = base64(HMAC-SHA256(secret_key, string_to_sign))

``URI`` is the path with its query string exactly as sent, e.g.
``/api/v1/tasks?index=0&limit=100``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

TIMESTAMP_HEADER = "x-ncp-apigw-timestamp"
ACCESS_KEY_HEADER = "x-ncp-iam-access-key"
SIGNATURE_HEADER = "x-ncp-apigw-signature-v2"


def string_to_sign(method: str, uri: str, timestamp_ms: int | str, access_key: str) -> str:
    """Return the exact text that signature v2 signs."""
    return f"{method.upper()} {uri}\n{timestamp_ms}\n{access_key}"


def sign(method: str, uri: str, timestamp_ms: int | str, access_key: str, secret_key: str) -> str:
    """Return the base64 signature of one request."""
    message = string_to_sign(method, uri, timestamp_ms, access_key).encode("utf-8")
    digest = hmac.new(secret_key.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(
    method: str, uri: str, timestamp_ms: int, access_key: str, secret_key: str
) -> dict[str, str]:
    """Return the three headers that authenticate one request."""
    return {
        TIMESTAMP_HEADER: str(timestamp_ms),
        ACCESS_KEY_HEADER: access_key,
        SIGNATURE_HEADER: sign(method, uri, timestamp_ms, access_key, secret_key),
    }


def verify(
    method: str, uri: str, headers: Mapping[str, str], access_key: str, secret_key: str
) -> bool:
    """Check a request's signature headers in constant time (used by the simulator)."""
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    signature = headers.get(SIGNATURE_HEADER, "")
    if headers.get(ACCESS_KEY_HEADER, "") != access_key or not timestamp.isdigit():
        return False
    expected = sign(method, uri, timestamp, access_key, secret_key)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace"))
