"""Every baseline by name, on one target, charged the same way: the registry and its runner.

The CLI, the studies and the tests ask for methods by name here, so a new method is
one line in `_FACTORIES`, and every method gets the same treatment: the same oracle,
the same starts (where it has one), a seed stream of its own per search.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import (
    METHODS,
    Evolution,
    LocalSearch,
    Progress,
    RandomSearch,
    SearchRuns,
    run_searches,
)
from transfersearch_trainer.search.bounding_box import BoundingBox
from transfersearch_trainer.search.oracle import SearchContext, SearchMethod, resolve_sources
from transfersearch_trainer.search.portfolio import ZeroShotTransfer
from transfersearch_trainer.search.priors import MultiTopK, PriorLocal, SourceTopK
from transfersearch_trainer.search.surrogate import Surrogate

TRANSFER_METHODS = (
    "source-top-k",
    "multi-top-k",
    "zero-shot-transfer",
    "prior-local",
    "bounding-box",
    "surrogate",
)
ALL_METHODS = (*METHODS, *TRANSFER_METHODS)

_FACTORIES: dict[str, Callable[[], SearchMethod]] = {
    "random": RandomSearch,
    "local": LocalSearch,
    "evolution": Evolution,
    "multi-top-k": MultiTopK,
    "zero-shot-transfer": ZeroShotTransfer,
    "prior-local": PriorLocal,
    "bounding-box": BoundingBox,
    "surrogate": Surrogate,
}


def comparison_methods(sources: Sequence[str]) -> list[SearchMethod]:
    """Every method once, to compare an agent with: the per-source top-k are left out,
    multi-top-k being the prior over all of the sources."""
    return [m for m in build_methods("all", sources) if not isinstance(m, SourceTopK)]


def build_methods(name: str, sources: Sequence[str]) -> list[SearchMethod]:
    """The configured methods for `name`: `all` is every one, `source-top-k` one per source."""
    if name == "all":
        return [m for n in ALL_METHODS for m in build_methods(n, sources)]
    if name == "source-top-k":
        return [SourceTopK(s) for s in sources]
    try:
        return [_FACTORIES[name]()]
    except KeyError:
        raise TransferSearchError(
            f"method: unknown {name!r}; use one of {', '.join(ALL_METHODS)} or all"
        ) from None


def transfer_context(
    bench: Benchmark, task: str, sources: str | Sequence[str] | None = None, field: str = "sources"
) -> SearchContext:
    """The context of a search on `task`: `sources` is `all-but-target` (the default) or
    a list; build it once and run every method on it (priors and kernels are cached there)."""
    return SearchContext.from_benchmark(
        bench, task, resolve_sources(bench.tasks, task, sources, field)
    )


def run_method(
    bench: Benchmark,
    task: str,
    method: str | SearchMethod,
    budget: int,
    searches: int,
    seed: int = 0,
    sources: str | Sequence[str] | None = None,
    starts: npt.ArrayLike | None = None,
    progress: Progress | None = None,
) -> SearchRuns:
    """`searches` searches of one method on `task`, transferring from `sources`."""
    ctx = transfer_context(bench, task, sources)
    if isinstance(method, str):
        found = build_methods(method, ctx.sources)
        if len(found) != 1:
            raise TransferSearchError(
                f"method: {method!r} is {len(found)} methods here; run them one by one"
            )
        method = found[0]
    return run_searches(
        method, ctx, bench.metric(task), task, budget, searches, seed, starts, progress
    )
