"""The deployment files: the Dockerfile and its lock, the manifests, and the pipeline files.

Every manifest is validated strictly against every Kubernetes minor from 1.29 to the newest
schema kubernetes-validate ships, as written and as rendered by kustomize (kubectl's, found
on PATH or next to this Python; scripts/test.sh installs it). Missing in CI, that fails.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.resources
import os
import re
import shutil
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
ACCOUNTS = K8S / "overlays" / "accounts"
ARMED = K8S / "overlays" / "armed"
POST_TRAINING = K8S / "post-training"
PIPELINES = DEPLOY / "pipelines"
KUSTOMIZATION_DIRS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))

CONTAINER = "nclue-cleanup"
UID = 10001
TOOL_SHUTDOWN_GRACE_S = 20  # the CLI's default shutdown grace
EXIT_BUDGET_S = TOOL_SHUTDOWN_GRACE_S + 10 + 5 + 5  # + archive upload, pushgateway, webhook
WRITING_FLAGS = ("--audit-log", "--metrics-textfile", "--summary-json", "--plan-out")
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": UID,
    "runAsGroup": UID,
    "fsGroup": UID,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
}
COMMAND = ["/usr/bin/tini", "-e", "4", "--", "nclue-cleanup"]


# --- helpers ---------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _strict_schema_versions(oldest: tuple[int, int] = (1, 29)) -> list[str]:
    schemas = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    found = [
        tuple(int(part) for part in match.groups())
        for entry in schemas.iterdir()
        if (match := re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local-strict", entry.name))
    ]
    return [".".join(map(str, v)) for v in sorted(found) if v[:2] >= oldest]


K8S_VERSIONS = _strict_schema_versions()


def _validate_strictly(doc: dict[str, Any], where: str, version: str) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(item) for item in exc.path)
        name = doc["metadata"].get("name") or doc["metadata"].get("generateName")
        pytest.fail(f"{where} on {version}: {doc['kind']}/{name}: {path}: {exc.message}")


def _unavailable(what: str) -> typing.NoReturn:
    """A missing test dependency fails the test in CI and skips it elsewhere."""
    message = f"{what} is not installed (scripts/test.sh installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _tool(name: str) -> str:
    """A binary on PATH or next to this Python."""
    beside = Path(sys.executable).parent / name
    found = shutil.which(name) or (str(beside) if beside.exists() else None)
    return found or _unavailable(name)


@functools.cache
def _rendered(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [_tool("kubectl"), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(_load_all(result.stdout))


def _kustomize(directory: Path) -> list[dict[str, Any]]:
    return copy.deepcopy(list(_rendered(directory)))


def _generator_files(kustomization: dict[str, Any]) -> list[str]:
    generators = kustomization.get("configMapGenerator", []) + kustomization.get(
        "secretGenerator", []
    )
    files = []
    for generator in generators:
        files += [entry.split("=", 1)[-1] for entry in generator.get("files", [])]
        files += generator.get("envs", [])
    return files


def _patch_files(kustomization: dict[str, Any]) -> list[str]:
    paths = [patch["path"] for patch in kustomization.get("patches", []) if "path" in patch]
    return paths + list(kustomization.get("patchesStrategicMerge", []))


def _referenced_paths(kustomization: dict[str, Any]) -> list[str]:
    paths = list(kustomization.get("resources", [])) + list(kustomization.get("components", []))
    return paths + _patch_files(kustomization) + _generator_files(kustomization)


def _manifest_files() -> list[Path]:
    """Resource files under deploy/k8s: not kustomizations, patches or generator inputs."""
    skip = set()
    for directory in KUSTOMIZATION_DIRS:
        kustomization = _load(directory / "kustomization.yaml")
        for name in _patch_files(kustomization) + _generator_files(kustomization):
            skip.add((directory / name).resolve())
    return sorted(
        path
        for path in K8S.rglob("*.yaml")
        if path.name != "kustomization.yaml" and path.resolve() not in skip
    )


def _pod_spec(workload: dict[str, Any]) -> Any:
    if workload["kind"] == "Pod":
        return workload["spec"]
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def _job_spec(workload: dict[str, Any]) -> Any:
    return (
        workload["spec"]["jobTemplate"]["spec"]
        if workload["kind"] == "CronJob"
        else workload["spec"]
    )


def _container(workload: dict[str, Any]) -> Any:
    (container,) = [c for c in _pod_spec(workload)["containers"] if c["name"] == CONTAINER]
    return container


def _flag(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in an argument list."""
    for position, arg in enumerate(args):
        if isinstance(arg, str) and arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and position + 1 < len(args):
            value = args[position + 1]
            return value if isinstance(value, str) else repr(value)
    return None


def _mount_for(container: dict[str, Any], path: str) -> dict[str, Any] | None:
    mounts = [
        mount
        for mount in container.get("volumeMounts", [])
        if path == mount["mountPath"] or path.startswith(mount["mountPath"].rstrip("/") + "/")
    ]
    return max(mounts, key=lambda mount: len(mount["mountPath"]), default=None)


def _volume(pod: dict[str, Any], name: str) -> dict[str, Any]:
    (volume,) = [v for v in pod["volumes"] if v["name"] == name]
    return volume


