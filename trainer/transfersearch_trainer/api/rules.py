"""The cross-field rules of a TransferSearch spec, each written twice side by side.

Once in CEL for the CRD (the API server refuses the manifest at `kubectl apply`) and
once in Python for the model (`transfersearch run`, the operator, the pod), with one
message, so every path gives the same one-line answer naming the field and the fix.
tests/operator/test_operator_crd.py checks that both forms refuse the same documents.

Under protocol search the evaluation budget is all a trial spends on the target, so
everything that would touch the target outside it is refused here: training on the
target (finetune, freeze-encoder, training.targetEvaluations), the `auto` probe, and
pretraining the source on the target itself. A dataset target (the user's own data)
is searched only: its sources are benchmark tasks (`source.agent: zoo`, or pretraining
on tasks, `all-but-target` being all of them), never the dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import JsonValue

if TYPE_CHECKING:
    from transfersearch_trainer.api.spec import TransferSearchSpec


@dataclass(frozen=True)
class Rule:
    cel: str
    message: str
    field: str  # the CEL fieldPath, relative to the spec
    holds: Callable[[TransferSearchSpec], bool]

    def to_cel(self) -> dict[str, JsonValue]:
        return {"rule": self.cel, "message": self.message, "fieldPath": self.field}


def _search(s: TransferSearchSpec) -> bool:
    return s.transfer.protocol == "search"


def _pretrains_on_target(s: TransferSearchSpec) -> bool:
    task = s.target.task  # a dataset target is never a source task
    return task is not None and s.source.agent is None and task in s.source.pretrain_tasks(task)


def _own_data(s: TransferSearchSpec) -> bool:
    return s.target.dataset is not None


def _s3_dataset(s: TransferSearchSpec) -> bool:
    d = s.target.dataset
    uris = (d.uri, d.validation_uri or "") if d is not None else ()
    return any(u.startswith("s3://") for u in uris)


SPEC_RULES: tuple[Rule, ...] = (
    Rule(
        "self.training.parallelism <= self.training.seeds",
        "training.parallelism cannot exceed training.seeds",
        ".training.parallelism",
        lambda s: s.training.parallelism <= s.training.seeds,
    ),
    Rule(
        "self.transfer.mode == 'scratch' || has(self.source.agent) || has(self.source.task) || "
        "(has(self.source.tasks) && size(self.source.tasks) > 0)",
        "transfer.mode is not scratch: give source.agent (a pretrained agent) or source.task / "
        "source.tasks (pretrain one), or use mode scratch",
        ".source",
        lambda s: (
            s.transfer.mode == "scratch" or bool(s.source.agent or s.source.task or s.source.tasks)
        ),
    ),
    Rule(
        "self.transfer.protocol == 'paper' || "
        "(self.transfer.mode != 'finetune' && self.transfer.mode != 'freeze-encoder')",
        "transfer.mode: finetune and freeze-encoder train on the target outside the search "
        "budget; use transfer.protocol: paper (or mode online)",
        ".transfer.mode",
        lambda s: not _search(s) or s.transfer.mode not in ("finetune", "freeze-encoder"),
    ),
    Rule(
        "self.transfer.protocol == 'search' || self.transfer.mode != 'online'",
        "transfer.mode: online is a search mode; use transfer.protocol: search, or a paper mode "
        "(scratch, finetune, freeze-encoder, zero-shot)",
        ".transfer.mode",
        lambda s: _search(s) or s.transfer.mode != "online",
    ),
    Rule(
        "self.evaluation.parallel <= self.evaluation.budget",
        "evaluation.parallel cannot exceed evaluation.budget",
        ".evaluation.parallel",
        lambda s: s.evaluation.parallel <= s.evaluation.budget,
    ),
    Rule(
        "self.transfer.protocol == 'paper' || !has(self.training.targetEvaluations)",
        "training.targetEvaluations: there is no training on the target under transfer.protocol "
        "search (evaluation.budget is all it spends); remove it or use transfer.protocol: paper",
        ".training.targetEvaluations",
        lambda s: not _search(s) or s.training.target_evaluations is None,
    ),
    Rule(
        "self.transfer.protocol == 'paper' || !has(self.source.agent) || "
        "self.source.agent != 'auto'",
        "source.agent: auto probes the target outside the search budget; name the agent, or use "
        "transfer.protocol: paper",
        ".source.agent",
        lambda s: not _search(s) or s.source.agent != "auto",
    ),
    Rule(
        "self.transfer.protocol == 'paper' || self.transfer.mode == 'scratch' || "
        "has(self.source.agent) || !has(self.target.task) || "
        "((!has(self.source.task) || self.source.task != self.target.task) && "
        "(!has(self.source.tasks) || !(self.target.task in self.source.tasks)))",
        "source.task: pretraining on the target task queries it outside the search budget; "
        "choose other source tasks (e.g. all-but-target), or use transfer.protocol: paper",
        ".source",
        lambda s: not _search(s) or s.transfer.mode == "scratch" or not _pretrains_on_target(s),
    ),
    Rule(
        "!has(self.target.dataset) || self.transfer.protocol == 'search'",
        "transfer.protocol: a dataset target is searched (each evaluation trains a network); "
        "use transfer.protocol: search (paper needs a benchmark task)",
        ".transfer.protocol",
        lambda s: not _own_data(s) or _search(s),
    ),
    Rule(
        "!has(self.target.dataset) || has(self.s3) || "
        "(!self.target.dataset.uri.startsWith('s3://') && "
        "(!has(self.target.dataset.validationUri) || "
        "!self.target.dataset.validationUri.startsWith('s3://')))",
        "target.dataset: an s3:// dataset is read with spec.s3's endpoint and credentials; add "
        "spec.s3 (bucket, credentialsSecret)",
        ".target.dataset",
        lambda s: not _own_data(s) or s.s3 is not None or not _s3_dataset(s),
    ),
)


def broken_rule(spec: TransferSearchSpec) -> Rule | None:
    """The first rule the spec breaks, if any."""
    return next((r for r in SPEC_RULES if not r.holds(spec)), None)
