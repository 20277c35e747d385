"""Hostile responses: a proxy, gateway or API that misbehaves in ways a client must survive.

``Hostility`` is consulted by ``SimApi`` at fixed points of every request; each knob
lives in ``SimConfig`` (off by default) and each fault it injects is counted in
``SimState.faults`` by kind:

- ``before_gateway``: ``html_error`` (a 502 HTML page from a proxy in front of the
  gateway: no authentication, no quota, no rate slot, nothing deleted);
- ``storm``: ``throttle_storm`` (429 errorCode 420 after authentication and quota,
  whatever the rate);
- ``spoil_body``: ``truncated_json`` and ``non_object_body`` on a 2xx JSON answer
  (after the endpoint ran: a DELETE so answered has deleted the task);
- ``task_object``: ``wrong_types`` and ``missing_task_id`` on each task object of a
  listing page or a GET;
- ``listing_total`` / ``listing_start``: ``total_offset`` and ``duplicate_across_pages``;
- ``stamp_429``: ``retry_after`` on every 429;
- ``redirect``: ``redirect_routes`` (a 3xx to ``redirect_location`` once admitted).

Lying 2xx bodies live in ``lies.py``, compression and size in ``encoding.py``.

Probabilities are drawn from the simulator's one seeded generator, and only when they
are above zero, so an unchanged run stays reproducible.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from aiohttp import web

from cleanup.simulator.config import SimConfig

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
"""What an nginx proxy answers when the upstream is gone."""

NON_OBJECT_BODIES = (b"[]", b'"ok"', b"null")
"""Valid JSON that is not an object, for ``non_object_body``."""

WRONG_VALUES: dict[str, Any] = {
    "status": 3,
    "created_at": "yesterday-ish",
    "task_name": ["exp", "churn"],
}
"""What ``wrong_types`` puts in each field it spoils."""


class Hostility:
    """The hostile knobs of one simulator, applied at the points ``SimApi`` calls."""

    def __init__(self, config: SimConfig, rng: random.Random, faults: Counter[str]) -> None:
        """Share the simulator's live ``config``, fault generator and fault counters."""
        self.config = config
        self.rng = rng
        self.faults = faults

    def _draw(self, probability: float) -> bool:
        """Return True with ``probability``, drawing only when it is above zero."""
        return probability > 0 and self.rng.random() < probability

    def _on_route(self, route: str) -> bool:
        routes = self.config.hostile_routes
        return routes is None or route in routes

    def before_gateway(self, route: str) -> web.Response | None:
        """A proxy's 502 HTML error page (``html_error``), or None."""
        if self._on_route(route) and self._draw(self.config.html_error):
            self.faults["html_error"] += 1
            return web.Response(status=502, text=HTML_502, content_type="text/html")
        return None

    def storm(self, route: str) -> bool:
        """Whether this request is throttled by the storm (``throttle_storm``)."""
        if self._on_route(route) and self._draw(self.config.throttle_storm):
            self.faults["throttle_storm"] += 1
            return True
        return False

    def spoil_body(self, route: str, response: web.StreamResponse) -> web.StreamResponse:
        """Cut a 2xx JSON body in half, or swap it for a non-object (or leave it)."""
        if not (200 <= response.status < 300 and isinstance(response, web.Response)):
            return response
        if response.content_type != "application/json" or not self._on_route(route):
            return response
        body = response.body
        if not isinstance(body, bytes):
            return response
        config = self.config
        if self._draw(config.truncated_json):
            self.faults["truncated_json"] += 1
            spoiled = body[: len(body) // 2]
        elif self._draw(config.non_object_body):
            self.faults["non_object_body"] += 1
            spoiled = self.rng.choice(NON_OBJECT_BODIES)
        else:
            return response
        return web.Response(status=response.status, body=spoiled, content_type="application/json")

    def task_object(self, route: str, body: dict[str, Any]) -> dict[str, Any]:
        """A task object as a broken API might send it (``wrong_types``, ``missing_task_id``)."""
        config = self.config
        if not self._on_route(route):
            return body
        if self._draw(config.wrong_types):
            self.faults["wrong_types"] += 1
            for name in sorted(config.wrong_type_fields):
                body[name] = WRONG_VALUES[name]
        if self._draw(config.missing_task_id):
            self.faults["missing_task_id"] += 1
            body.pop("task_id", None)
        return body

    def listing_total(self, true_total: int) -> int:
        """The ``total`` a listing page reports (``total_offset``)."""
        if self.config.total_offset:
            self.faults["total_offset"] += 1
        return true_total + self.config.total_offset

    def listing_start(self, start: int) -> int:
        """Where a listing page really starts (``duplicate_across_pages``: one early)."""
        if self.config.duplicate_across_pages and start > 0:
            self.faults["duplicate_across_pages"] += 1
            return start - 1
        return start

    def redirect(self, route: str, request: web.Request) -> web.Response | None:
        """A redirect instead of the endpoint (``redirect_routes``), or None."""
        config = self.config
        if route not in config.redirect_routes:
            return None
        self.faults["redirect"] += 1
        location = config.redirect_location.replace("{path}", request.raw_path)
        return web.Response(status=config.redirect_status, headers={"Location": location})

    def stamp_429(self, response: web.StreamResponse) -> None:
        """Add the configured ``Retry-After`` to a 429."""
        if response.status == 429 and self.config.retry_after is not None:
            response.headers["Retry-After"] = self.config.retry_after


def throttled() -> web.Response:
    """The gateway's 429 Rate Limited (errorCode 420), as a storm answers."""
    body = {"error": {"errorCode": "420", "message": "Rate Limited", "details": None}}
    return web.Response(status=429, body=json.dumps(body), content_type="application/json")
