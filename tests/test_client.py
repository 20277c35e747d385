"""The client against the simulator: signing accepted, errors translated, attempts counted."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cleanup.answers import check_delete_body, parse_json, parse_retry_after, translate
from cleanup.budget import LocalBudget
from cleanup.credentials import Credentials
from cleanup.errors import (
    AuthError,
    BadResponseError,
    EndpointError,
    NotFoundError,
    QuotaExceededError,
    RefusedError,
    ThrottledError,
    TransientApiError,
)
from cleanup.kinds import TASKS
from cleanup.transport import Reply, Transport

from .conftest import CREDS, account, api_stack


async def test_signed_requests_are_accepted(make_sim):
    """A request signed by the client passes the simulator's signature check."""
    sim = await make_sim(account(2))
    async with api_stack(sim) as api:
        page = await api.client.list_page(TASKS, 0, 100)
        task = await api.client.get_task("t0001")
        await api.client.delete_once("t0000")
    assert page.total == 2 and task is not None and task.task_id == "t0001"
    assert sim.state.remaining_ids() == {"t0001"}


async def test_wrong_secret_is_rejected_with_auth_error(make_sim):
    """A wrong secret gets 401 and becomes AuthError, without retries."""
    sim = await make_sim(account(1))
    async with api_stack(sim, Credentials("sim-access-key", "wrong")) as api:
        with pytest.raises(AuthError) as info:
            await api.client.get_task("t0000")
    assert info.value.status == 401 and info.value.code == "200"
    assert sim.state.total_requests() == 1
    assert "wrong" not in str(info.value)


async def test_delete_of_unknown_task_is_absent_once_the_endpoint_is_proven(make_sim):
    """A DELETE 404 with the API's body is 'absent' after a listing proved the endpoint."""
    sim = await make_sim(account(1))
    async with api_stack(sim) as api:
        with pytest.raises(EndpointError, match="endpoint or route not found"):
            await api.client.delete_once("nope")  # nothing proved the endpoint yet
        await api.client.list_page(TASKS, 0, 1)
        reply = await api.client.delete_once("nope")
    assert reply.absent


async def test_gateway_404_on_the_first_call_is_a_configuration_error(make_sim):
    """A wrong base path answers 404 to everything: exit-2 error, never 'already absent'."""
    sim = await make_sim(account(1))
    async with api_stack(sim, url=sim.base_url + "/api/v2") as api:
        with pytest.raises(EndpointError):
            await api.client.get_task("t0000")


@pytest.mark.parametrize("body", ["html", "text"])
async def test_404_with_a_non_api_body_is_a_configuration_error(make_sim, body):
    """A 404 page that is not the API's JSON error object never means 'already absent'."""
    sim = await make_sim(account(1), route_404_body=body)
    async with api_stack(sim, url=sim.base_url + "/nclue") as api:
        with pytest.raises(EndpointError, match="non-API body"):
            await api.client.list_page(TASKS, 0, 1)


async def test_every_send_passes_the_accounting_even_aiohttp_re_sends(make_sim):
    """Every DELETE the server sees went through our on_send hook and the rate budget."""
    sim = await make_sim(account(20), drop_connection=1.0)
    attempts = 0

    def on_send(_: int) -> None:
        nonlocal attempts
        attempts += 1

    async with api_stack(sim, max_attempts=3) as api:
        await api.client.list_page(TASKS, 0, 1)
        for i in range(20):
            with contextlib.suppress(TransientApiError, NotFoundError):
                await api.client.delete_once(f"t{i:04d}", on_send=on_send)
    assert attempts == sim.state.count(method="DELETE")
    assert api.transport.sends["delete_task"] == sim.state.count(method="DELETE")


async def test_hung_request_times_out_as_transient(make_sim):
    """A server that never answers within the timeout gives a TransientApiError."""
    sim = await make_sim(account(1), hang=1.0, hang_s=5.0)
    async with api_stack(sim, timeout_s=0.2, max_attempts=1) as api:
        with pytest.raises(TransientApiError, match="timed out"):
            await api.client.get_task("t0000")


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
    reply = Reply(status, {}, body, 1)
    exc = translate("DELETE /api/v1/tasks/x", reply, method="DELETE", any_success=False)
    assert type(exc) is error
    assert exc.status == status and exc.code == code


def test_html_error_page_message_says_what_it_is():
    """A proxy's HTML page becomes a short message saying so, not the page's markup."""
    body = b"<html><head><title>Bad Gateway</title></head><body>upstream down</body></html>"
    exc = translate("GET /api/v1/tasks", Reply(502, {}, body, 1), method="GET", any_success=True)
    assert exc.detail == "an HTML page (a proxy or a wrong URL?)"


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


@settings(max_examples=500)
@given(
    raw=st.binary(max_size=12)
    | st.builds(
        lambda s, enc: s.encode(enc),
        st.sampled_from(['{"a":1}', "[1]", '{"t":"é"}']),
        st.sampled_from(["utf-8", "utf-8-sig", "utf-16-le", "utf-16", "utf-32"]),
    )
)
def test_parse_json_reads_as_json_loads(raw: bytes):
    """The fast path gives what ``json.loads`` gives (None where it raises)."""
    try:
        expected = json.loads(raw) if raw else None
    except ValueError:
        expected = None
    assert parse_json(raw) == expected


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b'{"task_id": "t1"}', True),
        (b'{"task_id":"t1"}', True),
        (b'{ "task_id" : "t1" }', True),
        (b"", False),
        (b'{"status": "deleted"}', False),
        (b'{"task_id": "t10"}', None),
        (b'{"task_id": "t1"', None),
    ],
)
def test_a_delete_body_names_the_task_or_is_refused(body: bytes, named: bool | None):
    """The API's own answer is read byte for byte, any other JSON is parsed; a body
    naming another task or not JSON is refused."""
    reply = Reply(200, {}, body, 1)
    if named is None:
        with pytest.raises(BadResponseError):
            check_delete_body(reply, "DELETE /tasks/t1", "t1")
    else:
        assert check_delete_body(reply, "DELETE /tasks/t1", "t1") is named


async def test_a_declared_length_with_chunks_behind_it_is_still_capped():
    """A hostile server that declares a small Content-Length and sends Transfer-Encoding:
    chunked with 17 MB behind it: refused (aiohttp calls it a protocol error; were it
    read, the chunks would be counted against the 16 MB cap), never taken as an answer."""
    chunk = b"0" * (1 << 20)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            for _ in range(17):
                writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = Transport(
        f"http://127.0.0.1:{port}/api/v1", CREDS, LocalBudget(100), concurrency=1, timeout_s=10
    )
    try:
        async with transport:
            with pytest.raises((BadResponseError, TransientApiError)):
                await transport.send("GET", "/tasks/t1", route="get_task")
    finally:
        server.close()
        await server.wait_closed()
