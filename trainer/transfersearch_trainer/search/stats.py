"""Summaries of many searches: mean best-found, standard error, confidence interval, regret.

One confidence interval everywhere: the two-sided 95% Student t interval of a mean
(over searches, or over training seeds), and one number format for reports.
"""

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
    ci95: float  # half-width of the 95% Student t interval of the mean
    regret: float  # task optimum - mean, in the metric's units
    normalised_regret: float  # regret / (optimum - median): 0 = optimum, 1 = median
    hit_rate: float  # fraction of searches that found the optimum

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(best: npt.NDArray[np.floating], task: TaskStats) -> Summary:
    values = np.asarray(best, dtype=np.float64)
    n = int(values.size)
    # Identical values (a deterministic method's searches) report exactly 0 spread, not
    # the rounding noise of summing n copies.
    constant = n > 0 and bool(values.min() == values.max())
    mean = float(values[0]) if constant else float(values.mean())
    stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 and not constant else 0.0
    regret = task.optimum - mean
    return Summary(
        searches=n,
        mean=mean,
        stderr=stderr,
        ci95=t95(n - 1) * stderr if n > 1 else 0.0,
        regret=regret,
        normalised_regret=regret / task.scale if task.scale > 0 else 0.0,
        hit_rate=float(np.mean(values >= task.optimum)),
    )


def ranks_among(values: npt.NDArray[np.floating], queries: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Rank of each query value among `values` (higher is better): 1 + how many are
    strictly better, so 1 = the optimum and ties share the better rank."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    q = np.asarray(queries, dtype=np.float64)
    above = ordered.size - np.searchsorted(ordered, q, side="right")
    return (above + 1).astype(np.int64)


def mean_rank(values: npt.NDArray[np.floating], best: npt.NDArray[np.floating]) -> float:
    """Mean over searches of the best-found architecture's rank on the full target table.

    For reporting only, after the searches: it reads the whole target table."""
    return float(ranks_among(values, best).mean())


def t95(df: int) -> float:
    """The two-sided 95% Student t quantile with `df` degrees of freedom (nan below 1)."""
    if df < 1:
        return float("nan")
    # lazy: scipy.stats takes most of a second to import, and every CLI start imports this
    from scipy import stats as scipy_stats

    return float(scipy_stats.t.ppf(0.975, df))


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan with one value)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1:
        return float(arr[0]), float("nan")
    return float(arr.mean()), t95(arr.size - 1) * float(arr.std(ddof=1)) / math.sqrt(arr.size)


def fmt(x: float | None, digits: int | None = None) -> str:
    """The one number format of tables and reports: n/a, inf, or `digits` decimals
    (default: 4 below 10, else 3)."""
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if digits is None:
        digits = 4 if abs(x) < 10 else 3
    return f"{x:.{digits}f}"
