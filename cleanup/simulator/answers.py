"""Canned answers of the simulated gateway and API: errors, refusals, 404 pages."""

from __future__ import annotations

import json

from aiohttp import web

from cleanup.simulator.config import SimConfig

REFUSAL_MESSAGE = (
    "The task cannot be deleted now. Try again under conditions where deletion is possible."
)
HTML_404 = (
    "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
"""What a proxy answers for a path it has no route for."""


def error_response(
    status: int, code: str, message: str, details: str | None = None
) -> web.Response:
    """Return a gateway-shaped error: ``{"error": {"errorCode", "message", "details"}}``."""
    body = {"error": {"errorCode": code, "message": message, "details": details}}
    return web.Response(status=status, body=json.dumps(body), content_type="application/json")


def task_not_found() -> web.Response:
    """NCLUE's own 404 for a task id that does not exist."""
    return error_response(404, "10106", "Task not found")


def endpoint_error() -> web.Response:
    """The gateway's transient 503."""
    return error_response(503, "500", "Endpoint Error")


def bad_request(details: str) -> web.Response:
    """The gateway's 400 Bad Request Exception."""
    return error_response(400, "100", "Bad Request Exception", details)


def refusal(config: SimConfig) -> web.Response:
    """A refused delete, shaped by ``refusal_status`` and ``refusal_body``."""
    status = config.refusal_status
    if config.refusal_body == "text":
        return web.Response(status=status, text=REFUSAL_MESSAGE, content_type="text/plain")
    if config.refusal_body == "gateway":
        if status == 500:
            return error_response(status, "900", "Unexpected Error", REFUSAL_MESSAGE)
        return error_response(status, "100", "Bad Request Exception", REFUSAL_MESSAGE)
    return error_response(status, "10107", REFUSAL_MESSAGE)


def route_not_found(config: SimConfig) -> web.Response:
    """The gateway's 404 for a path outside the API, shaped by ``route_404_body``."""
    if config.route_404_body == "html":
        return web.Response(status=404, text=HTML_404, content_type="text/html")
    if config.route_404_body == "text":
        return web.Response(status=404, text="Not Found", content_type="text/plain")
    return error_response(404, "300", "Not Found Exception")
