"""The prepare stage: everything about a run that can be checked before any request.

A bad policy, missing or unlisted credentials, a bad or foreign plan, an output path
that cannot be written: all are ``UsageError`` (exit 2) here, with nothing sent.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .credentials import Credentials, load_credentials
from .errors import CredentialsError, PlanError, PolicyError
from .fsutil import check_writable
from .plans import Plan, read_plan
from .policy import Policy, load_policy, policy_from_mapping
from .settings import Settings, resolve_endpoint
from .source import read_ids


@dataclass(frozen=True, slots=True)
class Prepared:
    """A run checked before its first request."""

    policy: Policy
    settings: Settings
    credentials: Credentials
    endpoint: str
    explicit: tuple[str, ...]
    plan: Plan | None


def prepare(
    policy: Policy | str | Path | Mapping[str, Any],
    *,
    apply: bool,
    ids: Iterable[str],
    settings: Settings | None,
    credentials: Credentials | None,
) -> Prepared:
    """Everything checked before the first request (``UsageError`` otherwise)."""
    settings = settings or Settings()
    settings = replace(settings, apply=apply or settings.apply)
    creds = credentials or load_credentials()
    secrets = (creds.secret_key,)
    extra = tuple(read_ids([*ids, *settings.extra_ids], "ids", secrets=secrets))
    loaded = _as_policy(policy, ids_elsewhere=bool(extra or settings.plan_in))
    allowed = loaded.account.access_key_ids
    if allowed is not None and creds.access_key not in allowed:
        raise CredentialsError(
            f"{loaded.source}: account.access_key_ids does not list the loaded access key "
            f"(…{creds.access_key[-4:]}): this policy is for another account; nothing was sent"
        )
    endpoint = resolve_endpoint(settings.endpoint, os.environ, loaded.endpoint)
    for path, what in (
        (settings.plan_out, "--plan-out"),
        (settings.summary_json, "--summary-json"),
    ):
        if path and path != "-":
            check_writable(path, what)
    if settings.metrics_textfile:
        check_writable(settings.metrics_textfile, "--metrics-textfile")
    plan = None
    if settings.plan_in:
        if not settings.apply:
            raise PlanError("--plan applies a reviewed plan: add --apply (or drop --plan)")
        plan = read_plan(
            settings.plan_in,
            policy=loaded,
            endpoint=endpoint,
            access_key_id=creds.access_key,
            now=datetime.now(UTC),
        )
    explicit = _explicit_ids(loaded, extra, secrets)
    if plan is not None and not loaded.selection.all:
        outside = [i for i in plan.task_ids if i not in set(explicit)]
        if outside:
            raise PlanError(
                f"{settings.plan_in}: {len(outside)} of the plan's task IDs are not in the "
                "policy's selection (select.ids, select.ids_file, --ids-from): refused"
            )
    return Prepared(loaded, settings, creds, endpoint, explicit, plan)


def _as_policy(policy: Policy | str | Path | Mapping[str, Any], *, ids_elsewhere: bool) -> Policy:
    if isinstance(policy, Policy):
        return policy
    if isinstance(policy, (str, Path)):
        return load_policy(policy, ids_elsewhere=ids_elsewhere)
    return policy_from_mapping(policy, source="<mapping>", ids_elsewhere=ids_elsewhere)


def _explicit_ids(
    policy: Policy, extra: tuple[str, ...], secrets: tuple[str, ...]
) -> tuple[str, ...]:
    """The policy's IDs, its ids_file's and the extras; a credential is never an ID."""
    ids = read_ids(policy.selection.ids, f"{policy.source}: select.ids", secrets=secrets)
    if policy.selection.ids_file is not None:
        path = policy.selection.ids_file
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{policy.source}: select.ids_file: cannot read {path}") from exc
        ids += read_ids(lines, str(path), secrets=secrets)
    return tuple(dict.fromkeys([*ids, *extra]))
