"""--notify: the webhook post, against a real aiohttp receiver on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from cleanup.errors import UsageError
from cleanup.notify import notify, origin, summary_text, validate_notify_url
from cleanup.summary import RunSummary, TaskNote

TOKEN_PATH = "/services/T0SECRET/B0SECRET/xoxSECRETTOKEN"
SECRETS = ("SECRET", "xox", "services", "sig=")


@dataclass
class Receiver:
    """A webhook receiver: what it was sent, and the switch that lets hung requests go."""

    base: str
    posts: list[tuple[str, str, Any]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """Routes: /services/... answers 200, /fail 500, /hang never, /moved 302 to /target."""
    rx = Receiver(base="")

    async def record(request: web.Request) -> web.Response:
        rx.posts.append((request.path_qs, request.content_type, await request.json()))
        return web.Response(text="ok")

    async def fail(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text="boom")

    async def hang(request: web.Request) -> web.Response:
        await rx.release.wait()
        return web.Response(text="too late")

    async def moved(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": f"/target{TOKEN_PATH}"})

    app = web.Application()
    app.router.add_post("/services/{token:.*}", record)
    app.router.add_post("/target/{token:.*}", record)
    app.router.add_post("/fail/{token:.*}", fail)
    app.router.add_post("/hang/{token:.*}", hang)
    app.router.add_post("/moved/{token:.*}", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rx.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield rx
    rx.release.set()
    await runner.cleanup()


def assert_no_secret(warning: str | None) -> None:
    assert warning is not None
    for secret in SECRETS:
        assert secret not in warning


async def test_posts_slack_text_and_the_summary(receiver: Receiver) -> None:
    """A 2xx answer is success; the body is {"text": ..., "summary": ...} as JSON."""
    url = f"{receiver.base}{TOKEN_PATH}?sig=abc"
    payload = {"run_id": "r1", "counts": {"deleted": 3}, "task_ids": {"deleted": ["a", "b"]}}
    assert await notify(url, text="deleted 3", payload=payload) is None
    assert receiver.posts == [
        (f"{TOKEN_PATH}?sig=abc", "application/json", {"text": "deleted 3", "summary": payload})
    ]


async def test_a_500_is_a_warning_naming_only_the_origin(receiver: Receiver) -> None:
    """A non-2xx answer returns one warning line with scheme://host:port and no token."""
    warning = await notify(f"{receiver.base}/fail{TOKEN_PATH}?sig=abc", text="t", payload={})
    assert warning == f"notify: {receiver.base} answered 500"


async def test_a_receiver_that_never_answers_is_a_warning(receiver: Receiver) -> None:
    """A receiver that never answers gives a warning once the total timeout passes."""
    url = f"{receiver.base}/hang{TOKEN_PATH}"
    warning = await notify(url, text="t", payload={}, timeout_s=0.2)
    assert warning == f"notify: {receiver.base} did not answer within 0.2 s"


async def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    """A 302 is a warning and the redirect target receives nothing."""
    warning = await notify(f"{receiver.base}/moved{TOKEN_PATH}", text="t", payload={"a": 1})
    assert warning == f"notify: {receiver.base} answered 302, a redirect (not followed)"
    assert receiver.posts == []


async def test_a_refused_connection_is_a_warning() -> None:
    """Nothing listening on the port: a warning that names the origin, never the token."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://user:pw-SECRET@127.0.0.1:{port}{TOKEN_PATH}?sig=abc"
    warning = await notify(url, text="t", payload={})
    assert_no_secret(warning)
    assert warning is not None
    assert warning.startswith(f"notify: cannot connect to http://127.0.0.1:{port} (")


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example/services/xoxSECRET",
        "hooks.example/services/xoxSECRET",
        "T0SECRET:xoxSECRET",
        "http:///services/xoxSECRET",
        "http://127.0.0.1:notaport/services/xoxSECRET",
    ],
)
def test_only_http_urls_with_a_host_are_accepted(url: str) -> None:
    """Other URLs are a usage error that does not repeat the URL."""
    with pytest.raises(UsageError) as caught:
        validate_notify_url(url)
    assert_no_secret(str(caught.value))


def test_http_and_https_urls_are_accepted_and_shown_by_origin() -> None:
    """http(s) URLs pass; messages show scheme://host[:port] only, IPv6 in brackets."""
    validate_notify_url(f"https://hooks.slack.com{TOKEN_PATH}")
    validate_notify_url("http://[::1]:8080/x")
    assert origin(f"https://u:p@hooks.slack.com{TOKEN_PATH}?a=b") == "https://hooks.slack.com"
    assert origin("http://[::1]:8080/x") == "http://[::1]:8080"


def summary(**fields: Any) -> RunSummary:
    base: dict[str, Any] = {
        "run_id": "r1",
        "dry_run": False,
        "exit_code": 0,
        "counts": {
            "would_delete": 0,
            "deleted": 0,
            "already_absent": 0,
            "skipped": 0,
            "failed": 0,
            "still_busy": 0,
        },
        "task_ids": {},
        "requests": {},
        "requests_total": 0,
        "duration_s": 1.0,
        "endpoint": "http://127.0.0.1:9/api/v1",
        "policy_sha256": "ab" * 32,
        "trigger": "cron",
    }
    return RunSummary(**{**base, **fields})


def test_summary_text_of_a_dry_run_says_where_the_plan_is() -> None:
    """A dry run's text says what would be deleted, kept and waited for, and the plan path."""
    text = summary_text(
        summary(
            dry_run=True,
            counts={"would_delete": 5, "skipped": 3, "still_busy": 2},
            skip_reasons={"protect": 2, "keep_latest": 1},
            plan_path="/plans/p.json",
        )
    )
    assert text == (
        "nclue-cleanup dry run r1 (cron): would delete 5, 2 busy now (would wait for them), "
        "would keep 3 (protect 2, keep_latest 1). Full plan at /plans/p.json. Exit 0: done."
    )


def test_summary_text_of_an_apply_run_names_failures_escaped() -> None:
    """An apply run's text has the outcomes, interrupted apart, failures named and escaped."""
    hostile = "\x1b[31m<!channel> & <https://evil|click>"
    text = summary_text(
        summary(
            exit_code=1,
            account="prod",
            counts={"deleted": 7, "already_absent": 1, "skipped": 4, "failed": 1},
            skip_reasons={"protect": 1, "interrupted": 3},
            notes={"failed": (TaskNote("t9", hostile, "RefusedError: 400 bad\nrequest"),)},
        )
    )
    assert text == (
        "nclue-cleanup run r1 (cron, account prod): deleted 7, already absent 1, "
        "kept by rules 1 (protect 1), not reached (interrupted) 3, failed 1. "
        "Failed: \\x1b[31m&lt;!channel&gt; &amp; &lt;https://evil|click&gt; (t9): "
        "RefusedError: 400 bad\\x0arequest. "
        "Exit 1: some tasks failed, or the run could not complete."
    )
