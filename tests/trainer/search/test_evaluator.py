"""Every method goes through an `Evaluator`: the same searches whichever one stands behind."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.search.baselines import run_searches
from transfersearch_trainer.search.evaluator import Evaluation, Ledger, TableEvaluator
from transfersearch_trainer.search.oracle import BudgetSpentError, SearchContext, TargetOracle
from transfersearch_trainer.search.runner import build_methods


class CountingEvaluator:
    """A table answered in rounds, each answer costing a second: records every round asked."""

    def __init__(self, values: np.ndarray) -> None:
        self.space = get_space("micro")
        self.values = values
        self.rounds: list[list[int]] = []

    @property
    def description(self) -> str:
        return "counting"

    def evaluate(self, archs: Sequence[int]) -> list[Evaluation]:
        self.rounds.append(list(archs))
        return [Evaluation(float(self.values[a]), 1.0, 0.25) for a in archs]


@pytest.fixture
def values() -> np.ndarray:
    return np.random.default_rng(3).random(get_space("micro").size)


def test_oracle_asks_the_evaluator_once_per_new_architecture_and_books_the_cost(
    values: np.ndarray,
) -> None:
    ev = CountingEvaluator(values)
    oracle = TargetOracle.of(ev, budget=4)
    assert oracle.evaluate(7) == pytest.approx(values[7])
    assert oracle.evaluate(7) == pytest.approx(values[7])  # a repeat: free, not asked again
    got = oracle.evaluate_many([7, 9, 11])
    assert got.tolist() == pytest.approx(values[[7, 9, 11]].tolist())
    assert ev.rounds == [[7], [9, 11]]  # one parallel round for the batch's new ones
    assert oracle.ledger.evaluations == 3
    assert oracle.ledger.device_seconds == pytest.approx(3.0)
    assert oracle.ledger.gpu_seconds == pytest.approx(0.75)
    with pytest.raises(BudgetSpentError, match="exceeds the 1 left"):
        oracle.evaluate_many([1, 2])
    assert len(ev.rounds) == 2  # refused before anything was asked


@pytest.mark.parametrize("method", ["random", "local", "evolution", "multi-top-k", "surrogate"])
def test_a_method_searches_the_same_through_any_evaluator(values: np.ndarray, method: str) -> None:
    space = get_space("micro")
    sources = np.random.default_rng(4).random((2, space.size))
    ctx = SearchContext(space, ("class_scene", "jigsaw"), sources)
    [m] = build_methods(method, ctx.sources)
    table = run_searches(m, ctx, values, "t", 20, 3, seed=5)
    ev = CountingEvaluator(values)
    through = run_searches(m, ctx, ev, "t", 20, 3, seed=5)
    assert np.array_equal(table.evaluated, through.evaluated)
    assert np.array_equal(table.trajectory, through.trajectory)
    assert table.ledgers is None
    assert through.ledgers is not None
    assert [led.evaluations for led in through.ledgers] == [20, 20, 20]
    asked = sum(len(r) for r in ev.rounds)
    assert asked == (20 if m.deterministic else 60)  # a deterministic method is paid once


def test_table_evaluator_charges_its_nominal_cost_and_cached_answers_cost_nothing() -> None:
    space = get_space("micro")
    ev = TableEvaluator(space, np.arange(space.size, dtype=float), "jigsaw", nominal_seconds=2.0)
    assert ev.description == "table:jigsaw"
    ledger = Ledger()
    seen: list[float] = []
    ledger.listeners.append(lambda e: seen.append(e.metric))
    ledger.add(ev.evaluate([3, 4]))
    ledger.add([Evaluation(9.0, 5.0, 1.0, cached=True)])
    assert seen == [3.0, 4.0, 9.0]
    assert (ledger.trained, ledger.device_seconds, ledger.cost_seconds) == (2, 4.0, 9.0)
    assert ledger.to_dict()["cached"] == 1
