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

from pydantic import ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from transfersearch_trainer.api.base import _Model, _Spec
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.fields import (
    _NO_USERINFO_RULE,
    MAX_URL_LENGTH,
    NAME_PATTERN,
    Quantity,
    UrlOrPath,
)
from transfersearch_trainer.api.messages import describe, echo
from transfersearch_trainer.api.rules import SPEC_RULES, broken_rule
from transfersearch_trainer.api.safeyaml import load_documents, read_input
from transfersearch_trainer.api.source import Source
from transfersearch_trainer.api.target import Target

API_GROUP = "transfersearch.io"
API_VERSION = "v1alpha1"
KIND = "TransferSearch"
PLURAL = "transfersearches"
SHORT_NAME = "ts"


TransferMode = Literal["online", "zero-shot", "scratch", "finetune", "freeze-encoder"]
TRANSFER_MODES: tuple[str, ...] = TransferMode.__args__  # type: ignore[attr-defined]
Protocol = Literal["search", "paper"]
PROTOCOLS: tuple[str, ...] = Protocol.__args__  # type: ignore[attr-defined]
# What each protocol runs: the product's one honest search, or the paper's study protocol.
PROTOCOL_MODES: dict[str, tuple[str, ...]] = {
    "search": ("online", "zero-shot", "scratch"),
    "paper": ("scratch", "finetune", "freeze-encoder", "zero-shot"),
}


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


class Transfer(_Spec):
    """How the source agent is reused on the target task, and under which protocol."""

    protocol: Protocol = Field(
        "search",
        description="search (the product): one search per trial on the target, whose "
        "evaluation.budget distinct evaluations are all the target costs; paper: the paper's "
        "study protocol (train on the target with free benchmark queries, then evaluation "
        "searches).",
    )
    mode: TransferMode = Field(
        "online",
        description="Under search: online (the source agent learns during the search), "
        "zero-shot (the source policy as is), scratch (an untrained agent learning online). "
        "Under paper: scratch, finetune (all weights start from the source), freeze-encoder "
        "(only the Q head trains), zero-shot.",
    )


class Training(_Spec):
    """Independent trials (seeds); under protocol paper also the training on the target.

    `steps` and `targetEvaluations` are the paper protocol's training on the target;
    under protocol search there is none (`steps` is ignored, `targetEvaluations` refused).
    """

    steps: int = Field(
        5000,
        ge=0,
        le=10_000_000,
        description="Protocol paper: learner steps on the target task (ignored under search).",
    )
    target_evaluations: int | None = Field(
        None,
        ge=0,
        le=10_000_000,
        description="Protocol paper: cap on distinct target-task architectures queried in "
        "training (in real life each one is a network trained); unset: no cap.",
    )
    seeds: int = Field(1, ge=1, le=64, description="Independent trials (one Job index each).")
    parallelism: int = Field(1, ge=1, le=64, description="Trials run at once.")
    checkpoint_interval: int = Field(
        1000, ge=1, le=10_000_000, description="Learner steps between checkpoints."
    )
    seed: int = Field(0, ge=0, lt=2**31, description="Base seed; trial i uses seed + i.")


class Evaluation(_Spec):
    """The search's budget; under protocol paper, how the trained agent is scored."""

    budget: int = Field(
        50,
        ge=2,
        le=3256,
        description="Distinct target evaluations per search (under search: all a trial spends "
        "on the target).",
    )
    parallel: int = Field(
        1,
        ge=1,
        le=3256,
        description="Protocol search: evaluations proposed at once (at most budget).",
    )
    searches: int = Field(
        200,
        ge=1,
        le=100_000,
        description="Protocol paper: independent searches from random starts (ignored under "
        "search: one search per trial).",
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

    # The CEL form of each rule (`rules`), so the API server refuses what `_rules` refuses.
    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [r.to_cel() for r in SPEC_RULES]}
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
    def _rules(self) -> TransferSearchSpec:
        broken = broken_rule(self)
        if broken is not None:
            raise ValueError(broken.message)
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
