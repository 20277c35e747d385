"""The transport: the one layer every HTTP attempt to the NCLUE API passes through.

This is the only module that uses aiohttp's client. Each attempt, in order:

1. waits for a concurrency slot (held until the body is read) and a rate slot
   (``RateBudget.acquire``);
2. is announced through ``on_send`` (the audit log's write-ahead ``deleting`` line;
   if that raises, nothing is sent);
3. is signed over the exact path and query it sends, with a fresh timestamp;
4. is counted by route.

Steps 2 to 4 run in an aiohttp client middleware, so a re-send aiohttp makes on its
own (it re-sends an idempotent request, DELETE included, once when a reused
keep-alive connection turns out closed) passes the rate budget, the write-ahead line
and the counters like any other attempt: it is accounted for, not hidden. Redirects
are never followed (credentials never go to another origin), bodies are capped at
``MAX_BODY_BYTES`` after decompression, and aiohttp's exceptions become ours here.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from . import __version__
from .budget import RateBudget
from .credentials import Credentials
from .errors import BadResponseError, EndpointError, TransientApiError
from .signing import signed_headers

MAX_BODY_BYTES = 16 * 1024 * 1024
OnSend = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP answer: status, its headers (case-insensitive, read-only), the body, and
    how many sends it took (more than 1 when aiohttp re-sent on a dropped keep-alive
    connection)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    sends: int


class Transport:
    """Signed, budgeted, counted HTTP to one endpoint (an async context manager)."""

    def __init__(
        self,
        endpoint: str,
        credentials: Credentials,
        budget: RateBudget,
        *,
        concurrency: int,
        timeout_s: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        url = URL(endpoint)
        self.endpoint = endpoint
        self._origin = str(url.origin())
        self.base_path = url.raw_path.rstrip("/")
        self._credentials = credentials
        self.budget = budget
        self._slots = asyncio.Semaphore(concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(10.0, timeout_s))
        self._wall_clock = wall_clock
        self.offset_ms = 0
        """Added to every timestamp once the gateway's clock is known to differ."""
        self.sends: Counter[str] = Counter()
        """Every attempt sent, by route (aiohttp's own re-sends included)."""
        self.answers: Counter[tuple[str, int]] = Counter()
        """Every attempt by (route, status); status 0 when no response arrived."""
        self._session: aiohttp.ClientSession | None = None
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None

    async def __aenter__(self) -> Transport:
        # HTTPS_PROXY / NO_PROXY, as clusters with an egress proxy need, read once here:
        # aiohttp's trust_env would look them (and ~/.netrc) up again in a thread for
        # every request, which measured as more than half the client's CPU.
        try:
            self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(self._origin))
        except LookupError:  # no proxy for this host (or NO_PROXY names it)
            self._proxy, self._proxy_auth = None, None
        self._session = aiohttp.ClientSession(
            timeout=self._timeout,
            headers={"Accept": "application/json", "User-Agent": f"nclue-cleanup/{__version__}"},
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            trust_env=False,
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def wall_now(self) -> float:
        return self._wall_clock()

    async def send(
        self, method: str, path: str, query: str = "", *, route: str, on_send: OnSend | None = None
    ) -> Reply:
        """One request (plus any re-send aiohttp makes); raises only our own errors."""
        assert self._session is not None, "use the transport as an async context manager"
        uri = f"{self.base_path}{path}?{query}" if query else f"{self.base_path}{path}"
        where = f"{method} {uri}"
        sends = [0]
        middleware = self._middleware(route, on_send, sends)
        async with self._slots:
            try:
                async with self._session.request(
                    method,
                    URL(self._origin + uri, encoded=True),
                    allow_redirects=False,
                    middlewares=(middleware,),
                    proxy=self._proxy,
                    proxy_auth=self._proxy_auth,
                ) as resp:
                    body = await _read_capped(resp, where)
                    headers = resp.headers  # case-insensitive, read-only
                    status = resp.status
            except (BadResponseError, EndpointError):
                self.answers[route, 0] += 1
                raise
            except TimeoutError as exc:
                self.answers[route, 0] += 1
                raise TransientApiError(f"{where}: timed out ({self._origin})") from exc
            except aiohttp.ClientSSLError as exc:
                self.answers[route, 0] += 1
                raise EndpointError(_tls_message(self._origin, exc)) from exc
            except aiohttp.ClientConnectorError as exc:
                self.answers[route, 0] += 1
                raise TransientApiError(
                    f"{where}: cannot connect to {self._origin} ({_reason(exc)}); "
                    "check --endpoint / NCLUE_ENDPOINT and the network"
                ) from exc
            except aiohttp.ClientError as exc:
                self.answers[route, 0] += 1
                raise TransientApiError(
                    f"{where}: connection error ({type(exc).__name__}, {self._origin})"
                ) from exc
        self.answers[route, status] += 1
        return Reply(status, headers, body, sends[0])

    def _middleware(
        self, route: str, on_send: OnSend | None, sends: list[int]
    ) -> aiohttp.ClientMiddlewareType:
        async def middleware(
            request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
        ) -> aiohttp.ClientResponse:
            await self.budget.acquire()
            sends[0] += 1
            if on_send is not None:
                on_send(sends[0])  # may raise: then this attempt is not sent
            timestamp = int(self._wall_clock() * 1000) + self.offset_ms
            request.headers.update(
                signed_headers(
                    request.method,
                    request.url.raw_path_qs,
                    timestamp,
                    self._credentials.access_key,
                    self._credentials.secret_key,
                )
            )
            self.sends[route] += 1
            return await handler(request)

        return middleware


async def _read_capped(resp: aiohttp.ClientResponse, where: str) -> bytes:
    """The body, refused past ``MAX_BODY_BYTES`` (counted after decompression)."""
    declared = resp.content_length
    if resp.headers.get("Content-Encoding", "identity") in ("identity", ""):
        if declared is not None and declared > MAX_BODY_BYTES:
            raise BadResponseError(f"{where}: response body of {declared} bytes is over 16 MB")
        if declared is not None and "Transfer-Encoding" not in resp.headers:
            # aiohttp reads exactly the declared length (a longer body is a protocol
            # error), so the cap holds without counting chunks. A length beside
            # Transfer-Encoding is refused by aiohttp; were it not, chunks are counted.
            return await resp.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadResponseError(f"{where}: response body is over 16 MB (after decompression)")
        chunks.append(chunk)
    return b"".join(chunks)


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    error = exc.os_error
    return error.strerror or type(error).__name__ if error is not None else "unreachable"


def _tls_message(origin: str, exc: aiohttp.ClientSSLError) -> str:
    text = str(exc)
    if "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
        return (
            f"TLS handshake with {origin} failed: the server does not speak TLS "
            "(is the endpoint http://, such as the local simulator?)"
        )
    if isinstance(exc, aiohttp.ClientConnectorCertificateError) or isinstance(
        getattr(exc, "os_error", None), ssl.SSLCertVerificationError
    ):
        return f"TLS certificate of {origin} could not be verified (TLS is always verified)"
    return f"TLS handshake with {origin} failed ({type(exc).__name__})"