def _projected_file(
    pod: dict[str, Any],
    container: dict[str, Any],
    path: str,
    config_maps: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """The projected-volume source (with ``item``) that puts a file at ``path``.

    A ConfigMap source without items projects every key: ``config_maps`` gives the keys.
    """
    mount = _mount_for(container, path)
    assert mount is not None, f"{path} is on no volume"
    inside = path[len(mount["mountPath"].rstrip("/")) + 1 :]
    for source in _volume(pod, mount["name"])["projected"]["sources"]:
        for kind, spec in source.items():
            items = spec.get("items")
            if items is None and kind == "configMap":
                keys = (config_maps or {}).get(spec["name"], set())
                items = [{"key": key, "path": key} for key in keys]
            for item in items or []:
                if item["path"] == inside or inside.startswith(item["path"] + "/"):
                    return {"kind": kind, "item": item, **spec}
    raise AssertionError(f"no projected item puts a file at {path}")


def _config_map_keys(docs: list[dict[str, Any]]) -> dict[str, set[str]]:
    return {d["metadata"]["name"]: set(d["data"]) for d in docs if d["kind"] == "ConfigMap"}


def _duration_s(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", str(text))
    assert match, f"not a duration: {text!r}"
    return float(match.group(1)) * units[match.group(2)]


def _merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (what `kubectl patch --type=merge` applies)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = _merge_patch(merged.get(key), value)
    return merged


def _cronjob() -> dict[str, Any]:
    cronjob: dict[str, Any] = _load(BASE / "cronjob.yaml")
    return cronjob


def _post_training_job() -> dict[str, Any]:
    job: dict[str, Any] = _load(POST_TRAINING / "job.yaml")
    return job


def _rendered_cronjob(directory: Path) -> dict[str, Any]:
    (cronjob,) = [doc for doc in _kustomize(directory) if doc["kind"] == "CronJob"]
    return cronjob


def _argo_pod() -> dict[str, Any]:
    """The pod Argo creates for the WorkflowTemplate's step (its main container)."""
    spec = _load(PIPELINES / "argo" / "workflowtemplate.yaml")["spec"]
    (template,) = spec["templates"]
    container = {"name": CONTAINER, **template["container"]}
    artifact_mounts = [
        {"name": "input-artifacts", "mountPath": a["path"]} for a in template["inputs"]["artifacts"]
    ]
    container["volumeMounts"] = container["volumeMounts"] + artifact_mounts
    volumes = [*spec["volumes"], {"name": "input-artifacts", "emptyDir": {}}]
    pod_spec = {"restartPolicy": "Never", "securityContext": spec["securityContext"]}
    pod_spec |= {"containers": [container], "volumes": volumes}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "argo-step"}, "spec": pod_spec}


def _kubeflow_component() -> dict[str, Any]:
    component: dict[str, Any] = _load(PIPELINES / "kubeflow" / "component.yaml")
    return component


class _Dag:
    """The Airflow DAG file read without Airflow: its constants and its operator's keywords."""

    def __init__(self, path: Path) -> None:
        self.tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        self.constants: dict[str, Any] = {}
        for node in self.tree.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    self.constants[target.id] = self.value(node.value)
        (call,) = [
            node
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "KubernetesPodOperator"
        ]
        self.operator = {kw.arg: self.value(kw.value) for kw in call.keywords if kw.arg}

    def value(self, node: ast.expr) -> Any:
        """A literal, with names of earlier literal constants and f-strings of them resolved."""
        if isinstance(node, ast.Name):
            return self.constants[node.id]
        if isinstance(node, ast.JoinedStr):
            return "".join(
                str(self.value(part.value)) if isinstance(part, ast.FormattedValue) else part.value
                for part in node.values
                if isinstance(part, (ast.FormattedValue, ast.Constant))
            )
        if isinstance(node, ast.Dict):
            return {
                self.value(k): self.value(v)
                for k, v in zip(node.keys, node.values, strict=True)
                if k is not None
            }
        if isinstance(node, ast.List):
            return [self.value(item) for item in node.elts]
        try:
            return ast.literal_eval(node)
        except ValueError:
            return ast.dump(node)


def _airflow_dag() -> _Dag:
    return _Dag(PIPELINES / "airflow" / "nclue_cleanup_dag.py")


def _airflow_pod() -> dict[str, Any]:
    """The pod the DAG's operator creates: its template plus the templated annotations."""
    dag = _airflow_dag()
    pod: dict[str, Any] = copy.deepcopy(dag.operator["pod_template_dict"])
    pod["metadata"]["name"] = "nclue-cleanup-abcd1234"
    pod["metadata"]["annotations"] = {key: "t-1\nt-2" for key in dag.operator["annotations"]}
    return pod


WORKLOADS = {
    "cronjob": _cronjob,
    "post-training-job": _post_training_job,
    "accounts-overlay": lambda: _rendered_cronjob(ACCOUNTS),
    "armed-overlay": lambda: _rendered_cronjob(ARMED),
    "argo": _argo_pod,
    "airflow": _airflow_pod,
}
JOBS = {name: WORKLOADS[name] for name in ("cronjob", "post-training-job", "accounts-overlay")}


# --- every manifest validates strictly on every supported minor ------------------------------


