"""`spec.target`: what the search is for, a benchmark task or the user's own dataset.

A benchmark task (`task`) is answered by the benchmark's table: research, and measuring
agents. A dataset (`dataset`, with `training`: how each candidate network is trained on
it) is the product's real case: every evaluation trains a network (see
`transfersearch_trainer.evaluation`), the agent being pretrained on the benchmark's
tables. Exactly one of `task` and `dataset`; `training` only with `dataset`. The CEL
rules on `Target` mirror `_one_target`, so the API server refuses the same manifests.

The field names of `training` are those of `evaluation.training.TrainingRecipe` in
camelCase (`learningRate` is its `lr`), and its defaults are the pilot's: a small
network trained briefly, so a first search costs minutes, not days.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import ConfigDict, Field, JsonValue, model_validator

from transfersearch_trainer.api.base import _Spec
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.fields import _NO_USERINFO_RULE, MAX_URL_LENGTH, UrlOrPath
from transfersearch_trainer.api.tasks import TaskName

DatasetFormat = Literal["npz", "imagefolder", "auto"]
MAX_NAME = 63  # a label value

ONE_TARGET = (
    "target: give exactly one of target.task (a benchmark task) or target.dataset (your own data)"
)
TRAINING_NEEDS_DATASET = (
    "target.training: how candidates are trained applies to a dataset target only; remove it "
    "or give target.dataset"
)
_TARGET_RULES: list[JsonValue] = [
    {"rule": "has(self.task) != has(self.dataset)", "message": ONE_TARGET},
    {
        "rule": "!has(self.training) || has(self.dataset)",
        "message": TRAINING_NEEDS_DATASET,
        "fieldPath": ".training",
    },
]


class DatasetTarget(_Spec):
    """The user's labelled images: an npz file or an image folder (one folder per class)."""

    uri: UrlOrPath = Field(
        min_length=1,
        max_length=MAX_URL_LENGTH,
        description="The dataset: a path or s3:// URI (read with the search's S3 credentials).",
        json_schema_extra={"x-kubernetes-validations": [_NO_USERINFO_RULE]},
    )
    format: DatasetFormat = Field(
        "auto",
        description="npz, imagefolder, or auto (*.npz is an npz; a folder, or an s3:// prefix "
        "ending in /, an image folder).",
    )
    validation_split: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Fraction of each class held out to score candidates (seeded, stratified); "
        "ignored with validationUri.",
    )
    validation_uri: UrlOrPath | None = Field(
        None,
        max_length=MAX_URL_LENGTH,
        description="A separate validation set in the same format (instead of the split).",
        json_schema_extra={"x-kubernetes-validations": [_NO_USERINFO_RULE]},
    )

    @property
    def name(self) -> str:
        """The dataset's display name and metric label: its file or folder name, suffix off."""
        last = self.uri.rstrip("/").rsplit("/", 1)[-1]
        if last.lower().endswith(".npz"):
            last = last[: -len(".npz")]
        label = re.sub(r"[^A-Za-z0-9_.-]", "_", last).strip("._-")
        return label[:MAX_NAME] or "dataset"


class TrainingRecipeSpec(_Spec):
    """How each candidate network is trained on the dataset (one evaluation = one training)."""

    epochs: int = Field(2, ge=1, le=1000, description="Training epochs per evaluation.")
    width: int = Field(
        16,
        ge=4,
        le=256,
        multiple_of=2,
        description="Base channels of the network (the benchmark's networks use 64).",
    )
    batch_size: int = Field(64, ge=2, le=4096, description="Training batch size (>= 2: BatchNorm).")
    learning_rate: float = Field(
        0.1, gt=0, le=10, description="Peak learning rate of SGD with a cosine schedule."
    )
    resolution: int | None = Field(
        None, ge=4, le=1024, description="Resize images to this square size; unset: as given."
    )
    seed: int = Field(
        0, ge=0, lt=2**31, description="Seed of the trainings (part of every cached result's key)."
    )


class Target(_Spec):
    """What the search is for: a benchmark task, or your own dataset."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _TARGET_RULES})

    task: TaskName | None = Field(
        None, description="A benchmark task: the search's evaluations are table lookups."
    )
    dataset: DatasetTarget | None = Field(
        None,
        description="Your own dataset: every evaluation trains a network on it "
        "(needs transfer.protocol: search).",
    )
    training: TrainingRecipeSpec | None = Field(
        None, description="With dataset: how each candidate is trained (default: the pilot's)."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Target:
        if (self.task is None) == (self.dataset is None):
            raise ValueError(ONE_TARGET)
        if self.training is not None and self.dataset is None:
            raise ValueError(TRAINING_NEEDS_DATASET)
        return self

    @property
    def name(self) -> str:
        """The task, or the dataset's display name: for labels, status and logs."""
        if self.task is not None:
            return self.task
        assert self.dataset is not None  # _one_target
        return self.dataset.name

    @property
    def recipe(self) -> TrainingRecipeSpec:
        """The training of a dataset target's candidates (the defaults when not given)."""
        return self.training or TrainingRecipeSpec()

    @property
    def benchmark_task(self) -> str:
        """The benchmark task, for what only a table can answer (the paper's protocol,
        regret and rank); a dataset target there is a bug the spec rules should have caught."""
        if self.task is None:
            raise TransferSearchError(
                "target.task: this needs a benchmark task, and the target is a dataset; use "
                "transfer.protocol: search for a dataset"
            )
        return self.task
