"""Transfer baselines on synthetic tables whose right answers are known by construction,
and what every method owes: the budget, determinism, and no peeking at the target."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import default_starts, run_baseline, run_searches
from transfersearch_trainer.search.bounding_box import box_mask
from transfersearch_trainer.search.oracle import (
    BudgetSpentError,
    SearchContext,
    SearchMethod,
    TargetOracle,
)
from transfersearch_trainer.search.runner import (
    ALL_METHODS,
    build_methods,
    run_method,
    transfer_context,
)
from transfersearch_trainer.search.stats import ranks_among

SPACE = get_space("micro")
N = SPACE.size
TARGET = (3, 1, 3, 1, 1, 3)
FAR = (0, 2, 0, 2, 2, 0)  # differs from TARGET on every edge
TASKS = ("class_object", "class_scene", "jigsaw")
# every method once, source-top-k for one source: the names the parametrised tests run
NAMES = [n for n in ALL_METHODS if n != "source-top-k"] + ["source-top-k"]


def table(*rows: np.ndarray) -> Benchmark:
    """A benchmark whose first row is the target (class_object) and the rest sources."""
    return Benchmark(SPACE, TASKS[: len(rows)], np.stack(rows).astype(np.float64), "synthetic")


def distance_to(arch: tuple[int, ...]) -> np.ndarray:
    return (SPACE.codes != np.array(arch)).sum(axis=1).astype(np.float64)


def values_from_order(order: list[int]) -> np.ndarray:
    """Values whose descending order is `order` (rank r gets N - r)."""
    values = np.empty(N)
    values[np.asarray(order)] = np.arange(N, 0, -1, dtype=np.float64)
    return values


def random_bench(seed: int = 0) -> Benchmark:
    """Three correlated random tasks: what the generic tests run on."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=N)
    return table(*(base + 0.5 * rng.normal(size=N) for _ in TASKS))


def one(name: str, sources: tuple[str, ...]) -> SearchMethod:
    return build_methods(name, sources)[0]


def test_multi_top_k_on_a_target_equal_to_its_sources_finds_the_optimum_first() -> None:
    target = np.random.default_rng(3).normal(size=N)
    bench = table(target, target.copy(), target.copy())
    runs = run_method(bench, "class_object", "multi-top-k", 10, 4)
    assert runs.evaluated[0, 0] == int(np.argmax(target))
    assert (runs.trajectory[:, 0] == target.max()).all()
    np.testing.assert_array_equal(runs.evaluated[0], bench.top_k("class_scene", 10))


def test_multi_top_k_is_the_best_mean_rank_and_zero_shot_buys_coverage() -> None:
    # X is second on both sources; a is first on one and last on the other, b mirrors it.
    x, a, b = SPACE.index((1, 1, 1, 1, 1, 1)), SPACE.index((2, 0, 0, 0, 0, 0)), 7
    rest = [i for i in range(N) if i not in (x, a, b)]
    src_a = values_from_order([a, x, *rest, b])
    src_b = values_from_order([b, x, *rest, a])
    bench = table(np.zeros(N), src_a, src_b)
    multi = run_method(bench, "class_object", "multi-top-k", 5, 1)
    np.testing.assert_array_equal(multi.evaluated[0], [x, *rest[:4]])
    zero = run_method(bench, "class_object", "zero-shot-transfer", 6, 1)
    # X (best mean rank); then a and b, each covering the source the other misses
    # (tied: lower index first); then saturated, it continues in mean-rank order
    np.testing.assert_array_equal(zero.evaluated[0], [x, min(a, b), max(a, b), *rest[:3]])


def test_source_top_k_with_one_source_is_multi_top_k() -> None:
    bench = random_bench()
    top = run_method(bench, "class_object", one("source-top-k", ("jigsaw",)), 20, 2)
    multi = run_method(bench, "class_object", "multi-top-k", 20, 2, sources="jigsaw")
    np.testing.assert_array_equal(top.evaluated, multi.evaluated)
    np.testing.assert_array_equal(top.evaluated[0], bench.top_k("jigsaw", 20))


