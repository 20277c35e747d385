"""Running the simulator: a real aiohttp server on a loopback port.

Typical use: ``async with Simulator(SimConfig(rate_limit=5), generate_account(100)) as
sim:``, point the client at ``sim.url``, then read the counters in ``sim.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from types import TracebackType

from aiohttp import web

from cleanup.simulator.app import SimApi
from cleanup.simulator.config import SimConfig
from cleanup.simulator.state import SimState

SHUTDOWN_TIMEOUT_S = 1.0
"""How long closing waits for in-flight requests before cancelling them."""


class Simulator:
    """One simulated NCLUE account served over HTTP.

    ``config`` and ``state`` are the live objects the handlers use: change a fault in
    ``sim.config`` mid-run, or read ``sim.state`` counters, from the same event loop.
    """

    def __init__(self, config: SimConfig | None = None, state: SimState | None = None) -> None:
        """Prepare the application; nothing listens until ``start``."""
        self.config = config if config is not None else SimConfig()
        self.state = state if state is not None else SimState()
        self._api = SimApi(self.config, self.state)
        self.app: web.Application = self._api.build()
        self._api_prefix = self.config.api_prefix
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port: int | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host``:``port`` (0 picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._host = host
        self._port = int(runner.addresses[0][1])

    @property
    def port(self) -> int:
        """The port the server listens on."""
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The server's root, e.g. ``http://127.0.0.1:8080`` (control endpoints live here)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL, e.g. ``http://127.0.0.1:8080/api/v1`` (``config.api_prefix``)."""
        return self.base_url + self._api_prefix

    async def close(self) -> None:
        """Stop listening; hung requests are released and answered first."""
        self._api.closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        """Start on a free loopback port unless already started."""
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the server."""
        await self.close()


async def start_simulator(
    config: SimConfig | None = None,
    state: SimState | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> Simulator:
    """Start a simulator and return it; the caller closes it."""
    simulator = Simulator(config, state)
    await simulator.start(host, port)
    return simulator


async def serve_forever(
    config: SimConfig | None = None,
    state: SimState | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    on_started: Callable[[Simulator], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set or the task is cancelled, then close the server.

    ``on_started`` is called once the server listens (the CLI prints ``sim.url`` there);
    this function prints nothing itself. Cancellation propagates after the close.
    """
    simulator = await start_simulator(config, state, host, port)
    try:
        if on_started is not None:
            on_started(simulator)
        await (stop if stop is not None else asyncio.Event()).wait()
    finally:
        await simulator.close()


@contextlib.contextmanager
def running_in_thread(
    config: SimConfig | None = None, state: SimState | None = None
) -> Iterator[Simulator]:
    """Serve a simulator from a background thread's event loop, for synchronous callers.

    ``demo`` uses it so the real pipeline runs in the main thread (where signal
    handlers work); tests of the synchronous Python API use it the same way.
    """
    loop = asyncio.new_event_loop()
    simulator = loop.run_until_complete(start_simulator(config, state))
    thread = threading.Thread(target=loop.run_forever, name="nclue-simulator", daemon=True)
    thread.start()
    try:
        yield simulator
    finally:
        asyncio.run_coroutine_threadsafe(simulator.close(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
