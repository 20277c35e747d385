"""The bundled NCLUE API simulator: a real aiohttp server for tests, demo and benchmarks.

- ``SimConfig``: credentials, pagination meaning, rate limit, quota, latency, faults,
  the readings of an ambiguous API (status spelling, refusal shape, ``total``, order,
  timestamps), and hostile responses (HTML 502s, spoiled and lying bodies, conflicting
  and moving listings, redirects, gateway 404s, compressed and oversized bodies; see
  ``hostile.py``, ``lies.py``, ``listings.py``, ``encoding.py``), each counted in
  ``SimState.faults``;
- ``SimState`` / ``SimTask`` / ``SimRun`` / ``SimProfile``: the account and its counters;
- ``generate_account`` / ``load_seed``: fill an account from a seed or a file;
- ``Simulator`` / ``start_simulator`` / ``serve_forever``: serve it on a port.

Names are imported on first use (PEP 562), so ``import cleanup.simulator`` does not load
aiohttp's server.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cleanup.simulator.config import SimConfig
    from cleanup.simulator.records import SimProfile, SimRun, SimTask
    from cleanup.simulator.seed import SeedError, generate_account, load_seed
    from cleanup.simulator.server import (
        Simulator,
        running_in_thread,
        serve_forever,
        start_simulator,
    )
    from cleanup.simulator.state import SimState

_HOMES = {
    "SeedError": "seed",
    "SimConfig": "config",
    "SimProfile": "records",
    "SimRun": "records",
    "SimState": "state",
    "SimTask": "records",
    "Simulator": "server",
    "generate_account": "seed",
    "load_seed": "seed",
    "running_in_thread": "server",
    "serve_forever": "server",
    "start_simulator": "server",
}

__all__ = [
    "SeedError",
    "SimConfig",
    "SimProfile",
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


def __getattr__(name: str) -> Any:
    """Import an exported name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The exported names, for completion."""
    return sorted(__all__)
