"""Airflow DAG: delete the task models a retraining superseded, with nclue-cleanup in a pod.

Copy this file into the DAGs folder (it needs apache-airflow-providers-cncf-kubernetes).
The training DAG triggers it with the IDs in the run's conf, for example
``TriggerDagRunOperator(trigger_dag_id="nclue_cleanup_superseded",
conf={"task_ids": ["..."]})`` or ``airflow dags trigger nclue_cleanup_superseded --conf
'{"task_ids": ["..."]}'``.

The IDs reach the tool as a file, never through a shell: the operator writes them, one per
line, into the pod's annotation ``nclue-cleanup/task-ids``, and the downward API mounts that
annotation as ``/etc/nclue-cleanup/task-ids`` (``--ids-from``). Annotations hold 256 KiB in
all, about 6,000 IDs.

Exit codes: 0, and 4 (some tasks still busy: ``tini -e 4`` makes it 0), succeed; anything
else fails the task. No automatic retry: 2, 3 and 5 (usage/credentials, auth, safety guard)
would fail again, and after a 1 a re-run (clear the task) converges. The pod is named
``nclue-cleanup-<random>`` (the operator keeps it within 63 characters) and deleted when it
ends (``on_finish_action``); its logs, the audit log included, stay in the task's log.
"""

from __future__ import annotations

import pendulum
from airflow import DAG
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

NAMESPACE = "nclue"
IDS_ANNOTATION = "nclue-cleanup/task-ids"
IDS_FIELD = f"metadata.annotations['{IDS_ANNOTATION}']"

# The pod, as the CronJob's (deploy/k8s/base/cronjob.yaml): same image, command, hardening,
# resources and grace; tests/test_deploy.py checks they stay the same.
POD_TEMPLATE = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "labels": {
            "app.kubernetes.io/name": "nclue-cleanup",
            "app.kubernetes.io/component": "post-training",
        },
    },
    "spec": {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": 1200,
        "terminationGracePeriodSeconds": 60,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "nclue-cleanup",
                "image": "registry.example.com/nclue-cleanup:0.1.0",
                "imagePullPolicy": "Always",
                "command": ["/usr/bin/tini", "-e", "4", "--", "nclue-cleanup"],
                # --apply: the pipeline decided these models are superseded; the policy's
                # protect rules, keep_latest and max_deletions still apply.
                "args": [
                    "run",
                    "--policy=/etc/nclue-cleanup/policy.yaml",
                    "--ids-from=/etc/nclue-cleanup/task-ids",
                    "--trigger=retrain",
                    "--credentials-file=/var/run/secrets/nclue-cleanup",
                    "--audit-log=-",
                    "--apply",
                ],
                "env": [
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
                ],
                "resources": {
                    "requests": {"cpu": "50m", "memory": "128Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/nclue-cleanup", "readOnly": True},
                    {
                        "name": "credentials",
                        "mountPath": "/var/run/secrets/nclue-cleanup",
                        "readOnly": True,
                    },
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }
        ],
        "volumes": [
            {
                "name": "config",
                "projected": {
                    "sources": [
                        {"configMap": {"name": "nclue-cleanup-post-training-policy"}},
                        {
                            "downwardAPI": {
                                "items": [
                                    {
                                        "path": "task-ids",
                                        "fieldRef": {"fieldPath": IDS_FIELD},
                                    }
                                ]
                            }
                        },
                    ]
                },
            },
            {
                "name": "credentials",
                "secret": {"secretName": "nclue-credentials", "defaultMode": 0o440},
            },
            {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        ],
    },
}

with DAG(
    dag_id="nclue_cleanup_superseded",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"task_ids": []},
    tags=["nclue-cleanup"],
) as dag:
    KubernetesPodOperator(
        task_id="delete_superseded",
        name="nclue-cleanup",
        namespace=NAMESPACE,
        pod_template_dict=POD_TEMPLATE,
        base_container_name="nclue-cleanup",
        # Rendered by Jinja into the annotation's text: data in a file, not a command.
        annotations={IDS_ANNOTATION: r"{{ params.task_ids | join('\n') }}"},
        on_finish_action="delete_pod",
        get_logs=True,
        retries=0,
        startup_timeout_seconds=300,
    )
