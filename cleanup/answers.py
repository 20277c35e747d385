"""What an answer means: status codes to our exceptions, 2xx bodies checked, headers read.

Pure functions over a ``Reply`` (no I/O), used only by ``client.py``: together they are
the one layer that reads responses. Error bodies are read leniently (``errorCode`` as a
string or a number, ``details`` null, HTML pages from proxies); a 2xx body is read
strictly where it could steer a delete.
"""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

from .errors import (
    ApiError,
    AuthError,
    BadResponseError,
    EndpointError,
    NotFoundError,
    QuotaExceededError,
    RefusedError,
    ThrottledError,
    TransientApiError,
)
from .transport import Reply
from .untrusted import printable

GATEWAY_AUTH_CODES = frozenset({"200", "210", "230"})
GATEWAY_NOT_FOUND = "300"
"""The gateway's 404 errorCode: no such route, or (for a task path) no such task."""


def check_delete_body(reply: Reply, where: str, task_id: str) -> bool:
    """A DELETE's 2xx body: empty, or a JSON object naming the same task. Returns
    whether it named the task; raises ``BadResponseError`` for anything else."""
    if reply.body in _named(task_id):  # the API's own answer, byte for byte
        return True
    if not reply.body.strip():
        return False
    body = parse_json(reply.body)
    if not isinstance(body, dict):
        raise BadResponseError(
            f"{where}: HTTP {reply.status} with a body that is not JSON "
            f"({_content_type(reply)}); the delete is not trusted"
        )
    if "error" in body:
        code, detail = _error_fields(body, reply.body)
        raise BadResponseError(
            f"{where}: HTTP {reply.status} with an error object"
            + (f" errorCode {code}" if code else "")
            + (f": {detail}" if detail else ""),
            status=reply.status,
            code=code,
            detail=detail,
        )
    named = body.get("task_id")
    if named is None:
        return False
    if named != task_id:
        shown = printable(str(named), 60)
        raise BadResponseError(f"{where}: HTTP {reply.status} naming another task ({shown})")
    return True


def _named(task_id: str) -> tuple[bytes, bytes]:
    """``{"task_id": "<id>"}`` as the API documents it and compactly (a plain ID needs
    no escaping): a body equal to one of them is that object, without parsing it."""
    quoted = task_id.encode()
    return (b'{"task_id": "' + quoted + b'"}', b'{"task_id":"' + quoted + b'"}')


def translate(
    where: str, reply: Reply, *, method: str, any_success: bool
) -> ApiError | EndpointError:
    """Turn a non-2xx answer into our exception, reading the error body leniently."""
    status = reply.status
    body = parse_json(reply.body)
    code, detail = _error_fields(body, reply.body)
    text = f"{where}: HTTP {status}" + (f" errorCode {code}" if code else "")
    text += f": {detail}" if detail else ""
    kw: dict[str, Any] = {"status": status, "code": code, "detail": detail}
    if 300 <= status < 400:
        target = _origin_of(reply.headers.get("Location", ""))
        return BadResponseError(f"{where}: HTTP {status} redirect to {target} not followed", **kw)
    if status in (401, 403):
        gateway = code in GATEWAY_AUTH_CODES
        if method == "DELETE" and any_success and not gateway:
            return RefusedError(text, **kw)
        return AuthError(text, **kw)
    if status == 429:
        if code == "400":
            return QuotaExceededError(text, **kw)
        return ThrottledError(
            text, retry_after=parse_retry_after(reply.headers.get("Retry-After")), **kw
        )
    if status == 404:
        if not _is_error_object(body):
            return route_not_found(where, f"HTTP 404 with a non-API body ({_content_type(reply)})")
        return NotFoundError(text, **kw)
    if status >= 500 or status == 408:
        return TransientApiError(text, **kw)
    return RefusedError(text, **kw)


def route_not_found(where: str, why: str) -> EndpointError:
    return EndpointError(
        f"endpoint or route not found ({where}: {why}); check --endpoint / NCLUE_ENDPOINT "
        "(the base URL ends in /api/v1); nothing was deleted"
    )


def _is_error_object(body: object) -> bool:
    if not isinstance(body, dict):
        return False
    error = body.get("error")
    fields = error if isinstance(error, dict) else body
    return "errorCode" in fields or "code" in fields


def parse_json(raw: bytes) -> object:
    """The JSON in ``raw``, or None. An object or array that starts at the first byte
    (every answer a server sends) is UTF-8 to ``json.loads`` too, so it is decoded
    here without its encoding sniffing; the rest goes through ``json.loads``."""
    try:
        if raw[:1] in (b"{", b"[") and raw[1:2] != b"\x00":
            return _DECODE(raw.decode("utf-8", "surrogatepass"))
        return json.loads(raw) if raw else None
    except ValueError:
        return None


_DECODE = json.JSONDecoder().decode


def _content_type(reply: Reply) -> str:
    return printable(reply.headers.get("Content-Type", "no content type").split(";")[0], 60)


def _error_fields(body: object, raw: bytes) -> tuple[str | None, str | None]:
    if isinstance(body, dict):
        error = body.get("error")
        fields = error if isinstance(error, dict) else body
        code = fields.get("errorCode", fields.get("code"))
        message = fields.get("message") or fields.get("details")
        return (
            None
            if code is None or isinstance(code, (dict, list, bool))
            else printable(str(code), 40),
            None if message is None else printable(str(message)),
        )
    text = " ".join(raw[:2000].decode("utf-8", "replace").split())
    if text.lstrip().startswith("<"):
        return None, "an HTML page (a proxy or a wrong URL?)"
    return None, (printable(text, 200) or None)


def _origin_of(url: str) -> str:
    parts = url.split("/")
    return printable("/".join(parts[:3]) if "://" in url else url or "(no Location)", 80)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` of seconds or an HTTP date; ``None`` if unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def skew(date_header: str | None, local_now: float) -> float | None:
    """The server's clock minus ours, from a ``Date`` header (None when unreadable)."""
    if not date_header:
        return None
    try:
        server = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    return None if server is None else server.timestamp() - local_now
