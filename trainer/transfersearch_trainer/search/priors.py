"""Transfer priors: what the source tasks' tables say to evaluate first on a target.

numpy only. Each is charged like every other method, through the target oracle:
one evaluation per distinct target architecture. All three are deterministic (the
prior decides everything; only the target's answers to the evaluations they make
steer `prior-local`), so they run once per search set and report a spread of 0.

* ``source-top-k`` (one source): evaluate that source's `budget` best architectures.
* ``multi-top-k``: evaluate the `budget` architectures with the best mean rank over
  the sources (rank 1 = a source's optimum, ties share the better rank; ties of the
  mean by canonical index). With one source it is that source's top-k.
* ``prior-local``: first-improvement local search steered by that same order: start
  at the sources' best architecture, try the current architecture's neighbours in
  the order of their mean rank, move to the first strictly better one (an already
  evaluated better one for free); at a local optimum, restart at the best
  unevaluated architecture of the order. It is the prior with a climb: when the
  prior's region is right it polishes it, when it is wrong it still follows the
  target's answers uphill instead of spending the budget down a fixed list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import SearchRuns, run_searches
from transfersearch_trainer.search.oracle import SearchContext, TargetOracle


@dataclass(frozen=True)
class SourceTopK:
    source: str
    seed_key: int = 3
    deterministic: bool = True
    uses_start: bool = False

    @property
    def name(self) -> str:
        return f"source-top-k:{self.source}"

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        oracle.evaluate_many(ctx.source_order(self.source)[: oracle.budget])


@dataclass(frozen=True)
class MultiTopK:
    name: str = "multi-top-k"
    seed_key: int = 4
    deterministic: bool = True
    uses_start: bool = False

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        ctx.require_sources(self.name)
        oracle.evaluate_many(ctx.order[: oracle.budget])


@dataclass(frozen=True)
class PriorLocal:
    name: str = "prior-local"
    seed_key: int = 5
    deterministic: bool = True
    uses_start: bool = False

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        ctx.require_sources(self.name)
        order, position = ctx.order, ctx.position
        restart = 0  # order[:restart] are all evaluated
        current = int(order[0])
        value = oracle.evaluate(current)
        while not oracle.done():
            moved = False
            nbs = ctx.space.neighbours(current)
            for nb in nbs[np.argsort(position[nbs], kind="stable")]:
                v = oracle.evaluate(int(nb))
                if v > value:
                    current, value, moved = int(nb), v, True
                    break
                if oracle.done():
                    return
            if not moved:
                while oracle.evaluated(int(order[restart])):
                    restart += 1
                current = int(order[restart])
                value = oracle.evaluate(current)


def source_top_k(
    bench: Benchmark, source_task: str, task: str, budget: int, searches: int
) -> SearchRuns:
    """Evaluate the source task's `budget` best architectures on the target (no search at all)."""
    ctx = SearchContext.from_benchmark(bench, task, (source_task,))
    runs = run_searches(SourceTopK(source_task), ctx, bench.metric(task), task, budget, searches)
    return SearchRuns(f"source-top-{budget}", task, budget, runs.evaluated, runs.trajectory)
