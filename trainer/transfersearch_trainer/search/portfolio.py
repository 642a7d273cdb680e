"""Zero-shot transfer: a greedy portfolio of architectures chosen on the sources alone.

Followed: Wistuba, Schilling and Schmidt-Thieme, "Sequential model-free
hyperparameter tuning" (ICDM 2015), in the form of Syne Tune's `ZeroShotTransfer`
searcher: rank every candidate on every source task, pick the candidate with the
best mean rank, then repeatedly pick the candidate that most lowers the mean over
sources of the *best rank in the portfolio so far*, i.e. minimise
``mean_t min(rank_t(c), min_{p in P} rank_t(p))``. Unlike the plain mean-rank top-k
it buys coverage: once the portfolio holds a source's favourite, more of the same
kind earns nothing on that source, so the next pick serves the sources still badly
covered. The target is never consulted; the list is evaluated as one parallel
round.

Choices where the references leave room: ranks are 1 = best with ties sharing the
better rank; ties of the greedy score (every candidate scores the same once each
source's optimum is in the portfolio, after at most one pick per source) are broken
by the sources' mean-rank order, then canonical index, so a saturated portfolio
continues as the multi-source top-k rather than in arbitrary index order (Syne Tune
breaks them by its table's row order).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.search.oracle import SearchContext, TargetOracle


def greedy_portfolio(
    ranks: npt.NDArray[np.int64], size: int, tie_position: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """`size` candidates chosen greedily for the lowest mean best-rank over the rows of
    `ranks` (tasks x candidates); ties go to the lowest `tie_position`."""
    tasks, n = ranks.shape
    covered = np.full(tasks, np.inf)
    free = np.ones(n, dtype=bool)
    chosen = np.empty(size, dtype=np.int64)
    for k in range(size):
        score = np.minimum(ranks, covered[:, None]).mean(axis=0)
        score[~free] = np.inf
        ties = np.flatnonzero(score == score.min())
        pick = int(ties[np.argmin(tie_position[ties])])
        chosen[k] = pick
        free[pick] = False
        covered = np.minimum(covered, ranks[:, pick])
    return chosen


@dataclass(frozen=True)
class ZeroShotTransfer:
    name: str = "zero-shot-transfer"
    seed_key: int = 6
    deterministic: bool = True
    uses_start: bool = False

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        ctx.require_sources(self.name)
        oracle.evaluate_many(greedy_portfolio(ctx.ranks, oracle.budget, ctx.position))