def test_supported_kubernetes_minors_are_all_checked() -> None:
    """The strict schemas cover 1.29 through at least 1.37, each minor once."""
    minors = [tuple(int(p) for p in v.split(".")[:2]) for v in K8S_VERSIONS]
    assert minors[0] == (1, 29) and minors[-1] >= (1, 37)
    assert minors == [(1, m) for m in range(29, minors[-1][1] + 1)]


def test_the_manifests_expected_are_collected() -> None:
    """The collection finds the CronJob, the NetworkPolicy, the Job and the Secret examples."""
    names = {_rel(path) for path in _manifest_files()}
    assert names == {
        "deploy/k8s/base/cronjob.yaml",
        "deploy/k8s/base/networkpolicy.yaml",
        "deploy/k8s/base/secret.example.yaml",
        "deploy/k8s/post-training/job.yaml",
    }


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", _manifest_files(), ids=_rel)
def test_manifest_validates_strictly(path: Path, version: str) -> None:
    """Every resource document under deploy/k8s validates strictly on this Kubernetes minor."""
    docs = _load_all(path.read_text(encoding="utf-8"))
    assert docs, f"{_rel(path)} holds no YAML document"
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{_rel(path)} is no resource"
        _validate_strictly(doc, _rel(path), version)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS, ids=_rel)
def test_rendered_kustomization_validates_strictly(directory: Path, version: str) -> None:
    """`kubectl kustomize` renders each kustomization into resources valid on this minor."""
    docs = _kustomize(directory)
    assert docs
    for doc in docs:
        _validate_strictly(doc, f"kubectl kustomize {_rel(directory)}", version)


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ["argo", "airflow"])
def test_pipeline_pods_validate_strictly(name: str, version: str) -> None:
    """The pods the Argo and Airflow pipelines create are valid Pods on this minor."""
    _validate_strictly(WORKLOADS[name](), name, version)


def test_validation_catches_the_disruption_target_without_status() -> None:
    """The 1.29 schema rejects DisruptionTarget without status (kubernetes#131512)."""
    job = _post_training_job()
    del job["spec"]["podFailurePolicy"]["rules"][1]["onPodConditions"][0]["status"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, K8S_VERSIONS[0], strict=True)


# --- kustomizations --------------------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS, ids=_rel)
def test_kustomization_references_exist_inside_the_repo(directory: Path) -> None:
    """Every resource, patch and generator file a kustomization names exists; inputs stay inside."""
    kustomization = _load(directory / "kustomization.yaml")
    for name in _referenced_paths(kustomization):
        target = directory / name
        assert target.exists(), f"{_rel(directory)}/kustomization.yaml names missing {name}"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{name} is no kustomization"
    for name in _generator_files(kustomization):
        assert (directory / name).resolve().is_relative_to(directory.resolve()), name


def test_secret_examples_are_not_kustomization_resources() -> None:
    """The placeholder Secrets are never applied by `kubectl apply -k`."""
    for directory in KUSTOMIZATION_DIRS:
        for doc in _kustomize(directory):
            assert doc["kind"] != "Secret", directory


@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS, ids=_rel)
def test_rendered_volumes_name_generated_config_maps(directory: Path) -> None:
    """Every ConfigMap a rendered pod mounts is one the kustomization generates (hash included)."""
    docs = _kustomize(directory)
    generated = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "ConfigMap"}
    for workload in (doc for doc in docs if doc["kind"] in {"CronJob", "Job"}):
        for volume in _pod_spec(workload)["volumes"]:
            for source in [*volume.get("projected", {}).get("sources", []), volume]:
                if "configMap" in source:
                    assert source["configMap"]["name"] in generated, volume


# --- the pods: hardening, command, credentials, paths ----------------------------------------


