"""`transfersearch train --config`: the trainer pod's entry point, as a subprocess, against a real
S3 API (moto over HTTP): results, the agent store, the termination message, SIGTERM/SIGKILL and
resume, an S3 outage the trainer rides out, and one it does not. These trials run the paper
protocol (training on the target has checkpoints to kill and resume); the product's protocol,
one search per trial, is tested in test_search_trial.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TINY_HP, free_port
from transfersearch_trainer.agent.artifact import load_agent
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.jobconfig import JobConfig, TrialSummary
from transfersearch_trainer.pod.main import failure_summary
from transfersearch_trainer.store.agents import AgentStore, parse_agent_uri

EXE = str(Path(sys.executable).parent / "transfersearch")
SECRET = f"s3cr3t-{uuid.uuid4().hex}"  # must never appear in logs, results or status
STEPS = 300
HP = {**TINY_HP, "eval_interval": 50}


def job(output: str, tmp: Path, source: dict[str, Any], **spec: Any) -> Path:
    """Write a small job config (what the operator mounts) and return its path."""
    config = {
        "search": "tiny",
        "namespace": "team-a",
        "uid": "0b6f3c1e",
        "output": output,
        "terminationLog": str(tmp / "termination-log"),
        "hyperparameters": HP,
        "spec": {
            "benchmark": {"space": "micro"},
            "source": source,
            "target": {"task": "jigsaw"},
            "transfer": {"protocol": "paper", "mode": "finetune"},
            "training": {
                "steps": STEPS,
                "targetEvaluations": 300,
                "checkpointInterval": 50,
                "seeds": 2,
            },
            "evaluation": {"budget": 20, "searches": 20},
            **spec,
        },
    }
    JobConfig.model_validate(config)
    path = tmp / "job.json"
    path.write_text(json.dumps(config))
    return path


def trainer_env(endpoint: str, tmp: Path, retry_seconds: float = 60) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        TRANSFERSEARCH_S3_ENDPOINT=endpoint,
        AWS_ACCESS_KEY_ID="AKIATESTING",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        TRANSFERSEARCH_CACHE=str(tmp / "cache"),
        TRANSFERSEARCH_S3_RETRY_SECONDS=str(retry_seconds),
        OMP_NUM_THREADS="1",  # same thread count in every run: bit-identical arithmetic
        JOB_COMPLETION_INDEX="0",
    )
    env.pop("TRANSFERSEARCH_DATA", None)
    return env


def train(
    config: Path, env: dict[str, str], *extra: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, "train", "--config", str(config), *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def client(endpoint: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="AKIATESTING",
        aws_secret_access_key=SECRET,
    )


def read_json(endpoint: str, bucket: str, key: str) -> Any:
    return json.loads(client(endpoint).get_object(Bucket=bucket, Key=key)["Body"].read())


def wait_for_object(endpoint: str, bucket: str, key: str, proc: subprocess.Popen[str]) -> Any:
    """Poll until the object exists (the trainer wrote it); fails if the trainer exits first."""
    s3 = client(endpoint)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            pass
        assert proc.poll() is None, f"the trainer exited ({proc.returncode}) before writing {key}"
        time.sleep(0.02)
    raise AssertionError(f"{key} never appeared")


def summary_of(config: Path) -> TrialSummary:
    path = json.loads(config.read_text())["terminationLog"]
    text = Path(path).read_text()
    assert len(text.encode()) < 4096
    return TrialSummary.model_validate_json(text)


@pytest.fixture(scope="module")
def bucket(s3_server: str, data_dir: Path) -> str:
    """A bucket with the benchmark data under data/, as a cluster would have it."""
    name = f"trainer-{uuid.uuid4().hex[:8]}"
    s3 = client(s3_server)
    s3.create_bucket(Bucket=name)
    for file in ("tnb101_micro_final_valid.csv", "SHA256SUMS"):
        s3.upload_file(str(data_dir / file), name, f"data/{file}")
    return name


@pytest.fixture(scope="module")
def reference(
    s3_server: str, bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Trial 0, uninterrupted: pretrains its source, fine-tunes, evaluates, pushes."""
    tmp = tmp_path_factory.mktemp("reference")
    config = job(
        f"s3://{bucket}/searches/team-a/tiny",
        tmp,
        {"task": "class_scene", "pretrainSteps": 40},
        benchmark={"space": "micro", "data": f"s3://{bucket}/data"},
        s3={"bucket": bucket, "prefix": "store"},
    )
    env = trainer_env(s3_server, tmp)
    res = train(config, env)
    assert res.returncode == 0, res.stderr
    return {
        "config": config,
        "env": env,
        "res": res,
        "summary": summary_of(config),
        "results": read_json(s3_server, bucket, "searches/team-a/tiny/trials/0/results.json"),
    }


