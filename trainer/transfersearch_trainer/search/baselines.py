"""Classic searches the agent must beat, at the same budget of evaluations, and the runner.

All charge one evaluation per *distinct* architecture they query (a real search
would not train the same network twice), through a `TargetOracle` (see `oracle`):
no method is handed the target column. Those that have a start begin their i-th
search at ``starts[i]`` (shared with the agent's evaluation, so all methods start
from the same points), and each draws its randomness from a generator per search,
so search i does not depend on how many searches run beside it.

* ``random``: the start, then architectures drawn uniformly without replacement.
* ``local``: first-improvement hill climbing (White et al., "Local search is state
  of the art for NAS benchmarks", 2020, in its first-improvement form): visit the
  current architecture's neighbours in random order and move to the first one
  that is strictly better (an already evaluated better neighbour is moved to for
  free); at a local optimum, restart from a random unevaluated architecture.
* ``evolution``: regularised (ageing) evolution (Real et al., 2019): a population
  of ``population`` architectures (the start plus random ones), then repeatedly
  pick the best of ``sample`` random members, mutate it to a random unevaluated
  neighbour (or a random unevaluated architecture if it has none), add the child
  and drop the oldest member.

Ties are broken by evaluation order (the first-found best stays best).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import SearchSpace
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.evaluator import Evaluator, Ledger
from transfersearch_trainer.search.oracle import (
    SearchContext,
    SearchMethod,
    TargetOracle,
    random_unevaluated,
)

Progress = Callable[[int], None]
METHODS = ("random", "local", "evolution")


@dataclass(frozen=True)
class SearchRuns:
    """Outcome of N searches of one method: the evaluation order and best-so-far curves."""

    method: str
    task: str
    budget: int
    evaluated: npt.NDArray[np.int64]  # (N, budget) architectures in the order evaluated
    trajectory: npt.NDArray[np.float64]  # (N, budget) best metric after each evaluation
    # what each search's evaluations cost (None: a table lookup, free)
    ledgers: tuple[Ledger, ...] | None = None

    @property
    def best(self) -> npt.NDArray[np.float64]:
        return self.trajectory[:, -1]


def default_starts(space_size: int, searches: int, seed: int) -> npt.NDArray[np.int64]:
    """The start architectures every method uses for a given seed."""
    return np.random.default_rng((seed, 0)).integers(0, space_size, size=searches)


def check_run(space_size: int, budget: int, searches: int) -> None:
    if budget < 1 or budget > space_size:
        raise TransferSearchError(
            f"budget: must be between 1 and {space_size} evaluations, got {budget}"
        )
    if searches < 1:
        raise TransferSearchError(f"searches: must be at least 1, got {searches}")


@dataclass(frozen=True)
class RandomSearch:
    name: str = "random"
    seed_key: int = 0
    deterministic: bool = False
    uses_start: bool = True

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        oracle.evaluate(start)
        for arch in rng.permutation(ctx.space.size):
            if oracle.done():
                return
            oracle.evaluate(int(arch))


@dataclass(frozen=True)
class LocalSearch:
    name: str = "local"
    seed_key: int = 1
    deterministic: bool = False
    uses_start: bool = True

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        current, value = start, oracle.evaluate(start)
        while not oracle.done():
            moved = False
            for nb in rng.permutation(ctx.space.neighbours(current)):
                v = oracle.evaluate(int(nb))
                if v > value:
                    current, value, moved = int(nb), v, True
                    break
                if oracle.done():
                    return
            if not moved:
                current = random_unevaluated(oracle, rng)
                value = oracle.evaluate(current)


def regularised_evolution(
    space: SearchSpace,
    oracle: TargetOracle,
    rng: np.random.Generator,
    first: int,
    population: int,
    sample: int,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> None:
    """Ageing evolution from `first`; with `allowed`, restricted to those architectures
    (children and fresh draws) while any of them is left unevaluated."""
    members: deque[tuple[int, float]] = deque(maxlen=population)
    members.append((first, oracle.evaluate(first)))
    while len(members) < population and not oracle.done():
        arch = random_unevaluated(oracle, rng, allowed)
        members.append((arch, oracle.evaluate(arch)))
    while not oracle.done():
        picks = rng.choice(len(members), size=min(sample, len(members)), replace=False)
        parent = max((members[int(i)] for i in picks), key=lambda m: m[1])[0]
        fresh = [
            int(nb)
            for nb in space.neighbours(parent)
            if not oracle.evaluated(int(nb)) and (allowed is None or allowed[int(nb)])
        ]
        child = (
            fresh[int(rng.integers(len(fresh)))]
            if fresh
            else random_unevaluated(oracle, rng, allowed)
        )
        members.append((child, oracle.evaluate(child)))


def evolution_defaults(budget: int) -> tuple[int, int]:
    """(population, sample) scaled to small budgets: 12 and 3 at budget 50, 20 and 5 from 80."""
    population = min(20, max(4, budget // 4))
    return population, max(2, population // 4)


@dataclass(frozen=True)
class Evolution:
    population: int | None = None  # None: evolution_defaults(budget)
    sample: int | None = None
    name: str = "evolution"
    seed_key: int = 2
    deterministic: bool = False
    uses_start: bool = True

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        pop, samp = evolution_defaults(oracle.budget)
        regularised_evolution(
            ctx.space, oracle, rng, start, self.population or pop, self.sample or samp
        )


def run_searches(
    method: SearchMethod,
    ctx: SearchContext,
    target_values: npt.ArrayLike | Evaluator,
    task: str,
    budget: int,
    searches: int,
    seed: int = 0,
    starts: npt.ArrayLike | None = None,
    progress: Progress | None = None,
) -> SearchRuns:
    """`searches` independent searches of `method`, each with its own oracle on
    `target_values` (the only place the target enters: a benchmark column, or an
    `Evaluator` such as training on the user's data); deterministic methods run once
    and their one search is repeated, so every method reports N rows."""
    evaluator = target_values if isinstance(target_values, Evaluator) else None
    values = np.asarray(target_values if evaluator is None else [], dtype=np.float64)
    check_run(ctx.space.size, budget, searches)
    start_arr = (
        default_starts(ctx.space.size, searches, seed)
        if starts is None
        else np.asarray(starts, dtype=np.int64).reshape(-1)
    )
    if start_arr.size != searches:
        raise TransferSearchError(
            f"starts: need {searches} start architectures, got {start_arr.size}"
        )
    seeds = np.random.SeedSequence((seed, 1, method.seed_key)).spawn(searches)
    rows = 1 if method.deterministic else searches
    evaluated = np.empty((searches, budget), dtype=np.int64)
    found = np.empty((searches, budget), dtype=np.float64)
    ledgers = []
    for i in range(rows):
        oracle = (
            TargetOracle(values, budget)
            if evaluator is None
            else TargetOracle.of(evaluator, budget)
        )
        method.search(ctx, oracle, int(start_arr[i]), np.random.default_rng(seeds[i]))
        if oracle.spent != budget:
            raise RuntimeError(f"{method.name} spent {oracle.spent} of {budget} evaluations")
        evaluated[i], found[i] = oracle.order, oracle.found
        ledgers.append(oracle.ledger)
        if progress is not None:
            progress(1)
    if rows < searches:
        evaluated[rows:], found[rows:] = evaluated[0], found[0]
        ledgers += [ledgers[0]] * (searches - rows)  # the one search, repeated: paid once
        if progress is not None:
            progress(searches - rows)
    trajectory = np.maximum.accumulate(found, axis=1)
    return SearchRuns(
        method.name, task, budget, evaluated, trajectory, tuple(ledgers) if evaluator else None
    )


def run_baseline(
    bench: Benchmark,
    task: str,
    method: str,
    budget: int,
    searches: int,
    seed: int = 0,
    starts: npt.ArrayLike | None = None,
    progress: Progress | None = None,
    population: int | None = None,
    sample: int | None = None,
) -> SearchRuns:
    """Run `searches` independent searches of a classic `method` with `budget` evaluations."""
    if method not in METHODS:
        raise TransferSearchError(f"method: unknown {method!r}; use one of {', '.join(METHODS)}")
    values = bench.metric(task)
    ctx = SearchContext.from_benchmark(bench, task, ())
    searcher: SearchMethod = (
        RandomSearch()
        if method == "random"
        else LocalSearch()
        if method == "local"
        else Evolution(population, sample)
    )
    return run_searches(searcher, ctx, values, task, budget, searches, seed, starts, progress)
