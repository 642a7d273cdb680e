"""Throughput of the search environment, measured side by side in one process.

Three ways to run the same searches with the same actions:

* ``vectorised``: `VecSearchEnv.step`, observations and rewards built;
* ``python-loop``: one `PySearch` object per search stepped in a plain Python loop
  (also the readable reference the tests compare the vectorised env against);
* ``bare-gather``: only ``next = neighbours[current, action]; value = metric[next]``,
  the floor no environment can beat.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.env import VecSearchEnv


class PySearch:
    """One search of the environment's MDP, in plain Python (same rules as `VecSearchEnv`)."""

    def __init__(
        self,
        table: list[list[int]],
        metric: list[float],
        codes: list[tuple[int, ...]],
        start: int,
        budget: int,
        shaping: float = 0.0,
    ) -> None:
        self.table, self.metric, self.codes = table, metric, codes
        self.budget, self.shaping = budget, shaping
        self.reset(start)

    def reset(self, start: int) -> None:
        self.arch = start
        self.value = self.best = self.metric[start]
        self.budget_left = self.budget - 1
        self.tokens = self.codes[start]

    def step(self, action: int) -> tuple[float, bool]:
        """Move, evaluate, reward; returns (reward, truncated). The caller resets when truncated."""
        self.arch = self.table[self.arch][action]
        new = self.metric[self.arch]
        reward = max(new - self.best, 0.0) + self.shaping * (new - self.value)
        self.best = max(self.best, new)
        self.value = new
        self.tokens = self.codes[self.arch]
        self.budget_left -= 1
        return reward, self.budget_left <= 0


def py_searches(
    bench: Benchmark, task: str, starts: npt.NDArray[np.integer], budget: int, shaping: float = 0.0
) -> list[PySearch]:
    table = bench.space.table.tolist()
    metric = [float(x) for x in bench.normalised(task)]
    codes = [tuple(int(c) for c in row) for row in bench.space.codes]
    return [PySearch(table, metric, codes, int(s), budget, shaping) for s in starts]


@dataclass(frozen=True)
class Rate:
    name: str
    steps: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.steps / self.seconds


def _best_of(repeats: int, fn: Callable[[], int]) -> tuple[int, float]:
    best = float("inf")
    steps = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        steps = fn()
        best = min(best, time.perf_counter() - t0)
    return steps, best


def measure_env(
    bench: Benchmark,
    task: str,
    batch: int = 4096,
    steps: int = 2000,
    budget: int = 100,
    python_steps: int = 60,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, object]:
    """Steps per second of the three variants, plus a check that env and loop agree."""
    rng = np.random.default_rng(seed)
    space = bench.space
    actions = rng.integers(0, space.num_actions, size=(steps, batch))
    starts = rng.integers(0, space.size, size=batch)
    env = VecSearchEnv(bench, task, batch, budget, seed=seed)

    def vectorised() -> int:
        env.reset(starts)
        for t in range(steps):
            env.step(actions[t])
        return steps * batch

    table2d = space.table
    metric = bench.normalised(task)

    def bare() -> int:
        cur = starts.copy()
        for t in range(steps):
            cur = table2d[cur, actions[t]]
            metric[cur]
        return steps * batch

    py_steps = max(1, min(steps, python_steps))
    py_starts = starts

    def loop() -> int:
        searches = py_searches(bench, task, py_starts, budget)
        rng_restart = np.random.default_rng(seed).integers(
            0, space.size, size=py_steps * len(searches)
        )
        k = 0
        for t in range(py_steps):
            row = actions[t].tolist()
            for i, search in enumerate(searches):
                _, done = search.step(row[i])
                if done:
                    search.reset(int(rng_restart[k]))
                    k += 1
        return py_steps * len(searches)

    rates = [
        Rate(name, *_best_of(repeats, fn))
        for name, fn in (("vectorised", vectorised), ("python-loop", loop), ("bare-gather", bare))
    ]
    agree = _agreement(bench, task, starts[:64], actions[: min(steps, budget - 2), :64], budget)
    by = {r.name: r.per_second for r in rates}
    return {
        "space": space.name,
        "task": task,
        "batch": batch,
        "steps_per_run": steps,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "rates": [asdict(r) | {"per_second": r.per_second} for r in rates],
        "vectorised_over_python": by["vectorised"] / by["python-loop"],
        "vectorised_over_bare": by["vectorised"] / by["bare-gather"],
        "env_matches_python_loop": agree,
    }


def _agreement(
    bench: Benchmark,
    task: str,
    starts: npt.NDArray[np.integer],
    actions: npt.NDArray[np.integer],
    budget: int,
) -> bool:
    """Same starts and actions, before any budget reset: same rewards and positions?"""
    env = VecSearchEnv(bench, task, starts.size, budget, seed=0)
    env.reset(starts)
    searches = py_searches(bench, task, starts, budget)
    for t in range(actions.shape[0]):
        out = env.step(actions[t])
        expected = [s.step(int(a))[0] for s, a in zip(searches, actions[t], strict=True)]
        if not np.allclose(out.reward, expected, atol=1e-6):
            return False
        if env.arch.tolist() != [s.arch for s in searches]:
            return False
    return True
