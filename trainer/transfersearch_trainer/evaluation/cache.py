"""Evaluation cache: a finished training is never repeated (placeholder, filled in below)."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from transfersearch_trainer.search.evaluator import Evaluation


def cache_key(dataset_sha256: str, space: str, arch: str, recipe: dict[str, Any], seed: int) -> str:
    """The identity of one evaluation: same data, architecture, recipe and seed, same result."""
    blob = json.dumps(
        {"data": dataset_sha256, "space": space, "arch": arch, "recipe": recipe, "seed": seed},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class EvaluationCache(Protocol):
    def get(self, key: str) -> Evaluation | None: ...

    def put(self, key: str, evaluation: Evaluation, info: dict[str, Any]) -> None: ...
