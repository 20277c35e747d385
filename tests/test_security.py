"""Security properties SECURITY.md claims: TLS on, no secrets in URLs, safe YAML, safe IDs."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from cleanup.errors import PolicyError, UsageError
from cleanup.policy import policy_from_mapping
from cleanup.settings import check_endpoint

from .conftest import account, policy

ROOT = Path(__file__).resolve().parent.parent
# Lowest versions without a published advisory that affects how this project uses them.
# SECURITY.md explains each floor; the test keeps pyproject.toml and installs above them.
ADVISORY_FLOORS = {
    "aiohttp": (3, 14, 3),  # CVE-2026-69243, CVE-2026-69244 (fixed in 3.14.2 / 3.14.3)
    "pyyaml": (5, 4),  # CVE-2020-14343 (full_load); we only call safe_load anyway
}


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def test_no_code_path_disables_tls_verification():
    """Nothing in the package turns TLS verification off (and no flag offers to)."""
    pattern = re.compile(r"ssl\s*=\s*False|verify_ssl|CERT_NONE|check_hostname\s*=\s*False")
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "cleanup").rglob("*.py")
        if pattern.search(path.read_text())
    ]
    assert offenders == []


def test_plain_http_only_for_loopback_without_a_warning():
    """http:// is quiet for the loopback simulator and warned about anywhere else."""
    with capture_logs() as logs:
        check_endpoint("http://127.0.0.1:8080/api/v1")
        check_endpoint("http://localhost:8080/api/v1")
        check_endpoint("https://nclue.apigw.ntruss.com/api/v1")
    assert logs == []
    with capture_logs() as logs:
        check_endpoint("http://nclue.example.com/api/v1")
    assert [entry["event"] for entry in logs] == ["plaintext_endpoint"]


def test_credentials_in_the_endpoint_url_are_refused():
    """A URL with user:password is refused without echoing the password."""
    with pytest.raises(UsageError) as info:
        check_endpoint("https://user:hunter2@nclue.apigw.ntruss.com/api/v1")
    assert "hunter2" not in str(info.value)


def test_policy_yaml_cannot_construct_python_objects(tmp_path):
    """The policy loader uses safe_load: a python/object tag is an error, not code."""
    from cleanup.policy import load_policy

    path = tmp_path / "evil.yaml"
    path.write_text("version: 1\nselect: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(PolicyError, match="malformed YAML"):
        load_policy(path)


def test_explicit_ids_must_be_plain():
    """IDs that could change the request path are rejected before any request."""
    with pytest.raises(PolicyError, match=r"select\.ids"):
        policy_from_mapping({"version": 1, "select": {"ids": ["../../iam/keys"]}})


async def test_listing_with_an_unsafe_task_id_fails_closed(make_sim, run):
    """A server listing a task ID that is not a plain ID makes the run delete nothing."""
    state = account(3)
    state.add_task("t/../../admin", "exp", "completed", state.tasks["t0000"].created_at)
    sim = await make_sim(state)
    summary = await run(sim, policy({"all": True}))
    assert summary.exit_code == 1
    assert sim.state.count(method="DELETE") == 0


def test_dependencies_are_above_advisory_floors():
    """pyproject's lower bounds and the installed versions clear every advisory floor."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    bounds = {}
    for requirement in declared:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", requirement)
        if match:
            bounds[match.group(1).lower()] = _version_tuple(match.group(2))
    for name, floor in ADVISORY_FLOORS.items():
        assert bounds[name] >= floor, f"pyproject.toml allows {name} below {floor}"
        assert _version_tuple(version(name)) >= floor, f"installed {name} is below {floor}"
