"""Reward shaping by table: a copy of a benchmark with one task's values bent by a power.

The paper shapes the segmentation reward as ``R' = R ** 0.478``. Here the search
environment's reward is the improvement of the *normalised* metric of the table it
trains on (median 0, optimum 1; see `Benchmark.normalised`), so transforming that
table's values *is* the reward shaping, with no change to the environment or the learner:

    v' = ((v - min) / (max - min)) ** power

The min-max step puts the task in [0, 1] first, where the paper's power applies (a power
of a raw pixel accuracy of 91-95% would barely change it). The map is monotone, so the
order of the architectures and the optimum stay the same; what changes is how much
each step up is worth (a power below 1 stretches the low end and compresses the top).

Only training sees the shaped copy: evaluations and reported scores read the raw table.
"""

from __future__ import annotations

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.table import Benchmark


def shaped_benchmark(bench: Benchmark, task: str, power: float) -> Benchmark:
    """A new benchmark equal to `bench` but for `task`'s values, min-max scaled then ** power."""
    if not power > 0:
        raise TransferSearchError(
            f"--segmentation-power: must be positive, got {power}; 1 turns shaping off"
        )
    bench.metric(task)  # a task the table does not hold: the benchmark's own error
    row = bench.tasks.index(task)
    values = bench.values.copy()
    low, high = float(values[row].min()), float(values[row].max())
    if high <= low:
        raise TransferSearchError(
            f"{bench.source}: task {task} has one value for every architecture; "
            "there is nothing to shape (use --segmentation-power 1)"
        )
    values[row] = ((values[row] - low) / (high - low)) ** power
    return Benchmark(
        space=bench.space,
        tasks=bench.tasks,
        values=values,
        source=f"{bench.source} ({task} shaped: min-max ** {power})",
    )
