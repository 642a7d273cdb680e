"""The `TransferSearch` API: one pydantic model for the manifest users apply.

This is the *light contract* between the parts: `transfersearch run` reads it
locally, the operator validates it and generates the CRD's schema from it, and
the trainer pod receives it inside its `JobConfig`. It depends on pydantic
only (never torch), so the operator can import it.

Field names are camelCase in YAML/JSON (Kubernetes convention) and snake_case
in Python; unknown fields are rejected everywhere, so a typo is an error rather
than a silently ignored setting.

The model is as strict as the CRD's schema (an integer is an integer, not "100",
100.0 or true; null means unset, as the API server prunes it), so a manifest gets
the same answer from `transfersearch run`, the operator and the API server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.fields import (
    _NO_USERINFO_RULE,
    _S3_AGENT_RULE,
    DIGEST_PATTERN,
    MAX_URL_LENGTH,
    NAME_PATTERN,
    AgentLocation,
    Quantity,
    UrlOrPath,
)
from transfersearch_trainer.api.messages import describe, echo
from transfersearch_trainer.api.safeyaml import load_documents, read_input
from transfersearch_trainer.api.tasks import TASKS

API_GROUP = "transfersearch.io"
API_VERSION = "v1alpha1"
KIND = "TransferSearch"
PLURAL = "transfersearches"
SHORT_NAME = "ts"

TaskName = Literal[
    "class_object",
    "class_scene",
    "jigsaw",
    "room_layout",
    "segmentsemantic",
    "normal",
    "autoencoder",
]
assert set(TaskName.__args__) == set(TASKS)  # type: ignore[attr-defined]
TransferMode = Literal["scratch", "finetune", "freeze-encoder", "zero-shot"]
TRANSFER_MODES: tuple[str, ...] = TransferMode.__args__  # type: ignore[attr-defined]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


class _Spec(_Model):
    """A part of the manifest: validated as the API server validates it with the CRD.

    Strict, because the schema is: "100", 100.0 and true are not integers there, so
    they cannot be here, or `transfersearch run` would run what `kubectl apply` refuses.
    Null is unset, because the API server prunes nulls before defaulting.
    """

    model_config = ConfigDict(strict=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


class BenchmarkRef(_Spec):
    """Which tabular benchmark stands in for training networks, and where its files are."""

    name: Literal["transnas-bench-101"] = Field(
        "transnas-bench-101", description="Benchmark (only TransNAS-Bench-101 so far)."
    )
    space: Literal["micro", "macro"] = Field("micro", description="Search space.")
    data: UrlOrPath | None = Field(
        None,
        max_length=MAX_URL_LENGTH,
        description="Benchmark folder or file: a path or s3:// URI. "
        "Default: the trainer's $TRANSFERSEARCH_DATA.",
        json_schema_extra={"x-kubernetes-validations": [_NO_USERINFO_RULE]},
    )


class SourceCandidate(_Spec):
    """One pretrained agent that `agent: auto` may choose."""

    agent: AgentLocation = Field(
        max_length=1024,
        description="Agent folder: s3:// agent-store URI or path.",
        json_schema_extra={"x-kubernetes-validations": [_NO_USERINFO_RULE, _S3_AGENT_RULE]},
    )
    digest: str | None = Field(
        None, pattern=DIGEST_PATTERN, description="sha256:<hex> of the weights."
    )
    task: TaskName | None = Field(None, description="The task the agent was trained on.")


class Source(_Spec):
    """The pretrained agent to transfer from, or how to make one."""

    # The CRD's CEL mirror of _auto_needs_candidates, so the API server refuses it too.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.agent) || self.agent != 'auto' || "
                    "(has(self.candidates) && size(self.candidates) > 0)",
                    "message": "source.agent is 'auto': list the agents to choose from "
                    "in source.candidates",
                    "fieldPath": ".candidates",
                },
                {
                    "rule": "!has(self.candidates) || size(self.candidates) == 0 || "
                    "(has(self.agent) && self.agent == 'auto')",
                    "message": "source.candidates is only used with source.agent: auto",
                    "fieldPath": ".candidates",
                },
            ]
        }
    )

    task: TaskName | None = Field(
        None, description="Source task; an agent is pretrained on it when `agent` is not given."
    )
    agent: AgentLocation | None = Field(
        None,
        max_length=1024,
        description="Pretrained agent: s3:// agent-store URI or path of its folder, or 'auto' "
        "to pick among `candidates` by task similarity.",
        json_schema_extra={"x-kubernetes-validations": [_NO_USERINFO_RULE, _S3_AGENT_RULE]},
    )
    digest: str | None = Field(
        None, pattern=DIGEST_PATTERN, description="Expected sha256 of the weights."
    )
    candidates: list[SourceCandidate] = Field(
        default_factory=list,
        max_length=32,
        description="Agents to choose from when agent is 'auto'.",
    )
    pretrain_steps: int = Field(
        20000, ge=0, le=10_000_000, description="Learner steps when pretraining the source here."
    )

    @model_validator(mode="after")
    def _auto_needs_candidates(self) -> Source:
        if self.agent == "auto" and not self.candidates:
            raise ValueError(
                "source.agent is 'auto': list the agents to choose from in source.candidates"
            )
        if self.candidates and self.agent != "auto":
            raise ValueError("source.candidates is only used with source.agent: auto")
        return self


class Target(_Spec):
    """What the search is for."""

    task: TaskName = Field(description="The task to search architectures for.")


class Transfer(_Spec):
    """How the source agent's weights are reused on the target task."""

    mode: TransferMode = Field(
        "finetune",
        description="scratch: no source; finetune: all weights start from the source; "
        "freeze-encoder: only the Q head trains; zero-shot: the source policy as is.",
    )


