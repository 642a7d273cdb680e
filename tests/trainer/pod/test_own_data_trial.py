"""`transfersearch train --config` on a dataset target, as a subprocess against a real S3 API
(moto over HTTP): the digits pilot in S3, the zoo's all-task agent, every evaluation a real
(tiny) training; the summary has no rank, the trainings are cached beside the agent store,
and a trial run again trains nothing it finished.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.pod.test_trainer import client, read_json, summary_of, train, trainer_env
from transfersearch_trainer.api.jobconfig import JobConfig, TrialSummary
from transfersearch_trainer.evaluation.digits import export_digits

BUDGET = 3


def own_data_job(tmp: Path, bucket: str, data_dir: Path, **spec: Any) -> Path:
    config = {
        "search": "digits-pilot",
        "namespace": "team-a",
        "uid": "0d1a7e57",
        "output": f"s3://{bucket}/store/runs/team-a/digits-pilot/0d1a7e57/g1",
        "terminationLog": str(tmp / "termination-log"),
        "metricsPort": None,
        "spec": {
            "benchmark": {"space": "micro", "data": str(data_dir)},
            "source": {"agent": "zoo"},
            "target": {
                "dataset": {"uri": f"s3://{bucket}/datasets/digits.npz"},
                "training": {"epochs": 1, "width": 4, "batchSize": 64},
            },
            "transfer": {"protocol": "search", "mode": "online"},
            "training": {"seeds": 2},
            "evaluation": {"budget": BUDGET},
            "s3": {"bucket": bucket, "prefix": "store"},
            "resources": {"cpu": "1"},  # one torch thread: two spin on a busy 2-core machine
            **spec,
        },
    }
    JobConfig.model_validate(config)
    path = tmp / "job.json"
    path.write_text(json.dumps(config))
    return path


def cache_keys(endpoint: str, bucket: str) -> list[str]:
    listed = client(endpoint).list_objects_v2(Bucket=bucket, Prefix="store/cache/evaluations/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture(scope="module")
def searched(
    s3_server: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    bucket = f"own-{uuid.uuid4().hex[:8]}"
    s3 = client(s3_server)
    s3.create_bucket(Bucket=bucket)
    tmp = tmp_path_factory.mktemp("own-data")
    digits = export_digits(tmp / "digits.npz")
    s3.upload_file(str(digits), bucket, "datasets/digits.npz")
    config = own_data_job(tmp, bucket, data_dir)
    env = trainer_env(s3_server, tmp)
    res = train(config, env)
    assert res.returncode == 0, res.stderr[-3000:]
    prefix = "store/runs/team-a/digits-pilot/0d1a7e57/g1/trials/0"
    return {
        "bucket": bucket,
        "config": config,
        "env": env,
        "tmp": tmp,
        "summary": summary_of(config),
        "results": read_json(s3_server, bucket, f"{prefix}/results.json"),
        "cache": cache_keys(s3_server, bucket),
    }


def test_a_trial_searches_the_dataset_within_the_budget(searched: dict[str, Any]) -> None:
    summary: TrialSummary = searched["summary"]
    results = searched["results"]
    assert (summary.status, summary.protocol, summary.trial) == ("Succeeded", "search", 0)
    assert summary.evaluations == summary.budget == BUDGET
    assert (summary.rank, summary.regret, summary.hit) == (None, None, None)
    assert summary.best_metric is not None
    assert 0 < summary.best_metric <= 1  # validation accuracy
    assert summary.best_metric == max(s["metric"] for s in results["trajectory"])
    assert summary.gpu_seconds == 0  # on CPU
    # the device seconds include the trainings: at least the seconds each one took
    assert summary.device_seconds >= sum(s["seconds"] for s in results["trajectory"]) > 0
    assert results["trained"] == BUDGET
    assert results["dataset"]["name"] == "digits"
    assert results["agent"]["uri"] == "zoo"
    assert results["task"] == "digits"


def test_the_trainings_are_cached_beside_the_store(searched: dict[str, Any]) -> None:
    assert len(searched["cache"]) == BUDGET
    assert all(k.endswith(".json") for k in searched["cache"])


def test_a_trial_run_again_trains_nothing(s3_server: str, searched: dict[str, Any]) -> None:
    """A restarted pod whose search did not finish: it finds its trainings in the cache."""
    bucket = searched["bucket"]
    prefix = "store/runs/team-a/digits-pilot/0d1a7e57/g1/trials/0"
    client(s3_server).delete_object(Bucket=bucket, Key=f"{prefix}/summary.json")
    res = train(searched["config"], searched["env"])
    assert res.returncode == 0, res.stderr[-3000:]
    again = read_json(s3_server, bucket, f"{prefix}/results.json")
    assert again["trained"] == 0
    assert again["cached"] == BUDGET
    assert again["best_metric"] == searched["results"]["best_metric"]
    assert cache_keys(s3_server, bucket) == searched["cache"]


def test_a_missing_dataset_is_one_line_naming_it(
    s3_server: str, data_dir: Path, tmp_path: Path
) -> None:
    bucket = f"own-{uuid.uuid4().hex[:8]}"
    client(s3_server).create_bucket(Bucket=bucket)
    config = own_data_job(tmp_path, bucket, data_dir)
    res = train(config, trainer_env(s3_server, tmp_path))
    assert res.returncode == 2, res.stderr[-3000:]
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr[-3000:]
    assert f"s3://{bucket}/datasets/digits.npz" in errors[0]
    assert "Traceback" not in res.stderr
    summary = summary_of(config)
    assert summary.status == "Failed"
    assert summary.retryable is False
