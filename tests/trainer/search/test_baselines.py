"""Baselines on synthetic tables whose right answers are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.baselines import METHODS, default_starts, run_baseline
from transfersearch_trainer.search.stats import summarize

TARGET = (3, 1, 3, 1, 1, 3)


def synthetic(values: np.ndarray, task: str = "class_object") -> Benchmark:
    return Benchmark(get_space("micro"), (task,), values[None, :].astype(np.float64), "synthetic")


def unimodal() -> Benchmark:
    """Metric = -(edges that differ from TARGET): every non-optimal cell has a better neighbour."""
    codes = get_space("micro").codes
    return synthetic(-(codes != np.array(TARGET)).sum(axis=1).astype(float))


def needle() -> Benchmark:
    """All architectures tie except one: only luck finds it."""
    values = np.zeros(4096)
    values[get_space("micro").index(TARGET)] = 1.0
    return synthetic(values)


def test_local_search_climbs_a_unimodal_landscape() -> None:
    # from any start at most 6 moves, each after at most 18 neighbour evaluations
    runs = run_baseline(unimodal(), "class_object", "local", 6 * 18 + 1, 200, seed=0)
    assert (runs.best == 0.0).all()
    # 19 evaluations check all 18 neighbours of the start: an improvement is always found
    short = run_baseline(unimodal(), "class_object", "local", 19, 200, seed=0)
    improvable = short.trajectory[:, 0] < 0
    assert (short.best[improvable] > short.trajectory[improvable, 0]).all()


def test_evolution_solves_a_unimodal_landscape() -> None:
    runs = run_baseline(unimodal(), "class_object", "evolution", 300, 100, seed=0)
    assert summarize(runs.best, unimodal().stats("class_object")).hit_rate >= 0.95
    rand = run_baseline(unimodal(), "class_object", "random", 300, 100, seed=0)
    assert runs.best.mean() > rand.best.mean()


def test_random_search_on_a_needle() -> None:
    bench = needle()
    full = run_baseline(bench, "class_object", "random", 4096, 3, seed=0)
    assert (full.best == 1.0).all()  # exhaustive: always found
    runs = run_baseline(bench, "class_object", "random", 512, 400, seed=1)
    # P(hit) = 512/4096 = 0.125; 400 searches: 6 sigma band is about +-0.1
    assert 0.025 < runs.best.mean() < 0.225


@pytest.mark.parametrize("method", METHODS)
def test_budget_distinct_evaluations_and_starts(method: str) -> None:
    bench = unimodal()
    starts = default_starts(4096, 30, seed=7)
    runs = run_baseline(bench, "class_object", method, 40, 30, seed=7, starts=starts)
    assert runs.evaluated.shape == (30, 40)
    for row in runs.evaluated:
        assert len(set(row.tolist())) == 40  # each distinct architecture charged once
    np.testing.assert_array_equal(runs.evaluated[:, 0], starts)
    assert (np.diff(runs.trajectory, axis=1) >= 0).all()


@pytest.mark.parametrize("method", METHODS)
def test_seeded_and_independent_of_batch_size(method: str, data_dir: Path) -> None:
    bench = load_benchmark(data_dir, "micro")
    a = run_baseline(bench, "jigsaw", method, 25, 20, seed=3)
    b = run_baseline(bench, "jigsaw", method, 25, 20, seed=3)
    np.testing.assert_array_equal(a.evaluated, b.evaluated)
    c = run_baseline(bench, "jigsaw", method, 25, 5, seed=3)
    np.testing.assert_array_equal(a.evaluated[:5], c.evaluated)
    d = run_baseline(bench, "jigsaw", method, 25, 20, seed=4)
    assert not np.array_equal(a.evaluated, d.evaluated)


def test_local_beats_random_on_the_real_benchmark(data_dir: Path) -> None:
    bench = load_benchmark(data_dir, "micro")
    loc = run_baseline(bench, "class_object", "local", 50, 200, seed=0)
    rnd = run_baseline(bench, "class_object", "random", 50, 200, seed=0)
    assert loc.best.mean() > rnd.best.mean()


def test_summary_statistics() -> None:
    stats = synthetic(np.linspace(0.0, 4.0, 4096)).stats("class_object")
    s = summarize(np.array([1.0, 2.0, 3.0, 4.0]), stats)
    assert s.mean == 2.5
    assert s.stderr == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2)
    assert s.regret == pytest.approx(4.0 - 2.5)
    assert s.normalised_regret == pytest.approx(1.5 / 2.0)  # optimum 4, median 2
    assert s.hit_rate == 0.25


def test_bad_arguments() -> None:
    with pytest.raises(TransferSearchError, match="method"):
        run_baseline(unimodal(), "class_object", "bayesian", 10, 1)
    with pytest.raises(TransferSearchError, match="budget"):
        run_baseline(unimodal(), "class_object", "random", 0, 1)
    with pytest.raises(TransferSearchError, match="not in the benchmark"):
        run_baseline(unimodal(), "jigsaw", "random", 10, 1)