class Training(_Spec):
    """The agent's training on the target task, split into independent trials."""

    steps: int = Field(5000, ge=0, le=10_000_000, description="Learner steps on the target task.")
    target_evaluations: int | None = Field(
        None,
        ge=0,
        le=10_000_000,
        description="Cap on distinct target-task architectures queried in training "
        "(in real life each one is a network trained); unset: no cap.",
    )
    seeds: int = Field(1, ge=1, le=64, description="Independent trials (one Job index each).")
    parallelism: int = Field(1, ge=1, le=64, description="Trials run at once.")
    checkpoint_interval: int = Field(
        1000, ge=1, le=10_000_000, description="Learner steps between checkpoints."
    )
    seed: int = Field(0, ge=0, lt=2**31, description="Base seed; trial i uses seed + i.")


class Evaluation(_Spec):
    """How the trained agent is scored: greedy searches at a fixed budget."""

    budget: int = Field(50, ge=2, le=3256, description="Evaluations per search.")
    searches: int = Field(
        200, ge=1, le=100_000, description="Independent searches from random starts."
    )
    seed: int = Field(
        1_000_000,
        ge=0,
        lt=2**31,
        description="Seed of the evaluation starts (disjoint from training).",
    )
    source_top_k: bool = Field(True, description="Also evaluate the source task's top-k baseline.")


class Toleration(_Spec):
    """A Kubernetes pod toleration, copied to every trial pod."""

    key: str | None = Field(None, description="Taint key; unset with Exists: every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Default: Equal.")
    value: str | None = Field(None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect; unset: all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=-(2**63), lt=2**63, description="How long a NoExecute taint is tolerated."
    )


class Resources(_Spec):
    """What each trial pod asks the cluster for, and where it may run."""

    gpu: int = Field(0, ge=0, le=16, description="nvidia.com/gpu per trial pod.")
    cpu: Quantity = Field("2", description="CPU request.")
    memory: Quantity = Field("4Gi", description="Memory request and limit.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels a trial pod requires."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints trial pods tolerate."
    )
    priority_class_name: str | None = Field(None, description="PriorityClass of the trial pods.")


