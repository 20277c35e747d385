"""One frozen dataclass of run settings, resolved from flags, environment and policy."""

from __future__ import annotations

import getpass
import ipaddress
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import UsageError
from .logs import get_logger

log = get_logger(__name__)

DEFAULT_ENDPOINT = "https://nclue.apigw.ntruss.com/api/v1"
DEFAULT_AUDIT_LOG = "nclue-cleanup-audit.jsonl"
TRIGGERS = ("cron", "adhoc", "retrain")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything about one run that is not the policy itself."""

    apply: bool = False
    endpoint: str | None = None
    audit_log: str = DEFAULT_AUDIT_LOG
    summary_json: str | None = None
    extra_ids: tuple[str, ...] = ()
    plan_out: str | None = None
    plan_in: str | None = None
    trigger: str = "adhoc"
    shard_index: int = 0
    shard_count: int = 1
    metrics_textfile: str | None = None
    pushgateway: str | None = None
    shutdown_grace_s: float = 20.0
    operator: str | None = None
    audit_skipped: str = "selected"
    """``selected``: a skipped line only for tasks the name and age filters selected;
    ``all``: one for every task (the first version's volume)."""
    shared_budget: str | None = None
    """URL of the coordination service every run on the account shares a budget through."""
    account: str | None = None
    """The account's name in an ``--accounts`` file (labels the summary and metrics)."""
    capture_audit: bool = False
    """Keep this run's audit lines in the summary (``RunSummary.audit_lines``)."""


def resolve_endpoint(flag: str | None, env: Mapping[str, str], policy_endpoint: str | None) -> str:
    """``--endpoint``, else env ``NCLUE_ENDPOINT``, else the policy's, else the default."""
    endpoint = (flag or env.get("NCLUE_ENDPOINT") or policy_endpoint or DEFAULT_ENDPOINT).strip()
    check_endpoint(endpoint)
    return endpoint.rstrip("/")


def check_endpoint(endpoint: str) -> None:
    """Refuse what is not an http(s) URL; warn about plain http off loopback."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"endpoint {endpoint!r}: expected an http(s) URL such as {DEFAULT_ENDPOINT}"
        )
    if parts.username or parts.password:
        raise UsageError("endpoint: credentials do not belong in the URL; use the environment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        log.warning(
            "plaintext_endpoint",
            endpoint=endpoint,
            advice="http:// is meant for the local simulator; the real API needs https://",
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_trigger(flag: str | None, env: Mapping[str, str]) -> str:
    trigger = flag or env.get("NCLUE_CLEANUP_TRIGGER") or "adhoc"
    if trigger not in TRIGGERS:
        raise UsageError(
            f"trigger {trigger!r} (from --trigger or NCLUE_CLEANUP_TRIGGER): "
            f"expected one of {', '.join(TRIGGERS)}"
        )
    return trigger


def resolve_shard(index: int | None, count: int | None, env: Mapping[str, str]) -> tuple[int, int]:
    """``--shard-index`` (default env ``JOB_COMPLETION_INDEX``) and ``--shard-count``."""
    if count is None:
        if index is not None:
            raise UsageError("--shard-index needs --shard-count")
        return 0, 1
    if count < 1:
        raise UsageError(f"--shard-count {count}: expected a whole number of at least 1")
    if index is None:
        raw = env.get("JOB_COMPLETION_INDEX")
        if raw is None:
            raise UsageError("--shard-count needs --shard-index or env JOB_COMPLETION_INDEX")
        try:
            index = int(raw)
        except ValueError:
            raise UsageError(f"JOB_COMPLETION_INDEX={raw!r}: expected a whole number") from None
    if not 0 <= index < count:
        raise UsageError(f"shard index {index}: expected 0 to {count - 1} (--shard-count {count})")
    return index, count


def operator(env: Mapping[str, str] | None = None) -> str:
    """Who ran it: the pod's name in Kubernetes, else user@host."""
    env = os.environ if env is None else env
    if env.get("KUBERNETES_SERVICE_HOST"):
        pod = env.get("POD_NAME") or env.get("HOSTNAME") or socket.gethostname()
        return f"pod/{pod}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"
