"""The deployment files: deploy/Dockerfile, .dockerignore and the manifests under deploy/k8s."""

from __future__ import annotations

import copy
import importlib.resources
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
SHARDED = K8S / "overlays" / "sharded"
POST_TRAINING = K8S / "post-training"
KUSTOMIZATION_DIRS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))

CONTAINER = "nclue-cleanup"
UID = 10001
TOOL_SHUTDOWN_GRACE_S = 20  # the CLI's default --shutdown-grace
WRITING_FLAGS = ("--audit-log", "--metrics-textfile", "--summary-json")


# --- helpers ---------------------------------------------------------------------------------


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _newest_strict_schema_version() -> str:
    schemas = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    versions = [
        match.group(1)
        for entry in schemas.iterdir()
        if (match := re.fullmatch(r"v(\d+\.\d+\.\d+)-local-strict", entry.name))
    ]
    return max(versions, key=lambda version: tuple(int(part) for part in version.split(".")))


K8S_VERSION = _newest_strict_schema_version()


def _validate_strictly(doc: dict[str, Any], where: str) -> None:
    try:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(item) for item in exc.path)
        pytest.fail(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")


def _is_remote(reference: str) -> bool:
    return "://" in reference or reference.startswith(("github.com/", "git@"))


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
    paths += _patch_files(kustomization) + _generator_files(kustomization)
    return [path for path in paths if not _is_remote(path)]


def _non_resource_files() -> set[Path]:
    """Files the kustomizations use as patches or generator inputs: not manifests."""
    found = set()
    for directory in KUSTOMIZATION_DIRS:
        kustomization = _load(directory / "kustomization.yaml")
        for name in _patch_files(kustomization) + _generator_files(kustomization):
            found.add((directory / name).resolve())
    return found


def _manifest_files() -> list[Path]:
    skip = _non_resource_files()
    return sorted(
        path
        for path in K8S.rglob("*.yaml")
        if path.name != "kustomization.yaml" and path.resolve() not in skip
    )


def _pod_spec(workload: dict[str, Any]) -> Any:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return workload["spec"]["template"]["spec"]


def _job_spec(workload: dict[str, Any]) -> Any:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]
    return workload["spec"]


def _container(workload: dict[str, Any]) -> Any:
    (container,) = [c for c in _pod_spec(workload)["containers"] if c["name"] == CONTAINER]
    return container


def _flag(args: list[str], name: str) -> str | None:
    """The value of ``--name=value`` or ``--name value`` in an argument list."""
    for position, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and position + 1 < len(args):
            return args[position + 1]
    return None


def _mount_for(container: dict[str, Any], path: str) -> dict[str, Any] | None:
    mounts = [
        mount
        for mount in container.get("volumeMounts", [])
        if path == mount["mountPath"] or path.startswith(mount["mountPath"].rstrip("/") + "/")
    ]
    return max(mounts, key=lambda mount: len(mount["mountPath"]), default=None)


