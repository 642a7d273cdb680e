"""What stands behind a search: something that turns architectures into metrics, at a cost.

Every method (the agent, its online learning, the baselines) asks an `Evaluator`, so
they are compared under the same evaluator and the same budget whatever it is: a
benchmark table (a lookup, free or charged a configured nominal cost per evaluation) or
the training evaluator (`transfersearch_trainer.evaluation`), which trains the network
on the user's data and reports the seconds it really spent.

The numpy core knows only this contract; torch and datasets live above it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.benchmark.spaces import SearchSpace


@dataclass(frozen=True)
class Evaluation:
    """One architecture's answer: its metric and what it cost to get.

    A cached answer keeps the seconds of the training that produced it (what the
    evaluation stands for) with `cached` set: nothing was spent on it this time."""

    metric: float
    device_seconds: float = 0.0  # wall seconds the training used its device for
    gpu_seconds: float = 0.0  # of those, seconds on a GPU (0 on CPU)
    cached: bool = False  # answered from a cache: nothing was trained for it


@runtime_checkable
class Evaluator(Protocol):
    """Architectures (canonical indices of `space`) in, one `Evaluation` each out.

    A batch is one parallel round (K trainings at once when there are K devices)."""

    @property
    def space(self) -> SearchSpace: ...

    @property
    def description(self) -> str: ...

    def evaluate(self, archs: Sequence[int]) -> list[Evaluation]: ...


@dataclass
class TableEvaluator:
    """A benchmark task's evaluator: a lookup of the value a training would have returned.

    `nominal_seconds` charges each evaluation a configured cost (0: free), so reports of
    a benchmark search can quote the training time it stands for."""

    space: SearchSpace
    values: npt.NDArray[np.float64]
    task: str = ""
    nominal_seconds: float = 0.0

    @property
    def description(self) -> str:
        return f"table:{self.task}" if self.task else "table"

    def evaluate(self, archs: Sequence[int]) -> list[Evaluation]:
        idx = np.asarray(archs, dtype=np.int64)
        return [Evaluation(float(v), self.nominal_seconds) for v in self.values[idx]]


Listener = Callable[[Evaluation], None]  # told of every answer as it comes (live metrics)


@dataclass
class Ledger:
    """What a search's evaluations cost: summed per search, reported beside its result."""

    evaluations: int = 0
    trained: int = 0  # evaluations that were not answered from a cache
    device_seconds: float = 0.0  # spent now (cached answers cost nothing)
    gpu_seconds: float = 0.0  # likewise
    cost_seconds: float = 0.0  # what the evaluations cost when trained, cached or not
    seconds: list[float] = field(default_factory=list)  # per evaluation, as cost_seconds
    metrics: list[float] = field(default_factory=list)  # likewise
    listeners: list[Listener] = field(default_factory=list, repr=False, compare=False)

    def add(self, answers: Sequence[Evaluation]) -> None:
        for e in answers:
            self.evaluations += 1
            self.trained += not e.cached
            if not e.cached:
                self.device_seconds += e.device_seconds
                self.gpu_seconds += e.gpu_seconds
            self.cost_seconds += e.device_seconds
            self.seconds.append(e.device_seconds)
            self.metrics.append(e.metric)
            for listen in self.listeners:
                listen(e)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "evaluations": self.evaluations,
            "trained": self.trained,
            "cached": self.evaluations - self.trained,
            "evaluation_seconds": self.device_seconds,
            "evaluation_gpu_seconds": self.gpu_seconds,
            "cost_seconds": self.cost_seconds,
        }


def metric_function(
    evaluator: Evaluator, ledger: Ledger
) -> Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]]:
    """The agent's view of an evaluator (architectures in, metrics out), its costs booked."""

    def evaluate(archs: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        answers = evaluator.evaluate([int(a) for a in archs])
        ledger.add(answers)
        return np.array([a.metric for a in answers], dtype=np.float64)

    return evaluate
