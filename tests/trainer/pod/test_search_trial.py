"""`transfersearch train --config` under protocol search (the product), as a subprocess against
a real S3 API (moto over HTTP): the trial pretrains a multi-source agent, runs exactly one search
of spec.evaluation.budget distinct target evaluations and reports it; the same config gives the
same search; the new fields' mistakes are one-line errors naming the field.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.pod.test_trainer import (
    HP,
    SECRET,
    client,
    read_json,
    summary_of,
    train,
    trainer_env,
)
from transfersearch_trainer.api.jobconfig import JobConfig, TrialSummary

BUDGET = 16
# no learning curve while pretraining: the search, not the pretraining, is under test here
SEARCH_HP = {**HP, "eval_interval": 0}


def search_job(output: str, tmp: Path, check: bool = True, **spec: Any) -> Path:
    """A small job config under protocol search; `spec` replaces parts of the default."""
    config = {
        "search": "tiny-search",
        "namespace": "team-a",
        "uid": "5e4c2a1b",
        "output": output,
        "terminationLog": str(tmp / "termination-log"),
        "metricsPort": None,
        "hyperparameters": SEARCH_HP,
        "spec": {
            "benchmark": {"space": "micro"},
            "source": {"tasks": ["class_scene", "normal"], "pretrainSteps": 10},
            "target": {"task": "jigsaw"},
            "transfer": {"mode": "online"},
            "training": {"seeds": 2, "seed": 5, "checkpointInterval": 20},
            "evaluation": {"budget": BUDGET, "parallel": 2},
            **spec,
        },
    }
    if check:
        JobConfig.model_validate(config)
    path = tmp / "job.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def searched(
    s3_server: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Trial 0: pretrains the class_scene+normal agent, pushes it, searches jigsaw once."""
    bucket = f"search-{uuid.uuid4().hex[:8]}"
    client(s3_server).create_bucket(Bucket=bucket)
    tmp = tmp_path_factory.mktemp("search")
    config = search_job(
        f"s3://{bucket}/searches/team-a/tiny-search",
        tmp,
        benchmark={"space": "micro", "data": str(data_dir)},
        s3={"bucket": bucket, "prefix": "store"},
    )
    env = trainer_env(s3_server, tmp)
    res = train(config, env)
    assert res.returncode == 0, res.stderr
    return {
        "bucket": bucket,
        "config": config,
        "env": env,
        "res": res,
        "summary": summary_of(config),
        "results": read_json(
            s3_server, bucket, "searches/team-a/tiny-search/trials/0/results.json"
        ),
    }


def test_a_trial_is_one_search_within_the_budget(searched: dict[str, Any]) -> None:
    summary: TrialSummary = searched["summary"]
    results = searched["results"]
    bucket = searched["bucket"]
    assert (summary.status, summary.protocol, summary.trial, summary.seed) == (
        "Succeeded",
        "search",
        0,
        5,
    )
    # the budget is the only target cost: exactly BUDGET distinct architectures
    archs = [step["arch"] for step in results["trajectory"]]
    assert summary.evaluations == summary.budget == summary.target_evaluations == BUDGET
    assert len(set(archs)) == results["evaluations"] == BUDGET
    assert summary.best_metric == max(step["metric"] for step in results["trajectory"])
    assert summary.best_arch == results["best_arch"]
    assert summary.rank is not None
    assert summary.rank >= 1
    assert summary.hit == (summary.rank == 1)
    assert (results["mode"], results["budget"], results["parallel"], results["seed"]) == (
        "online",
        BUDGET,
        2,
        5,
    )
    # the agent that searched: the multi-source agent this pod pretrained and pushed
    agent = results["agent"]
    assert agent["pretrained_here"] is True
    assert agent["tasks"] == ["class_scene", "normal"]
    assert summary.agent_uri == agent["uri"]
    assert summary.agent_uri is not None
    assert summary.agent_uri.startswith(f"s3://{bucket}/store/agents/micro/class_scene_and_normal/")
    assert summary.agent_digest == agent["digest"]
    # device seconds: the search and the pretraining done here
    assert results["pretraining"]["device_seconds"] > 0
    assert summary.device_seconds == pytest.approx(
        results["device_seconds"] + results["pretraining"]["device_seconds"]
    )
    assert summary.results_uri == (
        f"s3://{bucket}/searches/team-a/tiny-search/trials/0/results.json"
    )
    written = searched["res"].stderr + summary.to_message() + json.dumps(results)
    assert SECRET not in written


