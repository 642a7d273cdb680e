"""The objects a TransferSearch owns: builders only (pure functions, no API calls).

One generation of a search's spec = one ConfigMap (the trainer's JobConfig) and
one Indexed Job (one completion index per trial), both named
``<search>-<uid>-g<generation>``. The name is a function of what the object is for,
so creating it twice is a 409 rather than a duplicate, and a spec change gets
fresh children instead of mutating ones that pods are already using. The search's
uid (its first characters) is in the name because the search's name is not unique
over time: a search deleted and created again under the same name must not find
the old one's Job (still there until the garbage collector gets to it, or for good
after `kubectl delete --cascade=orphan`) under the name of its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from transfersearch_trainer.api.jobconfig import TERMINATION_LOG, JobConfig
from transfersearch_trainer.api.resources import cpu_threads
from transfersearch_trainer.api.spec import TransferSearchSpec

SEARCH_LABEL = "transfersearch.io/search"
GENERATION_LABEL = "transfersearch.io/generation"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
CONTAINER = "trainer"
CONFIG_VOLUME = "config"
CONFIG_DIR = "/etc/transfersearch"
CONFIG_KEY = "job.json"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
CACHE_DIR = "/var/cache/transfersearch"
RUNTIME_UID = 10001  # the trainer image's user (Dockerfile)
# `transfersearch train` exits 2 on a problem the user must fix (bad config, bad
# agent digest): retrying cannot help, so that fails the Job without spending budget.
USAGE_ERROR_EXIT_CODE = 2
# An Indexed Job's pods are named <job>-<index>-<random>, and <job>-<index> is their
# hostname (a 63-character DNS label): 52 leaves room for the index, as CronJobs do.
MAX_CHILD_NAME = 52
UID_CHARS = 5  # of the search's uid in its children's names: 16^5 = a million names


@dataclass(frozen=True)
class SearchRef:
    """What the builders need to know about the owning search."""

    name: str
    namespace: str
    uid: str
    generation: int


def child_name(search: str, uid: str, generation: int) -> str:
    """``<search>-<uid>-g<generation>``, shortened with a hash when too long to stay unique.

    Two searches of the same name get the same name here only when their uids start
    alike (one in a million); the operator then sees the Job is not its own and waits.
    """
    fragment = "".join(ch for ch in uid.lower() if ch in "0123456789abcdef")[:UID_CHARS]
    suffix = f"-{fragment or '0'}-g{generation}"
    name = search + suffix
    if len(name) <= MAX_CHILD_NAME:
        return name
    digest = hashlib.sha256(search.encode()).hexdigest()[:8]
    keep = MAX_CHILD_NAME - len(suffix) - len(digest) - 1
    return f"{search[:keep].rstrip('-')}-{digest}{suffix}"


def labels(ref: SearchRef) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "transfersearch",
        "app.kubernetes.io/component": "trainer",
        "app.kubernetes.io/managed-by": "transfersearch-operator",
        SEARCH_LABEL: ref.name,
        GENERATION_LABEL: str(ref.generation),
    }


def output_uri(ref: SearchRef, spec: TransferSearchSpec) -> str:
    """Where the trials put agents, checkpoints and results; without S3, a pod-local folder.

    The uid keeps a search created again under an old one's name from resuming the
    old one's checkpoints (and taking its finished results for its own).
    """
    where = f"runs/{ref.namespace}/{ref.name}/{ref.uid}/g{ref.generation}"
    if spec.s3 is None:
        return f"{CACHE_DIR}/{where}"
    prefix = spec.s3.prefix.strip("/")
    return f"s3://{spec.s3.bucket}/{prefix + '/' if prefix else ''}{where}"


def job_config(ref: SearchRef, spec: TransferSearchSpec) -> JobConfig:
    return JobConfig(
        search=ref.name,
        namespace=ref.namespace,
        uid=ref.uid,
        spec=spec,
        output=output_uri(ref, spec),
    )


def config_map(ref: SearchRef, spec: TransferSearchSpec) -> dict[str, Any]:
    """The JobConfig as JSON: the spec and where to write, never a credential."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": child_name(ref.name, ref.uid, ref.generation),
            "namespace": ref.namespace,
            "labels": labels(ref),
        },
        "data": {CONFIG_KEY: job_config(ref, spec).to_json()},
    }


