"""The target oracle charges distinct evaluations, answers repeats free, and never overspends."""

from __future__ import annotations

import numpy as np
import pytest

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.oracle import (
    BudgetSpentError,
    TargetOracle,
    random_unevaluated,
    resolve_sources,
)
from transfersearch_trainer.search.stats import mean_rank, ranks_among, summarize

TASKS = ("class_object", "class_scene", "jigsaw")


def test_distinct_evaluations_are_charged_once_and_repeats_are_free() -> None:
    oracle = TargetOracle(np.arange(10.0), budget=3)
    assert oracle.evaluate(4) == 4.0
    assert oracle.evaluate(4) == 4.0
    assert oracle.spent == 1
    oracle.evaluate(7)
    oracle.evaluate(1)
    assert oracle.done()
    assert oracle.remaining == 0
    assert oracle.evaluate(7) == 7.0  # a repeat after the budget is spent: still free
    with pytest.raises(BudgetSpentError):
        oracle.evaluate(2)
    np.testing.assert_array_equal(oracle.order, [4, 7, 1])
    np.testing.assert_array_equal(oracle.found, [4.0, 7.0, 1.0])
    assert oracle.best == 7.0
    assert oracle.mask.sum() == 3
    with pytest.raises(ValueError, match="read-only"):
        oracle.mask[0] = True


def test_a_parallel_round_is_charged_in_full_or_not_at_all() -> None:
    oracle = TargetOracle(np.arange(10.0), budget=4)
    np.testing.assert_array_equal(oracle.evaluate_many([2, 3, 2]), [2.0, 3.0, 2.0])
    assert oracle.spent == 2  # the repeat in the batch costs nothing
    with pytest.raises(BudgetSpentError, match="batch of 3"):
        oracle.evaluate_many([5, 6, 3, 8])
    assert oracle.spent == 2  # nothing of the refused batch was charged
    oracle.evaluate_many([5, 3, 6])
    assert oracle.done()


def test_out_of_range_and_bad_budgets() -> None:
    with pytest.raises(ValueError, match="budget"):
        TargetOracle(np.zeros(5), budget=6)
    with pytest.raises(IndexError):
        TargetOracle(np.zeros(5), budget=2).evaluate(5)


def test_random_unevaluated_stays_inside_allowed_until_it_is_exhausted() -> None:
    oracle = TargetOracle(np.zeros(50), budget=50)
    allowed = np.zeros(50, dtype=bool)
    allowed[[3, 9, 27]] = True
    rng = np.random.default_rng(0)
    inside = set()
    for _ in range(3):
        arch = random_unevaluated(oracle, rng, allowed)
        oracle.evaluate(arch)
        inside.add(arch)
    assert inside == {3, 9, 27}
    outside = random_unevaluated(oracle, rng, allowed)  # exhausted: the whole space
    assert not allowed[outside]
    assert not oracle.evaluated(outside)


def test_sources_all_but_target_explicit_and_errors() -> None:
    assert resolve_sources(TASKS, "jigsaw", None) == ("class_object", "class_scene")
    assert resolve_sources(TASKS, "jigsaw", "all-but-target") == ("class_object", "class_scene")
    assert resolve_sources(TASKS, "jigsaw", "class_scene, class_object") == (
        "class_scene",
        "class_object",
    )
    with pytest.raises(TransferSearchError, match=r"^--sources: the target task 'jigsaw'"):
        resolve_sources(TASKS, "jigsaw", "class_scene,jigsaw", field="--sources")
    with pytest.raises(TransferSearchError, match="--sources: unknown task 'imagenet'"):
        resolve_sources(TASKS, "jigsaw", "imagenet", field="--sources")
    with pytest.raises(TransferSearchError, match="not in the loaded benchmark"):
        resolve_sources(TASKS, "jigsaw", "normal")
    with pytest.raises(TransferSearchError, match="twice"):
        resolve_sources(TASKS, "jigsaw", "class_scene,class_scene")


def test_ranks_share_the_better_rank_and_mean_rank() -> None:
    values = np.array([1.0, 3.0, 3.0, 2.0])
    np.testing.assert_array_equal(ranks_among(values, values), [4, 1, 1, 3])
    assert mean_rank(values, np.array([3.0, 2.0])) == 2.0


def test_identical_bests_report_exactly_zero_spread() -> None:
    values = np.linspace(0.0, 1.0, 4096)
    stats = Benchmark(get_space("micro"), ("class_object",), values[None, :], "s").stats(
        "class_object"
    )
    s = summarize(np.full(100, 0.1 + 0.2), stats)  # a value whose sum of copies rounds
    assert s.stderr == 0.0
    assert s.ci95 == 0.0
    assert s.mean == 0.1 + 0.2
