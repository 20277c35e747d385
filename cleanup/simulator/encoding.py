"""Compression and size on the wire: gzip bodies, oversized bodies, gzip bombs.

``Encoding.finish`` is the last step of every gated answer (``SimConfig.gzip_responses``,
``oversize_body_bytes``, ``gzip_bomb_bytes``); each is counted in ``SimState.faults``.
The padding keeps the body a JSON object: a ``_padding`` string of the size needed.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import Counter

from aiohttp import web

from cleanup.simulator.config import SimConfig

SIZED_ROUTES = frozenset({"list_tasks", "get_task", "list_runs", "list_profiles"})
"""Routes whose 2xx bodies ``oversize_body_bytes`` and ``gzip_bomb_bytes`` inflate."""
_CHUNK = 1 << 20


def _padding_frame(body: bytes) -> tuple[bytes, int] | None:
    """Split a JSON object body for padding: (its text up to the padding, fixed size).

    The padding is a last ``"_padding"`` member; None when the body is not an object.
    """
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    framed = json.dumps({**document, "_padding": ""}).encode()
    return framed[:-2], len(framed)


def padded(body: bytes, size: int) -> bytes:
    """``body`` (a JSON object) padded to ``size`` bytes; unchanged if not smaller."""
    frame = _padding_frame(body)
    if frame is None or frame[1] >= size:
        return body
    head, fixed = frame
    return head + b"0" * (size - fixed) + b'"}'


def bomb(body: bytes, size: int) -> bytes:
    """Gzip of ``body`` padded to ``size`` bytes, compressed in chunks (never held whole)."""
    frame = _padding_frame(body) or (b'{"_padding": "', len(b'{"_padding": ""}'))
    head, fixed = frame
    room = max(0, size - fixed)
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(head)]
    zeros = b"0" * _CHUNK
    while room > 0:
        step = min(room, _CHUNK)
        parts.append(packer.compress(zeros[:step]))
        room -= step
    parts.append(packer.compress(b'"}'))
    parts.append(packer.flush())
    return b"".join(parts)


class Encoding:
    """The size and compression knobs of one simulator."""

    def __init__(self, config: SimConfig, faults: Counter[str]) -> None:
        """Share the simulator's live config and fault counters."""
        self.config = config
        self.faults = faults

    def finish(self, route: str, response: web.StreamResponse) -> web.StreamResponse:
        """Pad, bomb or gzip a JSON answer as configured (others pass untouched)."""
        config = self.config
        if not isinstance(response, web.Response) or response.content_type != "application/json":
            return response
        body = response.body
        if not isinstance(body, bytes):
            return response
        sized = route in SIZED_ROUTES and 200 <= response.status < 300
        if sized and config.gzip_bomb_bytes is not None:
            self.faults["gzip_bomb"] += 1
            return self._gzipped(response, bomb(body, config.gzip_bomb_bytes))
        if sized and config.oversize_body_bytes is not None:
            self.faults["oversize_body"] += 1
            body = padded(body, config.oversize_body_bytes)
            response = web.Response(status=response.status, body=body, headers=_kept(response))
        if config.gzip_responses:
            self.faults["gzip"] += 1
            return self._gzipped(response, gzip.compress(body, compresslevel=6))
        return response

    @staticmethod
    def _gzipped(response: web.Response, wire: bytes) -> web.Response:
        headers = _kept(response)
        headers["Content-Encoding"] = "gzip"
        return web.Response(status=response.status, body=wire, headers=headers)


def _kept(response: web.Response) -> dict[str, str]:
    """The response's headers but its length (the new body has another)."""
    return {key: value for key, value in response.headers.items() if key != "Content-Length"}
