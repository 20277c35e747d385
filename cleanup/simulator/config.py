"""Knobs of the simulated gateway: credentials, pagination meaning, limits and faults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class SimConfig:
    """How the simulator behaves; mutable on purpose, tests change faults mid-run.

    Probabilities are drawn from one ``random.Random(seed)`` owned by the server, and
    only when they are above zero, so a run with the same requests is reproducible.
    """

    access_key: str = "sim-access-key"
    secret_key: str = "sim-secret-key"
    index_mode: Literal["page", "offset"] = "offset"
    """What ``index`` means in GET /tasks and /task-runs: page number or item offset."""
    rate_limit: float | None = None
    """Accepted requests per 1-second sliding window (below 1: one per 1/rate s)."""
    quota: int | None = None
    """Accepted requests in total before every further one gets 429 Quota Exceeded."""
    latency_s: float = 0.0
    """Added to every API response."""
    clock_offset_s: float = 0.0
    """The server clock is real time plus this (Date header, 5-minute timestamp check)."""
    busy_duration_s: float = 2.0
    """Default time a busy task or run takes to finish (used by the CLI's generator)."""
    refusal_status: int = 400
    """HTTP status of a refused (busy) delete: 400 or 409."""
    fail_before_delete: float = 0.0
    """Probability that a DELETE answers 503 Endpoint Error and deletes nothing."""
    fail_after_delete: float = 0.0
    """Probability that a DELETE deletes, then answers 504 Endpoint Timeout."""
    drop_connection: float = 0.0
    """Probability that a DELETE closes the connection unanswered (half after deleting)."""
    hang: float = 0.0
    """Probability that a request sleeps ``hang_s`` before it is answered."""
    hang_s: float = 30.0
    fail_list_pages: frozenset[int] = frozenset()
    """GET /tasks with one of these ``index`` values always answers 503."""
    fail_list: float = 0.0
    """Probability that a GET /tasks page answers 503."""
    seed: int = 0
    """Seed of the simulator's fault generator."""
