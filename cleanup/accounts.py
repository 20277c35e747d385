"""``--accounts FILE``: one run over several NCP accounts, concurrently, in one process.

Each account has its own credentials, policy, mode, rate budget, audit log and summary;
one account failing does not stop the others; the exit code is 0 when every account
exited 0, else the largest of theirs. ``--shard-index I`` (or ``JOB_COMPLETION_INDEX``
in an Indexed Job) runs only the I-th account, one per pod::

    version: 1
    accounts:
      - name: dev                       # [a-z0-9-], unique
        credentials: secrets/dev        # as --credentials-file, relative to this file
        policy: policies/retention.yaml # relative to this file
        mode: apply                     # apply or dry_run (default dry_run)
        endpoint: https://...           # optional, as --endpoint
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from .console import Outputs, archive_target, check_outputs, preflight_archive, run_one
from .credentials import load_credentials
from .errors import CleanupError, UsageError
from .policy import load_policy
from .report import make_console, print_summary, write_summary_json
from .settings import Settings
from .stopping import Stopping, signals_stop
from .summary import RunSummary

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_KEYS = {"name", "credentials", "policy", "mode", "endpoint"}


@dataclass(frozen=True, slots=True)
class AccountSpec:
    name: str
    credentials: Path
    policy: Path
    apply: bool
    endpoint: str | None = None


def load_accounts(path: str | Path) -> list[AccountSpec]:
    """Read and check an accounts file (``UsageError`` naming the entry and the key)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{source}: cannot read the accounts file ({exc.strerror})") from None
    if len(raw) > 1_000_000:
        raise UsageError(f"{source}: the accounts file is over 1 MB")
    try:
        document = yaml.safe_load(raw)
    except yaml.YAMLError:
        raise UsageError(f"{source}: malformed YAML") from None
    if not isinstance(document, dict) or document.get("version") != 1:
        raise UsageError(f"{source}: expected a mapping with version: 1 and accounts: [...]")
    entries = document.get("accounts")
    if not isinstance(entries, list) or not entries:
        raise UsageError(f"{source}: accounts: expected a non-empty list")
    base = Path(path).parent
    specs = [_spec(entry, n, source, base) for n, entry in enumerate(entries)]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise UsageError(f"{source}: account names must be unique")
    return specs


