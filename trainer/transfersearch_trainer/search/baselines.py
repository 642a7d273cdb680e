"""Classic searches the agent must beat, at the same budget of evaluations.

All three charge one evaluation per *distinct* architecture they query (a real
search would not train the same network twice), start their i-th search at
``starts[i]`` (shared with the agent's evaluation, so all methods start from the
same points) and draw their own randomness from a generator per search, so
search i does not depend on how many searches run beside it.

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

    @property
    def best(self) -> npt.NDArray[np.float64]:
        return self.trajectory[:, -1]


def default_starts(space_size: int, searches: int, seed: int) -> npt.NDArray[np.int64]:
    """The start architectures every method uses for a given seed."""
    return np.random.default_rng((seed, 0)).integers(0, space_size, size=searches)


def _check(bench: Benchmark, budget: int, searches: int) -> None:
    if budget < 1 or budget > bench.space.size:
        raise TransferSearchError(
            f"budget: must be between 1 and {bench.space.size} evaluations, got {budget}"
        )
    if searches < 1:
        raise TransferSearchError(f"searches: must be at least 1, got {searches}")


class _Evaluator:
    """Charges each distinct architecture once and records the order."""

    def __init__(self, values: npt.NDArray[np.float64], budget: int) -> None:
        self.values = values
        self.budget = budget
        self.seen: dict[int, float] = {}
        self.order: list[int] = []

    def done(self) -> bool:
        return len(self.order) >= self.budget

    def __call__(self, arch: int) -> float:
        if arch not in self.seen:
            self.seen[arch] = float(self.values[arch])
            self.order.append(arch)
        return self.seen[arch]

    def random_unseen(self, rng: np.random.Generator) -> int:
        n = self.values.size
        while True:  # the budget is far below n, so this ends quickly
            arch = int(rng.integers(0, n))
            if arch not in self.seen:
                return arch


def _random(space: SearchSpace, ev: _Evaluator, start: int, rng: np.random.Generator) -> None:
    ev(start)
    for arch in rng.permutation(space.size):
        if ev.done():
            return
        ev(int(arch))


def _local(space: SearchSpace, ev: _Evaluator, start: int, rng: np.random.Generator) -> None:
    current, value = start, ev(start)
    while not ev.done():
        moved = False
        for nb in rng.permutation(space.neighbours(current)):
            nb = int(nb)
            v = ev(nb)
            if v > value:
                current, value, moved = nb, v, True
                break
            if ev.done():
                return
        if not moved:
            current = ev.random_unseen(rng)
            value = ev(current)


def _evolution(
    space: SearchSpace,
    ev: _Evaluator,
    start: int,
    rng: np.random.Generator,
    population: int,
    sample: int,
) -> None:
    members: deque[tuple[int, float]] = deque(maxlen=population)
    members.append((start, ev(start)))
    while len(members) < population and not ev.done():
        arch = ev.random_unseen(rng)
        members.append((arch, ev(arch)))
    while not ev.done():
        picks = rng.choice(len(members), size=min(sample, len(members)), replace=False)
        parent = max((members[int(i)] for i in picks), key=lambda m: m[1])[0]
        fresh = [int(nb) for nb in space.neighbours(parent) if int(nb) not in ev.seen]
        child = fresh[int(rng.integers(len(fresh)))] if fresh else ev.random_unseen(rng)
        members.append((child, ev(child)))


def evolution_defaults(budget: int) -> tuple[int, int]:
    """(population, sample) scaled to small budgets: 12 and 3 at budget 50, 20 and 5 from 80."""
    population = min(20, max(4, budget // 4))
    return population, max(2, population // 4)


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
    """Run `searches` independent searches of `method` with `budget` evaluations each."""
    if method not in METHODS:
        raise TransferSearchError(f"method: unknown {method!r}; use one of {', '.join(METHODS)}")
    _check(bench, budget, searches)
    values = bench.metric(task)
    space = bench.space
    start_arr = (
        default_starts(space.size, searches, seed)
        if starts is None
        else np.asarray(starts, dtype=np.int64).reshape(-1)
    )
    if start_arr.size != searches:
        raise TransferSearchError(
            f"starts: need {searches} start architectures, got {start_arr.size}"
        )
    pop, samp = evolution_defaults(budget)
    pop, samp = population or pop, sample or samp
    seeds = np.random.SeedSequence((seed, 1, METHODS.index(method))).spawn(searches)
    evaluated = np.empty((searches, budget), dtype=np.int64)
    for i in range(searches):
        rng = np.random.default_rng(seeds[i])
        ev = _Evaluator(values, budget)
        start = int(start_arr[i])
        if method == "random":
            _random(space, ev, start, rng)
        elif method == "local":
            _local(space, ev, start, rng)
        else:
            _evolution(space, ev, start, rng, pop, samp)
        evaluated[i] = ev.order
        if progress is not None:
            progress(1)
    trajectory = np.maximum.accumulate(values[evaluated], axis=1)
    return SearchRuns(method, task, budget, evaluated, trajectory)
