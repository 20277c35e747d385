"""Knobs of the simulated gateway: credentials, pagination meaning, limits and faults."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HOSTILE_ROUTES = frozenset({"list_tasks", "get_task", "delete_task", "list_runs"})
"""Route names ``SimConfig.hostile_routes`` may hold."""
WRONG_TYPE_FIELDS = frozenset({"status", "created_at", "task_name"})
"""Field names ``SimConfig.wrong_type_fields`` may hold."""


@dataclass
class SimConfig:
    """How the simulator behaves; mutable on purpose, tests change faults mid-run.

    Probabilities are drawn from one ``random.Random(seed)`` owned by the server, and
    only when they are above zero, so a run with the same requests is reproducible.
    The hostile knobs (``html_error`` onwards, see ``hostile.py``) are all off by
    default; every fault the simulator injects is counted in ``SimState.faults``.
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

    # -- hostile responses (``hostile.py``): a gateway or proxy misbehaving -------------
    html_error: float = 0.0
    """Probability a request is answered 502 with an HTML proxy error page (text/html),
    before it reaches the gateway (no authentication, quota or rate slot; no delete)."""
    truncated_json: float = 0.0
    """Probability a 2xx JSON body is cut in half (still ``application/json``). A DELETE
    so answered has deleted the task."""
    non_object_body: float = 0.0
    """Probability a 2xx body is replaced by valid JSON that is not an object: ``[]``,
    ``"ok"`` or ``null``. A DELETE so answered has deleted the task."""
    throttle_storm: float = 0.0
    """Probability an authenticated request is answered 429 errorCode 420 whatever the
    rate (1.0: a storm). It takes no rate slot and is not ``accepted``."""
    retry_after: str | None = None
    """A ``Retry-After`` header value added to every 429 (``"2"``, an HTTP date, junk)."""
    wrong_types: float = 0.0
    """Probability a task object in GET /tasks or GET /tasks/{id} has wrong field types
    (the fields in ``wrong_type_fields``; ``task_id`` stays a string)."""
    wrong_type_fields: frozenset[str] = WRONG_TYPE_FIELDS
    """Which fields ``wrong_types`` spoils: ``status`` becomes a number, ``created_at``
    a string that is not a time, ``task_name`` a list."""
    missing_task_id: float = 0.0
    """Probability a task object in GET /tasks or GET /tasks/{id} has no ``task_id``."""
    hostile_routes: frozenset[str] | None = None
    """Routes (``HOSTILE_ROUTES``) the probabilities above (``html_error`` to
    ``missing_task_id``) apply to; None: every API route they can apply to."""
    total_offset: int = 0
    """GET /tasks and /task-runs report ``total`` as the true count plus this (a lie in
    either direction; it may go negative)."""
    duplicate_across_pages: bool = False
    """Every GET /tasks and /task-runs page after the first starts one item early, so it
    repeats the previous page's last item and pushes its own last item to the next page
    (a pagination off-by-one: IDs repeat across pages and the listing's tail can fall
    off the last page the total announces)."""

    def __post_init__(self) -> None:
        """Refuse a route or field name the hostile knobs would not know."""
        unknown = set(self.hostile_routes or ()) - HOSTILE_ROUTES
        unknown |= set(self.wrong_type_fields) - WRONG_TYPE_FIELDS
        if unknown:
            raise ValueError(f"SimConfig: unknown route or field name(s): {sorted(unknown)}")
