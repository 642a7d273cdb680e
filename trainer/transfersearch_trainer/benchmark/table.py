"""A loaded benchmark: every architecture's metric on every task, as numpy arrays.

A query is an array lookup (``bench.metric(task)[index]``); the neighbour table
lives in the search space. Values are held in the canonical architecture order of
`spaces`, so they do not depend on which file format they came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import TASK_INFO, check_task
from transfersearch_trainer.benchmark.spaces import SearchSpace


@dataclass(frozen=True)
class TaskStats:
    task: str
    metric: str
    unit: str
    architectures: int
    optimum: float
    optimum_index: int
    optimum_arch: str
    median: float
    scale: float  # optimum - median: one unit of normalised score

    def to_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass(frozen=True, eq=False)
class Benchmark:
    """Metric tables of one search space.

    ``values[t, i]`` is task ``tasks[t]``'s metric of canonical architecture ``i``.
    Higher is better for every task (room_layout is a negative loss).
    """

    space: SearchSpace
    tasks: tuple[str, ...]
    values: npt.NDArray[np.float64]  # (len(tasks), space.size)
    source: str = "memory"
    _normalised: dict[str, npt.NDArray[np.float32]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.values.shape != (len(self.tasks), self.space.size):
            raise TransferSearchError(
                f"{self.source}: expected a table of {len(self.tasks)} tasks x "
                f"{self.space.size} architectures, got shape {self.values.shape}"
            )
        bad = ~np.isfinite(self.values)
        if bad.any():
            t, i = map(int, np.argwhere(bad)[0])
            raise TransferSearchError(
                f"{self.source}: {int(bad.sum())} missing or non-finite values "
                f"(first: task {self.tasks[t]}, architecture {self.space.arch_str(i)})"
            )
        for task in self.tasks:
            check_task(task)
            stats = self.stats(task)
            scale = stats.scale if stats.scale > 0 else 1.0
            self._normalised[task] = ((self.metric(task) - stats.median) / scale).astype(np.float32)

    def _row(self, task: str) -> int:
        check_task(task)
        try:
            return self.tasks.index(task)
        except ValueError:
            raise TransferSearchError(
                f"task {task!r} is not in the benchmark loaded from {self.source} "
                f"(it holds {', '.join(self.tasks)})"
            ) from None

    def metric(self, task: str) -> npt.NDArray[np.float64]:
        """The task's metric for every architecture (a view, do not modify)."""
        row: npt.NDArray[np.float64] = self.values[self._row(task)]
        return row

    def normalised(self, task: str) -> npt.NDArray[np.float32]:
        """Metric rescaled so the task's median is 0 and its optimum is 1.

        Rewards and regrets in these units are comparable across tasks, which is
        what lets an agent trained on one task act on another.
        """
        self._row(task)
        return self._normalised[task]

    def stats(self, task: str) -> TaskStats:
        values = self.metric(task)
        best = int(np.argmax(values))  # first (lowest canonical index) among ties
        optimum = float(values[best])
        median = float(np.median(values))
        info = TASK_INFO[task]
        return TaskStats(
            task=task,
            metric=info.metric,
            unit=info.unit,
            architectures=self.space.size,
            optimum=optimum,
            optimum_index=best,
            optimum_arch=self.space.arch_str(best),
            median=median,
            scale=optimum - median,
        )

    def top_k(self, task: str, k: int) -> npt.NDArray[np.int64]:
        """Indices of the task's k best architectures, best first, ties by index."""
        values = self.metric(task)
        order = np.lexsort((np.arange(values.size), -values))
        return order[:k]
