"""One search of a manifest's target with an agent in hand (protocol search).

The trial pod and `transfersearch run` hold an `Agent` (pulled, or pretrained moments
ago): this runs `workflow.search.run_agent_search` with it and names the agent in the
report by where it really lives (its store URI or folder).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.api.spec import TransferSearchSpec
from transfersearch_trainer.search.evaluator import Listener
from transfersearch_trainer.workflow.search import SearchRequest, run_agent_search
from transfersearch_trainer.workflow.workspace import Workspace

if TYPE_CHECKING:
    from transfersearch_trainer.workflow.own_data import OwnDataTarget


@dataclass(frozen=True)
class Searcher:
    """The agent that searches and where it came from (None for scratch)."""

    agent: Agent | None
    uri: str | None  # the store URI or folder it was pulled from or pushed to
    pretrained_here: bool = False

    def to_dict(self) -> dict[str, Any] | None:
        if self.agent is None:
            return None
        return {
            "uri": self.uri,
            "digest": f"sha256:{self.agent.digest}" if self.agent.digest else None,
            "task": self.agent.task,
            "tasks": list(self.agent.training.get("tasks") or []) or None,
            "steps": self.agent.steps,
            "pretrained_here": self.pretrained_here,
        }


def search_once(
    ws: Workspace,
    spec: TransferSearchSpec,
    searcher: Searcher,
    seed: int,
    mode: str | None = None,
    listeners: Sequence[Listener] = (),
) -> dict[str, Any]:
    """One search with this agent; its report, the agent named by where it lives.

    For scratch the searcher is an untrained agent of the same shape (the workspace's
    hyperparameters when there is no agent). `mode` overrides spec.transfer.mode (the
    local run's scratch reference); `listeners` are told of each evaluation (live metrics).
    """
    mode = mode or spec.transfer.mode
    agent = searcher.agent
    if agent is None or mode == "scratch":
        agent = Agent.new(ws.bench.space, agent.hp if agent is not None else ws.hp, seed)
    request = SearchRequest(
        task=spec.target.benchmark_task,
        budget=spec.evaluation.budget,
        mode=mode,
        seed=seed,
        parallel=spec.evaluation.parallel,
        device=str(ws.device),
    )
    with ws.reporter.task(f"{mode} search on {spec.target.benchmark_task}", 1) as tick:
        report = run_agent_search(ws.bench, request, agent, listeners)
        tick(1, {"best": report["best_metric"], "rank": report["rank"]})
    report["agent"] = None if mode == "scratch" else searcher.to_dict()
    return report


def own_data_target(
    spec: TransferSearchSpec, cache: str | None, owner: str | None
) -> OwnDataTarget:
    """The manifest's dataset target as the training evaluator takes it (`OwnDataTarget`)."""
    # lazy: the evaluation package loads datasets and networks, which benchmark runs skip
    from transfersearch_trainer.evaluation.datasets import DatasetSpec
    from transfersearch_trainer.evaluation.training import TrainingRecipe
    from transfersearch_trainer.workflow.own_data import OwnDataTarget

    data, recipe = spec.target.dataset, spec.target.recipe
    assert data is not None, "own_data_target needs a dataset target"
    dataset = DatasetSpec(
        uri=data.uri,
        format=data.format,
        validation_split=data.validation_split,
        validation_uri=data.validation_uri,
        seed=recipe.seed,
        name=data.name,
    )
    training = TrainingRecipe(
        epochs=recipe.epochs,
        width=recipe.width,
        batch_size=recipe.batch_size,
        lr=recipe.learning_rate,
        resolution=recipe.resolution,
    )
    return OwnDataTarget(dataset, training, cache, recipe.seed, owner)


def search_own_data(
    ws: Workspace,
    spec: TransferSearchSpec,
    searcher: Searcher,
    seed: int,
    *,
    cache: str | None,
    owner: str | None,
    listeners: Sequence[Listener] = (),
) -> dict[str, Any]:
    """One search on the manifest's dataset: every evaluation trains a network (cached in
    `cache`, claimed as `owner`); the benchmark's tables are the agent's sources only."""
    from transfersearch_trainer.workflow.own_data import own_data_evaluator, run_own_data_search

    mode = spec.transfer.mode
    agent = searcher.agent
    if agent is None or mode == "scratch":
        agent = Agent.new(ws.bench.space, agent.hp if agent is not None else ws.hp, seed)
    space = spec.benchmark.space
    target = own_data_target(spec, cache, owner)
    ev = own_data_evaluator(space, target, ws.device, spec.evaluation.parallel)
    with ws.reporter.task(f"{mode} search on {ev.dataset.name}", 1) as tick:
        report = run_own_data_search(
            space,
            ev,
            agent,
            mode=mode,
            budget=spec.evaluation.budget,
            seed=seed,
            bench=ws.bench,
            parallel=spec.evaluation.parallel,
            device=str(ws.device),
            listeners=tuple(listeners),
        )
        tick(1, {"best": report["best_metric"]})
    report["agent"] = None if mode == "scratch" else searcher.to_dict()
    report["device"] = str(ws.device)
    return report
