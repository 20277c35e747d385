"""Monitoring: cleanup.metrics against a real Pushgateway, and the PrometheusRule under promtool."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cleanup.metrics import export_metrics
from cleanup.model import Outcome
from cleanup.summary import RunSummary

from .conftest import free_port, required_binary

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
LAST_SUCCESS = "nclue_cleanup_last_success_timestamp_seconds"


def _summary(exit_code: int = 0, *, dry_run: bool = False, **fields: Any) -> RunSummary:
    counts = {outcome.value: 0 for outcome in Outcome}
    counts.update(fields.pop("counts", {}))
    return RunSummary(
        run_id="r-1",
        dry_run=dry_run,
        exit_code=exit_code,
        counts=counts,
        task_ids={},
        requests={"DELETE /tasks/{id}": {"204": 5}, "GET /tasks": {"200": 2}},
        requests_total=7,
        duration_s=1.5,
        endpoint="https://127.0.0.1:1/api/v1",
        policy_sha256="0" * 64,
        **fields,
    )


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition text, keyed by name and label set."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _value(text: str, name: str, **labels: str) -> float | None:
    """The one sample of ``name`` whose labels include ``labels``; None if there is none."""
    found = [
        value
        for (sample, sample_labels), value in _samples(text).items()
        if sample == name and set(labels.items()) <= sample_labels
    ]
    assert len(found) <= 1, found
    return found[0] if found else None


# --- a real Pushgateway ------------------------------------------------------------------------


@pytest.fixture
def pushgateway(tmp_path: Path) -> Iterator[str]:
    """Debian's prometheus-pushgateway on a free loopback port, stopped after the test."""
    binary = required_binary("prometheus-pushgateway", "pushgateway")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            f"--persistence.file={tmp_path / 'pushgateway.data'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            assert proc.poll() is None, "pushgateway exited at start"
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("pushgateway did not become ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text: str = response.read().decode()
        return text


def test_push_lands_every_gauge_with_the_grouping_labels(pushgateway: str) -> None:
    """A push stores outcomes, requests, exit code and unknown statuses under trigger/shard."""
    summary = _summary(
        1, counts={"deleted": 5, "failed": 2}, unknown_statuses={"archived": 3, "frozen": 1}
    )
    warnings = export_metrics(
        summary, textfile=None, pushgateway=pushgateway, trigger="cron", shard="2"
    )
    assert warnings == []
    text = _scrape(pushgateway)
    group = {"job": "nclue-cleanup", "trigger": "cron", "shard": "2"}
    assert _value(text, "nclue_cleanup_tasks", outcome="failed", mode="apply", **group) == 2
    assert _value(text, "nclue_cleanup_tasks", outcome="deleted", **group) == 5
    assert _value(text, "nclue_cleanup_exit_code", **group) == 1
    assert _value(text, "nclue_cleanup_unknown_statuses", status="archived", **group) == 3
    assert _value(text, "nclue_cleanup_unknown_statuses", status="frozen", **group) == 1
    assert _value(text, "nclue_cleanup_requests", route="GET /tasks", status="200") == 2
    assert _value(text, LAST_SUCCESS) is None, "a failed run is no success"


def test_last_success_survives_a_failed_run_on_the_pushgateway(pushgateway: str) -> None:
    """A failed run after a success replaces the run gauges but keeps the last-success time."""
    assert export_metrics(_summary(0), textfile=None, pushgateway=pushgateway, trigger="cron") == []
    first = _value(_scrape(pushgateway), LAST_SUCCESS, job="nclue-cleanup-success")
    assert first is not None and first > 0
    assert export_metrics(_summary(1), textfile=None, pushgateway=pushgateway, trigger="cron") == []
    text = _scrape(pushgateway)
    assert _value(text, "nclue_cleanup_exit_code", job="nclue-cleanup") == 1
    assert _value(text, LAST_SUCCESS, job="nclue-cleanup-success") == first


@pytest.mark.parametrize(("exit_code", "dry_run"), [(4, False), (0, True)], ids=["exit4", "dry"])
def test_dry_runs_and_still_busy_runs_are_not_successes(
    pushgateway: str, exit_code: int, dry_run: bool
) -> None:
    """Exit 4 and a dry run push their gauges but never a last-success time."""
    summary = _summary(exit_code, dry_run=dry_run)
    assert export_metrics(summary, textfile=None, pushgateway=pushgateway, trigger="cron") == []
    text = _scrape(pushgateway)
    assert _value(text, "nclue_cleanup_exit_code", job="nclue-cleanup") == exit_code
    assert _value(text, LAST_SUCCESS) is None


def test_accounts_push_to_groups_of_their_own(pushgateway: str) -> None:
    """Two accounts of one run keep separate groups: one's failure never hides the other's."""
    export_metrics(
        _summary(0), textfile=None, pushgateway=pushgateway, trigger="cron", account="dev"
    )
    export_metrics(
        _summary(3), textfile=None, pushgateway=pushgateway, trigger="cron", account="prod"
    )
    text = _scrape(pushgateway)
    assert _value(text, "nclue_cleanup_exit_code", account="dev") == 0
    assert _value(text, "nclue_cleanup_exit_code", account="prod") == 3
    assert _value(text, LAST_SUCCESS, account="dev") is not None
    assert _value(text, LAST_SUCCESS, account="prod") is None


def test_unknown_status_labels_are_bounded_and_escaped(pushgateway: str) -> None:
    """Server-chosen status text becomes at most 20 escaped, cut label values."""
    statuses = {f"weird-{i:02d}": 1 for i in range(30)}
    statuses["\x1b[31mred" + "x" * 200] = 5
    export_metrics(
        _summary(1, unknown_statuses=statuses),
        textfile=None,
        pushgateway=pushgateway,
        trigger="cron",
    )
    values = {
        dict(labels)["status"]: value
        for (name, labels), value in _samples(_scrape(pushgateway)).items()
        if name == "nclue_cleanup_unknown_statuses"
    }
    assert len(values) == 20
    assert sum(values.values()) == 35
    assert values["other"] == 12  # 31 statuses: the 19 largest kept, 12 summed
    (red,) = [status for status in values if status.startswith("\\x1b")]
    assert red.endswith("…") and len(red) < 100 and "\x1b" not in red


# --- failing sinks -----------------------------------------------------------------------------


@pytest.fixture
def hung_pushgateway() -> Iterator[str]:
    """A loopback socket that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


def test_a_hung_pushgateway_is_a_warning_bounded_by_the_timeout(hung_pushgateway: str) -> None:
    """A Pushgateway that never answers yields one warning, no exception, within timeout_s."""
    warnings = export_metrics(
        _summary(0), textfile=None, pushgateway=hung_pushgateway, trigger="cron", timeout_s=0.2
    )
    assert len(warnings) == 1
    assert "pushgateway" in warnings[0]


def test_a_refused_push_is_a_warning() -> None:
    """A Pushgateway port nobody listens on is a warning, not an exception."""
    url = f"http://127.0.0.1:{free_port()}"
    warnings = export_metrics(_summary(0), textfile=None, pushgateway=url, trigger="cron")
    assert len(warnings) == 1 and "failed" in warnings[0]


def test_textfile_keeps_the_last_success_through_a_failed_run(tmp_path: Path) -> None:
    """The textfile sink carries the previous success time over a failed run."""
    path = tmp_path / "nclue_cleanup.prom"
    assert export_metrics(_summary(0), textfile=str(path), pushgateway=None, trigger="cron") == []
    first = _value(path.read_text(), LAST_SUCCESS, trigger="cron", shard="0")
    assert first is not None
    assert export_metrics(_summary(5), textfile=str(path), pushgateway=None, trigger="cron") == []
    text = path.read_text()
    assert _value(text, "nclue_cleanup_exit_code", trigger="cron") == 5
    assert _value(text, LAST_SUCCESS, trigger="cron", shard="0") == first


def test_a_corrupt_textfile_is_replaced_without_a_success(tmp_path: Path) -> None:
    """A textfile that is not exposition text is overwritten; a failed run claims no success."""
    path = tmp_path / "nclue_cleanup.prom"
    path.write_text("this is { not metrics\n")
    assert export_metrics(_summary(1), textfile=str(path), pushgateway=None, trigger="cron") == []
    text = path.read_text()
    assert _value(text, "nclue_cleanup_exit_code") == 1
    assert _value(text, LAST_SUCCESS) is None


def test_an_unwritable_textfile_is_a_warning(tmp_path: Path) -> None:
    """A textfile in a missing directory is a warning naming the path, never an exception."""
    path = tmp_path / "missing" / "nclue_cleanup.prom"
    warnings = export_metrics(_summary(0), textfile=str(path), pushgateway=None, trigger="cron")
    assert len(warnings) == 1 and str(path) in warnings[0]


# --- the PrometheusRule ------------------------------------------------------------------------


def _rule() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    return doc


def test_prometheusrule_alerts_on_every_documented_condition() -> None:
    """The rule holds the four alerts, the never-succeeded case among them."""
    rule = _rule()
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    (group,) = rule["spec"]["groups"]
    alerts = {entry["alert"]: entry for entry in group["rules"]}
    assert set(alerts) == {
        "NclueCleanupNotSucceeding",
        "NclueCleanupTasksFailed",
        "NclueCleanupStillBusy",
        "NclueCleanupUnknownStatuses",
    }
    assert f"absent({LAST_SUCCESS}" in alerts["NclueCleanupNotSucceeding"]["expr"]
    assert 'outcome="failed"' in alerts["NclueCleanupTasksFailed"]["expr"]
    assert 'outcome="still_busy"' in alerts["NclueCleanupStillBusy"]["expr"]
    assert "nclue_cleanup_unknown_statuses" in alerts["NclueCleanupUnknownStatuses"]["expr"]


def _promtool(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule()["spec"]))
    shutil.copy(MONITORING / "prometheusrule_test.yaml", tmp_path)
    return subprocess.run(
        [required_binary("promtool"), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_prometheusrule_passes_promtool_check(tmp_path: Path) -> None:
    """`promtool check rules` accepts the rule's groups."""
    result = _promtool(tmp_path, "check", "rules", "rules.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheusrule_passes_its_promtool_unit_tests(tmp_path: Path) -> None:
    """`promtool test rules` passes deploy/monitoring/prometheusrule_test.yaml."""
    result = _promtool(tmp_path, "test", "rules", "prometheusrule_test.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests catch a broken rule: dropping absent() fails the never-succeeded case."""
    rule = _rule()
    alert = rule["spec"]["groups"][0]["rules"][0]
    alert["expr"] = alert["expr"].split("\nor\nabsent(")[0]
    assert "absent(" not in alert["expr"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule["spec"]))
    shutil.copy(MONITORING / "prometheusrule_test.yaml", tmp_path)
    result = subprocess.run(
        [required_binary("promtool"), "test", "rules", "prometheusrule_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