def test_prior_local_climbs_from_the_sources_best_to_the_optimum() -> None:
    # the prior knows the landscape's shape but points at FAR, the target's worst cell
    prior = -distance_to(TARGET)
    prior[SPACE.index(FAR)] = 1.0
    bench = table(-distance_to(TARGET), prior)
    runs = run_method(bench, "class_object", "prior-local", 7, 1)
    assert runs.evaluated[0, 0] == SPACE.index(FAR)
    # each first-tried neighbour (by the prior) is one edge closer: 6 moves, 6 evaluations
    assert runs.trajectory[0, 5] == -1.0
    assert runs.best[0] == 0.0
    # a prior that points the wrong way locally still climbs a unimodal target
    bench = table(-distance_to(TARGET), distance_to(TARGET))
    runs = run_method(bench, "class_object", "prior-local", 6 * 18 + 1, 1)
    assert distance_to(TARGET)[runs.evaluated[0, 0]] == 6  # it starts at a worst cell
    assert runs.best[0] == 0.0


def test_prior_local_restarts_at_the_next_best_unevaluated_of_the_order() -> None:
    source = np.random.default_rng(5).normal(size=N)
    bench = table(np.zeros(N), source)  # a flat target: every cell is a local optimum
    runs = run_method(bench, "class_object", "prior-local", 25, 1)
    ctx = transfer_context(bench, "class_object")
    first = int(ctx.order[0])
    nbs = SPACE.neighbours(first)
    nbs = nbs[np.argsort(ctx.position[nbs], kind="stable")]
    np.testing.assert_array_equal(runs.evaluated[0, :19], [first, *nbs])
    seen = set(runs.evaluated[0, :19].tolist())
    assert runs.evaluated[0, 19] == next(int(i) for i in ctx.order if int(i) not in seen)


def test_bounding_box_stays_in_the_sources_top_ops_then_spills_over() -> None:
    best_a, best_b = (0, 1, 2, 3, 0, 1), (1, 2, 3, 0, 1, 2)
    bench = table(
        -distance_to(TARGET), -distance_to(best_a), -distance_to(best_b)
    )  # box: two ops per edge, 64 cells; the target optimum lies outside it
    ctx = transfer_context(bench, "class_object")
    inside = box_mask(ctx, 1)
    assert inside.sum() == 64
    allowed = [{best_a[p], best_b[p]} for p in range(6)]
    runs = run_method(bench, "class_object", "bounding-box", 40, 30, seed=2)
    for arch in runs.evaluated.ravel():
        assert all(int(op) in allowed[p] for p, op in enumerate(SPACE.codes[arch]))
    full = run_method(bench, "class_object", "bounding-box", 80, 5, seed=2)
    for row in full.evaluated:
        assert inside[row[:64]].all()
        assert not inside[row[64:]].any()


def test_surrogate_exploits_a_source_equal_to_the_target() -> None:
    target = np.random.default_rng(1).permutation(N).astype(np.float64)
    bench = table(target, target.copy())
    runs = run_method(bench, "class_object", "surrogate", 20, 30, seed=0)
    rand = run_method(bench, "class_object", "random", 20, 30, seed=0)
    np.testing.assert_array_equal(runs.evaluated[:, 0], default_starts(N, 30, 0))
    ranks = ranks_among(target, runs.best)
    assert ranks.max() <= 41  # top 1% in every search after 10 model-led evaluations
    assert np.median(ranks_among(target, rand.best)) > 100


@pytest.mark.parametrize("name", NAMES)
def test_budget_is_never_exceeded_and_fully_spent(name: str) -> None:
    bench = random_bench()
    ctx = transfer_context(bench, "class_object")
    method = one(name, ctx.sources)
    runs = run_searches(method, ctx, bench.metric("class_object"), "class_object", 37, 12, seed=1)
    assert runs.evaluated.shape == (12, 37)
    for row in runs.evaluated:
        assert len(set(row.tolist())) == 37  # each distinct architecture charged once
    assert (np.diff(runs.trajectory, axis=1) >= 0).all()
    values = bench.metric("class_object")
    np.testing.assert_array_equal(runs.trajectory, np.maximum.accumulate(values[runs.evaluated], 1))


