"""The loop the API page suggests, for comparison: GET each task, then DELETE it.

    python -m benchmarks.naive_peer --endpoint URL --ids FILE --rate 1 --out OUT.json

One ID at a time: ``GET /tasks/{id}`` (is it there, is it finished?), then
``DELETE /tasks/{id}`` when its status allows; every call signed, one call in flight,
calls at least ``1/rate`` seconds apart. A 429 is waited out (``1/rate`` more) and
retried; the retry counts as a call. ``OUT.json`` gets the calls by status, the tasks
deleted and the wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
from yarl import URL

from cleanup.signing import signed_headers

DELETABLE = frozenset({"registered", "completed", "failed"})


class NaivePeer:
    """One signed call at a time, spaced ``1/rate`` seconds apart."""

    def __init__(self, session: aiohttp.ClientSession, endpoint: str, rate: float) -> None:
        url = URL(endpoint)
        self._session = session
        self._origin, self._base_path = str(url.origin()), url.raw_path.rstrip("/")
        self._interval = 1.0 / rate
        self._next_at = 0.0
        self._keys = os.environ["NCLOUD_ACCESS_KEY"], os.environ["NCLOUD_SECRET_KEY"]
        self.calls: Counter[str] = Counter()

    async def call(self, method: str, path: str) -> tuple[int, object]:
        """Send one call when its turn comes; retry a 429 after another interval."""
        uri = self._base_path + path
        while True:
            wait = self._next_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._next_at = time.monotonic() + self._interval
            headers = signed_headers(method, uri, int(time.time() * 1000), *self._keys)
            target = URL(self._origin + uri, encoded=True)
            async with self._session.request(method, target, headers=headers) as resp:
                status, body = resp.status, await resp.json(content_type=None)
            self.calls[f"{method} {status}"] += 1
            if status != 429:
                return status, body

    async def delete_ids(self, ids: list[str]) -> int:
        """For each ID: GET it, then DELETE it if it exists and is finished."""
        deleted = 0
        for task_id in ids:
            status, body = await self.call("GET", f"/tasks/{task_id}")
            if status != 200 or not isinstance(body, dict) or body.get("status") not in DELETABLE:
                continue
            status, _ = await self.call("DELETE", f"/tasks/{task_id}")
            deleted += status == 200
        return deleted


async def run(endpoint: str, ids: list[str], rate: float) -> dict[str, object]:
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        peer = NaivePeer(session, endpoint, rate)
        deleted = await peer.delete_ids(ids)
    return {
        "deleted": deleted,
        "calls": sum(peer.calls.values()),
        "calls_by_status": dict(peer.calls),
        "wall_s": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.naive_peer")
    parser.add_argument("--endpoint", required=True, help="API base URL (…/api/v1)")
    parser.add_argument("--ids", required=True, help="file of task IDs, one per line")
    parser.add_argument("--rate", type=float, default=1.0, help="calls per second at most")
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    ids = Path(args.ids).read_text().split()
    result = asyncio.run(run(args.endpoint, ids, args.rate))
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