def _duration_s(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", str(text))
    assert match, f"not a duration: {text!r}"
    return float(match.group(1)) * units[match.group(2)]


def _json_patch_add(doc: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """Apply the RFC 6902 ``add`` operations the overlays use (stand-in for kustomize)."""
    doc = copy.deepcopy(doc)
    for operation in operations:
        assert operation["op"] == "add", operation
        *parents, last = operation["path"].lstrip("/").split("/")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if isinstance(target, list):
            target.insert(len(target) if last == "-" else int(last), operation["value"])
        else:
            target[last] = operation["value"]
    return doc


def _kubectl_kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return _load_all(result.stdout)


def _base_cronjob() -> dict[str, Any]:
    cronjob: dict[str, Any] = _load(BASE / "cronjob.yaml")
    return cronjob


def _post_training_job() -> dict[str, Any]:
    job: dict[str, Any] = _load(POST_TRAINING / "job.yaml")
    return job


def _sharded_cronjob() -> dict[str, Any]:
    """The overlay's CronJob: rendered by kubectl when present, else patched here."""
    if shutil.which("kubectl"):
        (cronjob,) = [d for d in _kubectl_kustomize(SHARDED) if d["kind"] == "CronJob"]
        return cronjob
    (patch,) = _load(SHARDED / "kustomization.yaml")["patches"]
    return _json_patch_add(_base_cronjob(), _load(SHARDED / patch["path"]))


# --- (a) every manifest validates strictly ---------------------------------------------------


def test_the_manifests_expected_are_collected() -> None:
    """The manifest collection finds the CronJob, the post-training Job and the Secret example."""
    names = {_rel(path) for path in _manifest_files()}
    assert {
        "deploy/k8s/base/cronjob.yaml",
        "deploy/k8s/base/secret.example.yaml",
        "deploy/k8s/post-training/job.yaml",
    } <= names


@pytest.mark.parametrize("path", _manifest_files(), ids=_rel)
def test_manifest_validates_strictly(path: Path) -> None:
    """Every resource document under deploy/k8s validates against the strict Kubernetes schema."""
    docs = _load_all(path.read_text(encoding="utf-8"))
    assert docs, f"{_rel(path)} holds no YAML document"
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{_rel(path)} is no resource"
        _validate_strictly(doc, _rel(path))


# --- (b) kustomization references ------------------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS, ids=_rel)
def test_kustomization_references_exist(directory: Path) -> None:
    """Every resource, component, patch and generator file a kustomization names exists."""
    kustomization = _load(directory / "kustomization.yaml")
    for name in _referenced_paths(kustomization):
        target = directory / name
        assert target.exists(), f"{_rel(directory)}/kustomization.yaml names missing {name}"
        if target.is_dir():
            assert (target / "kustomization.yaml").is_file(), f"{name} is no kustomization"


@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS, ids=_rel)
def test_generator_files_stay_inside_the_kustomization_root(directory: Path) -> None:
    """Generator inputs live inside their kustomization's directory, as kustomize requires."""
    kustomization = _load(directory / "kustomization.yaml")
    for name in _generator_files(kustomization):
        resolved = (directory / name).resolve()
        assert resolved.is_relative_to(directory.resolve()), f"{name} is outside {directory}"


def test_secret_example_is_not_a_kustomization_resource() -> None:
    """The placeholder Secret is never applied by `kubectl apply -k`."""
    for directory in KUSTOMIZATION_DIRS:
        resources = _load(directory / "kustomization.yaml").get("resources", [])
        assert not any("secret" in Path(resource).name for resource in resources), directory


# --- (c) rendered kustomizations validate ----------------------------------------------------


@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS, ids=_rel)
def test_rendered_kustomization_validates_strictly(directory: Path) -> None:
    """`kubectl kustomize` renders each kustomization into strictly valid resources."""
    docs = _kubectl_kustomize(directory)
    assert docs
    for doc in docs:
        _validate_strictly(doc, f"kubectl kustomize {_rel(directory)}")


@pytest.mark.parametrize("directory", KUSTOMIZATION_DIRS, ids=_rel)
def test_rendered_volumes_name_generated_config_maps(directory: Path) -> None:
    """Every ConfigMap a rendered pod mounts is one the kustomization generates (hash included)."""
    docs = _kubectl_kustomize(directory)
    generated = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "ConfigMap"}
    for workload in (doc for doc in docs if doc["kind"] in {"CronJob", "Job"}):
        for volume in _pod_spec(workload)["volumes"]:
            sources = [*volume.get("projected", {}).get("sources", []), volume]
            for source in sources:
                if "configMap" in source:
                    assert source["configMap"]["name"] in generated, volume


# --- (d) the CronJob, the post-training Job and the sharded overlay -------------------------


