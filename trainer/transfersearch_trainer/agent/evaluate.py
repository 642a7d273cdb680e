"""Evaluation at a fixed budget: the greedy agent, baselines and source top-k, on the same starts.

An agent's search runs in a `MemorySearchEnv`: it starts at the given
architecture, moves greedily (argmax Q; `eps` adds a little randomness if
wanted), revisits known architectures for free, and stops after `budget`
distinct evaluations or 4 x budget moves. If it stops early, the unspent budget
is simply lost (the result is what it found). Evaluation starts come from the
evaluation seed, which is disjoint from the training seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from transfersearch_trainer.agent.learner import select_actions
from transfersearch_trainer.agent.qnet import QNetwork
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import (
    METHODS,
    Progress,
    SearchRuns,
    default_starts,
    run_baseline,
)
from transfersearch_trainer.search.env import MemorySearchEnv
from transfersearch_trainer.search.priors import source_top_k
from transfersearch_trainer.search.stats import Summary, summarize


def agent_searches(
    net: QNetwork,
    bench: Benchmark,
    task: str,
    budget: int,
    searches: int,
    seed: int,
    device: torch.device,
    eps: float = 0.0,
    starts: npt.ArrayLike | None = None,
    progress: Progress | None = None,
) -> SearchRuns:
    start_arr = (
        default_starts(bench.space.size, searches, seed)
        if starts is None
        else np.asarray(starts, dtype=np.int64)
    )
    env = MemorySearchEnv(bench, task, searches, budget, seed=seed, budget_ref=budget)
    obs = env.reset(start_arr)
    values = bench.metric(task)
    evaluated = np.full((searches, budget), -1, dtype=np.int64)
    evaluated[:, 0] = start_arr
    count = np.ones(searches, dtype=np.int64)
    done = np.zeros(searches, dtype=bool)
    rows = np.arange(searches)
    rng = np.random.default_rng((seed, 2))
    net.eval()
    while not done.all():
        actions = select_actions(net, obs, eps, rng, device)
        res = env.step(actions)
        new = res.fresh & ~done
        evaluated[rows[new], count[new]] = env.moved_to[new]
        count += new
        finished = res.truncated & ~done
        if progress is not None and finished.any():
            progress(int(finished.sum()))
        done |= res.truncated
        obs = res.obs
    net.train()
    found = np.where(evaluated >= 0, values[np.maximum(evaluated, 0)], -np.inf)
    return SearchRuns("agent", task, budget, evaluated, np.maximum.accumulate(found, axis=1))


@dataclass(frozen=True)
class MethodResult:
    method: str
    summary: Summary
    training_evaluations: int  # distinct target-task architectures queried in training
    training_queries: int  # total target-task queries in training
    best_arch: str  # the best architecture any of its searches found
    best_value: float

    def to_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            **self.summary.to_dict(),
            "training_evaluations": self.training_evaluations,
            "training_queries": self.training_queries,
            "best_arch": self.best_arch,
            "best_value": self.best_value,
        }


def _result(
    bench: Benchmark, runs: SearchRuns, name: str, distinct: int, total: int
) -> MethodResult:
    i = int(np.argmax(runs.best))
    j = int(
        np.argmax(
            np.where(runs.evaluated[i] >= 0, bench.metric(runs.task)[runs.evaluated[i]], -np.inf)
        )
    )
    arch = bench.space.arch_str(int(runs.evaluated[i, j]))
    return MethodResult(
        name,
        summarize(runs.best, bench.stats(runs.task)),
        distinct,
        total,
        arch,
        float(runs.best[i]),
    )


def compare_total(searches: int, agents: int, baselines: tuple[str, ...] = METHODS) -> int:
    """The progress `compare` reports: one tick per finished search of every agent and
    baseline (source top-k is instant), so a bar of this length ends at 100%."""
    return searches * (agents + len(baselines))


def compare(
    bench: Benchmark,
    task: str,
    budget: int,
    searches: int,
    seed: int,
    agents: dict[str, tuple[QNetwork, int, int]],
    device: torch.device,
    source_task: str | None = None,
    baselines: tuple[str, ...] = METHODS,
    progress: Progress | None = None,
) -> list[MethodResult]:
    """Every agent (name -> (net, training evaluations, training queries)) and baseline.

    All on the same start architectures, so differences are not luck of the starts.
    """
    starts = default_starts(bench.space.size, searches, seed)
    results = []
    for name, (net, distinct, total) in agents.items():
        runs = agent_searches(
            net, bench, task, budget, searches, seed, device, starts=starts, progress=progress
        )
        results.append(_result(bench, runs, name, distinct, total))
    for method in baselines:
        runs = run_baseline(
            bench, task, method, budget, searches, seed, starts=starts, progress=progress
        )
        results.append(_result(bench, runs, method, 0, 0))
    if source_task is not None and source_task != task and source_task in bench.tasks:
        runs = source_top_k(bench, source_task, task, budget, searches)
        results.append(_result(bench, runs, f"{source_task} top-{budget}", 0, 0))
    return results


CURVE_SEED = 2_000_000  # learning-curve searches: their own starts, disjoint from training


def curve_evaluator(
    bench: Benchmark, task: str, budget: int, searches: int, device: torch.device
) -> Callable[[QNetwork], tuple[float, float]]:
    """Greedy searches used to draw learning curves (measurement only: never fed to the agent)."""
    stats = bench.stats(task)

    def evaluate(net: QNetwork) -> tuple[float, float]:
        runs = agent_searches(net, bench, task, budget, searches, CURVE_SEED, device)
        s = summarize(runs.best, stats)
        return s.mean, s.normalised_regret

    return evaluate
