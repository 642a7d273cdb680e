"""The TransferSearch status: a typed model, the source of the CRD's status schema.

Everything in it is derived from the cluster (the search's spec, its Job, its
pods' termination messages), never accumulated: `compute.py` rebuilds it from
scratch on every observation, so an operator restart, a lost event or a
duplicate event cannot leave it wrong. Credentials never appear here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Phase = Literal["Pending", "Running", "Succeeded", "Failed"]
PHASES: tuple[str, ...] = Phase.__args__  # type: ignore[attr-defined]
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
ConditionType = Literal["Created", "Running", "Succeeded", "Failed"]
CONDITION_TYPES: tuple[str, ...] = ConditionType.__args__  # type: ignore[attr-defined]
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"
MAX_MESSAGE = 1024  # status messages are for humans; details live in events and S3


class _Status(BaseModel):
    model_config = ConfigDict(
        extra="ignore", alias_generator=to_camel, populate_by_name=True, frozen=True
    )


class Condition(_Status):
    """A Kubernetes-style condition; lastTransitionTime changes only when status does."""

    type: ConditionType = Field(description="Created, Running, Succeeded or Failed.")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(
        pattern=REASON_PATTERN, max_length=1024, description="CamelCase cause, for machines."
    )
    message: str = Field("", max_length=MAX_MESSAGE, description="For humans.")
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    observed_generation: int | None = Field(None, ge=0)


class TrialCounts(_Status):
    """Trial pods of the current generation, as the Job counts them."""

    total: int = Field(0, ge=0, description="Trials to run (training.seeds).")
    active: int = Field(0, ge=0, description="Trial pods pending or running.")
    succeeded: int = Field(0, ge=0, description="Trials that finished.")
    failed: int = Field(0, ge=0, description="Failed trial pods (each one spends failure budget).")


class TrialResult(_Status):
    """One trial, read from its pod's termination message (a TrialSummary)."""

    trial: int = Field(ge=0, description="Job completion index.")
    seed: int | None = Field(None, ge=0)
    status: Literal["Succeeded", "Failed"]
    reason: str | None = Field(None, max_length=MAX_MESSAGE)
    protocol: str | None = Field(None, max_length=16, description="search or paper.")
    best_arch: str | None = Field(None, max_length=256)
    best_metric: float | None = None
    regret: float | None = None
    rank: int | None = Field(None, ge=1, description="The best found's rank in the table.")
    hit: bool | None = Field(None, description="Whether the trial's search found the optimum.")
    evaluations: int | None = Field(None, ge=0, description="Distinct target evaluations spent.")
    budget: int | None = Field(None, ge=0, description="Target evaluations allowed (0: no cap).")
    device_seconds: float = Field(0.0, ge=0)
    gpu_seconds: float = Field(0.0, ge=0)
    target_evaluations: int | None = Field(None, ge=0)
    agent_uri: str | None = Field(None, max_length=2048)
    agent_digest: str | None = Field(None, max_length=128)
    results_uri: str | None = Field(None, max_length=2048)


class TransferSearchStatus(_Status):
    """Where the search is, what it found, and what it cost."""

    phase: Phase = Field("Pending", description="Pending, Running, Succeeded or Failed.")
    observed_generation: int | None = Field(
        None, ge=0, description="The spec generation this status describes."
    )
    job_name: str | None = Field(None, description="The Job running this generation's trials.")
    config_map_name: str | None = Field(None, description="The ConfigMap with the job config.")
    source: str | None = Field(None, description="What the agent transfers from, in words.")
    target: str | None = Field(
        None,
        max_length=64,
        description="What the search is for: the benchmark task, or the dataset's name.",
    )
    message: str | None = Field(None, max_length=MAX_MESSAGE, description="The latest news.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=len(CONDITION_TYPES),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    trials: TrialCounts = Field(default_factory=TrialCounts)
    results: list[TrialResult] = Field(
        default_factory=list,
        max_length=64,
        description="Finished trials by index.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["trial"],
        },
    )
    best_trial: int | None = Field(None, ge=0, description="The trial with the best metric.")
    best_arch: str | None = Field(None, max_length=256, description="Best architecture found.")
    best_metric: float | None = Field(None, description="Its metric on the target task.")
    best_rank: int | None = Field(
        None, ge=1, description="Its rank in the benchmark table (1 = optimum; protocol search)."
    )
    evaluations: str | None = Field(
        None,
        max_length=64,
        description="Target evaluations spent by finished trials / the search's budget "
        "(evaluation.budget x training.seeds under protocol search), e.g. 120/150.",
    )
    evaluations_done: int = Field(0, ge=0, description="Target evaluations of finished trials.")
    evaluation_budget: int | None = Field(
        None, ge=0, description="Target evaluations all trials may spend (unset: no cap)."
    )
    device_seconds: float = Field(0.0, ge=0, description="Device time of finished trials.")
    gpu_seconds: float = Field(0.0, ge=0, description="GPU time of finished trial pods.")
    agent_uri: str | None = Field(None, description="The best trial's trained agent.")
    agent_digest: str | None = Field(None, description="Its sha256 digest.")
    start_time: str | None = Field(None, json_schema_extra={"format": "date-time"})
    completion_time: str | None = Field(None, json_schema_extra={"format": "date-time"})

    def to_patch_dict(self) -> dict[str, object]:
        """camelCase JSON without nulls inside; unset top-level fields as None,
        so that a merge patch removes what an earlier status had."""
        body = self.model_dump(by_alias=True, mode="json", exclude_none=True)
        unset = {f.alias or n for n, f in type(self).model_fields.items()} - set(body)
        return body | dict.fromkeys(unset)
