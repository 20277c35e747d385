"""Knobs of the simulated gateway: credentials, pagination meaning, limits and faults.

This module imports nothing of aiohttp, so the CLI can build a ``SimConfig`` cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from cleanup.simulator.state import SimState

LISTING_ROUTES = frozenset({"list_tasks", "list_runs", "list_profiles"})
"""Route names of the three listings (same pagination, gate and knobs)."""
API_ROUTES = LISTING_ROUTES | {"get_task", "delete_task"}
"""Every API route name; ``other`` is the gateway's 404 for any other path."""
HOSTILE_ROUTES = API_ROUTES
"""Route names ``SimConfig.hostile_routes`` and ``SimConfig.redirect_routes`` may hold."""
WRONG_TYPE_FIELDS = frozenset({"status", "created_at", "task_name"})
"""Field names ``SimConfig.wrong_type_fields`` may hold."""
REFUSAL_STATUSES = (400, 403, 409, 500)
"""HTTP statuses a refused delete may have (``SimConfig.refusal_status``)."""

RefusalBody = Literal["nclue", "gateway", "text"]
StatusSpelling = Literal["completed", "complete", "mixed_case"]
TotalMeaning = Literal["account", "page"]
Order = Literal["newest_first", "oldest_first"]
TimestampFormat = Literal[
    "iso_z",
    "naive",
    "naive_kst",
    "kst_offset",
    "kst_offset_nocolon",
    "epoch_s",
    "epoch_ms",
    "fraction_7",
]
Route404Body = Literal["json", "html", "text"]


