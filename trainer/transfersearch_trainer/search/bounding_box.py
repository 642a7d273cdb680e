"""BoundingBox: search only where the sources' best architectures live.

Followed: Perrone, Shen, Seeger, Archambeau and Jenatton, "Learning search spaces
for Bayesian optimization: Another view of hyperparameter transfer learning"
(NeurIPS 2019), as in Syne Tune's `BoundingBox`: the new search space is the
smallest box that holds the best `top_k` configurations of every source task
(Syne Tune's default, and the paper's setting, is 1 per task); for a categorical
parameter the box is the set of values those configurations take. Here each
token position (micro: the op of an edge; macro: a module code, 0 = no module) is
a categorical parameter, so the box holds the architectures whose every position
takes a value that some source's top-k architecture has there. On the real micro
tables with 6 sources and top-1 that is 192 to 648 of the 4096 cells.

Any optimiser can then run inside the box; this one is the project's regularised
evolution (same population and tournament as ``evolution``), with children and
fresh draws kept in the box. The box is a prior, not a wall: if the budget is
larger than the box, once every architecture in it is evaluated the search goes on
in the full space (only small synthetic tables get there). It has no shared start
(the start may lie outside the box): the first member is a random one inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.search.baselines import evolution_defaults, regularised_evolution
from transfersearch_trainer.search.oracle import SearchContext, TargetOracle, random_unevaluated


def box_mask(ctx: SearchContext, top_k: int) -> npt.NDArray[np.bool_]:
    """True for the architectures inside the sources' bounding box."""
    codes = ctx.space.codes
    best = np.concatenate([ctx.source_order(s)[:top_k] for s in ctx.sources])
    inside = np.ones(ctx.space.size, dtype=bool)
    for p in range(codes.shape[1]):
        inside &= np.isin(codes[:, p], np.unique(codes[best, p]))
    return inside


@dataclass(frozen=True)
class BoundingBox:
    top_k: int = 1  # best architectures per source that span the box (Perrone et al.: 1)
    population: int | None = None  # None: evolution_defaults(budget)
    sample: int | None = None
    name: str = "bounding-box"
    seed_key: int = 7
    deterministic: bool = False
    uses_start: bool = False

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        ctx.require_sources(self.name)
        inside = box_mask(ctx, self.top_k)
        pop, samp = evolution_defaults(oracle.budget)
        first = random_unevaluated(oracle, rng, inside)
        regularised_evolution(
            ctx.space,
            oracle,
            rng,
            first,
            self.population or pop,
            self.sample or samp,
            allowed=inside,
        )
