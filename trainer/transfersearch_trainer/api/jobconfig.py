"""What passes between the operator and a trainer pod (the rest of the light contract).

The operator writes a `JobConfig` as JSON into a ConfigMap mounted in every
trial pod; the pod learns its trial number from ``JOB_COMPLETION_INDEX`` (Indexed
Job). When a trial ends, the trainer writes a `TrialSummary` as small JSON to
its termination-message file, which the kubelet copies into the pod status where
the operator reads it; details go to S3.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

from pydantic import AfterValidator, Field, ValidationError

from transfersearch_trainer.api.base import _Model
from transfersearch_trainer.api.errors import TransferSearchError, redact
from transfersearch_trainer.api.fields import UrlOrPath
from transfersearch_trainer.api.safeyaml import read_input
from transfersearch_trainer.api.spec import TransferSearchSpec, format_validation_error

TERMINATION_LOG = "/dev/termination-log"
MAX_TERMINATION_BYTES = 4096  # the kubelet truncates termination messages beyond this


class JobConfig(_Model):
    search: str = Field(description="Name of the TransferSearch.")
    namespace: str = "default"
    uid: str | None = Field(None, description="The TransferSearch's uid (labels, S3 layout).")
    spec: TransferSearchSpec
    output: UrlOrPath = Field(
        description="Where results and agents go: s3://bucket/prefix/... or a path."
    )
    termination_log: str = TERMINATION_LOG
    metrics_port: int | None = Field(9090, ge=1, le=65535)
    agent_store: UrlOrPath | None = Field(
        None,
        description="Agent store the trial's agent is pushed to (s3://bucket/prefix or a path). "
        "Default: s3://<spec.s3.bucket>/<spec.s3.prefix> when spec.s3 is set, else <output>/store.",
    )
    hyperparameters: dict[str, int | float] = Field(
        default_factory=dict,
        description="Overrides of the learner's hyperparameters by name (see "
        "transfersearch_trainer.agent.learner.Hyperparameters), e.g. a small network for tests.",
    )

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


def _not_json(constant: str) -> NoReturn:
    raise ValueError(f"{constant} is not a JSON number")


def load_job_config(path: str | Path) -> JobConfig:
    p = Path(path)
    text = read_input(p, "job config")
    try:
        data = json.loads(text, parse_constant=_not_json)
    except ValueError as err:
        raise TransferSearchError(f"{p}: the job config is not valid JSON ({err})") from None
    except RecursionError:
        raise TransferSearchError(f"{p}: the job config is nested too deeply") from None
    try:
        return JobConfig.model_validate(data)
    except ValidationError as err:
        raise TransferSearchError(format_validation_error(err, str(p))) from None


# Redacted on the way in: the operator copies what a pod reports into the status.
Redacted = Annotated[str, AfterValidator(redact)]


class TrialSummary(_Model):
    """One trial's result, small enough for a termination message.

    Under protocol search the trial is one search: `best_metric` is the best it found,
    `evaluations` its distinct target evaluations (of `budget`), `rank` and `hit` where
    that best stands in the benchmark's table (1 = the optimum). Under protocol paper
    `best_metric` is the mean best of the evaluation searches and `evaluations` the
    distinct target architectures queried in training (`budget`: the cap, 0 if none).
    """

    trial: int
    seed: int
    status: str = Field(description="Succeeded or Failed.")
    reason: Redacted | None = None
    protocol: str | None = Field(None, description="search or paper.")
    best_arch: str | None = None
    best_metric: float | None = Field(
        None, description="search: the best found; paper: mean best-found of the evaluation."
    )
    regret: float | None = None
    rank: int | None = Field(None, description="The best found's rank in the table (1: optimum).")
    hit: bool | None = Field(None, description="Whether the search found the optimum.")
    evaluations: int = Field(0, description="Distinct target evaluations spent.")
    budget: int = Field(0, description="The target evaluations allowed (0: no cap).")
    device_seconds: float = 0.0
    gpu_seconds: float = 0.0
    target_evaluations: int = 0
    agent_uri: Redacted | None = None
    agent_digest: str | None = None
    results_uri: Redacted | None = None
    retryable: bool | None = Field(
        None, description="On failure: whether running the trial again may succeed."
    )

    def to_message(self) -> str:
        text = self.model_dump_json(by_alias=True, exclude_none=True)
        if len(text.encode()) > MAX_TERMINATION_BYTES:
            raise TransferSearchError("trial summary exceeds the 4096-byte termination message")
        return text