def test_cronjob_never_overlaps_and_keeps_history() -> None:
    """The CronJob forbids concurrent runs and bounds its start delay, history and Job lifetime."""
    spec = _base_cronjob()["spec"]
    job = spec["jobTemplate"]["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert 0 < spec["startingDeadlineSeconds"] < 86400
    assert spec["successfulJobsHistoryLimit"] >= 1
    assert spec["failedJobsHistoryLimit"] >= 1
    assert job["backoffLimit"] >= 0
    assert job["ttlSecondsAfterFinished"] > 0


@pytest.mark.parametrize("load", [_base_cronjob, _post_training_job], ids=["cronjob", "job"])
def test_pod_failure_policy_fails_fast_on_final_errors(load: Any) -> None:
    """Exit 2, 3 and 5 fail the Job at once, and node disruptions are not counted."""
    workload = load()
    rules = _job_spec(workload)["podFailurePolicy"]["rules"]
    fail_job = [rule for rule in rules if rule["action"] == "FailJob"]
    assert [rule["onExitCodes"] for rule in fail_job] == [
        {"containerName": CONTAINER, "operator": "In", "values": [2, 3, 5]}
    ]
    disruption = {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    assert disruption in rules
    assert _pod_spec(workload)["restartPolicy"] == "Never"


@pytest.mark.parametrize("load", [_base_cronjob, _post_training_job], ids=["cronjob", "job"])
def test_still_busy_exit_completes_the_job(load: Any) -> None:
    """Exit 4 (still busy) is remapped to success by tini and is in no podFailurePolicy rule."""
    workload = load()
    command = _container(workload)["command"]
    assert command[0].endswith("/tini")
    assert command[command.index("-e") + 1] == "4"
    assert command[-2:] == ["--", "nclue-cleanup"]
    for rule in _job_spec(workload)["podFailurePolicy"]["rules"]:
        assert 4 not in rule.get("onExitCodes", {}).get("values", []), rule


def test_termination_grace_exceeds_the_tool_shutdown_grace() -> None:
    """Kubernetes waits longer than the tool's 20 s SIGTERM grace before killing the pod."""
    assert _pod_spec(_base_cronjob())["terminationGracePeriodSeconds"] > TOOL_SHUTDOWN_GRACE_S


@pytest.mark.parametrize(
    ("load", "policy_path"),
    [(_base_cronjob, BASE / "policy.yaml"), (_post_training_job, POST_TRAINING / "policy.yaml")],
    ids=["cronjob", "job"],
)
def test_active_deadline_covers_the_policy_budget(load: Any, policy_path: Path) -> None:
    """activeDeadlineSeconds covers max_deletions calls at the policy's rate plus busy_deadline."""
    policy = _load(policy_path)
    listing_calls = 10  # an account of 1,000 tasks, 100 per page (see cronjob.yaml)
    calls = policy["limits"]["max_deletions"] + listing_calls
    busy = _duration_s(policy["retry"]["busy_deadline"])
    needed = calls / policy["limits"]["rate"] + busy + TOOL_SHUTDOWN_GRACE_S
    deadline = _job_spec(load())["activeDeadlineSeconds"]
    assert deadline >= needed * 1.2, f"{deadline} s leaves under 20 % margin over {needed} s"


@pytest.mark.parametrize("load", [_base_cronjob, _post_training_job], ids=["cronjob", "job"])
def test_pod_is_hardened(load: Any) -> None:
    """The pod runs as UID 10001, non-root, read-only, without privileges or a service token."""
    workload = load()
    pod = _pod_spec(workload)
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": UID,
        "runAsGroup": UID,
        "fsGroup": UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False
    container = _container(workload)
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    assert {"cpu", "memory"} <= container["resources"]["limits"].keys()


@pytest.mark.parametrize("load", [_base_cronjob, _post_training_job], ids=["cronjob", "job"])
def test_written_paths_are_on_writable_volumes(load: Any) -> None:
    """Every file the tool writes, and /tmp, is on a writable volume, not the read-only root."""
    container = _container(load())
    paths = [_flag(container["args"], flag) for flag in WRITING_FLAGS]
    assert paths[0], "no --audit-log"
    for path in [*filter(None, paths), "/tmp/x"]:
        mount = _mount_for(container, path)
        assert mount is not None, f"{path} is on the read-only root filesystem"
        assert not mount.get("readOnly", False), f"{path} is on a read-only mount"


@pytest.mark.parametrize("load", [_base_cronjob, _post_training_job], ids=["cronjob", "job"])
def test_credentials_come_from_the_secret(load: Any) -> None:
    """NCLOUD_ACCESS_KEY and NCLOUD_SECRET_KEY come from the nclue-credentials Secret."""
    env = {item["name"]: item for item in _container(load())["env"]}
    for name in ("NCLOUD_ACCESS_KEY", "NCLOUD_SECRET_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "nclue-credentials", "key": name}
        assert "value" not in env[name]


def test_base_is_a_cron_triggered_dry_run() -> None:
    """The base runs `run` as a dry run (no --apply) with trigger cron and the mounted policy."""
    container = _container(_base_cronjob())
    args = container["args"]
    assert args[0] == "run"
    assert "--apply" not in args
    assert _flag(args, "--trigger") == "cron"
    policy = _flag(args, "--policy")
    assert policy == "/etc/nclue-cleanup/policy.yaml"
    mount = _mount_for(container, policy)
    assert mount is not None and mount["readOnly"] is True
    (volume,) = [v for v in _pod_spec(_base_cronjob())["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == "nclue-cleanup-policy"


def test_sharded_overlay_runs_one_pod_per_shard() -> None:
    """The sharded overlay is an Indexed Job with completions == parallelism == --shard-count."""
    cronjob = _sharded_cronjob()
    job = cronjob["spec"]["jobTemplate"]["spec"]
    args = _container(cronjob)["args"]
    shard_count = _flag(args, "--shard-count")
    assert shard_count is not None and int(shard_count) > 1
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == int(shard_count)
    assert _flag(args, "--shard-index") is None, "the index comes from JOB_COMPLETION_INDEX"
    assert "--apply" not in args
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


# --- the post-training Job -------------------------------------------------------------------


def test_post_training_job_is_a_retrain_dry_run_over_mounted_ids() -> None:
    """The post-training Job reads IDs from the mounted ids.txt, with trigger retrain, dry run."""
    job = _post_training_job()
    container = _container(job)
    args = container["args"]
    assert job["kind"] == "Job"
    assert args[0] == "run"
    assert "--apply" not in args
    assert _flag(args, "--trigger") == "retrain"
    ids_path = _flag(args, "--ids-from")
    assert ids_path == "/etc/nclue-cleanup/ids.txt"
    mount = _mount_for(container, ids_path)
    assert mount is not None
    (volume,) = [v for v in _pod_spec(job)["volumes"] if v["name"] == mount["name"]]
    sources = {source["configMap"]["name"] for source in volume["projected"]["sources"]}
    assert sources == {"nclue-cleanup-post-training-policy", "nclue-cleanup-ids"}
    generators = _load(POST_TRAINING / "kustomization.yaml")["configMapGenerator"]
    assert {"name": "nclue-cleanup-ids", "files": ["ids.txt"]} in generators


def test_post_training_pod_matches_the_cronjob_pod() -> None:
    """The post-training Job repeats the CronJob's image, command, hardening and resources."""
    cron_pod, job_pod = _pod_spec(_base_cronjob()), _pod_spec(_post_training_job())
    for key in (
        "restartPolicy",
        "terminationGracePeriodSeconds",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "securityContext",
    ):
        assert job_pod.get(key) == cron_pod.get(key), key
    cron, job = _container(_base_cronjob()), _container(_post_training_job())
    for key in ("image", "command", "env", "resources", "securityContext"):
        assert job.get(key) == cron.get(key), key


# --- policy copies ---------------------------------------------------------------------------


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
    if not source_path.exists():
        pytest.skip(f"{_rel(source_path)} does not exist yet")
    assert _load(copy_path) == _load(source_path)


# --- (e) the Secret example ------------------------------------------------------------------


def test_secret_example_holds_placeholders_only() -> None:
    """The Secret example has placeholder string values and nothing that looks like a key."""
    path = BASE / "secret.example.yaml"
    secret = _load(path)
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["name"] == "nclue-credentials"
    assert "data" not in secret, "base64 data could hide a real key"
    assert set(secret["stringData"]) == {"NCLOUD_ACCESS_KEY", "NCLOUD_SECRET_KEY"}
    for value in secret["stringData"].values():
        assert re.fullmatch(r"REPLACE_WITH_[A-Z_]+|<[^>]*>|\.\.\.", value), value
    key_like = re.compile(r"(?<![\w/+=-])(?=[A-Za-z0-9+/]*\d)[A-Za-z0-9+/]{16,}={0,2}(?![\w/+=-])")
    assert key_like.findall(path.read_text(encoding="utf-8")) == []


# --- (f) the Dockerfile and .dockerignore ----------------------------------------------------


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


def test_dockerfile_builds_wheels_in_a_separate_stage() -> None:
    """The image is multi-stage on python:3.12-slim, with wheels built before the final stage."""
    instructions = _dockerfile_instructions()
    froms = [arguments for name, arguments in instructions if name == "FROM"]
    assert len(froms) >= 2
    assert "ARG PYTHON_IMAGE=python:3.12-slim" in [f"{n} {a}" for n, a in instructions]
    assert all(argument.startswith("${PYTHON_IMAGE}") for argument in froms)
    build_runs = " ".join(a for n, a in instructions[: -len(_final_stage())] if n == "RUN")
    assert "pip wheel --no-deps" in build_runs
    final_runs = " ".join(arguments for name, arguments in _final_stage() if name == "RUN")
    assert "--no-index" in final_runs
    assert not re.search(r"\b(gcc|g\+\+|build-essential|clang)\b", final_runs)


def test_dockerfile_runs_as_a_fixed_non_root_uid() -> None:
    """The final stage runs as numeric UID 10001 (the manifests' runAsUser), not as root."""
    users = [arguments for name, arguments in _final_stage() if name == "USER"]
    assert users, "no USER in the final stage"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) == UID
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_dockerfile_entrypoint_env_and_writable_dir() -> None:
    """The image runs nclue-cleanup (default --help), unbuffered, with tini and a writable dir."""
    final = _final_stage()
    entrypoints = [arguments for name, arguments in final if name == "ENTRYPOINT"]
    commands = [arguments for name, arguments in final if name == "CMD"]
    assert entrypoints[-1] == '["nclue-cleanup"]'
    assert commands[-1] == '["--help"]'
    env = " ".join(arguments for name, arguments in final if name == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert "PYTHONUNBUFFERED=1" in env
    runs = " ".join(arguments for name, arguments in final if name == "RUN")
    assert re.search(r"apt-get install .*\btini\b", runs), "the manifests run /usr/bin/tini"
    assert f"--owner={UID}" in runs and "/var/lib/nclue-cleanup" in runs


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
    ],
)
def test_dockerignore_keeps_the_context_to_the_build_inputs(path: str, ignored: bool) -> None:
    """.dockerignore excludes .venv, .git and local files, and keeps what the build copies."""
    assert _dockerignored(path) is ignored


# --- deploy/README.md ------------------------------------------------------------------------


def test_deploy_readme_names_existing_paths() -> None:
    """Every deploy/... path the README's Deploying section mentions exists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    mentioned = set(re.findall(r"\bdeploy/[\w./-]*\w", text))
    assert mentioned
    for path in mentioned:
        assert (ROOT / path).exists(), path
