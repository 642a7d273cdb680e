"""The honest-search contract: what a search on the target may know, and what it pays.

A search on a target task may use (a) the full tables of the *source* tasks (other
tasks, free), (b) the structure of the search space (encoding, neighbours) and (c)
the target's value of each architecture it has evaluated so far, each distinct one
paid for with one unit of budget. It must never read the target's optimum, median
or unevaluated entries to decide what to evaluate.

That rule is structural here rather than a convention: a method receives a
`SearchContext` (space + source tables, no target) and a `TargetOracle` (the only
way to a target value), never the target column. The oracle counts distinct
evaluations, answers repeats from its cache for free and raises `BudgetSpentError` when
a new evaluation would exceed the budget, so no method can overspend by accident,
whether it evaluates one architecture at a time or a batch at once (a parallel
round of evaluations is charged in full before any of it is answered). The proof
that no method peeks is a test: the same searches on a target table that is NaN
everywhere except where the first run evaluated give the identical trajectories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_task
from transfersearch_trainer.benchmark.spaces import SearchSpace
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.evaluator import Evaluation, Evaluator, Ledger
from transfersearch_trainer.search.stats import ranks_among

ALL_BUT_TARGET = "all-but-target"


class BudgetSpentError(RuntimeError):
    """A method asked for a new target evaluation after its budget was spent (a bug)."""


class TargetOracle:
    """One search's paid access to the target: distinct evaluations, counted and cached.

    Behind it is a benchmark column (`values`: a lookup) or any `Evaluator` (`of`: e.g.
    the training evaluator on the user's data); `ledger` sums what the answers cost."""

    def __init__(self, values: npt.ArrayLike, budget: int) -> None:
        table = np.asarray(values, dtype=np.float64).reshape(-1)
        self._setup(int(table.size), budget, lambda idx: [Evaluation(float(table[i])) for i in idx])

    @classmethod
    def of(cls, evaluator: Evaluator, budget: int) -> TargetOracle:
        """An oracle whose every new evaluation is asked of `evaluator` (batches as one round)."""
        oracle = cls.__new__(cls)
        oracle._setup(evaluator.space.size, budget, evaluator.evaluate)
        return oracle

    def _setup(
        self, size: int, budget: int, answer: Callable[[list[int]], list[Evaluation]]
    ) -> None:
        # Private on purpose: a method sees target values only through evaluate().
        if not 1 <= budget <= size:
            raise ValueError(f"budget must be between 1 and {size}, got {budget}")
        self._size = size
        self._answer = answer
        self._budget = budget
        self._cache: dict[int, float] = {}
        self._order: list[int] = []
        self._found: list[float] = []
        self._mask = np.zeros(size, dtype=bool)
        self._mask_view = self._mask.view()
        self._mask_view.flags.writeable = False
        self.ledger = Ledger()

    @property
    def size(self) -> int:
        """Architectures in the space (structure, not a target value)."""
        return self._size

    @property
    def budget(self) -> int:
        return self._budget

    @property
    def spent(self) -> int:
        return len(self._order)

    @property
    def remaining(self) -> int:
        return self._budget - len(self._order)

    def done(self) -> bool:
        return len(self._order) >= self._budget

    @property
    def mask(self) -> npt.NDArray[np.bool_]:
        """Read-only: True where the architecture has been evaluated."""
        return self._mask_view

    def evaluated(self, index: int) -> bool:
        return bool(self._mask[index])

    def evaluate(self, index: int) -> float:
        """The target value of `index`: new ones cost 1, repeats are free."""
        return float(self.evaluate_many([index])[0])

    def evaluate_many(self, indices: Iterable[int]) -> npt.NDArray[np.float64]:
        """A parallel round: all of it is charged up front, or none if it does not fit."""
        batch = [int(i) for i in indices]
        for index in batch:
            if not 0 <= index < self._size:
                raise IndexError(f"architecture {index} is outside the space (0..{self.size - 1})")
        new = list(dict.fromkeys(i for i in batch if i not in self._cache))
        if len(new) > self.remaining:
            if len(batch) == 1:
                raise BudgetSpentError(f"budget of {self._budget} distinct evaluations is spent")
            raise BudgetSpentError(
                f"a batch of {len(new)} new evaluations exceeds the {self.remaining} left "
                f"of a budget of {self._budget}"
            )
        if new:
            answers = self._answer(new)
            self.ledger.add(answers)
            for index, answer in zip(new, answers, strict=True):
                self._cache[index] = answer.metric
                self._order.append(index)
                self._found.append(answer.metric)
                self._mask[index] = True
        return np.array([self._cache[i] for i in batch], dtype=np.float64)

    @property
    def order(self) -> npt.NDArray[np.int64]:
        """Architectures in the order they were first evaluated."""
        return np.array(self._order, dtype=np.int64)

    @property
    def found(self) -> npt.NDArray[np.float64]:
        """Their values, in the same order."""
        return np.array(self._found, dtype=np.float64)

    @property
    def best(self) -> float:
        return max(self._found) if self._found else float("-inf")


def random_unevaluated(
    oracle: TargetOracle,
    rng: np.random.Generator,
    allowed: npt.NDArray[np.bool_] | None = None,
) -> int:
    """A uniform unevaluated architecture (within `allowed` while it has any left).

    Without `allowed` this is rejection sampling: the budget is far below the space
    size, so it ends quickly, and its stream of draws is the one the classic
    baselines have always used (their results stay identical).
    """
    if allowed is not None:
        free = np.flatnonzero(allowed & ~oracle.mask)
        if free.size:
            return int(free[int(rng.integers(free.size))])
    while True:
        arch = int(rng.integers(0, oracle.size))
        if not oracle.evaluated(arch):
            return arch


@dataclass(frozen=True, eq=False)
class SearchContext:
    """What a search may know for free: the space and the source tasks' full tables.

    The derived priors (ranks, the mean-rank order, normalised values) are computed
    once per context and shared by every search and method that runs on it.
    """

    space: SearchSpace
    sources: tuple[str, ...]
    source_values: npt.NDArray[np.float64]  # (len(sources), space.size)

    @classmethod
    def from_benchmark(cls, bench: Benchmark, target: str, sources: Sequence[str]) -> SearchContext:
        """The context for a search on `target`; `sources` must not contain it."""
        if target in sources:
            raise TransferSearchError(f"sources: the target task {target!r} cannot be a source")
        rows = [bench.metric(s) for s in sources]
        values = np.stack(rows) if rows else np.empty((0, bench.space.size))
        return cls(bench.space, tuple(sources), values)

    def require_sources(self, method: str) -> None:
        if not self.sources:
            raise TransferSearchError(f"{method}: needs at least one source task")

    @cached_property
    def ranks(self) -> npt.NDArray[np.int64]:
        """(sources, n): each architecture's rank on each source, 1 = best, ties share."""
        return np.stack([ranks_among(v, v) for v in self.source_values]).astype(np.int64)

    @cached_property
    def mean_rank(self) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = self.ranks.mean(axis=0)
        return result

    @cached_property
    def order(self) -> npt.NDArray[np.int64]:
        """Architectures by their mean rank over the sources, best first, ties by index."""
        return np.lexsort((np.arange(self.space.size), self.mean_rank)).astype(np.int64)

    @cached_property
    def position(self) -> npt.NDArray[np.int64]:
        """Inverse of `order`: where each architecture stands in it (0 = the prior's best)."""
        pos = np.empty(self.space.size, dtype=np.int64)
        pos[self.order] = np.arange(self.space.size)
        return pos

    @cached_property
    def normalised(self) -> npt.NDArray[np.float64]:
        """(sources, n): each source rescaled so its median is 0 and its optimum 1
        (the project's normalisation, as in `Benchmark.normalised`)."""
        out = np.empty_like(self.source_values)
        for k, v in enumerate(self.source_values):
            median, top = float(np.median(v)), float(v.max())
            out[k] = (v - median) / (top - median if top > median else 1.0)
        return out

    def source_order(self, source: str) -> npt.NDArray[np.int64]:
        """One source's architectures, best first, ties by index (as `Benchmark.top_k`)."""
        v = self.source_values[self.sources.index(source)]
        return np.lexsort((np.arange(v.size), -v)).astype(np.int64)


def resolve_sources(
    tasks: Sequence[str],
    target: str,
    spec: str | Sequence[str] | None,
    field: str = "sources",
) -> tuple[str, ...]:
    """`all-but-target` (the default: every task of the table but the target) or a list."""
    if spec is None or spec == ALL_BUT_TARGET:
        return tuple(t for t in tasks if t != target)
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [s for s in names if s]
    if not names:
        raise TransferSearchError(f"{field}: empty; use {ALL_BUT_TARGET} or a,b")
    for name in names:
        check_task(name, field)
        if name == target:
            raise TransferSearchError(
                f"{field}: the target task {target!r} cannot be a source "
                f"(drop it, or use {ALL_BUT_TARGET})"
            )
        if name not in tasks:
            raise TransferSearchError(
                f"{field}: task {name!r} is not in the loaded benchmark ({', '.join(tasks)})"
            )
    if len(set(names)) != len(names):
        raise TransferSearchError(f"{field}: a task is listed twice in {','.join(names)}")
    return tuple(names)


class SearchMethod(Protocol):
    """One baseline (Syne Tune / NASLib style: a configured object, one entry point).

    ``search`` spends exactly ``oracle.budget`` distinct evaluations; the runner
    checks it. ``deterministic`` methods ignore ``start`` and ``rng`` and are run
    once per search set; ``uses_start`` ones begin at the shared start.
    """

    @property
    def name(self) -> str: ...

    @property
    def seed_key(self) -> int: ...

    @property
    def deterministic(self) -> bool: ...

    @property
    def uses_start(self) -> bool: ...

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None: ...