@dataclass(frozen=True)
class Greedy:
    """A method that asks for one parallel round more than its budget."""

    name: str = "greedy"
    seed_key: int = 99
    deterministic: bool = True
    uses_start: bool = False
    extra: int = 1

    def search(
        self, ctx: SearchContext, oracle: TargetOracle, start: int, rng: np.random.Generator
    ) -> None:
        oracle.evaluate_many(range(oracle.budget + self.extra))


def test_overspending_and_underspending_methods_fail_loudly() -> None:
    bench = random_bench()
    ctx = transfer_context(bench, "class_object")
    values = bench.metric("class_object")
    with pytest.raises(BudgetSpentError):
        run_searches(Greedy(), ctx, values, "class_object", 10, 2)
    with pytest.raises(RuntimeError, match="spent 5 of 10"):
        run_searches(Greedy(extra=-5), ctx, values, "class_object", 10, 2)


@pytest.mark.parametrize("name", NAMES)
def test_seeded_and_independent_of_batch_size(name: str) -> None:
    bench = random_bench(1)
    ctx = transfer_context(bench, "class_object")
    method = one(name, ctx.sources)
    values = bench.metric("class_object")

    def go(searches: int, seed: int) -> np.ndarray:
        return run_searches(method, ctx, values, "class_object", 25, searches, seed).evaluated

    a = go(12, 3)
    np.testing.assert_array_equal(a, go(12, 3))
    np.testing.assert_array_equal(a[:4], go(4, 3))
    if method.deterministic:
        assert (a == a[0]).all()
        np.testing.assert_array_equal(a, go(12, 4))
    else:
        assert not np.array_equal(a, go(12, 4))


@pytest.mark.parametrize("name", NAMES)
def test_no_method_reads_an_unevaluated_target_entry(name: str, data_dir: Path) -> None:
    """Searches on a target that is NaN wherever the first run did not evaluate are
    identical: the unevaluated entries played no part in any decision."""
    bench = load_benchmark(data_dir, "micro")
    ctx = transfer_context(bench, "jigsaw")
    method = one(name, ctx.sources)
    values = bench.metric("jigsaw")
    first = run_searches(method, ctx, values, "jigsaw", 30, 8, seed=4)
    hidden = np.full(N, np.nan)
    seen = np.unique(first.evaluated)
    hidden[seen] = values[seen]
    assert np.isnan(hidden).sum() >= N - 8 * 30
    second = run_searches(method, ctx, hidden, "jigsaw", 30, 8, seed=4)
    np.testing.assert_array_equal(first.evaluated, second.evaluated)
    np.testing.assert_array_equal(first.trajectory, second.trajectory)


def test_transfer_methods_need_sources_and_a_target_is_never_one() -> None:
    bench = table(np.zeros(N))
    with pytest.raises(TransferSearchError, match="multi-top-k: needs at least one source"):
        run_method(bench, "class_object", "multi-top-k", 5, 1)
    with pytest.raises(TransferSearchError, match="cannot be a source"):
        SearchContext.from_benchmark(random_bench(), "jigsaw", ("jigsaw",))
    with pytest.raises(TransferSearchError, match="unknown 'bayes'"):
        build_methods("bayes", ())
    assert [m.name for m in build_methods("source-top-k", ("jigsaw", "normal"))] == [
        "source-top-k:jigsaw",
        "source-top-k:normal",
    ]


@pytest.mark.parametrize(
    ("method", "head", "total"),
    [
        ("random", [3323, 1867, 1858, 2160, 527, 978], 254738),
        ("local", [3323, 3320, 3316, 1272, 3128, 3304], 230093),
        ("evolution", [3323, 3857, 1362, 2266, 2738, 2591], 289412),
    ],
)
def test_classic_baselines_are_unchanged_by_the_oracle(
    method: str, head: list[int], total: int, data_dir: Path
) -> None:
    """The numbers the classic baselines gave when they still read the target column."""
    runs = run_baseline(load_benchmark(data_dir, "micro"), "jigsaw", method, 25, 5, seed=3)
    assert runs.evaluated[0, :6].tolist() == head
    assert int(runs.evaluated.sum()) == total
