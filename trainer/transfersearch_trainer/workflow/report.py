"""The results a search reports, the same fields for the local run and the trainer pod."""

from __future__ import annotations

from typing import Any

import torch

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.evaluate import MethodResult
from transfersearch_trainer.api.spec import TransferSearchSpec
from transfersearch_trainer.benchmark.table import Benchmark


def search_report(
    spec: TransferSearchSpec,
    bench: Benchmark,
    source: Agent | None,
    results: list[MethodResult],
    device: torch.device,
) -> dict[str, Any]:
    """What the search did and found; callers add their own fields (agents, checkpoints)."""
    stats = bench.stats(spec.target.benchmark_task)
    return {
        "space": spec.benchmark.space,
        "source_task": source.task if source is not None else spec.source.task,
        "source_agent": None
        if source is None
        else {"task": source.task, "digest": source.digest, "steps": source.steps},
        "source_choice": None if source is None else source.choice,
        "target_task": spec.target.benchmark_task,
        "mode": spec.transfer.mode,
        "budget": spec.evaluation.budget,
        "searches": spec.evaluation.searches,
        "evaluation_seed": spec.evaluation.seed,
        "optimum": stats.optimum,
        "optimum_arch": stats.optimum_arch,
        "results": [r.to_dict() for r in results],
        "device": str(device),
    }
