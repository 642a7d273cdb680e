"""Step two and three of a search: train the target agent within its budget, then evaluate it
against the baselines on the same starts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.evaluate import MethodResult, compare, compare_total
from transfersearch_trainer.agent.hooks import LearnerHooks
from transfersearch_trainer.agent.learner import Evaluator, Watch
from transfersearch_trainer.agent.transfer import (
    agent_run,
    fit,
    make_target_agent,
    target_hyperparameters,
)
from transfersearch_trainer.api.spec import TransferSearchSpec
from transfersearch_trainer.api.tasks import TASKS
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics
from transfersearch_trainer.workflow.workspace import Workspace


@dataclass(frozen=True)
class TargetRun:
    """One trial's target training: the agent made from the source by `mode`, trained for
    `steps` updates with at most `target_evaluations` distinct target architectures."""

    mode: str
    target: str
    steps: int
    target_evaluations: int | None
    seed: int
    label: str  # names the progress bar and the agent in reports

    @property
    def fingerprint(self) -> dict[str, object]:
        """What a checkpoint of this training must match to be resumed."""
        return {
            "task": self.target,
            "mode": self.mode,
            "seed": self.seed,
            "steps": self.steps,
            "target_evaluations": self.target_evaluations,
        }


def train_target(
    ws: Workspace,
    run: TargetRun,
    source: Agent | None,
    evaluator: Evaluator | None = None,
    hooks: Sequence[LearnerHooks] = (),
) -> Agent:
    """The target agent: made from `source` by `run.mode`, trained within the budget."""
    hp = target_hyperparameters(ws.hp, run.target_evaluations)
    agent, trainable = make_target_agent(source, run.mode, ws.bench.space, run.seed, hp)
    training = agent_run(
        agent, ws.bench, run.target, run.steps, ws.device, trainable, run.target_evaluations
    )
    with ws.reporter.task(f"{run.label} on {run.target}", max(training.steps, 1)) as tick:
        fit(agent, training, Watch(evaluator=evaluator, progress=tick, hooks=hooks))
    return agent


def training_cost(agent: Agent, task: str) -> tuple[int, int]:
    """Distinct and total evaluations of `task` this agent (and its source) consumed in training."""
    distinct = total = 0
    parent = agent.parent or {}
    for record in (agent.training, parent.get("training") or {}):
        if record.get("task") == task:
            distinct += int(record.get("distinct_evaluations", 0))
            total += int(record.get("total_evaluations", 0))
    choice = parent.get("choice") or {}
    if choice.get("target") == task:  # the probe that chose the source (source: auto)
        distinct += int(choice.get("probe_evaluations", 0))
        total += int(choice.get("probe_evaluations", 0))
    return distinct, total


def evaluate_agents(
    ws: Workspace,
    spec: TransferSearchSpec,
    agents: dict[str, Agent],
    source_task: str | None,
) -> list[MethodResult]:
    """The agents vs the baselines (and source top-k) at spec.evaluation; notes it in each agent."""
    target = spec.target.benchmark_task
    evaluation = spec.evaluation
    total = compare_total(evaluation.searches, len(agents))
    with ws.reporter.task(f"evaluate on {target}", total) as tick:
        results = compare(
            ws.bench,
            target,
            evaluation.budget,
            evaluation.searches,
            evaluation.seed,
            {name: (a.net, *training_cost(a, target)) for name, a in agents.items()},
            ws.device,
            # a multi-source agent's label (all_but_jigsaw) has no top-k of its own
            source_task=source_task if evaluation.source_top_k and source_task in TASKS else None,
            progress=lambda n: tick(n, {}),
        )
    for r in results:
        if r.method in agents:
            agents[r.method].evaluation = {
                "task": target,
                "budget": evaluation.budget,
                **r.to_dict(),
            }
    return results


def export_untrained(
    metrics: TrainerMetrics | None, labels: MetricLabels, agent: Agent, evaluator: Evaluator
) -> None:
    """A zero-shot agent never trains (no hooks run): export one greedy evaluation of it."""
    if metrics is None or agent.training.get("curve"):
        return
    score, regret = evaluator(agent.net)
    metrics.record_evaluation(labels, score, regret)
    metrics.set_running(labels, False)