@pytest.mark.parametrize("load", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_pod_is_hardened_as_the_cronjob(load: Any) -> None:
    """Every pod runs as UID 10001, non-root, read-only, without privileges, with limits."""
    workload = load()
    pod = _pod_spec(workload)
    assert pod["securityContext"] == POD_SECURITY
    assert pod["restartPolicy"] == "Never"
    if workload["kind"] != "Pod" or "automountServiceAccountToken" in pod:
        assert pod["automountServiceAccountToken"] is False
    # Pod Security Standards, "restricted": only these volume types, no host namespaces.
    restricted = {"configMap", "secret", "emptyDir", "projected", "downwardAPI"}
    for volume in pod["volumes"]:
        assert set(volume) - {"name"} <= restricted, volume
    assert not {"hostNetwork", "hostPID", "hostIPC", "hostUsers"} & pod.keys()
    container = _container(workload)
    assert container["securityContext"] == CONTAINER_SECURITY
    assert "ports" not in container
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()


@pytest.mark.parametrize("load", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_tool_runs_under_tini_without_a_shell(load: Any) -> None:
    """The container runs `tini -e 4 -- nclue-cleanup` with plain arguments: no shell line."""
    container = _container(load())
    assert container["command"] == COMMAND
    assert container["args"][0] == "run"
    for arg in container["args"]:
        assert not re.search(r"[;&|`]|\$\((?!JOB_COMPLETION_INDEX\))|\{\{", arg), arg


@pytest.mark.parametrize("load", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_written_paths_are_on_writable_volumes(load: Any) -> None:
    """Every file the tool writes, and /tmp, is on a writable volume, not the read-only root."""
    container = _container(load())
    paths = [_flag(container["args"], flag) for flag in WRITING_FLAGS]
    for path in [p for p in paths if p and p != "-"] + ["/tmp/x"]:
        mount = _mount_for(container, path)
        assert mount is not None, f"{path} is on the read-only root filesystem"
        assert not mount.get("readOnly", False), f"{path} is on a read-only mount"


@pytest.mark.parametrize("load", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_credentials_come_from_a_mounted_secret_not_the_environment(load: Any) -> None:
    """NCP keys come from a mounted Secret directory; no NCLOUD_ variable is set."""
    workload = load()
    container = _container(workload)
    assert not [e for e in container.get("env", []) if e["name"].startswith("NCLOUD_")]
    path = _flag(container["args"], "--credentials-file")
    if path is None:  # --accounts: each account's credentials are in the accounts file
        assert _flag(container["args"], "--accounts")
        return
    mount = _mount_for(container, path)
    assert mount is not None and mount["readOnly"] is True and mount["mountPath"] == path
    secret = _volume(_pod_spec(workload), mount["name"])["secret"]
    assert secret["secretName"] == "nclue-credentials"
    assert secret["defaultMode"] == 0o440


@pytest.mark.parametrize("load", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_images_are_pulled_sensibly(load: Any) -> None:
    """An image by tag is pulled Always (a moved tag takes effect); by digest anything goes."""
    container = _container(load())
    if "@sha256:" not in container["image"]:
        assert container["imagePullPolicy"] == "Always", container["image"]


@pytest.mark.parametrize("load", WORKLOADS.values(), ids=WORKLOADS.keys())
def test_grace_covers_the_worst_case_exit(load: Any) -> None:
    """terminationGracePeriodSeconds covers shutdown grace + archive + push + webhook."""
    grace = _pod_spec(load()).get("terminationGracePeriodSeconds", 30)
    if load is _argo_pod:  # Argo's default is Kubernetes' 30 s: the step has no archive/push
        return
    assert EXIT_BUDGET_S <= grace <= 120


# --- the Jobs: failure policy, exit codes, deadlines -----------------------------------------


@pytest.mark.parametrize("load", JOBS.values(), ids=JOBS.keys())
def test_pod_failure_policy_fails_fast_and_ignores_disruptions(load: Any) -> None:
    """Exit 2, 3 and 5 fail at once (the Job, or one account's index); disruptions do not count."""
    job = _job_spec(load())
    rules = job["podFailurePolicy"]["rules"]
    final = [rule for rule in rules if rule["action"] in {"FailJob", "FailIndex"}]
    assert [rule["onExitCodes"] for rule in final] == [
        {"containerName": CONTAINER, "operator": "In", "values": [2, 3, 5]}
    ]
    if final[0]["action"] == "FailIndex":
        assert job["backoffLimitPerIndex"] >= 1 and "backoffLimit" not in job
    disruption = {"type": "DisruptionTarget", "status": "True"}
    assert {"action": "Ignore", "onPodConditions": [disruption]} in rules
    for rule in rules:
        assert 4 not in rule.get("onExitCodes", {}).get("values", []), rule


@pytest.mark.parametrize("load", JOBS.values(), ids=JOBS.keys())
def test_jobs_leave_nothing_behind(load: Any) -> None:
    """Every Job is removed after it finishes, and has an activeDeadlineSeconds."""
    job = _job_spec(load())
    assert 0 < job["ttlSecondsAfterFinished"] <= 7 * 86400
    assert job["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize(
    ("path", "policy_path"),
    [
        (BASE / "cronjob.yaml", BASE / "policy.yaml"),
        (POST_TRAINING / "job.yaml", POST_TRAINING / "policy.yaml"),
    ],
    ids=["cronjob", "job"],
)
def test_active_deadline_covers_the_policy_budget(path: Path, policy_path: Path) -> None:
    """activeDeadlineSeconds covers max_deletions at the policy's rate plus busy_deadline,
    and its comment says how to size it with `validate --estimate-tasks`."""
    policy = _load(policy_path)
    calls = policy["limits"]["max_deletions"] + 10  # an account of 1,000 tasks, 100 per page
    busy = _duration_s(policy["retry"]["busy_deadline"])
    needed = calls / policy["limits"]["rate"] + busy + TOOL_SHUTDOWN_GRACE_S
    deadline = _job_spec(_load(path))["activeDeadlineSeconds"]
    assert deadline >= needed * 1.2, f"{deadline} s leaves under 20 % margin over {needed} s"
    assert re.search(r"validate --policy \S+\s+(#\s*)?--estimate-tasks", path.read_text())


def test_cronjob_runs_at_a_quiet_korean_hour_and_never_overlaps() -> None:
    """Asia/Seoul schedule between 01:00 and 06:59, Forbid, bounded start delay and history."""
    spec = _cronjob()["spec"]
    assert spec["timeZone"] == "Asia/Seoul"
    minute, hour, *rest = spec["schedule"].split()
    assert minute.isdigit() and hour.isdigit() and 1 <= int(hour) <= 6
    assert rest == ["*", "*", "*"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 86400
    assert spec["successfulJobsHistoryLimit"] >= 1 and spec["failedJobsHistoryLimit"] >= 1


# --- what the CronJob runs -------------------------------------------------------------------


def test_base_is_a_cron_dry_run_whose_plan_and_audit_outlive_the_pod() -> None:
    """The base: dry run, audit to stdout and to object storage, full plan, mounted policy."""
    cronjob = _cronjob()
    container = _container(cronjob)
    args = container["args"]
    assert "--apply" not in args
    assert _flag(args, "--trigger") == "cron"
    assert _flag(args, "--audit-log") == "-"
    assert re.fullmatch(r"s3://[\w.-]+/[\w./-]+", _flag(args, "--audit-archive") or "")
    assert _flag(args, "--archive-endpoint") == "https://kr.object.ncloudstorage.com"
    assert args[-1].startswith("--plan-out=")
    policy = _flag(args, "--policy")
    assert policy == "/etc/nclue-cleanup/policy.yaml"
    mount = _mount_for(container, policy)
    assert mount is not None and mount["readOnly"] is True
    pod = _pod_spec(cronjob)
    assert _volume(pod, mount["name"])["configMap"]["name"] == "nclue-cleanup-policy"
    env = {item["name"]: item for item in container["env"]}
    archive = env["AWS_SHARED_CREDENTIALS_FILE"]["value"]
    archive_mount = _mount_for(container, archive)
    assert archive_mount is not None and archive_mount["readOnly"] is True
    secret = _volume(pod, archive_mount["name"])["secret"]
    assert secret["secretName"] == "nclue-archive-credentials"


def test_armed_overlay_swaps_the_plan_for_apply_and_nothing_else() -> None:
    """The armed overlay's CronJob is the base's with --apply in place of --plan-out."""
    base, armed = _rendered_cronjob(BASE), _rendered_cronjob(ARMED)
    base_args, armed_args = _container(base).pop("args"), _container(armed).pop("args")
    assert armed_args == [*base_args[:-1], "--apply"]
    assert armed == base


def test_accounts_overlay_runs_one_account_per_index() -> None:
    """Indexed Job: completions == parallelism == accounts; each pod finds its account's files."""
    cronjob = _rendered_cronjob(ACCOUNTS)
    config_maps = _config_map_keys(_kustomize(ACCOUNTS))
    job, pod, container = _job_spec(cronjob), _pod_spec(cronjob), _container(cronjob)
    args = container["args"]
    accounts_path = _flag(args, "--accounts")
    assert accounts_path == "/etc/nclue-cleanup/accounts.yaml"
    assert _flag(args, "--shard-index") == "$(JOB_COMPLETION_INDEX)"
    assert _flag(args, "--policy") is None and _flag(args, "--credentials-file") is None
    assert _flag(args, "--shard-count") is None and "--apply" not in args
    accounts = _load(ACCOUNTS / "accounts.yaml")
    assert accounts["version"] == 1
    names = [account["name"] for account in accounts["accounts"]]
    assert len(set(names)) == len(names) and all(re.fullmatch(r"[a-z0-9-]+", n) for n in names)
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == len(names) > 1
    accounts_file = _projected_file(pod, container, accounts_path, config_maps)
    assert accounts_file["name"].startswith("nclue-cleanup-accounts")
    here = Path(accounts_path).parent
    for account in accounts["accounts"]:
        assert account.get("mode", "dry_run") in {"apply", "dry_run"}
        policy = _projected_file(pod, container, str(here / account["policy"]))
        assert policy["name"].startswith("nclue-cleanup-policy")
        for key in ("NCLOUD_ACCESS_KEY", "NCLOUD_SECRET_KEY"):
            secret = _projected_file(pod, container, str(here / account["credentials"] / key))
            assert (
                secret["kind"] == "secret"
                and secret["name"] == f"nclue-credentials-{account['name']}"
            )
    assert "dry_run" in {account.get("mode", "dry_run") for account in accounts["accounts"]}


def test_network_policy_allows_only_dns_the_api_and_the_pushgateway() -> None:
    """Egress: DNS, 443 to public addresses, the Pushgateway port; no ingress; selects the pods."""
    (policy,) = [doc for doc in _kustomize(BASE) if doc["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["ingress"] == []
    ports = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 9091)}
    for rule in spec["egress"]:
        for peer in rule["to"]:
            if "ipBlock" in peer:
                assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"} <= set(
                    peer["ipBlock"]["except"]
                )
    selector = spec["podSelector"]["matchLabels"]
    for load in (_cronjob, _post_training_job, _airflow_pod):
        workload = load() if load is not _cronjob else _rendered_cronjob(BASE)
        template = workload
        if workload["kind"] == "CronJob":
            template = workload["spec"]["jobTemplate"]["spec"]["template"]
        elif workload["kind"] == "Job":
            template = workload["spec"]["template"]
        assert selector.items() <= template["metadata"]["labels"].items(), load


# --- the post-training Job and the pipelines -------------------------------------------------


def test_post_training_job_takes_its_ids_from_its_own_annotation() -> None:
    """The Job has a generated name within 63 characters and reads IDs from its annotation."""
    job = _post_training_job()
    assert "name" not in job["metadata"]
    assert len(job["metadata"]["generateName"]) + 5 <= 63
    container, pod = _container(job), _pod_spec(job)
    args = container["args"]
    assert "--apply" not in args and _flag(args, "--trigger") == "retrain"
    ids = _projected_file(pod, container, _flag(args, "--ids-from") or "")
    assert ids["kind"] == "downwardAPI"
    (annotation,) = job["spec"]["template"]["metadata"]["annotations"]
    assert ids["item"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{annotation}']"
    (generated,) = _kustomize(POST_TRAINING)
    assert generated["kind"] == "ConfigMap"
    policy = _flag(args, "--policy") or ""
    source = _projected_file(pod, container, policy, _config_map_keys([generated]))
    assert source["name"] == generated["metadata"]["name"]


def test_post_training_documented_patch_yields_a_valid_job() -> None:
    """The header's jq merge patch of crafted IDs gives a valid Job carrying them verbatim."""
    job = _post_training_job()
    (annotation,) = job["spec"]["template"]["metadata"]["annotations"]
    ids = "t-1\n$(rm -rf /)\n'; curl x | sh\n"
    patch = {"spec": {"template": {"metadata": {"annotations": {annotation: ids}}}}}
    patched = _merge_patch(job, patch)
    _validate_strictly(patched, "post-training job with IDs", K8S_VERSIONS[0])
    assert patched["spec"]["template"]["metadata"]["annotations"][annotation] == ids
    assert f'"{annotation}": .' in (POST_TRAINING / "job.yaml").read_text()


def test_post_training_pod_matches_the_cronjob_pod() -> None:
    """The post-training Job repeats the CronJob's command, hardening, resources and grace."""
    cron_pod, job_pod = _pod_spec(_cronjob()), _pod_spec(_post_training_job())
    for key in ("restartPolicy", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        assert job_pod.get(key) == cron_pod.get(key), key
    cron, job = _container(_cronjob()), _container(_post_training_job())
    for key in ("command", "resources", "securityContext", "imagePullPolicy"):
        assert job.get(key) == cron.get(key), key


@pytest.mark.parametrize("load", [_argo_pod, _airflow_pod], ids=["argo", "airflow"])
def test_pipelines_apply_the_post_training_policy_to_ids_from_a_file(load: Any) -> None:
    """Argo and Airflow run --apply with trigger retrain over IDs read from a file."""
    pod = load()
    container = _container(pod)
    args = container["args"]
    assert "--apply" in args and _flag(args, "--trigger") == "retrain"
    assert _flag(args, "--audit-log") == "-"
    policy = _flag(args, "--policy") or ""
    mount = _mount_for(container, policy)
    assert mount is not None
    volume = _volume(pod["spec"], mount["name"])
    names = [
        s["configMap"]["name"]
        for s in volume.get("projected", {}).get("sources", [])
        if "configMap" in s
    ]
    assert "nclue-cleanup-post-training-policy" in [volume.get("configMap", {}).get("name"), *names]
    assert _mount_for(container, _flag(args, "--ids-from") or "") is not None


def test_argo_template_passes_ids_as_an_artifact_and_maps_exit_codes() -> None:
    """Argo writes the IDs to the --ids-from file, retries only 1 and 143, and cleans up."""
    doc = _load(PIPELINES / "argo" / "workflowtemplate.yaml")
    assert (doc["apiVersion"], doc["kind"]) == ("argoproj.io/v1alpha1", "WorkflowTemplate")
    spec = doc["spec"]
    (template,) = spec["templates"]
    assert spec["entrypoint"] == template["name"]
    (artifact,) = template["inputs"]["artifacts"]
    assert artifact["path"] == _flag(template["container"]["args"], "--ids-from")
    assert artifact["raw"]["data"] == "{{inputs.parameters.task-ids}}"
    expression = template["retryStrategy"]["expression"]
    retried = {int(code) for code in re.findall(r"exitCode\) == (\d+)", expression)}
    assert retried == {1, 143}
    assert spec["ttlStrategy"]["secondsAfterCompletion"] > 0
    assert spec["podGC"]["strategy"] in {"OnPodSuccess", "OnPodCompletion", "OnWorkflowCompletion"}
    assert len(doc["metadata"]["name"]) + len(template["name"]) + 2 + 10 <= 63


def _pydantic_models(annotation: Any) -> tuple[type[Any] | None, bool]:
    """The pydantic model inside a field's annotation, and whether it is a mapping's value."""
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    mapping = typing.get_origin(annotation) is dict
    for arg in typing.get_args(annotation)[1:] if mapping else typing.get_args(annotation):
        model, _ = _pydantic_models(arg)
        if model is not None:
            return model, mapping
    return None, False


def _unknown_keys(model: Any, data: dict[str, Any], where: str) -> list[str]:
    """Keys of ``data`` (recursively) that ``model``, an Argo schema model, does not have."""
    fields = {(field.alias or name): field for name, field in model.model_fields.items()}
    found = []
    for key, value in data.items():
        if key not in fields:
            found.append(f"{where}.{key}")
            continue
        sub, mapping = _pydantic_models(fields[key].annotation)
        if sub is None or "root" in sub.model_fields:
            continue
        values = value.values() if mapping else value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, dict):
                found += _unknown_keys(sub, item, f"{where}.{key}")
    return found


def test_argo_template_matches_the_argo_schema_strictly() -> None:
    """The WorkflowTemplate validates against Argo's schema (hera's models), no unknown key."""
    try:
        from hera.workflows.models import WorkflowTemplate
    except ImportError:
        _unavailable("hera-workflows")
    doc = _load(PIPELINES / "argo" / "workflowtemplate.yaml")
    WorkflowTemplate.model_validate(doc)
    assert _unknown_keys(WorkflowTemplate, doc, "WorkflowTemplate") == []
    doc["spec"]["templates"][0]["retryStrategy"]["expresion"] = "typo"
    assert _unknown_keys(WorkflowTemplate, doc, "WorkflowTemplate") == [
        "WorkflowTemplate.spec.templates.retryStrategy.expresion"
    ]


def test_kubeflow_component_reads_ids_from_an_input_path() -> None:
    """The KFP component runs the tool under tini with --ids-from an inputPath, --apply."""
    component = _kubeflow_component()
    assert {"name", "inputs", "implementation"} <= component.keys()
    (task_ids,) = component["inputs"]
    container = component["implementation"]["container"]
    assert container["command"] == COMMAND
    args = container["args"]
    assert args[args.index("--ids-from") + 1] == {"inputPath": task_ids["name"]}
    assert "--apply" in args and "--trigger=retrain" in args
    assert all(isinstance(a, str) for a in args if a != {"inputPath": task_ids["name"]})
    assert not any(re.search(r"[;&|`$]", a) for a in args if isinstance(a, str))


def test_airflow_dag_passes_ids_in_an_annotation_and_deletes_its_pod() -> None:
    """The DAG's operator renders the IDs into the mounted annotation and removes its pod."""
    dag = _airflow_dag()
    operator = dag.operator
    assert operator["on_finish_action"] == "delete_pod"
    assert operator["base_container_name"] == CONTAINER
    assert len(operator["name"]) + 9 <= 63
    assert "cmds" not in operator and "arguments" not in operator
    ((key, text),) = operator["annotations"].items()
    assert re.fullmatch(r"\{\{ params\.task_ids \| join\('\\n'\) \}\}", text)
    pod = operator["pod_template_dict"]
    container = _container(pod)
    ids = _projected_file(pod["spec"], container, _flag(container["args"], "--ids-from") or "")
    assert ids["item"]["fieldRef"]["fieldPath"] == f"metadata.annotations['{key}']"


def test_airflow_dag_compiles() -> None:
    """The DAG file is valid Python for the interpreter it will run on."""
    path = PIPELINES / "airflow" / "nclue_cleanup_dag.py"
    compile(path.read_text(encoding="utf-8"), str(path), "exec")


# --- policy copies and the Secret examples ---------------------------------------------------


@pytest.mark.parametrize(
    ("copy_path", "source_path"),
    [
        (BASE / "policy.yaml", ROOT / "config" / "nightly-retention.yaml"),
        (POST_TRAINING / "policy.yaml", ROOT / "config" / "post-training.yaml"),
    ],
    ids=["nightly-retention", "post-training"],
)
def test_deployed_policy_mirrors_config(copy_path: Path, source_path: Path) -> None:
    """The policy a kustomization ships holds the same YAML as its documented config/ file."""
    assert _load(copy_path) == _load(source_path)


def test_secret_examples_hold_placeholders_only() -> None:
    """The Secret examples have placeholder values and nothing that looks like a key."""
    path = BASE / "secret.example.yaml"
    secrets = {doc["metadata"]["name"]: doc for doc in _load_all(path.read_text())}
    assert set(secrets) == {"nclue-credentials", "nclue-archive-credentials"}
    for secret in secrets.values():
        assert secret["kind"] == "Secret" and "data" not in secret, "base64 data could hide a key"
    assert set(secrets["nclue-credentials"]["stringData"]) == {
        "NCLOUD_ACCESS_KEY",
        "NCLOUD_SECRET_KEY",
    }
    for value in secrets["nclue-credentials"]["stringData"].values():
        assert re.fullmatch(r"REPLACE_WITH_[A-Z_]+", value), value
    archive = secrets["nclue-archive-credentials"]["stringData"]["credentials"]
    assert re.findall(r"= (\S+)", archive) == ["REPLACE_WITH_ACCESS_KEY", "REPLACE_WITH_SECRET_KEY"]
    key_like = re.compile(r"(?<![\w/+=-])(?=[A-Za-z0-9+/]*\d)[A-Za-z0-9+/]{16,}={0,2}(?![\w/+=-])")
    assert key_like.findall(path.read_text(encoding="utf-8")) == []


# --- the Dockerfile, the lock and .dockerignore ----------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    logical, current = [], ""
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    pairs = []
    for text in logical:
        instruction, _, arguments = text.partition(" ")
        pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def _final_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def test_dockerfile_pins_its_inputs() -> None:
    """Base image tag pinned to a Debian release (digest documented), tini to a version."""
    instructions = _dockerfile_instructions()
    args = dict(a.split("=", 1) for n, a in instructions if n == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.12-slim-bookworm"
    assert all(a.startswith("${PYTHON_IMAGE}") for n, a in instructions if n == "FROM")
    assert re.fullmatch(r"\d+\.\d+\.\d+-\d+(\+b\d+)?", args["TINI_VERSION"])
    runs = " ".join(a for n, a in _final_stage() if n == "RUN")
    assert '"tini=${TINI_VERSION}"' in runs
    text = (DEPLOY / "Dockerfile").read_text()
    assert "PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:<digest>" in text


def test_dockerfile_installs_only_hashed_wheels() -> None:
    """Dependencies come from the lock with --require-hashes; the project without deps."""
    instructions = _dockerfile_instructions()
    build_runs = " ".join(a for n, a in instructions[: -len(_final_stage())] if n == "RUN")
    assert "pip download --require-hashes" in build_runs and "requirements.lock" in build_runs
    assert "pip wheel --no-deps" in build_runs
    final_runs = " ".join(arguments for name, arguments in _final_stage() if name == "RUN")
    assert final_runs.count("--no-index") == 2 and "--require-hashes" in final_runs
    assert "--no-deps /project/" in final_runs
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang)\b", final_runs)


def test_dockerfile_runs_as_uid_10001_through_tini() -> None:
    """The final stage runs as 10001 with ENTRYPOINT tini -e 4, unbuffered, default --help."""
    final = _final_stage()
    users = [arguments for name, arguments in final if name == "USER"]
    assert users[-1] == f"{UID}:{UID}"
    entrypoints = [arguments for name, arguments in final if name == "ENTRYPOINT"]
    assert entrypoints[-1] == '["/usr/bin/tini", "-e", "4", "--", "nclue-cleanup"]'
    assert [arguments for name, arguments in final if name == "CMD"][-1] == '["--help"]'
    env = " ".join(arguments for name, arguments in final if name == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env
    runs = " ".join(arguments for name, arguments in final if name == "RUN")
    assert f"--owner={UID}" in runs and "/var/lib/nclue-cleanup" in runs


def _lock() -> dict[str, tuple[str, list[str]]]:
    """deploy/requirements.lock as {name: (version, hashes)}."""
    text = (DEPLOY / "requirements.lock").read_text(encoding="utf-8")
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9._-]+)==(\S+)", block)
        if match:
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            pins[name] = (match.group(2), re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return pins


def test_lock_pins_every_dependency_with_hashes() -> None:
    """Every pyproject dependency is pinned in the lock within its range, every pin hashed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _lock()
    assert pins
    for line in project["dependencies"]:
        requirement = Requirement(line)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pins, f"{name} is not in deploy/requirements.lock: run scripts/lock.sh"
        assert requirement.specifier.contains(pins[name][0]), f"{name} {pins[name][0]}: relock"
    for name, (_, hashes) in pins.items():
        assert hashes, f"{name} has no --hash"
    lines = (DEPLOY / "requirements.lock").read_text().splitlines()
    assert not [
        line
        for line in lines
        if line.startswith(("--index-url", "--extra-index-url", "--find-links"))
    ]


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*|\?|\[[^\]]*\])", pattern)
    translated = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    regex = "".join(
        translated.get(part, part if part.startswith("[") else re.escape(part)) for part in parts
    )
    return re.compile(regex)


def _dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or a parent directory decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    ignored = False
    for pattern in _dockerignore_patterns():
        negated = pattern.startswith("!")
        regex = _glob_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        (".venv/bin/python", True),
        (".git/HEAD", True),
        ("nclue_cleanup.egg-info/PKG-INFO", True),
        ("nclue-cleanup-audit.jsonl", True),
        ("tests/test_deploy.py", True),
        ("cleanup/__pycache__/cli.cpython-312.pyc", True),
        ("pyproject.toml", False),
        ("README.md", False),
        ("cleanup/cli.py", False),
        ("cleanup/py.typed", False),
        ("deploy/requirements.lock", False),
    ],
)
def test_dockerignore_keeps_the_context_to_the_build_inputs(path: str, ignored: bool) -> None:
    """.dockerignore excludes .venv, .git and local files, and keeps what the build copies."""
    assert _dockerignored(path) is ignored


# --- linters --------------------------------------------------------------------------------


def test_yaml_files_pass_yamllint() -> None:
    """Every YAML file under deploy/ passes yamllint with deploy/.yamllint.yaml."""
    config = DEPLOY / ".yamllint.yaml"
    result = subprocess.run(
        [_tool("yamllint"), "--strict", "-c", str(config), str(DEPLOY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_passes_hadolint() -> None:
    """hadolint reports nothing for deploy/Dockerfile."""
    result = subprocess.run(
        [_tool("hadolint"), str(DEPLOY / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- documentation ---------------------------------------------------------------------------


@pytest.mark.parametrize("readme", [ROOT / "README.md", DEPLOY / "README.md"], ids=_rel)
def test_readmes_name_existing_deploy_paths(readme: Path) -> None:
    """Every deploy/... path the READMEs mention exists."""
    mentioned = set(re.findall(r"\bdeploy/[\w./-]*\w", readme.read_text(encoding="utf-8")))
    assert mentioned
    for path in mentioned:
        assert (ROOT / path).exists(), path