def test_train_end_to_end(reference: dict[str, Any], s3_server: str, bucket: str) -> None:
    summary: TrialSummary = reference["summary"]
    results = reference["results"]
    assert summary.status == "Succeeded"
    assert (summary.trial, summary.seed) == (0, 0)
    assert summary.agent_uri is not None
    assert summary.agent_uri.startswith(f"s3://{bucket}/store/agents/micro/jigsaw/")
    assert summary.results_uri == f"s3://{bucket}/searches/team-a/tiny/trials/0/results.json"
    assert 0 < summary.target_evaluations <= 300
    assert (summary.protocol, summary.evaluations, summary.budget) == (
        "paper",
        summary.target_evaluations,
        300,
    )
    assert (summary.rank, summary.hit) == (None, None)
    assert summary.best_arch
    assert summary.best_metric is not None
    assert summary.regret is not None
    assert summary.device_seconds > 0
    # the agent in the store verifies and loads, with the digest the summary reports
    ref = parse_agent_uri(summary.agent_uri)
    assert ref is not None
    os.environ.update(reference["env"])  # this process reads the same S3 as the trainer
    agent = load_agent(AgentStore(ref.root).pull(ref), "micro", summary.agent_digest)
    assert agent.mode == "finetune"
    assert agent.parent is not None
    assert agent.parent["task"] == "class_scene"
    assert agent.training["updates"] == STEPS
    assert agent.evaluation is not None
    assert agent.evaluation["mean"] == summary.best_metric
    methods = [r["method"] for r in results["results"]]
    assert methods == ["finetune", "random", "local", "evolution", "class_scene top-20"]
    assert results["agent"]["digest"] == ref.digest
    assert results["checkpoints"]["resumed_from_updates"] is None
    assert [s["updates"] for s in results["checkpoints"]["saves"]] == [50, 100, 150, 200, 250, 300]
    pointer = read_json(
        s3_server, bucket, "searches/team-a/tiny/trials/0/checkpoints/target/latest.json"
    )
    assert pointer["checkpoint"] == "ckpt-000000300-final"
    # the source agent went to the store too, and the search remembers it for other trials
    stored = AgentStore(f"s3://{bucket}/store").list_agents("micro")
    assert {a.task for a in stored} == {"class_scene", "jigsaw"}
    # credentials are never logged or written
    res = reference["res"]
    written = res.stdout + res.stderr + summary.to_message() + json.dumps(results)
    assert SECRET not in written
    assert "AKIATESTING" not in written


def test_other_trials_reuse_the_source_and_done_trials_are_not_rerun(
    reference: dict[str, Any], tmp_path: Path
) -> None:
    env = dict(reference["env"], JOB_COMPLETION_INDEX="1")
    res = train(reference["config"], env, "--termination-log", str(tmp_path / "t1"))
    assert res.returncode == 0, res.stderr
    assert "reusing the class_scene source agent pretrained by this search" in res.stderr
    second = TrialSummary.model_validate_json((tmp_path / "t1").read_text())
    assert (second.trial, second.seed, second.status) == (1, 1, "Succeeded")
    assert second.agent_uri != reference["summary"].agent_uri
    res = train(reference["config"], reference["env"], "--termination-log", str(tmp_path / "t0"))
    assert res.returncode == 0, res.stderr
    assert "trial 0 is already complete" in res.stderr
    assert (tmp_path / "t0").read_text() == reference["summary"].to_message()


