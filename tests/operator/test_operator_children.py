"""The child objects a search owns: every security, resource and scheduling field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.paths import ROOT as REPO_ROOT
from transfersearch_operator import children
from transfersearch_operator.children import SearchRef, child_name
from transfersearch_trainer.api.jobconfig import JobConfig
from transfersearch_trainer.api.spec import TransferSearchSpec, load_manifest

ROOT = REPO_ROOT
REF = SearchRef(name="segmentsemantic-gpu", namespace="research", uid="u-1", generation=3)


def example_spec(name: str) -> TransferSearchSpec:
    return load_manifest(ROOT / "examples" / name).spec


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers = job["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def test_gpu_job_spec() -> None:
    spec = example_spec("gpu.yaml")
    job = children.job(REF, spec, image="registry.example/trainer:1")
    assert job["metadata"]["name"] == child_name("segmentsemantic-gpu", "u-1", 3)
    js = job["spec"]
    assert js["completionMode"] == "Indexed"
    assert (js["completions"], js["parallelism"], js["backoffLimit"]) == (4, 2, 3)
    rules = js["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob"
    assert rules[0]["onExitCodes"] == {"containerName": "trainer", "operator": "In", "values": [2]}
    assert rules[1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["transfersearch.io/search"] == "segmentsemantic-gpu"
    assert labels["transfersearch.io/generation"] == "3"

    pod = js["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["priorityClassName"] == "research-high"

    c = container(job)
    assert c["image"] == "registry.example/trainer:1"
    assert c["command"] == ["transfersearch", "train", "--config", "/etc/transfersearch/job.json"]
    assert c["securityContext"] == {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert c["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": "1"},
    }
    assert c["terminationMessagePath"] == "/dev/termination-log"
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/etc/transfersearch"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == job["metadata"]["name"]
    for writable in ("/tmp", "/var/cache/transfersearch"):
        assert "emptyDir" in volumes[mounts[writable]["name"]]
    env = {e["name"]: e for e in c["env"]}
    assert env["HOME"]["value"] == "/tmp"
    assert "JOB_COMPLETION_INDEX" not in env  # the Job controller injects it


def test_cpu_job_has_no_gpu_and_no_gpu_toleration() -> None:
    job = children.job(REF, example_spec("scratch.yaml"), image="t")
    pod = job["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in json.dumps(job)
    assert "tolerations" not in pod
    assert "nodeSelector" not in pod
    assert container(job)["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"memory": "1Gi"},
    }


def test_gpu_toleration_is_added_when_missing() -> None:
    gpu = example_spec("gpu.yaml").model_dump(by_alias=True)
    spec = TransferSearchSpec.model_validate({**gpu, "resources": {"gpu": 2}})
    pod = children.job(REF, spec, image="t")["spec"]["template"]["spec"]
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]


def test_s3_credentials_only_by_secret_reference() -> None:
    spec = example_spec("finetune.yaml")
    job = children.job(REF, spec, image="t")
    env = {e["name"]: e for e in container(job)["env"]}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        assert env[key] == {
            "name": key,
            "valueFrom": {
                "secretKeyRef": {"name": "transfersearch-s3", "key": key, "optional": False}
            },
        }
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["TRANSFERSEARCH_S3_ENDPOINT"]["value"] == "http://minio.transfersearch.svc:9000"
    config_map = children.config_map(REF, spec)
    assert "AWS_" not in json.dumps(config_map)
    assert not any("value" in e and e["name"].startswith("AWS_") for e in env.values())


def test_config_map_holds_the_job_config() -> None:
    spec = example_spec("finetune.yaml")
    config_map = children.config_map(REF, spec)
    assert config_map["metadata"]["name"] == child_name("segmentsemantic-gpu", "u-1", 3)
    config = JobConfig.model_validate_json(config_map["data"]["job.json"])
    assert config.spec == spec
    assert (config.search, config.namespace, config.uid) == (
        "segmentsemantic-gpu",
        "research",
        "u-1",
    )
    assert config.output == "s3://transfersearch/team-nas/runs/research/segmentsemantic-gpu/u-1/g3"
    local = children.job_config(REF, example_spec("scratch.yaml"))
    assert local.output == "/var/cache/transfersearch/runs/research/segmentsemantic-gpu/u-1/g3"


def test_child_names_are_deterministic_bounded_and_distinct() -> None:
    uid = "3f2a1c9e-0000-4000-8000-000000000000"
    assert child_name("a", uid, 1) == "a-3f2a1-g1"
    # Created again under its name, a search gets another uid, and other children.
    assert child_name("a", "77ab0c9e-0000-4000-8000-000000000000", 1) == "a-77ab0-g1"
    long_a = "x" * 60 + "a"
    long_b = "x" * 60 + "b"
    for generation in (1, 12345):
        a = child_name(long_a, uid, generation)
        assert a == child_name(long_a, uid, generation)
        assert len(a) <= 52
        assert a.endswith(f"-3f2a1-g{generation}")
        assert a != child_name(long_b, uid, generation)
        assert a != child_name(long_a, "0" + uid[1:], generation)


def test_source_words_for_the_printer_column() -> None:
    words = {
        name: children.source_description(example_spec(name))
        for name in (
            "scratch.yaml",
            "auto-source.yaml",
            "finetune.yaml",
            "freeze-encoder.yaml",
            "online.yaml",
        )
    }
    assert words == {
        "scratch.yaml": "scratch",
        "auto-source.yaml": "auto (3 candidates)",
        "finetune.yaml": "s3://transfersearch/models/agents/micro/class_scene/f0b8249d8726872224cbfab7b68804ed1f19ce37a4564f73ecc4a30d6cd3efd7",
        "freeze-encoder.yaml": "pretrain on class_scene",
        "online.yaml": "pretrain on all_but_room_layout (6 tasks)",
    }


@pytest.mark.parametrize(
    ("cpu", "threads"), [("500m", 1), ("1", 1), ("2", 2), ("2500m", 2), ("1.5", 1), ("16", 16)]
)
def test_trainer_threads_follow_the_cpu_request(cpu: str, threads: int) -> None:
    """torch would otherwise start a thread per core of the node and fight its neighbours."""
    spec = TransferSearchSpec.model_validate(
        {"target": {"task": "jigsaw"}, "transfer": {"mode": "scratch"}, "resources": {"cpu": cpu}}
    )
    job = children.job(REF, spec, image="trainer:1")
    env = {e["name"]: e.get("value") for e in container(job)["env"]}
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(threads)
