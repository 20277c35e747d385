"""--accounts: several NCP accounts in one run, each with its own budget, log and summary."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from cleanup.accounts import account_path, load_accounts
from cleanup.auditview import verify

from .conftest import account, cli, policy


def _accounts_file(tmp_path: Path, sims: dict[str, object], modes: dict[str, str]) -> Path:
    entries = []
    for name, sim in sims.items():
        secret = tmp_path / "secrets" / name
        secret.mkdir(parents=True)
        (secret / "NCLOUD_ACCESS_KEY").write_text(sim.config.access_key)  # type: ignore[attr-defined]
        (secret / "NCLOUD_SECRET_KEY").write_text(sim.config.secret_key)  # type: ignore[attr-defined]
        (tmp_path / "policies").mkdir(exist_ok=True)
        (tmp_path / "policies" / f"{name}.yaml").write_text(yaml.safe_dump(policy({"all": True})))
        entries.append(
            {
                "name": name,
                "credentials": f"secrets/{name}",
                "policy": f"policies/{name}.yaml",
                "mode": modes[name],
                "endpoint": sim.url,  # type: ignore[attr-defined]
            }
        )
    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "accounts": entries}))
    return path


async def test_three_accounts_in_one_run_one_of_them_dry(make_sim, tmp_path):
    """dev and staging delete, prod only reports; each writes its own verified audit log and
    the summary has one entry per account; the exit code is 0 when every account is 0."""
    sims = {
        "dev": await make_sim(account(5), access_key="ak-dev", secret_key="sk-dev"),
        "staging": await make_sim(account(4), access_key="ak-stg", secret_key="sk-stg"),
        "prod": await make_sim(account(3), access_key="ak-prod", secret_key="sk-prod"),
    }
    path = _accounts_file(tmp_path, sims, {"dev": "apply", "staging": "apply", "prod": "dry_run"})
    audit, summary = tmp_path / "audit.jsonl", tmp_path / "summary.json"
    metrics = tmp_path / "nclue.prom"
    code, out, err = await cli(
        "run",
        "--accounts",
        str(path),
        "--apply",
        "--metrics-textfile",
        str(metrics),
        "--audit-log",
        str(audit),
        "--summary-json",
        str(summary),
    )
    assert code == 0, err
    assert sims["dev"].state.remaining_ids() == set()
    assert sims["staging"].state.remaining_ids() == set()
    assert len(sims["prod"].state.remaining_ids()) == 3
    assert sims["prod"].state.count(method="DELETE") == 0
    document = json.loads(summary.read_text())
    assert [a["account"] for a in document["accounts"]] == ["dev", "staging", "prod"]
    assert [a["dry_run"] for a in document["accounts"]] == [False, False, True]
    for name in sims:
        assert verify(account_path(str(audit), name)).ok
    assert "account prod" in out
    for name in sims:  # each account its own metrics file, labelled with its name
        text = Path(account_path(str(metrics), name)).read_text()  # noqa: ASYNC240
        assert f'account="{name}"' in text


async def test_one_account_failing_does_not_stop_the_others(make_sim, tmp_path):
    """A wrong secret in one account exits 3 for it; the others still delete; the run's
    exit code is the worst one."""
    sims = {
        "good": await make_sim(account(3), access_key="ak-g", secret_key="sk-g"),
        "bad": await make_sim(account(3), access_key="ak-b", secret_key="sk-b"),
    }
    path = _accounts_file(tmp_path, sims, {"good": "apply", "bad": "apply"})
    (tmp_path / "secrets" / "bad" / "NCLOUD_SECRET_KEY").write_text("wrong")
    code, _, err = await cli(
        "run", "--accounts", str(path), "--apply", "--audit-log", str(tmp_path / "a.jsonl")
    )
    assert code == 3, err
    assert sims["good"].state.remaining_ids() == set()
    assert len(sims["bad"].state.remaining_ids()) == 3


async def test_shard_index_runs_one_account_per_pod(make_sim, tmp_path):
    """--shard-index I runs only the I-th account (an Indexed Job maps one pod to one)."""
    sims = {
        "a": await make_sim(account(2), access_key="ak-a", secret_key="sk-a"),
        "b": await make_sim(account(2), access_key="ak-b", secret_key="sk-b"),
    }
    path = _accounts_file(tmp_path, sims, {"a": "apply", "b": "apply"})
    code, _, err = await cli(
        "run", "--accounts", str(path), "--apply", "--shard-index", "1", "--audit-log", "-"
    )
    assert code == 0, err
    assert len(sims["a"].state.remaining_ids()) == 2 and sims["b"].state.remaining_ids() == set()


def test_accounts_file_errors_name_the_entry(tmp_path):
    """A bad accounts file names the entry and the key (exit 2)."""
    import pytest

    from cleanup.errors import UsageError

    path = tmp_path / "accounts.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "accounts": [{"name": "Bad Name"}]}))
    with pytest.raises(UsageError, match=r"accounts\[0\]\.name"):
        load_accounts(path)
    path.write_text(
        yaml.safe_dump(
            {"version": 1, "accounts": [{"name": "x", "credentials": "c", "policy": "p"}] * 2}
        )
    )
    with pytest.raises(UsageError, match="unique"):
        load_accounts(path)


async def test_ids_from_stdin_reach_every_account(make_sim, tmp_path):
    """--ids-from - is read once and given to every account (stdin cannot be read twice)."""
    sims = {
        "a": await make_sim(account(3), access_key="ak-a", secret_key="sk-a"),
        "b": await make_sim(account(3), access_key="ak-b", secret_key="sk-b"),
    }
    path = _accounts_file(tmp_path, sims, {"a": "apply", "b": "apply"})
    for name in sims:  # policies that select only the IDs given
        (tmp_path / "policies" / f"{name}.yaml").write_text(
            yaml.safe_dump(policy({"ids": []}) | {"select": {}})
        )
    code, _, err = await cli(
        "run",
        "--accounts",
        str(path),
        "--apply",
        "--ids-from",
        "-",
        "--audit-log",
        str(tmp_path / "a.jsonl"),
        stdin=b"t0001\nt0002\n",
    )
    assert code == 0, err
    for sim in sims.values():
        assert sim.state.remaining_ids() == {"t0000"}
