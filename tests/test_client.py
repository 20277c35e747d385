"""The client against the simulator: signing accepted, errors translated, attempts counted."""

from __future__ import annotations

import contextlib

import pytest

from cleanup.client import NclueClient, _translate, parse_retry_after
from cleanup.credentials import Credentials
from cleanup.errors import (
    AuthError,
    NotFoundError,
    QuotaExceededError,
    RefusedError,
    ThrottledError,
    TransientApiError,
)
from cleanup.limiter import RateLimiter

from .conftest import CREDS, account


def _client(sim, creds=CREDS, **kw) -> NclueClient:
    kw.setdefault("backoff_base_s", 0.001)
    kw.setdefault("backoff_max_s", 0.01)
    return NclueClient(sim.url, creds, RateLimiter(5000, 4), **kw)


async def test_signed_requests_are_accepted(make_sim):
    """A request signed by the client passes the simulator's signature check."""
    sim = await make_sim(account(2))
    async with _client(sim) as client:
        page = await client.list_page("tasks", 0, 100)
        task = await client.get_task("t0001")
        await client.delete_task("t0000")
    assert page["total"] == 2 and task["task_id"] == "t0001"
    assert sim.state.remaining_ids() == {"t0001"}


async def test_wrong_secret_is_rejected_with_auth_error(make_sim):
    """A wrong secret gets 401 and becomes AuthError, without retries."""
    sim = await make_sim(account(1))
    async with _client(sim, Credentials("sim-access-key", "wrong")) as client:
        with pytest.raises(AuthError) as info:
            await client.get_task("t0000")
    assert info.value.status == 401 and info.value.code == "200"
    assert sim.state.total_requests() == 1
    assert "wrong" not in str(info.value)


async def test_delete_of_unknown_task_is_not_found(make_sim):
    """A DELETE of a task the server does not know raises NotFoundError (404)."""
    sim = await make_sim(account(1))
    async with _client(sim) as client:
        with pytest.raises(NotFoundError):
            await client.delete_task("nope")


async def test_dropped_connection_is_one_attempt_each(make_sim):
    """aiohttp's silent re-send is off: every DELETE the server sees is an attempt we made."""
    sim = await make_sim(account(20), drop_connection=1.0)
    attempts = 0

    def on_attempt(_: int) -> None:
        nonlocal attempts
        attempts += 1

    async with _client(sim, max_attempts=3) as client:
        for i in range(20):
            with contextlib.suppress(TransientApiError, NotFoundError):
                await client.delete_task(f"t{i:04d}", on_attempt=on_attempt)
    assert attempts == sim.state.count(method="DELETE")
    assert client.requests["delete_task", 0] == sim.state.count(method="DELETE", status=0)


async def test_hung_request_times_out_as_transient(make_sim):
    """A server that never answers within the timeout gives a TransientApiError."""
    sim = await make_sim(account(1), hang=1.0, hang_s=5.0)
    async with _client(sim, timeout_s=0.2, max_attempts=1) as client:
        with pytest.raises(TransientApiError, match="timed out"):
            await client.get_task("t0000")


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (401, b'{"error":{"errorCode":"200","message":"Authentication Failed"}}', AuthError, "200"),
        (
            403,
            b'{"error":{"errorCode":230,"message":"Forbidden","details":null}}',
            AuthError,
            "230",
        ),
        (429, b'{"error":{"errorCode":"420","message":"Rate Limited"}}', ThrottledError, "420"),
        (429, b'{"error":{"errorCode":410,"message":"Throttle Limited"}}', ThrottledError, "410"),
        (
            429,
            b'{"error":{"errorCode":"400","message":"Quota Exceeded"}}',
            QuotaExceededError,
            "400",
        ),
        (
            404,
            b'{"error":{"errorCode":"10106","message":"Task not found"}}',
            NotFoundError,
            "10106",
        ),
        (409, b'{"error":{"errorCode":"10107","message":"busy"}}', RefusedError, "10107"),
        (400, b'{"code": 100, "message": "Bad Request Exception"}', RefusedError, "100"),
        (
            503,
            b"<html><body><h1>503 Service Unavailable</h1></body></html>",
            TransientApiError,
            None,
        ),
        (504, b'{"error": {"errorCode": "510"', TransientApiError, None),
        (500, b"[1, 2]", TransientApiError, None),
        (502, b"", TransientApiError, None),
    ],
)
def test_responses_translate_leniently(status, body, error, code):
    """Error bodies are read leniently (codes as strings or numbers, HTML, truncated JSON)."""
    import json

    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    exc = _translate("DELETE /api/v1/tasks/x", status, parsed, body, None)
    assert type(exc) is error
    assert exc.status == status and exc.code == code


def test_html_error_page_message_is_its_text():
    """A proxy's HTML page becomes a short text message, tags removed."""
    body = b"<html><head><title>Bad Gateway</title></head><body>upstream down</body></html>"
    exc = _translate("GET /api/v1/tasks", 502, None, body, None)
    assert exc.detail == "Bad Gateway upstream down"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("garbage", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ],
)
def test_retry_after_parsing(value, expected):
    """Retry-After of seconds or an HTTP date is honoured; garbage is ignored."""
    assert parse_retry_after(value, now=1_900_000_000.0) == expected


def test_retry_after_date_in_future():
    """A Retry-After date in the future gives the seconds until then."""
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0