def job(ref: SearchRef, spec: TransferSearchSpec, image: str) -> dict[str, Any]:
    """One Indexed Job: a completion index per trial (seed), retries = failure budget."""
    name = child_name(ref.name, ref.uid, ref.generation)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ref.namespace, "labels": labels(ref)},
        "spec": {
            "completionMode": "Indexed",
            "completions": spec.training.seeds,
            "parallelism": spec.training.parallelism,
            "backoffLimit": spec.failure_budget,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [USAGE_ERROR_EXIT_CODE],
                        },
                    },
                    # Preemption and node drains are not the trainer's fault.
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {
                "metadata": {"labels": labels(ref)},
                "spec": pod_spec(spec, image, config_map_name=name),
            },
        },
    }


def pod_spec(spec: TransferSearchSpec, image: str, config_map_name: str) -> dict[str, Any]:
    res = spec.resources
    requests: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, str] = {"memory": res.memory}
    if res.gpu:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(res.gpu)
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # trainers never talk to the API server
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNTIME_UID,
            "runAsGroup": RUNTIME_UID,
            "fsGroup": RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": CONTAINER,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": ["transfersearch", "train", "--config", CONFIG_PATH],
                "env": env(spec),
                "resources": {"requests": requests, "limits": limits},
                "securityContext": {
                    "runAsNonRoot": True,
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "ports": [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}],
                "terminationMessagePath": TERMINATION_LOG,
                # A trainer that dies before writing its summary still leaves its last
                # log lines in the status; the operator treats them as an opaque reason.
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True},
                    {"name": "tmp", "mountPath": "/tmp"},
                    {"name": "cache", "mountPath": CACHE_DIR},
                ],
            }
        ],
        "volumes": [
            {
                "name": CONFIG_VOLUME,
                "configMap": {
                    "name": config_map_name,
                    "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}],
                },
            },
            {"name": "tmp", "emptyDir": {}},
            {"name": "cache", "emptyDir": {}},
        ],
    }
    if res.node_selector:
        pod["nodeSelector"] = dict(res.node_selector)
    tolerations = [t.model_dump(by_alias=True, exclude_none=True) for t in res.tolerations]
    if res.gpu and not any(t.get("key") == "nvidia.com/gpu" for t in tolerations):
        # GPU nodes are commonly tainted nvidia.com/gpu:NoSchedule.
        tolerations.append({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod["tolerations"] = tolerations
    if res.priority_class_name:
        pod["priorityClassName"] = res.priority_class_name
    return pod


def env(spec: TransferSearchSpec) -> list[dict[str, Any]]:
    """Writable places for a read-only root, thread counts, S3 settings; secrets by reference.

    JOB_COMPLETION_INDEX (the trial number) is injected by the Job controller
    into every pod of an Indexed Job. Without OMP_NUM_THREADS, torch and numpy start
    one thread per core of the node, not of the pod's CPU request: several trainers
    on one node then fight over the cores (measured here: two trainers with two
    threads each on two cores train 8x slower than with one thread each).
    """
    threads = str(cpu_threads(spec.resources.cpu))
    out: list[dict[str, Any]] = [
        {"name": "OMP_NUM_THREADS", "value": threads},
        {"name": "MKL_NUM_THREADS", "value": threads},
        {"name": "HOME", "value": "/tmp"},
        {"name": "TRANSFERSEARCH_CACHE", "value": CACHE_DIR},
        {"name": "MPLCONFIGDIR", "value": "/tmp/matplotlib"},
        {"name": "PYTHONDONTWRITEBYTECODE", "value": "1"},
    ]
    if spec.s3 is None:
        return out
    if spec.s3.endpoint:
        out.append({"name": "TRANSFERSEARCH_S3_ENDPOINT", "value": spec.s3.endpoint})
    if spec.s3.region:
        out.append({"name": "AWS_DEFAULT_REGION", "value": spec.s3.region})
    if spec.s3.credentials_secret:
        for key, optional in (
            ("AWS_ACCESS_KEY_ID", False),
            ("AWS_SECRET_ACCESS_KEY", False),
            ("AWS_SESSION_TOKEN", True),
        ):
            ref = {"name": spec.s3.credentials_secret, "key": key, "optional": optional}
            out.append({"name": key, "valueFrom": {"secretKeyRef": ref}})
    return out


def source_description(spec: TransferSearchSpec) -> str:
    """The printer column's words for where the agent comes from."""
    src = spec.source
    if spec.transfer.mode == "scratch":
        return "scratch"
    if src.agent == "auto":
        return f"auto ({len(src.candidates)} candidates)"
    if src.agent:
        return src.agent
    tasks = src.pretrain_tasks(spec.target.task)
    if len(tasks) == 1:
        return f"pretrain on {tasks[0]}"
    return f"pretrain on {src.label(spec.target.task)} ({len(tasks)} tasks)"