class S3Settings(_Spec):
    """Where agents and results are stored; credentials only by Secret name."""

    endpoint: UrlOrPath | None = Field(
        None,
        max_length=MAX_URL_LENGTH,
        description="S3 endpoint URL (MinIO, Ceph...); unset: AWS.",
        json_schema_extra={"x-kubernetes-validations": [_NO_USERINFO_RULE]},
    )
    bucket: str = Field(min_length=3, max_length=63, description="Bucket for agents and results.")
    prefix: str = Field("transfersearch", description="Key prefix inside the bucket.")
    region: str | None = Field(None, description="S3 region; unset: the client's default.")
    credentials_secret: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (never inline).",
    )


class Alerts(_Spec):
    """Thresholds the trainer's metrics are alerted on."""

    drift_threshold: float = Field(
        0.1,
        gt=0,
        le=10,
        description="Alert when the score falls this far (normalised units) below its reference.",
    )
    gpu_seconds_budget: float | None = Field(
        None, gt=0, description="Alert past this many GPU seconds."
    )


class TransferSearchSpec(_Spec):
    """A transfer search: which agent, which target, how to train and score, and where."""

    # CEL mirrors of _source_for_mode, so the API server refuses these before the operator.
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.training.parallelism <= self.training.seeds",
                    "message": "training.parallelism cannot exceed training.seeds",
                    "fieldPath": ".training.parallelism",
                },
                {
                    "rule": "self.transfer.mode == 'scratch' || has(self.source.agent) || "
                    "has(self.source.task)",
                    "message": "transfer.mode is not scratch: give source.agent (a pretrained "
                    "agent) or source.task (pretrain one), or use mode scratch",
                    "fieldPath": ".source",
                },
            ]
        }
    )

    benchmark: BenchmarkRef = Field(default_factory=BenchmarkRef)
    source: Source = Field(default_factory=Source)
    target: Target
    transfer: Transfer = Field(default_factory=Transfer)
    training: Training = Field(default_factory=Training)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    resources: Resources = Field(default_factory=Resources)
    s3: S3Settings | None = None
    image: str | None = Field(None, description="Trainer image; default: the operator's setting.")
    failure_budget: int = Field(3, ge=0, le=100, description="Pod retries before the search fails.")
    alerts: Alerts = Field(default_factory=Alerts)

    @model_validator(mode="after")
    def _source_for_mode(self) -> TransferSearchSpec:
        if self.transfer.mode != "scratch" and not (self.source.agent or self.source.task):
            raise ValueError(
                f"transfer.mode is {self.transfer.mode}: give source.agent (a pretrained agent) "
                "or source.task (pretrain one), or use mode scratch"
            )
        if self.training.parallelism > self.training.seeds:
            raise ValueError("training.parallelism cannot exceed training.seeds")
        return self


class ObjectMeta(_Spec):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    namespace: str | None = None


class TransferSearchManifest(_Spec):
    api_version: Literal["transfersearch.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TransferSearch"]
    metadata: ObjectMeta
    spec: TransferSearchSpec


def _field_names() -> set[str]:
    names: set[str] = set()
    for model in _Model.__subclasses__() + _Spec.__subclasses__():
        names |= {f.alias or n for n, f in model.model_fields.items()}
    return names


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line naming each field at fault and what is wrong with it (see `messages`)."""
    return describe(err, where, KIND, _field_names())


def parse_manifest(data: Any, where: str = "manifest") -> TransferSearchManifest:
    try:
        # camelCase only, as the API server knows the fields: a snake_case field would
        # be pruned there, so it is unknown here.
        return TransferSearchManifest.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as err:
        raise TransferSearchError(format_validation_error(err, where)) from None


def load_manifest(path: str | Path) -> TransferSearchManifest:
    """Read a manifest file (YAML or JSON) as users `kubectl apply` it."""
    p = Path(path)
    docs = load_documents(read_input(p, "manifest"), p)
    searches = [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]
    if len(searches) != 1:
        kinds = [echo(d.get("kind")) for d in docs if isinstance(d, dict)][:5]
        seen = f" (kinds in the file: {', '.join(kinds)})" if kinds and not searches else ""
        raise TransferSearchError(
            f"{p}: expected exactly one document of kind {KIND}, found {len(searches)}{seen}"
        )
    return parse_manifest(searches[0], str(p))