def test_sigterm_and_sigkill_then_resume_as_if_uninterrupted(
    reference: dict[str, Any], s3_server: str, bucket: str, tmp_path: Path
) -> None:
    """Same training as the reference (its source, pulled from the store), stopped twice."""
    source = read_json(
        s3_server,
        bucket,
        next(
            o["Key"]
            for o in client(s3_server).list_objects_v2(
                Bucket=bucket, Prefix="searches/team-a/tiny/sources/"
            )["Contents"]
        ),
    )
    output = f"searches/team-a/kill-{uuid.uuid4().hex[:6]}"
    config = job(
        f"s3://{bucket}/{output}",
        tmp_path,
        {"agent": source["uri"], "digest": f"sha256:{source['weights_digest']}"},
        benchmark={"space": "micro", "data": f"s3://{bucket}/data"},
        s3={"bucket": bucket, "prefix": "store"},
    )
    env = reference["env"]
    latest = f"{output}/trials/0/checkpoints/target/latest.json"
    cmd = [EXE, "train", "--config", str(config)]

    # 1. SIGTERM (a pod eviction): checkpoint at the next step, exit 75, say so
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_object(s3_server, bucket, latest, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr
    stopped = summary_of(config)
    assert stopped.status == "Failed"
    assert stopped.retryable is True
    assert stopped.reason
    assert "stopped on request" in stopped.reason
    after_term = read_json(s3_server, bucket, latest)["updates"]

    # 2. SIGKILL (no warning at all) once training has moved past that checkpoint
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while read_json(s3_server, bucket, latest)["updates"] <= after_term:
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    pointer = read_json(s3_server, bucket, latest)
    assert pointer["updates"] < STEPS, "training finished before the kill: make it longer"

    # 3. the restart resumes from the last published checkpoint and ends where the reference did
    res = train(config, env)
    assert res.returncode == 0, res.stderr
    assert f"resumed from s3://{bucket}/{output}/trials/0/checkpoints/target/" in res.stderr
    results = read_json(s3_server, bucket, f"{output}/trials/0/results.json")
    assert results["checkpoints"]["resumed_from_updates"] == pointer["updates"]
    assert results["agent"]["training"]["updates"] == STEPS
    ref = reference["results"]
    assert results["agent"]["weights_digest"] == ref["agent"]["weights_digest"]  # bit-identical
    assert results["results"] == ref["results"]
    assert results["curve"] == [
        {**p, "device_seconds": q["device_seconds"]}
        for p, q in zip(ref["curve"], results["curve"], strict=True)
    ]
    assert summary_of(config).best_metric == reference["summary"].best_metric


class FlakyS3:
    """An S3 server (moto, in this process) that a test stops and starts on the same port; its
    data lives in this process, so it survives the restart as a real store's data would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server: Any = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()
        self.server = None
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", self.port)) != 0, "the server still answers"


@pytest.fixture
def flaky_s3() -> Iterator[FlakyS3]:
    s3 = FlakyS3()
    s3.start()
    yield s3
    if s3.server is not None:
        s3.stop()


def test_trainer_rides_out_an_s3_outage(flaky_s3: FlakyS3, data_dir: Path, tmp_path: Path) -> None:
    endpoint = flaky_s3.endpoint
    name = f"outage-{uuid.uuid4().hex[:8]}"
    client(endpoint).create_bucket(Bucket=name)
    config = job(
        f"s3://{name}/run",
        tmp_path,
        {},
        benchmark={"space": "micro", "data": str(data_dir)},
        transfer={"protocol": "paper", "mode": "scratch"},
    )
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [EXE, "train", "--config", str(config)],
            env=trainer_env(endpoint, tmp_path, retry_seconds=120),
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        wait_for_object(endpoint, name, "run/trials/0/checkpoints/target/latest.json", proc)
        flaky_s3.stop()
        deadline = time.monotonic() + 120
        while "retry 3 " not in log.read_text():  # the trainer met the outage, retried twice
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        flaky_s3.start()
        proc.wait(timeout=180)
    stderr = log.read_text()
    assert proc.returncode == 0, stderr
    assert "EndpointConnectionError" in stderr, stderr
    summary = summary_of(config)
    assert summary.status == "Succeeded"
    results = read_json(endpoint, name, "run/trials/0/results.json")
    assert results["agent"]["training"]["updates"] == STEPS
    assert SECRET not in stderr


def test_s3_gone_for_good_is_a_clear_retryablefailure_summary(
    data_dir: Path, tmp_path: Path
) -> None:
    config = job(
        "s3://nowhere/run",
        tmp_path,
        {},
        benchmark={"space": "micro", "data": str(data_dir)},
        transfer={"protocol": "paper", "mode": "scratch"},
    )
    env = trainer_env(f"http://127.0.0.1:{free_port()}", tmp_path, retry_seconds=2)
    res = train(config, env)
    assert res.returncode == 75
    assert "cannot reach the S3 endpoint" in res.stderr
    assert "(retryable)" in res.stderr
    assert "Traceback" not in res.stderr
    summary = summary_of(config)
    assert summary.status == "Failed"
    assert summary.retryable is True
    assert summary.reason
    assert "cannot reach the S3 endpoint" in summary.reason
    assert SECRET not in res.stderr + summary.to_message()


def test_bad_input_is_a_permanentfailure_summary(data_dir: Path, tmp_path: Path) -> None:
    config = job(
        str(tmp_path / "out"),
        tmp_path,
        {},
        benchmark={"space": "micro", "data": str(data_dir)},
        transfer={"protocol": "paper", "mode": "scratch"},
    )
    env = dict(trainer_env("http://127.0.0.1:9", tmp_path), JOB_COMPLETION_INDEX="7")
    res = train(config, env)
    assert res.returncode == 2
    assert "JOB_COMPLETION_INDEX: '7' is not a trial of this search" in res.stderr
    assert "Traceback" not in res.stderr
    summary = summary_of(config)
    assert (summary.status, summary.retryable) == ("Failed", False)
    res = train(tmp_path / "missing.json", env, "--termination-log", str(tmp_path / "t"))
    assert res.returncode == 2
    assert (
        "cannot read the job config"
        in TrialSummary.model_validate_json((tmp_path / "t").read_text()).reason
    )  # type: ignore[operator]


def test_failure_summary_always_fits_the_termination_message() -> None:
    summary = failure_summary("x" * 100_000, trial=3, seed=10, retryable=False)
    assert len(summary.to_message().encode()) < 4096
    assert summary.reason is not None
    assert summary.reason.endswith("...")


def test_job_hyperparameters_are_checked() -> None:
    def config(hp: dict[str, Any]) -> JobConfig:
        return JobConfig.model_validate(
            {
                "search": "s",
                "output": "/x",
                "spec": {"target": {"task": "jigsaw"}, "transfer": {"mode": "scratch"}},
                "hyperparameters": hp,
            }
        )

    def job_hyperparameters(c: JobConfig) -> Hyperparameters:
        return Hyperparameters().with_overrides(c.hyperparameters, "hyperparameters.")

    assert job_hyperparameters(config({"lr": 0.01, "d_model": 16})).d_model == 16
    with pytest.raises(TransferSearchError, match="hyperparameters.learning_rate: unknown"):
        job_hyperparameters(config({"learning_rate": 0.1}))
    with pytest.raises(TransferSearchError, match="hyperparameters.d_model: must be an integer"):
        job_hyperparameters(config({"d_model": 16.5}))
