"""The bundled simulator in its own process, with a per-request arrival log.

    python -m benchmarks.sim_server --tasks 10000 --rate-limit 310 [--latency 0.05]

The account is ``generate_account(tasks, seed=...)`` with every task ``completed``: by
default no busy tasks, no held tasks, so every selected task is deletable at the first
attempt; ``--busy-fraction`` / ``--held-fraction`` / ``--busy-duration`` add tasks that
are busy, or held by a run, and finish within that many seconds of the server's start.
Once listening, one JSON line goes to stdout: ``{"base_url", "url", "tasks"}``.
SIGTERM or SIGINT stops the server.

An aiohttp middleware records, for every API request, the server's arrival time, the
time its answer was ready, the method, the route and the status (``time.monotonic()``
of this process, the clock ``SimState.delete_log`` uses). ``GET /_bench/log`` (unsigned,
uncounted, like ``/_sim/stats``) returns that log with the delete log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from cleanup.simulator import SimConfig, Simulator, generate_account
from cleanup.simulator.app import API_PREFIX

LOG_PATH = "/_bench/log"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ArrivalLog:
    """Every API request as the server saw it: arrival, answer, method, path, status."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.entries: list[tuple[float, float, str, str, int]] = []

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Time API requests; serve ``/_bench/log`` before the simulator's catch-all route."""
        if request.path == LOG_PATH:
            return self.serve()
        if not request.path.startswith(API_PREFIX):
            return await handler(request)
        arrived = time.monotonic()
        status = 0
        try:
            response = await handler(request)
            status = response.status
            return response
        finally:
            self.entries.append((arrived, time.monotonic(), request.method, request.path, status))

    def serve(self) -> web.Response:
        """The arrival log and the delete log, as JSON."""
        body = {
            "now": time.monotonic(),
            "requests": self.entries,
            "deletes": [moment for moment, _task_id in self.sim.state.delete_log],
        }
        return web.json_response(body)


async def serve(args: argparse.Namespace) -> None:
    """Build the account, start the server, announce it, serve until a signal."""
    config = SimConfig(rate_limit=args.rate_limit, latency_s=args.latency, seed=args.seed)
    state = generate_account(
        args.tasks,
        seed=args.seed,
        busy_fraction=args.busy_fraction,
        held_fraction=args.held_fraction,
        busy_duration_s=args.busy_duration,
        status_weights={"completed": 1.0},
    )
    sim = Simulator(config, state)
    log = ArrivalLog(sim)
    sim.app.middlewares.append(log.middleware)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await sim.start(args.host, args.port)
    try:
        ready = {"base_url": sim.base_url, "url": sim.url, "tasks": len(state.tasks)}
        print(json.dumps(ready), flush=True)
        await stop.wait()
    finally:
        await sim.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sim_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate-limit", type=float, help="requests/s the server accepts")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per response")
    parser.add_argument("--busy-fraction", type=float, default=0.0, help="share of busy tasks")
    parser.add_argument("--held-fraction", type=float, default=0.0, help="share of held tasks")
    parser.add_argument("--busy-duration", type=float, default=2.0, help="busy for at most S s")
    asyncio.run(serve(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
