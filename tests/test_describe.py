"""validate's words: the policy described, a run's calls and time estimated, and its warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cleanup.describe import describe, estimate, policy_warnings
from cleanup.policy import Policy, load_policy, policy_from_mapping

ROOT = Path(__file__).resolve().parent.parent


def make(**sections: object) -> Policy:
    """A policy from sections, selecting the whole account unless ``select`` is given."""
    return policy_from_mapping(
        {"version": 1, "select": {"all": True}, **sections}, source="p.yaml", ids_elsewhere=True
    )


FULL = make(
    endpoint="https://example.test/api/v1",
    account={"access_key_ids": ["ncp_iam_B", "ncp_iam_A"]},
    filters={
        "statuses": ["complete", "Failed"],
        "name_glob": "exp-*",
        "name_regex": "^exp-[0-9]+$",
        "older_than": "30d",
        "created_before": "2026-01-01T09:00:00+09:00",
        "keep_latest": 3,
        "keep_latest_by": "^(?P<family>.+)-v[0-9]+$",
    },
    protect={"ids": ["T1"], "name_globs": ["prod-*"], "used_within": "14d"},
    limits={
        "rate": 0.5,
        "concurrency": 2,
        "max_deletions": 500,
        "max_deletions_percent": 40,
        "max_deletions_per_run": 200,
        "max_failure_percent": 10,
    },
    retry={"busy_interval": "90s", "busy_deadline": "30m", "backoff_base": "500ms"},
    review={"min_plan_age": "24h", "max_plan_age": "7d"},
    api={"timezone": "Asia/Seoul", "verify": False},
)


@pytest.mark.parametrize(
    "line",
    [
        "policy p.yaml (sha256 ",
        "selects: every task in the account (full listing)",
        "account: only with access key ID ncp_iam_A, ncp_iam_B (any other: exit 2)",
        "deletes those where: status is one of completed, failed and name matches 'exp-*' "
        "and name fully matches /^exp-[0-9]+$/ and created more than 30d ago and created "
        "before 2026-01-01T00:00:00Z",
        "keeps: the newest 3 tasks of each family (group 'family' of /^(?P<family>.+)-v[0-9]+$/ "
        "on task_name); ties with the last kept are kept",
        "never deletes: 1 protected ID; names matching prod-*; tasks a shopping-intent "
        "profile references; tasks with a run created in the last 2w",
        "limits: rate 0.5 requests/s, concurrency 2, max_deletions 500, max_deletions_percent "
        "40% of the listed account, max_deletions_per_run 200 (drain: oldest first, rest next "
        "run), max_failure_percent 10%",
        "retry: max_attempts 6, busy_interval 90s, busy_deadline 30m, backoff 0.5s..1m, "
        "request_timeout 30s",
        "review: a plan for --apply --plan must be at least 1d and at most 7d old",
        "api: zone-less API times read in Asia/Seoul; not verified",
        "endpoint: https://example.test/api/v1",
    ],
)
def test_describe_names_every_normalized_setting(line: str):
    """describe() writes each section of the normalized policy as one readable line
    (durations in their shortest form: 14d is 2w, 24h is 1d)."""
    lines = describe(FULL).splitlines()
    assert line in lines or lines[0].startswith(line)


@pytest.mark.parametrize(
    ("policy", "line"),
    [
        (make(), "account: any credentials (no account.access_key_ids)"),
        (make(), "deletes those where: status is one of completed, failed"),
        (make(), "never deletes: tasks a shopping-intent profile references"),
        (make(protect={"referenced": False}), "never deletes: no protect rules"),
        (make(), "review: any plan age for --apply --plan"),
        (make(), "api: zone-less API times read in UTC; deletes confirmed by a listing or GET"),
        (make(), "endpoint: (from --endpoint, NCLUE_ENDPOINT or the default)"),
        (
            make(limits={"max_deletions_percent": 100}),
            "limits: rate 1 requests/s, concurrency 8, max_deletions none, max_deletions_percent "
            "off of the listed account, max_deletions_per_run none, max_failure_percent 20%",
        ),
        (
            make(filters={"keep_latest": 2}),
            "keeps: the newest 2 tasks of each task_name; ties with the last kept are kept",
        ),
        (
            make(filters={"keep_latest": 2, "keep_latest_by": "^(.+)-[0-9]+$"}),
            "keeps: the newest 2 tasks of each family (group 1 of /^(.+)-[0-9]+$/ on task_name); "
            "ties with the last kept are kept",
        ),
        (
            make(select={"ids": ["t1", "t2"]}),
            "selects: 2 explicit task IDs",
        ),
        (
            make(select={}),
            "selects: nothing by itself: give task IDs with run --ids-from FILE|- or --plan",
        ),
        (
            make(review={"max_plan_age": "2d"}),
            "review: a plan for --apply --plan must be at most 2d old",
        ),
    ],
)
def test_describe_says_the_defaults(policy: Policy, line: str):
    """Defaults and partial sections are described as what they do, not left out."""
    assert line in describe(policy).splitlines()


def test_describe_without_keep_latest_has_no_keep_line():
    """A policy without keep_latest says nothing about keeping."""
    assert not [line for line in describe(make()).splitlines() if line.startswith("keeps:")]


# -- estimate --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "tasks", "calls", "duration_s", "deadline_s"),
    [
        # 30 task pages + 30 run pages + 30 profile pages, 300 deletes, 30 verify pages, 30m
        (
            make(limits={"max_deletions_per_run": 300, "max_deletions": 500}),
            3000,
            (90, 300, 30),
            2220.0,
            2940,
        ),
        # no caps: every task may be deleted
        (make(retry={"busy_deadline": "0s"}), 1000, (30, 1000, 10), 1040.0, 1440),
        # max_deletions caps what a run that is not refused deletes
        (make(limits={"max_deletions": 20}), 1000, (30, 20, 10), 1860.0, 2460),
        # half the rate doubles the call time
        (
            make(limits={"rate": 0.5, "max_deletions": 20}, retry={"busy_deadline": "0s"}),
            1000,
            (30, 20, 10),
            120.0,
            300,
        ),
        # api.verify false: no verification pass
        (make(api={"verify": False}, retry={"busy_deadline": "1m"}), 100, (3, 100, 0), 163.0, 360),
        # an empty account still costs one page of each listing
        (make(retry={"busy_deadline": "0s"}), 0, (3, 0, 0), 3.0, 180),
        # explicit IDs without a listing: a GET per task, a GET per delete to verify
        (
            make(select={"ids": ["t1"]}, retry={"busy_deadline": "0s"}),
            50,
            (52, 50, 50),
            152.0,
            360,
        ),
        # keep_latest lists the account even for explicit IDs
        (
            make(select={}, filters={"keep_latest": 3}, limits={"max_deletions": 20}),
            3000,
            (90, 20, 30),
            140.0 + 1800.0,
            2580,
        ),
    ],
)
def test_estimate_counts_calls_and_suggests_a_deadline(
    policy: Policy, tasks: int, calls: tuple[int, int, int], duration_s: float, deadline_s: int
):
    """Listing, deletes and verification calls at the rate plus busy_deadline give the time;
    the deadline is 1.25 x that + 120 s, rounded up to a minute."""
    e = estimate(policy, tasks)
    assert (e.listing_calls, e.delete_calls, e.verify_calls) == calls
    assert e.duration_s == pytest.approx(duration_s)
    assert e.deadline_s == deadline_s
    assert e.deadline_s % 60 == 0


def test_describe_prints_the_estimate_when_asked():
    """describe(estimate_tasks=N) adds the calls, the duration and the suggested deadline."""
    policy = make(limits={"max_deletions_per_run": 300, "max_deletions": 500})
    lines = describe(policy, estimate_tasks=3000).splitlines()
    assert lines[-7:] == [
        "estimate for 3,000 tasks at 1 requests/s:",
        "  listing: 90 calls (30 pages of 100 tasks, runs and profiles assumed to take as many "
        "pages as tasks)",
        "  deletes: at most 300 calls (max_deletions_per_run 300, max_deletions 500)",
        "  verification: ~30 calls (one more listing pass)",
        "  busy tasks: up to 30m (busy_deadline)",
        "  expected duration: up to 2,220 s (about 37m)",
        "  suggested Kubernetes activeDeadlineSeconds: 2940 (1.25 x duration + 120 s, rounded "
        "up to a minute)",
    ]
    assert "estimate" not in describe(policy)


# -- warnings --------------------------------------------------------------------------------

WHOLE_ACCOUNT = "select.all with no name or age filter"
NO_CAP = "no deletion cap"
RATE = "above the NCLUE guidance of 1 request/s"
REGISTERED = "selects registered"
KEEP_BY = "groups by the exact task_name"
DRAIN_ABOVE_CAP = "is above max_deletions"

WARNINGS = [
    (make(limits={"max_deletions": 10}), [WHOLE_ACCOUNT]),
    (make(filters={"name_glob": "exp-*"}), []),
    (make(filters={"name_regex": "^exp$"}), []),
    (make(filters={"older_than": "0s"}), []),
    (make(filters={"created_before": "2026-01-01T00:00:00Z"}), []),
    (make(select={"ids": ["t1"]}, limits={"max_deletions": 10}), []),
    (make(filters={"name_glob": "x"}, limits={"max_deletions_percent": 100}), [NO_CAP]),
    (make(filters={"name_glob": "x"}, limits={"max_deletions_percent": 99}), []),
    (
        make(filters={"name_glob": "x"}, limits={"max_deletions_percent": 100, "max_deletions": 9}),
        [],
    ),
    (
        make(
            filters={"name_glob": "x"},
            limits={"max_deletions_percent": 100, "max_deletions_per_run": 9},
        ),
        [],
    ),
    # explicit IDs without a listing: the percent cap cannot apply
    (make(select={"ids": ["t1"]}), [NO_CAP]),
    (make(filters={"name_glob": "x"}, limits={"rate": 1}), []),
    (make(filters={"name_glob": "x"}, limits={"rate": 1.5}), [RATE]),
    (make(filters={"name_glob": "x", "statuses": ["registered"]}), [REGISTERED]),
    (make(filters={"name_glob": "x", "statuses": ["completed"]}), []),
    (make(filters={"name_glob": "x", "keep_latest": 3}), [KEEP_BY]),
    (make(filters={"name_glob": "x", "keep_latest": 0}), []),
    (make(filters={"name_glob": "x", "keep_latest": 3, "keep_latest_by": "^(.+)-v[0-9]+$"}), []),
    (
        make(
            filters={"name_glob": "x"}, limits={"max_deletions": 100, "max_deletions_per_run": 200}
        ),
        [DRAIN_ABOVE_CAP],
    ),
    (
        make(
            limits={"max_deletions_percent": 100, "rate": 5}, filters={"statuses": ["registered"]}
        ),
        [WHOLE_ACCOUNT, NO_CAP, RATE, REGISTERED],
    ),
]


@pytest.mark.parametrize(("policy", "expected"), WARNINGS)
def test_policy_warnings(policy: Policy, expected: list[str]):
    """Each risky setting gives its one warning, in a fixed order, and a safe policy none."""
    warnings = policy_warnings(policy)
    assert len(warnings) == len(expected), warnings
    for warning, phrase in zip(warnings, expected, strict=True):
        assert phrase in warning


# -- the shipped policies --------------------------------------------------------------------

SHIPPED = sorted((ROOT / "config").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_shipped_policies_validate_and_describe(path: Path):
    """Every policy in config/ loads, is described, and warns about the rate only if demo."""
    policy = load_policy(path, ids_elsewhere=True)
    assert describe(policy, estimate_tasks=3000).startswith(f"policy {path} (sha256 ")
    expected = [RATE] if path.name == "demo-policy.yaml" else []
    assert [w for w in policy_warnings(policy) if not any(p in w for p in expected)] == []
    assert len(policy_warnings(policy)) == len(expected)


@pytest.mark.parametrize(
    ("policy_path", "manifest", "pointer"),
    [
        ("config/nightly-retention.yaml", "deploy/k8s/base/cronjob.yaml", ("spec", "jobTemplate")),
        ("config/post-training.yaml", "deploy/k8s/post-training/job.yaml", ()),
    ],
)
def test_shipped_deadlines_cover_the_estimate(policy_path: str, manifest: str, pointer: tuple):
    """On a 3,000-task account the manifest's activeDeadlineSeconds covers the suggestion."""
    job = yaml.safe_load((ROOT / manifest).read_text())
    for key in pointer:
        job = job[key]
    suggested = estimate(load_policy(ROOT / policy_path, ids_elsewhere=True), 3000).deadline_s
    assert job["spec"]["activeDeadlineSeconds"] >= suggested


