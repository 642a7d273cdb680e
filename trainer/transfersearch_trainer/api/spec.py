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

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

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

from transfersearch_trainer.api.errors import TransferSearchError, redact
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
# A Kubernetes quantity (apimachinery's grammar: number, then a binary suffix, a decimal
# suffix or an exponent, never two), greater than zero: a pod asking for no CPU or
# memory is a mistake. The operator reads it with kubernetes.utils.parse_quantity,
# which parses everything this matches. Exponents have at most two digits: Kubernetes
# caps quantities at 2^63-1 anyway, and parse_quantity turns 1e999999 into a
# million-digit integer (tens of seconds of the operator's CPU).
_POSITIVE_NUMBER = r"(0*[1-9][0-9]*(\.[0-9]*)?|0*\.[0-9]*[1-9][0-9]*)"
QUANTITY_PATTERN = rf"^\+?{_POSITIVE_NUMBER}([KMGTPE]i|[numkMGTPE]|[eE][-+]?[0-9]{{1,2}})?$"
QUANTITY_HINT = (
    "not a positive Kubernetes quantity; write e.g. 500m, 2 or 1.5 (CPUs), 512Mi or 4Gi "
    "(bytes of memory)"
)
MAX_QUANTITY_LENGTH = 32
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Credentials in a URL (scheme://user:password@host) would be copied into the Job,
# its logs and the search's status; they belong in the Secret named by
# spec.s3.credentialsSecret. CEL's matches() and re.search agree on this pattern.
USERINFO_PATTERN = r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*@"
USERINFO_HINT = (
    "a URL must not hold a user name or password (user:password@); put credentials "
    "in the Secret named by spec.s3.credentialsSecret"
)
_NO_USERINFO_RULE: dict[str, JsonValue] = {
    "rule": f"!self.matches('{USERINFO_PATTERN}')",
    "message": USERINFO_HINT,
}
MAX_URL_LENGTH = 1024  # also bounds the CEL rules' cost, which the API server estimates
# Manifests and job configs are a few KB; the API server refuses objects over ~1.5 MB
# and a ConfigMap holds 1 MiB.
MAX_INPUT_BYTES = 1 << 20
_MAX_YAML_DEPTH = 64
_MAX_YAML_VALUES = 100_000  # nodes of a document once its aliases are expanded
_MAX_ECHO = 80  # characters of a bad value quoted back in an error message
_MAX_PROBLEMS = 5  # problems listed in one message; the rest are counted
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


def _echo(value: Any) -> str:
    """A bad value as the user wrote it (JSON spelling: true, "100", 100.0), cut short.

    Cut, because a value can be megabytes (an expanded YAML alias, a pasted file) and
    the message goes to a terminal, a log line and a 4 KB termination message.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return _cut(text)


def _cut(text: str) -> str:
    text = redact(text)  # first: a cut could leave a password without its "@"
    if len(text) > _MAX_ECHO:
        text = f"{text[: _MAX_ECHO - 3]}... ({len(text)} characters)"
    return text


def _check_no_userinfo(value: str) -> str:
    if re.search(USERINFO_PATTERN, value):
        raise ValueError(USERINFO_HINT)
    return value


def _check_agent_location(value: str) -> str:
    if value.startswith("s3://") and not re.match(S3_AGENT_PATTERN, value):
        raise ValueError(f"{_echo(value)}: {S3_AGENT_HINT}")
    return value


def _check_quantity(value: str) -> str:
    if not re.fullmatch(QUANTITY_PATTERN, value):
        raise ValueError(f"{_echo(value)} is {QUANTITY_HINT}")
    return value


UrlOrPath = Annotated[str, AfterValidator(_check_no_userinfo)]
AgentLocation = Annotated[UrlOrPath, AfterValidator(_check_agent_location)]
# The pattern goes to the CRD; the model checks it itself for a readable message.
Quantity = Annotated[
    str,
    Field(max_length=MAX_QUANTITY_LENGTH, json_schema_extra={"pattern": QUANTITY_PATTERN}),
    AfterValidator(_check_quantity),
]


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


# Pydantic error types whose message does not say what was given.
_ECHOED_TYPES = (
    "int_type",
    "float_type",
    "int_from_float",
    "literal_error",
    "enum",
    "string_type",
    "bool_type",
    "dict_type",
    "list_type",
    "model_type",
)


def _problem(e: Any, fields: set[str]) -> str:
    path = ".".join(_cut(str(p)) for p in e["loc"] if not str(p).startswith("function-after"))
    msg = str(e["msg"]).removeprefix("Value error, ")
    given = e.get("input")
    if e["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; fields are camelCase)"
        camel = to_camel(str(e["loc"][-1]))
        if camel != e["loc"][-1] and camel in fields:
            msg = f"unknown field; write {camel} (fields are camelCase)"
    elif e["type"] in ("int_type", "float_type") and isinstance(given, str):
        msg = f"{msg}; got the string {_echo(given)}: write the number without quotes"
    elif (
        e["type"] == "string_type"
        and isinstance(given, int | float)
        and not isinstance(given, bool)
    ):
        msg = f"{msg}; got the number {_echo(given)}: quote it"
    elif e["type"] in _ECHOED_TYPES:
        msg = f"{msg}; got {_echo(given)}"
    return f"{path or '(top level)'}: {msg}"


def _field_names() -> set[str]:
    names: set[str] = set()
    for model in _Model.__subclasses__() + _Spec.__subclasses__():
        names |= {f.alias or n for n, f in model.model_fields.items()}
    return names


def format_validation_error(err: ValidationError, where: str) -> str:
    """One line naming each field at fault and what is wrong with it.

    One line, because it ends up as an `error:` line, a log line, a termination
    message and a status condition; the values quoted back are cut short and
    URLs in them lose their credentials, because all of those are widely read.
    """
    fields = _field_names()
    errors = err.errors()
    problems = [_problem(e, fields) for e in errors[:_MAX_PROBLEMS]]
    if len(errors) > _MAX_PROBLEMS:
        problems.append(f"and {len(errors) - _MAX_PROBLEMS} more")
    head = f"{where}: invalid {KIND}"
    if len(errors) > 1:
        head += f" ({len(errors)} problems)"
    return redact(f"{head}: " + "; ".join(problems))


def parse_manifest(data: Any, where: str = "manifest") -> TransferSearchManifest:
    try:
        # camelCase only, as the API server knows the fields: a snake_case field would
        # be pruned there, so it is unknown here.
        return TransferSearchManifest.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as err:
        raise TransferSearchError(format_validation_error(err, where)) from None


class _YamlRefused(yaml.MarkedYAMLError):
    """YAML that parses but is not accepted in a manifest."""


class _ManifestLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents that expand beyond what a manifest needs.

    Aliases are allowed (kubectl allows them), but what they expand to is counted:
    a kilobyte of nested anchors expands into gigabytes (a "billion laughs" file
    exhausted memory in 41 s). PyYAML shares the aliased nodes, so the count is
    cheap, and nothing is built or validated before it passes. Nesting is capped
    while composing, because the composer recurses once per level.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > _MAX_YAML_DEPTH:
                raise _YamlRefused(
                    None,
                    None,
                    f"nested more than {_MAX_YAML_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand it past _MAX_YAML_VALUES nodes or nest it
    past _MAX_YAML_DEPTH levels, or refer to themselves (the expansion never ends)."""
    seen: dict[int, tuple[int, int]] = {}  # id -> (expanded nodes, height); (-1, -1): open

    def refuse(problem: str, node: yaml.Node) -> NoReturn:
        raise _YamlRefused(None, None, problem, node.start_mark)

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        known = seen.get(id(node))
        if known == (-1, -1):
            refuse("an alias refers to the value that contains it", node)
        if known is None:
            seen[id(node)] = (-1, -1)
            size, height = 1, 1
            children: list[yaml.Node] = []
            if isinstance(node, yaml.SequenceNode):
                children = list(node.value)
            elif isinstance(node, yaml.MappingNode):
                children = [n for pair in node.value for n in pair]
            for child in children:
                child_size, child_height = measure(child, depth + 1)
                size += child_size
                height = max(height, child_height + 1)
                if size > _MAX_YAML_VALUES:
                    refuse(
                        f"aliases expand this document to more than {_MAX_YAML_VALUES} values; "
                        "a manifest has a few hundred: write the values out",
                        node,
                    )
            known = seen[id(node)] = (size, height)
        if depth + known[1] > _MAX_YAML_DEPTH:
            refuse(f"aliases nest this document more than {_MAX_YAML_DEPTH} levels deep", node)
        return known

    measure(root, 0)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one line: where, then what."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return " ".join(str(err).split())
    mark = err.problem_mark or err.context_mark
    what = " ".join(x for x in (err.context, err.problem) if x)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    return f"{where}{what}"


def read_input(path: Path, what: str) -> str:
    """The text of a manifest or job config, refusing what is too big to be one.

    Read with a cap, because a file of unbounded size (or /dev/zero) would be read
    into memory whole before anything could say it is wrong.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_INPUT_BYTES + 1)
    except OSError as err:
        raise TransferSearchError(f"{path}: cannot read the {what} ({err.strerror})") from None
    if len(raw) > MAX_INPUT_BYTES:
        raise TransferSearchError(
            f"{path}: the {what} is larger than {MAX_INPUT_BYTES >> 20} MiB; it should be a "
            "few KB (is it the right file?)"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TransferSearchError(
            f"{path}: the {what} is not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None


def load_manifest(path: str | Path) -> TransferSearchManifest:
    """Read a manifest file (YAML or JSON) as users `kubectl apply` it."""
    p = Path(path)
    text = read_input(p, "manifest")
    try:
        docs = [d for d in yaml.load_all(text, Loader=_ManifestLoader) if d is not None]
    except _YamlRefused as err:
        raise TransferSearchError(f"{p}: {_yaml_problem(err)}") from None
    except yaml.YAMLError as err:
        raise TransferSearchError(f"{p}: not valid YAML ({_yaml_problem(err)})") from None
    searches = [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]
    if len(searches) != 1:
        kinds = [_echo(d.get("kind")) for d in docs if isinstance(d, dict)][:5]
        seen = f" (kinds in the file: {', '.join(kinds)})" if kinds and not searches else ""
        raise TransferSearchError(
            f"{p}: expected exactly one document of kind {KIND}, found {len(searches)}{seen}"
        )
    return parse_manifest(searches[0], str(p))
