"""Task similarity from a small probe, and choosing a source agent by it.

Similarity of two tasks is the Spearman rank correlation of their metrics over
a *probe*: a fixed, seeded sample of architectures (default 30). On the target
that costs one evaluation per probe architecture (a network trained, in real
life; they count as target evaluations); a source task's values are known from
the source agent's own training. Rank correlation is scale-free, so tasks whose
metrics live on different scales (accuracy, SSIM, negative loss) compare fine,
and what it measures, whether the same architectures are good on both, is what
a transferred search policy relies on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.table import Benchmark

DEFAULT_PROBE = 30
PROBE_SEED = 3_000_000  # its own stream: disjoint from training and evaluation seeds


def probe_architectures(
    space_size: int, size: int = DEFAULT_PROBE, seed: int = PROBE_SEED
) -> npt.NDArray[np.int64]:
    if not 3 <= size <= space_size:
        raise TransferSearchError(f"probe size: must be between 3 and {space_size}, got {size}")
    return np.sort(np.random.default_rng(seed).choice(space_size, size=size, replace=False))


def _ranks(values: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """Ranks with ties averaged (so repeated benchmark values do not bias the correlation)."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(values.size, dtype=np.float64)
    sorted_vals = values[order]
    start = 0
    for i in range(1, values.size + 1):
        if i == values.size or sorted_vals[i] != sorted_vals[start]:
            ranks[order[start:i]] = (start + i - 1) / 2.0
            start = i
    return ranks


def spearman(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Spearman rank correlation (Pearson on tie-averaged ranks); 0 when either side is constant."""
    x, y = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def similarity_matrix(
    bench: Benchmark, tasks: tuple[str, ...], probe: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    values = np.stack([bench.metric(t)[probe] for t in tasks])
    n = len(tasks)
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = spearman(values[i], values[j])
    return out


@dataclass(frozen=True)
class SourceChoice:
    task: str  # the chosen source task
    index: int  # its position among the candidates
    similarities: dict[str, float]  # candidate task -> similarity to the target
    probe_size: int  # target evaluations the choice cost


def choose_source(
    bench: Benchmark,
    target: str,
    candidates: list[str],
    probe_size: int = DEFAULT_PROBE,
    seed: int = PROBE_SEED,
) -> SourceChoice:
    """The candidate source task most similar to `target` on the probe (ties: first listed)."""
    if not candidates:
        raise TransferSearchError("source.candidates: give at least one candidate agent")
    probe = probe_architectures(bench.space.size, probe_size, seed)
    target_values = bench.metric(target)[probe]
    sims = {task: spearman(bench.metric(task)[probe], target_values) for task in candidates}
    best = max(range(len(candidates)), key=lambda i: (sims[candidates[i]], -i))
    return SourceChoice(candidates[best], best, sims, probe_size)
