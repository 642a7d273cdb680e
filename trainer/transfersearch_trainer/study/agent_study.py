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

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.evaluate import MethodResult, compare, compare_total
from transfersearch_trainer.workflow.source import pretrained_source
from transfersearch_trainer.workflow.target import TargetRun, train_target, training_cost
from transfersearch_trainer.workflow.workspace import Workspace


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


def run_study(ws: Workspace, settings: StudySettings, cache: Path) -> dict[str, list[MethodResult]]:
    source = pretrained_source(
        ws, settings.source_task, settings.pretrain_steps, settings.seed, cache
    )
    results: dict[str, list[MethodResult]] = {}
    for target in settings.targets:
        agents: dict[str, Agent] = {}
        for mode in settings.modes:
            run = TargetRun(
                mode=mode,
                target=target,
                steps=settings.steps,
                target_evaluations=settings.target_evaluations,
                seed=settings.seed,
                label=mode,
            )
            agents[mode] = train_target(ws, run, source)
        total = compare_total(settings.searches, len(agents))
        with ws.reporter.task(f"evaluate on {target}", total) as tick:
            results[target] = compare(
                ws.bench,
                target,
                settings.budget,
                settings.searches,
                settings.eval_seed,
                {m: (a.net, *training_cost(a, target)) for m, a in agents.items()},
                ws.device,
                source_task=settings.source_task,
                progress=lambda n: tick(n, {}),
            )
    return results