def _spec(entry: object, number: int, source: str, base: Path) -> AccountSpec:
    where = f"{source}: accounts[{number}]"
    if not isinstance(entry, dict):
        raise UsageError(f"{where}: expected a mapping")
    unknown = sorted(str(k) for k in entry if k not in _KEYS)
    if unknown:
        raise UsageError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(_KEYS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise UsageError(f"{where}.name: expected [a-z0-9-], starting with a letter or digit")
    for key in ("credentials", "policy"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise UsageError(f"{where}.{key}: expected a path")
    mode = entry.get("mode", "dry_run")
    if mode not in ("apply", "dry_run"):
        raise UsageError(f"{where}.mode: expected apply or dry_run")
    endpoint = entry.get("endpoint")
    if endpoint is not None and not isinstance(endpoint, str):
        raise UsageError(f"{where}.endpoint: expected a URL")
    return AccountSpec(
        name, base / entry["credentials"], base / entry["policy"], mode == "apply", endpoint
    )


def account_path(path: str, name: str) -> str:
    """``audit.jsonl`` -> ``audit.dev.jsonl``: each account its own file (its own chain)."""
    target = Path(path)
    return str(target.with_name(f"{target.stem}.{name}{target.suffix}"))


def run_accounts(args: argparse.Namespace, outputs: Outputs) -> int:
    """The ``run --accounts`` command: every account (or the shard's one), concurrently."""
    from .cli import checked_ids, read_ids_source, settings_from

    specs = load_accounts(args.accounts)
    index = args.shard_index
    if index is None and args.shard_count is not None:
        index = int(os.environ.get("JOB_COMPLETION_INDEX", "-1"))
    if index is not None:
        if not 0 <= index < len(specs):
            raise UsageError(f"--shard-index {index}: the accounts file has {len(specs)} accounts")
        specs = [specs[index]]
    if args.audit_log == "-" and len(specs) > 1:
        raise UsageError(
            "--audit-log - with several accounts would interleave their hash chains: give a "
            "path (each account writes PATH.<name>), or run one account with --shard-index"
        )
    runs = []
    # Read once (stdin can be read only once), checked against each account's secret.
    ids = read_ids_source(args.ids_from) if args.ids_from else None
    plain = argparse.Namespace(
        **{**vars(args), "shard_index": None, "shard_count": None, "ids_from": None}
    )
    for spec in specs:
        policy = load_policy(spec.policy, ids_elsewhere=ids is not None)
        creds = load_credentials(credentials_file=spec.credentials)
        overrides: dict[str, Any] = {"endpoint": spec.endpoint} if spec.endpoint else {}
        if ids is not None:
            overrides["extra_ids"] = tuple(checked_ids(ids, args.ids_from, creds))
        settings = settings_from(
            plain,
            policy,
            creds,
            **overrides,
            apply=args.apply and spec.apply,
            audit_log=args.audit_log
            if args.audit_log == "-"
            else account_path(args.audit_log, spec.name),
            summary_json=None,
            plan_out=account_path(args.plan_out, spec.name) if args.plan_out else None,
            metrics_textfile=(
                account_path(args.metrics_textfile, spec.name) if args.metrics_textfile else None
            ),
            account=spec.name,
            capture_audit=bool(outputs.audit_archive),
        )
        check_outputs(outputs, replace(settings, summary_json=args.summary_json))
        runs.append((spec, policy, creds, settings))
    summaries = asyncio.run(_all(runs, args.shutdown_grace, outputs))
    console = make_console(
        stderr=outputs.stdout_is_machine(replace(runs[0][3], summary_json=args.summary_json))
    )
    for summary in summaries:
        console.print(f"account {summary.account}", markup=False)
        print_summary(summary, console)
    codes = [s.exit_code for s in summaries]
    worst = 0 if all(c == 0 for c in codes) else max(codes)
    if args.summary_json:
        _write_all(summaries, worst, args.summary_json)
    return worst


async def _all(
    runs: list[tuple[AccountSpec, Any, Any, Settings]], grace: float, outputs: Outputs
) -> list[RunSummary]:
    stopping = Stopping()
    archive = archive_target(outputs)

    async def one(policy: Any, creds: Any, settings: Settings) -> RunSummary | CleanupError:
        try:
            return await run_one(policy, settings, creds, outputs, archive, stopping=stopping)
        except CleanupError as exc:  # a usage error of one account does not stop the others
            return exc

    await preflight_archive(archive, outputs)
    with signals_stop(stopping, grace, lambda _: None):
        results = await asyncio.gather(*(one(p, c, s) for _, p, c, s in runs))
    summaries = []
    for (spec, policy, _, settings), result in zip(runs, results, strict=True):
        if isinstance(result, CleanupError):
            result = _failed(spec, policy, settings, result)
        summaries.append(result)
    return summaries


def _failed(spec: AccountSpec, policy: Any, settings: Settings, error: CleanupError) -> RunSummary:
    return RunSummary(
        run_id="",
        dry_run=not settings.apply,
        exit_code=error.exit_code,
        counts={},
        task_ids={},
        requests={},
        requests_total=0,
        duration_s=0.0,
        endpoint=settings.endpoint or "",
        policy_sha256=policy.sha256,
        error=str(error),
        account=spec.name,
        trigger=settings.trigger,
    )


def _write_all(summaries: list[RunSummary], worst: int, path: str) -> None:
    from .fsutil import write_json

    document = {"exit_code": worst, "accounts": [s.to_json() for s in summaries]}
    write_json(document, path, indent=1)


__all__ = ["AccountSpec", "account_path", "load_accounts", "run_accounts", "write_summary_json"]
