"""A search on the user's own data: every evaluation trains a real network.

This is the case the research promises to help: the agent was pretrained on the
benchmark's tables (free), and on a new dataset each of its proposals costs a training.
Everything that touches the target goes through one `TrainingEvaluator` (with its
cache), and the baselines run through the same evaluator with the same budget, so a
comparison charges every method the same way. The benchmark's tables are sources
only (the prior's starting point, the transfer baselines' priors); the target has no
table, so there is no rank or regret to report, only what was found and what it cost.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transfersearch_trainer.agent.artifact import Agent, load_agent
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import pick_device
from transfersearch_trainer.agent.online import OnlineSettings, search_target
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.evaluation.arrays import ArrayDataset
from transfersearch_trainer.evaluation.cache import BlobCache
from transfersearch_trainer.evaluation.datasets import DatasetSpec, load_dataset
from transfersearch_trainer.evaluation.training import TrainingRecipe
from transfersearch_trainer.evaluation.training_evaluator import TrainingEvaluator
from transfersearch_trainer.search.baselines import run_searches
from transfersearch_trainer.search.evaluator import Ledger, Listener, metric_function
from transfersearch_trainer.search.oracle import SearchContext
from transfersearch_trainer.search.runner import build_methods
from transfersearch_trainer.store.zoo import resolve_agent
from transfersearch_trainer.workflow.search import agent_sources

SEARCH_MODES_OWN = ("online", "zero-shot", "scratch")
OWN_BASELINES = ("random", "local", "evolution", "multi-top-k", "prior-local")


def default_cache() -> str:
    """Where local runs keep their evaluations: $TRANSFERSEARCH_CACHE/evaluations or
    ~/.cache/transfersearch/evaluations (pods get an S3 prefix from the operator)."""
    root = os.environ.get("TRANSFERSEARCH_CACHE") or str(Path.home() / ".cache" / "transfersearch")
    return str(Path(root) / "evaluations")


@dataclass(frozen=True)
class OwnDataTarget:
    """The user's dataset, how each candidate is trained on it, and where results are kept."""

    dataset: DatasetSpec
    recipe: TrainingRecipe
    cache: str | None = None  # a folder or s3:// prefix; None: no cache
    seed: int = 0  # the trainings' seed (part of every cache key)
    owner: str | None = None  # who claims trainings in a shared cache (a trial's name)


@dataclass
class OwnDataEvaluator:
    """The loaded dataset, its training evaluator and the cache behind it."""

    dataset: ArrayDataset
    evaluator: TrainingEvaluator
    cache: BlobCache | None

    def describe(self) -> dict[str, Any]:
        d = self.dataset
        return {
            "dataset": {
                "name": d.name,
                "sha256": d.sha256,
                "train": int(d.y_train.size),
                "validation": int(d.y_val.size),
                "classes": d.classes,
                "shape": [d.channels, *d.resolution],
            },
            "evaluator": self.evaluator.description,
            "cache": None
            if self.cache is None
            else {"location": self.cache.location, "hits": self.cache.hits},
        }


def own_data_evaluator(
    space: str, target: OwnDataTarget, device: torch.device, parallel: int = 1
) -> OwnDataEvaluator:
    dataset = load_dataset(target.dataset)
    cache = BlobCache.open(target.cache, owner=target.owner) if target.cache else None
    evaluator = TrainingEvaluator(
        get_space(space), dataset, target.recipe, target.seed, device, cache, parallel
    )
    return OwnDataEvaluator(dataset, evaluator, cache)


def own_data_agent(
    space: str, name: str, mode: str, location: str | None, digest: str | None, seed: int
) -> Agent:
    """The searching agent: the given one (``zoo``: the all-task agent, its target being
    outside the benchmark), or an untrained one of the same shape for ``scratch``."""
    if mode not in SEARCH_MODES_OWN:
        raise TransferSearchError(f"--mode: unknown {mode!r}; use {', '.join(SEARCH_MODES_OWN)}")
    if location is None:
        if mode != "scratch":
            raise TransferSearchError(
                f"--agent: mode {mode} needs an agent (a folder, s3:// URI or zoo)"
            )
        return Agent.new(get_space(space), Hyperparameters(), seed)
    folder, checked = resolve_agent(location, space, None, digest)
    agent = load_agent(folder, space, checked)
    return Agent.new(get_space(space), agent.hp, seed) if mode == "scratch" else agent


def _trajectory(
    ev: OwnDataEvaluator, archs: list[int], metrics: list[float], ledger: Ledger
) -> Any:
    space = ev.evaluator.space
    best = np.maximum.accumulate(metrics).tolist() if metrics else []
    return [
        {"arch": space.arch_str(a), "metric": m, "best": b, "seconds": s}
        for a, m, b, s in zip(archs, metrics, best, ledger.seconds, strict=True)
    ]


