"""Plan files: what a reviewed dry run would delete, bound to the policy it came from."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .errors import PlanError
from .model import valid_task_id
from .policy import Policy

PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class Plan:
    task_ids: tuple[str, ...]
    policy_sha256: str
    created_at: str
    endpoint: str | None = None


def write_plan(
    path: str | Path, task_ids: Sequence[str], policy: Policy, endpoint: str, now: datetime
) -> None:
    """Write the plan atomically (a reviewer never sees half a file)."""
    document = {
        "version": PLAN_VERSION,
        "policy": policy.source,
        "policy_sha256": policy.sha256,
        "created_at": now.isoformat().replace("+00:00", "Z"),
        "endpoint": endpoint,
        "count": len(task_ids),
        "task_ids": list(task_ids),
    }
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(temporary, target)


def read_plan(path: str | Path, policy: Policy) -> Plan:
    """Read a plan and refuse one made from a different policy."""
    try:
        document = json.loads(Path(path).read_text())
    except OSError as exc:
        raise PlanError(f"{path}: cannot read the plan ({exc.strerror})") from None
    except ValueError:
        raise PlanError(f"{path}: not a JSON plan file (write one with run --plan-out)") from None
    if not isinstance(document, dict) or document.get("version") != PLAN_VERSION:
        raise PlanError(f"{path}: expected a version {PLAN_VERSION} plan made by run --plan-out")
    ids = document.get("task_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) and valid_task_id(i) for i in ids):
        raise PlanError(f"{path}: task_ids: expected a list of task IDs")
    sha = document.get("policy_sha256")
    if sha != policy.sha256:
        raise PlanError(
            f"{path}: the plan was made from a different policy (plan policy sha256 {sha}, "
            f"{policy.source} has {policy.sha256}); make a new plan with run --plan-out"
        )
    return Plan(tuple(ids), sha, str(document.get("created_at")), document.get("endpoint"))
