"""``--notify URL``: post the run summary to a webhook when the run ends.

The body is Slack-compatible: ``{"text": <one paragraph>, "summary": <the summary>}``.
A failed post is a warning, never an error: ``notify`` returns the warning's line.
Webhook URLs carry their token in the path or query (Slack's do), so messages name
only ``scheme://host[:port]``, and redirects are never followed (the body would go to
another origin).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from .errors import UsageError
from .exitcodes import MEANING as EXIT_MEANING
from .summary import RunSummary
from .untrusted import NAME_LIMIT, printable

_NAMED = 3
"""Failed and still-busy tasks named in the text; the summary has them all."""
_NOT_REACHED = ("interrupted", "run_stopped")
_TROUBLE = (("failed", "failed"), ("still_busy", "still busy"))


def validate_notify_url(url: str) -> None:
    """Raise ``UsageError`` unless ``url`` is an http(s) URL with a host (never echoed)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise UsageError("--notify: the URL cannot be parsed (not repeated here)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--notify takes an http:// or https:// URL with a host")


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what messages may say about a webhook."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "the --notify URL"
    if not host:
        return "the --notify URL"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


async def notify(
    url: str, *, text: str, payload: Mapping[str, Any], timeout_s: float = 5.0
) -> str | None:
    """POST ``{"text": text, "summary": payload}``; None on a 2xx, else a warning line."""
    where = origin(url)
    body = json.dumps({"text": text, "summary": dict(payload)}, default=str).encode()
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                allow_redirects=False,
            ) as response,
        ):
            status = response.status
    except TimeoutError:
        return f"notify: {where} did not answer within {timeout_s:g} s"
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        return _scrub(f"notify: cannot connect to {where} ({reason})", url)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return f"notify: the post to {where} failed ({type(exc).__name__})"
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return f"notify: {where} answered {status}, a redirect (not followed)"
    return f"notify: {where} answered {status}"


def _scrub(message: str, url: str) -> str:
    """``message`` without the URL's path, query or user info, should they appear in it."""
    parts = urlsplit(url)
    for secret in (parts.path, parts.query, parts.username, parts.password):
        if secret and len(secret) > 1:
            message = message.replace(secret, "…")
    return message


def summary_text(summary: RunSummary) -> str:
    """One short paragraph for people: what the run did (or would do) and how it ended."""
    context = ", ".join(
        x for x in (summary.trigger, summary.account and f"account {_u(summary.account)}") if x
    )
    kind = "dry run" if summary.dry_run else "run"
    text = [f"nclue-cleanup {kind} {_u(summary.run_id)} ({context}): {_outcomes(summary)}."]
    for key, label in (("failed", "Failed"), ("still_busy", "Still busy")):
        notes = summary.notes.get(key, ())
        if notes:
            named = "; ".join(
                f"{_u(n.task_name or '', NAME_LIMIT)} ({_u(n.task_id)}): {_u(n.why)}"
                for n in notes[:_NAMED]
            )
            more = f" and {len(notes) - _NAMED} more" if len(notes) > _NAMED else ""
            text.append(f"{label}: {named}{more}.")
    if summary.dry_run:
        plan = summary.plan_path or (summary.audit_log and f"audit show {summary.audit_log}")
        if plan:
            text.append(f"Full plan at {_u(plan)}.")
    meaning = EXIT_MEANING.get(summary.exit_code, "")
    text.append(f"Exit {summary.exit_code}" + (f": {meaning}." if meaning else "."))
    if summary.error:
        text.append(f"Error: {_u(summary.error)}.")
    return " ".join(text)


def _outcomes(summary: RunSummary) -> str:
    """``deleted 3, kept by rules 2 (protect 2), failed 1``: the counts that are not zero."""
    counts = summary.counts
    kept = {r: n for r, n in summary.skip_reasons.items() if r not in _NOT_REACHED and n}
    if not summary.skip_reasons and counts.get("skipped"):
        kept = {"a rule": counts["skipped"]}
    kept_text = f"{sum(kept.values())} ({', '.join(f'{r} {n}' for r, n in kept.items())})"
    if summary.dry_run:
        parts = [f"would delete {counts.get('would_delete', 0)}"]
        if counts.get("still_busy"):
            parts.append(f"{counts['still_busy']} busy now (would wait for them)")
        if kept:
            parts.append(f"would keep {kept_text}")
        return ", ".join(parts)
    parts = [f"deleted {counts.get('deleted', 0)}"]
    if counts.get("already_absent"):
        parts.append(f"already absent {counts['already_absent']}")
    if kept:
        parts.append(f"kept by rules {kept_text}")
    if summary.interrupted:
        parts.append(f"not reached (interrupted) {summary.interrupted}")
    parts += [f"{label} {counts[key]}" for key, label in _TROUBLE if counts.get(key)]
    return ", ".join(parts)


def _u(text: str, limit: int = 300) -> str:
    """Untrusted text for a Slack message: escaped controls, and no mentions or links."""
    cut = printable(text, limit)
    return cut.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