@dataclass
class SimConfig:
    """How the simulator behaves; mutable on purpose, tests change faults mid-run.

    Probabilities are drawn from one ``random.Random(seed)`` owned by the server, and
    only when they are above zero, so a run with the same requests is reproducible.
    Every knob from ``html_error`` on (the readings of the ambiguous API pages and the
    hostile answers: ``wire.py``, ``listings.py``, ``hostile.py``, ``lies.py``,
    ``encoding.py``) is off by default, and each time one fires it is counted in
    ``SimState.faults`` (under the knob's name unless its docstring says otherwise).
    """

    access_key: str = "sim-access-key"
    secret_key: str = "sim-secret-key"
    index_mode: Literal["page", "offset"] = "offset"
    """What ``index`` means in the listings (tasks, runs, profiles): page or item offset."""
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
    """HTTP status of a refused delete (busy, or held by a run or profile): one of
    ``REFUSAL_STATUSES``."""
    refusal_body: RefusalBody = "nclue"
    """Body of a refused delete: ``nclue`` (``{"error": {"errorCode": "10107", ...}}``),
    ``gateway`` (a gateway-looking error, errorCode 100 Bad Request Exception, or 900
    Unexpected Error with status 500: never an authentication code) or ``text`` (a
    ``text/plain`` sentence). Any but 400 + ``nclue`` counts ``refusal_shape``."""
    registered_holds: bool = True
    """A ``registered`` run or profile holds its task, like ``pending`` / ``in_progress``
    (the Korean master page, revised 2026-07); False: only those two hold."""
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
    """Listings report ``total`` as the true count (see ``total_meaning``) plus this (a
    lie in either direction; it may go negative)."""
    duplicate_across_pages: bool = False
    """Every listing page after the first starts one item early, so it
    repeats the previous page's last item and pushes its own last item to the next page
    (a pagination off-by-one: IDs repeat across pages and the listing's tail can fall
    off the last page the total announces)."""

    # -- readings of an ambiguous API (``wire.py``, ``listings.py``) --------------------
    status_spelling: StatusSpelling = "completed"
    """How task bodies (listing and GET) spell statuses: ``completed`` (the schemas),
    ``complete`` (the Create task pages) or ``mixed_case`` (each task, by a hash of its id,
    in one of ``Completed``, ``COMPLETE``, ``Failed``, ``In_Progress``, ...). Counted
    ``status_spelling`` per task body whose spelling differs from the canonical one."""
    total_meaning: TotalMeaning = "account"
    """What a listing's ``total`` is: ``account`` (every item) or ``page`` (the items on
    this page). ``page`` counts ``total_meaning`` per page."""
    order: Order = "newest_first"
    """Order of /tasks, /task-runs and /profile/shopping-intents: ``newest_first`` or
    ``oldest_first`` (counted ``oldest_first`` per page)."""
    timestamp_format: TimestampFormat = "iso_z"
    """How ``created_at`` / ``completed_at`` appear in tasks, runs and profiles: ``iso_z``
    (``2026-03-01T12:00:00Z``), ``naive`` (UTC wall time, no zone), ``naive_kst``
    (Asia/Seoul wall time, no zone), ``kst_offset`` (``+09:00``), ``kst_offset_nocolon``
    (``+0900``), ``epoch_s`` / ``epoch_ms`` (JSON integers) or ``fraction_7`` (seven
    fractional digits, ``Z``). Counted ``timestamp_format`` per body reshaped."""

    # -- lying bodies (``lies.py``) ------------------------------------------------------
    wrong_get_body: float = 0.0
    """Probability GET /tasks/{id} answers 200 with ANOTHER existing task's body."""
    get_body_swap: Mapping[str, str] = field(default_factory=dict)
    """asked task_id -> the task whose body GET /tasks/{asked} answers (when it exists)."""
    delete_wrong_body: float = 0.0
    """Probability a deletable task's DELETE answers 200 ``{"task_id": <another id>}``
    and deletes nothing."""
    delete_html_2xx: float = 0.0
    """Probability a deletable task's DELETE answers 200 with an HTML page, deleting nothing."""
    delete_error_2xx: float = 0.0
    """Probability a deletable task's DELETE answers 200 with an ``{"error": ...}`` object,
    deleting nothing."""
    delete_lies: float = 0.0
    """Probability a deletable task's DELETE answers 200 ``{"task_id": id}`` but the task
    stays."""
    delete_empty_2xx: float = 0.0
    """Probability a deletable task's DELETE deletes it and answers 204 with no body."""

    # -- listings that contradict themselves or move (``listings.py``) ------------------
    conflicting_duplicates: frozenset[str] = frozenset()
    """Task ids listed twice in GET /tasks, far apart (on different pages once the
    account spans more than one), one record with the real status and one with a busy
    one (``in_progress``; ``completed`` for a task that really is busy). ``total`` counts
    both. Counted ``conflicting_duplicate`` per ghost record served."""
    create_per_list_page: int = 0
    """After each GET /tasks page is served, this many new ``registered`` tasks appear at
    the newest end (continuous creation). Counted ``created_during_listing``."""
    delete_per_list_page: int = 0
    """After each GET /tasks page is served, this many random tasks vanish (another
    client deleted them; ``SimState.vanished``). Counted ``deleted_during_listing``."""
    on_list_page: Callable[[SimState, str, int], None] | None = None
    """Called as ``hook(state, route, index)`` after each listing page is served (every
    listing route), so a test can change the account between page reads."""

    # -- the gateway's routing (``hostile.py``) ----------------------------------------
    redirect_routes: frozenset[str] = frozenset()
    """Routes that answer ``redirect_status`` with ``Location: redirect_location`` once
    authenticated and admitted, without running the endpoint (counted ``redirect``)."""
    redirect_location: str = ""
    """A full URL; ``{path}`` in it is replaced by the request's path and query."""
    redirect_status: int = 307
    route_404_body: Route404Body = "json"
    """Body of the gateway's 404 for any path outside the API: ``json`` (errorCode 300 Not
    Found Exception), ``html`` or ``text`` (counted ``route_404_body`` unless ``json``)."""
    api_prefix: str = "/api/v1"
    """Where the API is served, read when the ``Simulator`` is built; every other path
    (``/api/v2/...`` included) gets the gateway's 404."""

    # -- compression and size (``encoding.py``) -----------------------------------------
    gzip_responses: bool = False
    """Every JSON body is sent ``Content-Encoding: gzip`` (counted ``gzip``)."""
    oversize_body_bytes: int | None = None
    """2xx bodies of listings and GET /tasks/{id} are padded to this many bytes (still a
    JSON object; counted ``oversize_body``)."""
    gzip_bomb_bytes: int | None = None
    """2xx bodies of listings and GET /tasks/{id} are sent as gzip that inflates to this
    many bytes (a JSON object padded with zeros; counted ``gzip_bomb``)."""

    def __post_init__(self) -> None:
        """Refuse a route, field name or value the knobs would not know."""
        unknown = set(self.hostile_routes or ()) - HOSTILE_ROUTES
        unknown |= set(self.redirect_routes) - HOSTILE_ROUTES
        unknown |= set(self.wrong_type_fields) - WRONG_TYPE_FIELDS
        if unknown:
            raise ValueError(f"SimConfig: unknown route or field name(s): {sorted(unknown)}")
        if self.refusal_status not in REFUSAL_STATUSES:
            raise ValueError(f"SimConfig: refusal_status must be one of {REFUSAL_STATUSES}")
        if self.redirect_routes and not self.redirect_location:
            raise ValueError("SimConfig: redirect_routes needs a redirect_location")
        if not self.api_prefix.startswith("/") or self.api_prefix.endswith("/"):
            raise ValueError("SimConfig: api_prefix must start with '/' and not end with it")
