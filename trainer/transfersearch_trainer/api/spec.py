"""The `TransferSearch` API: one pydantic model for the manifest users apply.

This is the *light contract* between the parts: `transfersearch run` reads it
locally, the operator validates it and generates the CRD's schema from it, and
the trainer pod receives it inside its `JobConfig`. It depends on pydantic
only (never torch), so the operator can import it.

Field names are camelCase in YAML/JSON (Kubernetes convention) and snake_case
in Python; unknown fields are rejected everywhere, so a typo is an error rather
than a silently ignored setting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel

from transfersearch_trainer.api.errors import TransferSearchError
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
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]+)?)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$"
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# An agent in S3 must be addressed in the agent store's layout (see store.py), so the
# trainer can verify the manifest against the id in its key before trusting it.
S3_AGENT_PATTERN = r"^s3://[^/]+/(.+/)?agents/[a-z][a-z0-9_]*/[a-z][a-z0-9_]*/[0-9a-f]{64}/?$"
S3_AGENT_HINT = (
    "an s3:// agent must be a store URI, s3://BUCKET/PREFIX/agents/<space>/<task>/<id>, as "
    "`transfersearch agents push DIR --store s3://BUCKET/PREFIX` prints it"
)
_S3_AGENT_RULE: dict[str, JsonValue] = {
    "rule": f"!self.startsWith('s3://') || self.matches('{S3_AGENT_PATTERN}')",
    "message": S3_AGENT_HINT,
}


def _check_agent_location(value: str | None) -> str | None:
    if value and value.startswith("s3://") and not re.match(S3_AGENT_PATTERN, value):
        raise ValueError(f"{value}: {S3_AGENT_HINT}")
    return value


AgentLocation = Annotated[str, AfterValidator(_check_agent_location)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
    )


class BenchmarkRef(_Model):
    """Which tabular benchmark stands in for training networks, and where its files are."""

    name: Literal["transnas-bench-101"] = Field(
        "transnas-bench-101", description="Benchmark (only TransNAS-Bench-101 so far)."
    )
    space: Literal["micro", "macro"] = Field("micro", description="Search space.")
    data: str | None = Field(
        None,
        description="Benchmark folder or file: a path or s3:// URI. "
        "Default: the trainer's $TRANSFERSEARCH_DATA.",
    )


class SourceCandidate(_Model):
    """One pretrained agent that `agent: auto` may choose."""

    agent: AgentLocation = Field(
        max_length=1024,
        description="Agent folder: s3:// agent-store URI or path.",
        json_schema_extra={"x-kubernetes-validations": [_S3_AGENT_RULE]},
    )
    digest: str | None = Field(
        None, pattern=DIGEST_PATTERN, description="sha256:<hex> of the weights."
    )
    task: TaskName | None = Field(None, description="The task the agent was trained on.")


class Source(_Model):
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
        json_schema_extra={"x-kubernetes-validations": [_S3_AGENT_RULE]},
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


class Target(_Model):
    """What the search is for."""

    task: TaskName = Field(description="The task to search architectures for.")


class Transfer(_Model):
    """How the source agent's weights are reused on the target task."""

    mode: TransferMode = Field(
        "finetune",
        description="scratch: no source; finetune: all weights start from the source; "
        "freeze-encoder: only the Q head trains; zero-shot: the source policy as is.",
    )


class Training(_Model):
    """The agent's training on the target task, split into independent trials."""

    steps: int = Field(5000, ge=0, le=10_000_000, description="Learner steps on the target task.")
    target_evaluations: int | None = Field(
        None,
        ge=0,
        description="Cap on distinct target-task architectures queried in training "
        "(in real life each one is a network trained); unset: no cap.",
    )
    seeds: int = Field(1, ge=1, le=64, description="Independent trials (one Job index each).")
    parallelism: int = Field(1, ge=1, le=64, description="Trials run at once.")
    checkpoint_interval: int = Field(1000, ge=1, description="Learner steps between checkpoints.")
    seed: int = Field(0, ge=0, lt=2**31, description="Base seed; trial i uses seed + i.")


class Evaluation(_Model):
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


class Toleration(_Model):
    """A Kubernetes pod toleration, copied to every trial pod."""

    key: str | None = Field(None, description="Taint key; unset with Exists: every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Default: Equal.")
    value: str | None = Field(None, description="Taint value (operator Equal).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect; unset: all effects."
    )
    toleration_seconds: int | None = Field(
        None, description="How long a NoExecute taint is tolerated."
    )


class Resources(_Model):
    """What each trial pod asks the cluster for, and where it may run."""

    gpu: int = Field(0, ge=0, le=16, description="nvidia.com/gpu per trial pod.")
    cpu: Annotated[str, Field(pattern=QUANTITY_PATTERN, description="CPU request.")] = "2"
    memory: Annotated[
        str, Field(pattern=QUANTITY_PATTERN, description="Memory request and limit.")
    ] = "4Gi"
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels a trial pod requires."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints trial pods tolerate."
    )
    priority_class_name: str | None = Field(None, description="PriorityClass of the trial pods.")


class S3Settings(_Model):
    """Where agents and results are stored; credentials only by Secret name."""

    endpoint: str | None = Field(None, description="S3 endpoint URL (MinIO, Ceph...); unset: AWS.")
    bucket: str = Field(min_length=3, max_length=63, description="Bucket for agents and results.")
    prefix: str = Field("transfersearch", description="Key prefix inside the bucket.")
    region: str | None = Field(None, description="S3 region; unset: the client's default.")
    credentials_secret: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (never inline).",
    )


class Alerts(_Model):
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


class TransferSearchSpec(_Model):
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


class ObjectMeta(_Model):
    model_config = ConfigDict(extra="allow", alias_generator=to_camel, populate_by_name=True)
    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    namespace: str | None = None


class TransferSearchManifest(_Model):
    api_version: Literal["transfersearch.io/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["TransferSearch"]
    metadata: ObjectMeta
    spec: TransferSearchSpec


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line per problem: the field's path in manifest spelling, and what is wrong."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; fields are camelCase)"
        elif e["type"] == "literal_error":
            msg = f"{msg}; got {e.get('input')!r}"
        lines.append(f"{path or '(top level)'}: {msg}")
    return f"{where}: invalid TransferSearch:\n  " + "\n  ".join(lines)


def parse_manifest(data: Any, where: str = "manifest") -> TransferSearchManifest:
    try:
        return TransferSearchManifest.model_validate(data)
    except ValidationError as err:
        raise TransferSearchError(format_validation_error(err, where)) from None


def load_manifest(path: str | Path) -> TransferSearchManifest:
    """Read a manifest file (YAML or JSON) as users `kubectl apply` it."""
    p = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d is not None]
    except OSError as err:
        raise TransferSearchError(f"{p}: cannot read ({err.strerror})") from None
    except yaml.YAMLError as err:
        raise TransferSearchError(f"{p}: not valid YAML ({err})") from None
    searches = [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]
    if len(searches) != 1:
        raise TransferSearchError(
            f"{p}: expected exactly one document of kind {KIND}, found {len(searches)}"
        )
    return parse_manifest(searches[0], str(p))
