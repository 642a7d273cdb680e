"""Transfer priors: what the source tasks' tables say to evaluate first on a target.

numpy only. Each is charged like every other method: one evaluation per distinct
target architecture.
"""

from __future__ import annotations

import numpy as np

from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import SearchRuns


def source_top_k(
    bench: Benchmark, source_task: str, task: str, budget: int, searches: int
) -> SearchRuns:
    """Evaluate the source task's `budget` best architectures on the target (no search at all)."""
    top = bench.top_k(source_task, budget)
    evaluated = np.tile(top, (searches, 1))
    trajectory = np.maximum.accumulate(bench.metric(task)[evaluated], axis=1)
    return SearchRuns(f"source-top-{budget}", task, budget, evaluated, trajectory)
