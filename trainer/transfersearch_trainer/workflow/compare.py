"""Baselines beside a local search, charged exactly as it was: same target, budget, seeds.

A local run of a protocol-search manifest on a benchmark task answers the user's first
question, "is the agent worth it here?", by running every baseline of `search.runner`
(numpy, seconds) with the same budget, one search per trial with the trial's seed, and
the same sources as the agent (the tasks it was pretrained on; every task but the
target for scratch). Like the agent's, their ranks and regrets read the target's table
only after the searches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import run_searches
from transfersearch_trainer.search.runner import comparison_methods, transfer_context
from transfersearch_trainer.search.stats import mean_rank


def baseline_reports(
    bench: Benchmark, target: str, budget: int, seed: int, trials: int, sources: list[str]
) -> list[dict[str, Any]]:
    """One row per baseline: mean best over `trials` searches, the best search's arch."""
    ctx = transfer_context(bench, target, sources or None)
    values = bench.metric(target)
    rows = []
    for method in comparison_methods(ctx.sources):
        runs = run_searches(method, ctx, values, target, budget, trials, seed)
        best = np.asarray(runs.best)
        k = int(best.argmax())
        rows.append(
            {
                "method": method.name,
                "evaluations": int(np.unique(runs.evaluated[k]).size),
                "best_metric": float(best.mean()),
                "best_arch": bench.space.arch_str(
                    int(runs.evaluated[k][runs.trajectory[k].argmax()])
                ),
                "rank": mean_rank(values, runs.best),
                "regret": float(values.max() - best.mean()),
                "searches": trials,
            }
        )
    return rows
