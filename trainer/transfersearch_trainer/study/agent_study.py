"""One source agent against several targets: zero-shot, fine-tuned and scratch agents vs baselines.

The honest comparison on a tabular benchmark: every trained agent gets the same
cap on *target* evaluations (distinct target architectures its actors may query,
each a network trained in real life), and the table states what each consumed.
This is the measurement behind the README's agent results
(`transfersearch bench transfer`); the full matrix over task pairs builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.evaluate import MethodResult, compare
from transfersearch_trainer.agent.learner import Hyperparameters
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.workflow.local import (
    Reporter,
    pretrained_source,
    train_target,
    training_cost,
)


@dataclass(frozen=True)
class StudySettings:
    source_task: str
    targets: tuple[str, ...]
    pretrain_steps: int = 10000
    steps: int = 2000  # learner updates on the target (finetune, freeze-encoder, scratch)
    target_evaluations: int | None = 1000
    modes: tuple[str, ...] = ("zero-shot", "finetune", "scratch")
    budget: int = 50
    searches: int = 200
    seed: int = 0
    eval_seed: int = 1_000_000


def run_study(
    bench: Benchmark,
    settings: StudySettings,
    hp: Hyperparameters,
    cache: Path,
    device: torch.device,
    reporter: Reporter,
) -> dict[str, list[MethodResult]]:
    source = pretrained_source(
        bench,
        settings.source_task,
        settings.pretrain_steps,
        settings.seed,
        hp,
        cache,
        device,
        reporter,
    )
    results: dict[str, list[MethodResult]] = {}
    for target in settings.targets:
        agents: dict[str, Agent] = {}
        for mode in settings.modes:
            agent = train_target(
                source,
                mode,
                bench,
                target,
                settings.steps,
                settings.target_evaluations,
                settings.seed,
                hp,
                device,
                None,
                reporter,
                mode,
            )
            agents[mode] = agent
        with reporter.task(f"evaluate on {target}", settings.searches * (len(agents) + 3)) as tick:
            results[target] = compare(
                bench,
                target,
                settings.budget,
                settings.searches,
                settings.eval_seed,
                {m: (a.net, *training_cost(a, target)) for m, a in agents.items()},
                device,
                source_task=settings.source_task,
                progress=lambda n: tick(n, {}),
            )
    return results
