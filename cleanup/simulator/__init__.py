"""The bundled NCLUE API simulator: a real aiohttp server for tests, demo and benchmarks.

- ``SimConfig``: credentials, pagination meaning, rate limit, quota, latency, faults,
  and hostile responses (HTML 502s, spoiled bodies, garbled fields, lying listings,
  429 storms; see ``hostile.py``), each counted in ``SimState.faults``;
- ``SimState`` / ``SimTask`` / ``SimRun``: the account and its request counters;
- ``generate_account`` / ``load_seed``: fill an account from a seed or a file;
- ``Simulator`` / ``start_simulator`` / ``serve_forever``: serve it on a port.
"""

from cleanup.simulator.config import SimConfig
from cleanup.simulator.seed import SeedError, generate_account, load_seed
from cleanup.simulator.server import (
    Simulator,
    running_in_thread,
    serve_forever,
    start_simulator,
)
from cleanup.simulator.state import SimRun, SimState, SimTask

__all__ = [
    "SeedError",
    "SimConfig",
    "SimRun",
    "SimState",
    "SimTask",
    "Simulator",
    "generate_account",
    "load_seed",
    "running_in_thread",
    "serve_forever",
    "start_simulator",
]