def test_same_agent_and_seed_same_search_and_other_trials_reuse_the_source(
    searched: dict[str, Any], s3_server: str, data_dir: Path, tmp_path: Path
) -> None:
    bucket = searched["bucket"]
    # the same search elsewhere, with the agent trial 0 pushed: the same trajectory
    agent = searched["results"]["agent"]
    again = search_job(
        f"s3://{bucket}/searches/team-a/again",
        tmp_path,
        benchmark={"space": "micro", "data": str(data_dir)},
        source={"agent": agent["uri"], "digest": agent["digest"]},
        s3={"bucket": bucket, "prefix": "store"},
    )
    res = train(again, searched["env"])
    assert res.returncode == 0, res.stderr
    results = read_json(s3_server, bucket, "searches/team-a/again/trials/0/results.json")
    assert results["trajectory"] == searched["results"]["trajectory"]
    assert results["agent"]["pretrained_here"] is False
    summary = summary_of(again)
    assert (summary.best_arch, summary.best_metric, summary.rank) == (
        searched["summary"].best_arch,
        searched["summary"].best_metric,
        searched["summary"].rank,
    )
    # trial 1 of the first search: the source it pushed, its own seed, no pretraining paid
    env = dict(searched["env"], JOB_COMPLETION_INDEX="1")
    log = tmp_path / "t1"
    res = train(searched["config"], env, "--termination-log", str(log))
    assert res.returncode == 0, res.stderr
    assert "reusing the class_scene_and_normal source agent" in res.stderr
    second = TrialSummary.model_validate_json(log.read_text())
    assert (second.trial, second.seed, second.evaluations) == (1, 6, BUDGET)
    assert second.agent_uri == searched["summary"].agent_uri
    results = read_json(s3_server, bucket, "searches/team-a/tiny-search/trials/1/results.json")
    assert results["agent"]["pretrained_here"] is False
    assert results["pretraining"]["device_seconds"] == 0
    # a finished trial is not searched again
    res = train(searched["config"], searched["env"], "--termination-log", str(tmp_path / "t0"))
    assert "trial 0 is already complete" in res.stderr
    assert (tmp_path / "t0").read_text() == searched["summary"].to_message()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"transfer": {"mode": "finetune"}},
            "transfer.mode: finetune and freeze-encoder train on the target outside the search "
            "budget; use transfer.protocol: paper",
        ),
        ({"evaluation": {"budget": 4, "parallel": 5}}, "evaluation.parallel cannot exceed"),
        ({"training": {"targetEvaluations": 10}}, "training.targetEvaluations: "),
        ({"source": {"tasks": ["jigsaw", "normal"]}}, "source.task: pretraining on the target"),
    ],
)
def test_mistakes_in_the_new_fields_are_one_line_naming_the_field(
    spec: dict[str, Any], message: str, data_dir: Path, tmp_path: Path
) -> None:
    config = search_job(str(tmp_path / "out"), tmp_path, check=False, **spec)
    res = train(
        config,
        trainer_env("http://127.0.0.1:9", tmp_path),
        "--termination-log",
        str(tmp_path / "termination-log"),
    )
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, res.stderr
    assert message in errors[0]
    assert "Traceback" not in res.stderr
    summary = summary_of(config)
    assert (summary.status, summary.retryable) == ("Failed", False)