def run_own_data_search(
    space: str,
    ev: OwnDataEvaluator,
    agent: Agent,
    *,
    mode: str,
    budget: int,
    seed: int,
    bench: Benchmark | None,
    parallel: int = 1,
    device: str | None = None,
    listeners: tuple[Listener, ...] = (),
) -> dict[str, Any]:
    """The agent's search on the dataset; the prior start needs the benchmark's tables."""
    _check_budget(space, budget, parallel)
    ledger = Ledger(listeners=list(listeners))
    sources = () if bench is None or mode == "scratch" else agent_sources(bench, agent, "")
    starts = (
        SearchContext.from_benchmark(bench, ev.dataset.name, sources).order[:parallel].copy()
        if bench is not None and sources
        else None
    )
    trained_before = ev.evaluator.trained
    started = time.perf_counter()
    result = search_target(
        agent.net,
        agent.hp,
        get_space(space),
        metric_function(ev.evaluator, ledger),
        budget,
        mode,
        seed,
        pick_device(device),
        parallel=parallel,
        starts=starts,
        settings=OnlineSettings(),
    )
    wall = time.perf_counter() - started  # every training included, the first one too
    agent_seconds = max(wall - ledger.device_seconds, 0.0)
    on_gpu = result.gpu_seconds > 0
    traj = result.trajectory
    return {
        "task": ev.dataset.name,
        "space": space,
        "mode": mode,
        "method": f"agent-{mode}",
        "budget": budget,
        "parallel": parallel,
        "seed": seed,
        "evaluations": len(set(traj.arch)),
        "agent": None if mode == "scratch" else {"digest": agent.digest, "task": agent.task},
        "start": "prior" if starts is not None else "random",
        "sources": list(sources),
        "best_arch": get_space(space).arch_str(result.best_index),
        "best_metric": result.best_metric,
        "regret": None,  # no table of the target: nothing to measure the result against
        "rank": None,
        "hit": None,
        "trajectory": _trajectory(ev, traj.arch, traj.metric, ledger),
        "updates": result.updates,
        "trained": ev.evaluator.trained - trained_before,
        **ledger.to_dict(),
        "agent_seconds": agent_seconds,  # the agent's own compute and learning
        "device_seconds": wall,
        "gpu_seconds": ledger.gpu_seconds + (agent_seconds if on_gpu else 0.0),
        **ev.describe(),
    }


def run_own_data_baseline(
    space: str,
    ev: OwnDataEvaluator,
    method: str,
    *,
    budget: int,
    seed: int,
    bench: Benchmark | None,
) -> dict[str, Any]:
    """One search of a baseline through the same evaluator (prior-based ones take every
    benchmark task as a source: the user's data is none of them)."""
    _check_budget(space, budget, 1)
    sources = bench.tasks if bench is not None else ()
    found = build_methods(method, sources)
    if len(found) != 1:
        raise TransferSearchError(f"method: {method!r} is {len(found)} methods; pick one")
    if bench is None:
        ctx = SearchContext(get_space(space), (), np.empty((0, get_space(space).size)))
    else:
        ctx = SearchContext.from_benchmark(bench, ev.dataset.name, sources)
    if found[0].name not in ("random", "local", "evolution") and not ctx.sources:
        raise TransferSearchError(f"method {method}: needs the benchmark's tables as sources")
    trained_before = ev.evaluator.trained
    runs = run_searches(found[0], ctx, ev.evaluator, ev.dataset.name, budget, 1, seed)
    ledger = runs.ledgers[0] if runs.ledgers else Ledger()
    archs = [int(a) for a in runs.evaluated[0]]
    metrics = list(ledger.metrics)
    best = int(np.argmax(metrics))
    return {
        "task": ev.dataset.name,
        "space": space,
        "method": found[0].name,
        "budget": budget,
        "seed": seed,
        "evaluations": len(set(archs)),
        "best_arch": get_space(space).arch_str(archs[best]),
        "best_metric": metrics[best],
        "trajectory": _trajectory(ev, archs, metrics, ledger),
        "trained": ev.evaluator.trained - trained_before,
        **ledger.to_dict(),
        "device_seconds": ledger.device_seconds,
        "gpu_seconds": ledger.gpu_seconds,
        **ev.describe(),
    }


def _check_budget(space: str, budget: int, parallel: int) -> None:
    size = get_space(space).size
    if not 1 <= budget <= size:
        raise TransferSearchError(f"--budget: must be between 1 and {size}")
    if not 1 <= parallel <= budget:
        raise TransferSearchError("--parallel: must be between 1 and the budget")