def test_nightly_policy_drains_a_backlog_and_groups_versions():
    """The nightly policy drains (max_deletions_per_run within max_deletions) and groups
    versioned names into families."""
    policy = load_policy(ROOT / "config/nightly-retention.yaml")
    per_run, cap = policy.limits.max_deletions_per_run, policy.limits.max_deletions
    assert per_run is not None and cap is not None and per_run <= cap
    assert policy.filters.statuses == frozenset({"completed", "failed"})
    assert policy.filters.keep_latest_by is not None
    for name, family in [("ctr-v7", "ctr"), ("churn-2026-11-30", "churn"), ("a-b-v12", "a-b")]:
        match = policy.filters.keep_latest_by.fullmatch(name)
        assert match is not None and match.group("family") == family
    assert policy.filters.keep_latest_by.fullmatch("prod-recommender") is None
    assert "prod-*" in policy.protect.name_globs


@pytest.mark.parametrize(
    ("copy", "source"),
    [
        ("deploy/k8s/base/policy.yaml", "config/nightly-retention.yaml"),
        ("deploy/k8s/post-training/policy.yaml", "config/post-training.yaml"),
    ],
)
def test_deployed_policies_are_byte_copies(copy: str, source: str):
    """What kustomize ships is the config/ file byte for byte (same sha256 in the audit)."""
    assert (ROOT / copy).read_bytes() == (ROOT / source).read_bytes()


def test_config_demo_policy_is_the_bundled_one():
    """config/demo-policy.yaml is a symlink to the policy `demo` ships in the package."""
    link = ROOT / "config/demo-policy.yaml"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "cleanup/data/demo-policy.yaml").resolve()
