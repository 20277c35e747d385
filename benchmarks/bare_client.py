"""The baseline for client cost: the least a Python client can do to send the same requests.

    python -m benchmarks.bare_client --endpoint URL (--ids FILE | --list) --concurrency 16 \
        --out OUT.json

One ``aiohttp.ClientSession``; with ``--list`` it first reads the account the way
nclue-cleanup does (signed ``GET /tasks?index=I&limit=100`` pages, offset meaning, JSON
parsed), so both clients send the same requests; then one signed ``DELETE /tasks/{id}``
per ID (signed with ``cleanup.signing.signed_headers``, a fresh timestamp each), at most
``concurrency`` in flight (a semaphore), the body read. No rate limiter, no retries, no
audit log. ``OUT.json`` gets the statuses and the CPU seconds, wall time and peak RSS of
the loop itself (start-up and imports excluded), measured the way ``measured.py`` does.
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

from benchmarks.measured import measure
from cleanup.signing import signed_headers


async def list_ids(session: aiohttp.ClientSession, endpoint: str) -> list[str]:
    """Every task ID, read page by page (index as an offset, limit 100)."""
    access_key, secret_key = os.environ["NCLOUD_ACCESS_KEY"], os.environ["NCLOUD_SECRET_KEY"]
    url = URL(endpoint)
    origin, base_path = str(url.origin()), url.raw_path.rstrip("/")
    ids: list[str] = []
    total = 1
    while len(ids) < total:
        uri = f"{base_path}/tasks?index={len(ids)}&limit=100"
        headers = signed_headers("GET", uri, int(time.time() * 1000), access_key, secret_key)
        async with session.get(URL(origin + uri, encoded=True), headers=headers) as resp:
            page = json.loads(await resp.read())
        total = page["total"]
        if not page["tasks"]:
            break
        ids += [task["task_id"] for task in page["tasks"]]
    return ids


async def delete_all(endpoint: str, ids: list[str] | None, concurrency: int) -> Counter[int]:
    """DELETE every ID once (listing them first when ``ids`` is None); count the statuses."""
    access_key, secret_key = os.environ["NCLOUD_ACCESS_KEY"], os.environ["NCLOUD_SECRET_KEY"]
    url = URL(endpoint)
    origin, base_path = str(url.origin()), url.raw_path.rstrip("/")
    semaphore = asyncio.Semaphore(concurrency)
    statuses: Counter[int] = Counter()

    async def delete(session: aiohttp.ClientSession, task_id: str) -> None:
        uri = f"{base_path}/tasks/{task_id}"
        async with semaphore:
            headers = signed_headers("DELETE", uri, int(time.time() * 1000), access_key, secret_key)
            async with session.delete(URL(origin + uri, encoded=True), headers=headers) as resp:
                await resp.read()
                statuses[resp.status] += 1

    async with aiohttp.ClientSession() as session:
        if ids is None:
            ids = await list_ids(session, endpoint)
        await asyncio.gather(*(delete(session, task_id) for task_id in ids))
    return statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_client")
    parser.add_argument("--endpoint", required=True, help="API base URL (…/api/v1)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ids", help="file of task IDs, one per line")
    source.add_argument("--list", action="store_true", help="list the account first")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", required=True, help="where to write the JSON result")
    args = parser.parse_args(argv)
    ids = Path(args.ids).read_text().split() if args.ids else None
    statuses, cost = measure(lambda: asyncio.run(delete_all(args.endpoint, ids, args.concurrency)))
    result = {"statuses": {str(k): v for k, v in statuses.items()}, **cost}
    Path(args.out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
