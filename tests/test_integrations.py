"""The command line's integrations end to end: the S3 archive (a real S3-compatible server
on loopback), the webhook (a real receiver), the shared budget's fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from .conftest import AK, SK, account, cli, policy
from .test_archive import CREDS as S3_CREDS
from .test_archive import bucket, endpoint, s3  # noqa: F401 (fixtures)


def _env(sim: Any, **extra: str) -> dict[str, str]:
    return {
        "NCLOUD_ACCESS_KEY": AK,
        "NCLOUD_SECRET_KEY": SK,
        "NCLUE_ENDPOINT": sim.url,
        "AWS_ACCESS_KEY_ID": S3_CREDS.access_key,
        "AWS_SECRET_ACCESS_KEY": S3_CREDS.secret_key,
        "AWS_EC2_METADATA_DISABLED": "true",
        **extra,
    }


def _policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(policy({"all": True})))
    return str(path)


async def _run(
    sim: Any, tmp_path: Path, *extra: str, apply: bool = True, audit_log: str | None = None
) -> tuple[int, str, str]:
    """``nclue-cleanup run`` of a select-all policy on ``sim``, with ``extra`` options."""
    log = audit_log or str(tmp_path / "a")
    return await cli(
        "run",
        "--policy",
        _policy(tmp_path),
        *(["--apply"] if apply else []),
        "--audit-log",
        log,
        *extra,
        env=_env(sim),
    )


@pytest.mark.parametrize("audit", ["file", "stdout"])
async def test_audit_archive_uploads_this_runs_lines_and_summary(
    make_sim, tmp_path, endpoint, bucket, audit
):
    """--audit-archive uploads the run's audit lines and summary under prefix/YYYY/MM/DD/,
    also when the audit log went to stdout (the CronJob's way)."""
    sim = await make_sim(account(4))
    log = str(tmp_path / "a.jsonl") if audit == "file" else "-"
    code, _, err = await _run(
        sim,
        tmp_path,
        "--audit-archive",
        f"s3://{bucket}/nclue/dev",
        "--archive-endpoint",
        endpoint,
        audit_log=log,
    )
    assert code == 0, err
    keys = sorted(o["Key"] for o in s3(endpoint).list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys) == 2 and all(k.startswith("nclue/dev/") for k in keys)
    lines = s3(endpoint).get_object(Bucket=bucket, Key=keys[0])["Body"].read().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert events[0] == "run_started" and events[-1] == "run_finished"
    summary = json.loads(s3(endpoint).get_object(Bucket=bucket, Key=keys[1])["Body"].read())
    assert summary["counts"]["deleted"] == 4


async def test_missing_archive_bucket_is_found_before_any_request(make_sim, tmp_path, endpoint):
    """A bucket that does not exist is a usage error (exit 2) before the first API call."""
    sim = await make_sim(account(2))
    code, _, err = await _run(
        sim,
        tmp_path,
        "--audit-archive",
        "s3://no-such-bucket-here/x",
        "--archive-endpoint",
        endpoint,
    )
    assert code == 2 and "no-such-bucket-here" in err
    assert sim.state.total_requests() == 0


async def test_notify_posts_the_summary_to_a_webhook(make_sim, tmp_path):
    """--notify posts Slack-compatible text plus the structured summary when the run ends."""
    received: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks/T000/secret-token", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        sim = await make_sim(account(3))
        code, _, err = await _run(
            sim,
            tmp_path,
            "--notify",
            f"http://127.0.0.1:{port}/hooks/T000/secret-token",
            apply=False,
        )
    finally:
        await runner.cleanup()
    assert code == 0, err
    [payload] = received
    assert "would delete 3" in payload["text"] and payload["summary"]["dry_run"] is True


async def test_unreachable_shared_budget_falls_back_with_a_warning(make_sim, tmp_path):
    """--shared-budget that cannot be reached: the per-process budget, a warning, exit 0."""
    sim = await make_sim(account(3))
    code, _, err = await _run(
        sim, tmp_path, "--shared-budget", "redis://:pw-not-shown@127.0.0.1:9/0"
    )
    assert code == 0, err
    assert "shared_budget_unavailable" in err and "pw-not-shown" not in err
    assert sim.state.remaining_ids() == set()
