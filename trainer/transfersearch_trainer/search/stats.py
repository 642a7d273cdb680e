"""Summaries of many searches: mean best-found, standard error, confidence interval, regret."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.benchmark.table import TaskStats


@dataclass(frozen=True)
class Summary:
    searches: int
    mean: float  # mean best-found metric
    stderr: float  # standard error of that mean (sample std / sqrt(n))
    ci95: float  # half-width of a normal-approximation 95% interval
    regret: float  # task optimum - mean, in the metric's units
    normalised_regret: float  # regret / (optimum - median): 0 = optimum, 1 = median
    hit_rate: float  # fraction of searches that found the optimum

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(best: npt.NDArray[np.floating], task: TaskStats) -> Summary:
    values = np.asarray(best, dtype=np.float64)
    n = int(values.size)
    mean = float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    regret = task.optimum - mean
    return Summary(
        searches=n,
        mean=mean,
        stderr=stderr,
        ci95=1.96 * stderr,
        regret=regret,
        normalised_regret=regret / task.scale if task.scale > 0 else 0.0,
        hit_rate=float(np.mean(values >= task.optimum)),
    )
