"""The transfer matrix: statistics on hand-checked series, and resuming an interrupted run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import TINY_HP
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.search.similarity import choose_source, spearman
from transfersearch_trainer.search.stats import mean_ci, t95
from transfersearch_trainer.study.analysis import (
    analyse,
    reduction,
    threshold_for,
    time_to_threshold,
)
from transfersearch_trainer.study.matrix import MatrixSettings, load_cells, plan, run_matrix
from transfersearch_trainer.study.report import write_report


def test_mean_and_t_interval_by_hand() -> None:
    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0
    assert half == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-4)  # sd 1, df 2
    assert math.isnan(mean_ci([5.0])[1])
    assert t95(2) == pytest.approx(4.303, abs=5e-4)  # the textbook table's values
    assert t95(11) == pytest.approx(2.201, abs=5e-4)
    assert t95(1000) == pytest.approx(1.962, abs=5e-4)  # towards the normal 1.960


def curve(scores: list[float], step: int = 100) -> list[dict[str, float]]:
    return [
        {
            "updates": i * step,
            "task_evaluations": i * 10,
            "device_seconds": i * 2.0,
            "normalised_regret": 1.0 - s,
            "score": s,
        }
        for i, s in enumerate(scores)
    ]


def test_time_to_threshold_and_reduction_by_hand() -> None:
    scratch = curve([0.0, 0.2, 0.5, 0.8, 0.9, 1.0])
    transfer = curve([0.5, 0.96, 1.0])
    thr = threshold_for(1.0, 0.95)
    assert thr == 0.95
    assert time_to_threshold(scratch, thr, "updates") == 500
    assert time_to_threshold(transfer, thr, "updates") == 100
    assert time_to_threshold(transfer, thr, "device_seconds") == 2.0
    assert reduction(500, 100) == 5.0
    assert reduction(500, 0) == math.inf  # the transferred agent starts above the bar
    assert reduction(500, None) is None  # never reached
    assert time_to_threshold(curve([0.1, 0.2]), thr, "updates") is None
    assert threshold_for(-0.5, 0.95) == -0.5  # a non-positive final score must be matched


def test_spearman_and_source_choice(data_dir: Path) -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [3, 3, 3]) == 0.0
    from transfersearch_trainer.benchmark.loaders import load_benchmark

    bench = load_benchmark(data_dir, "micro")
    choice = choose_source(bench, "class_object", ["autoencoder", "jigsaw"], probe_size=200)
    assert choice.task == "jigsaw"  # rank correlation 0.81 vs 0.42 over the whole table
    assert choice.similarities["jigsaw"] > choice.similarities["autoencoder"]
    with pytest.raises(TransferSearchError, match="candidates"):
        choose_source(bench, "class_object", [])


SMALL = {**TINY_HP, "augment": 0.0}


def settings() -> MatrixSettings:
    return MatrixSettings(
        space="micro",
        tasks=("class_scene", "jigsaw"),
        seeds=1,
        steps=20,
        budgets=(10,),
        caps=(150,),
        honest_steps=20,
        eval_budget=10,
        searches=8,
        probe=20,
        curve_points=2,
        hp=SMALL,
    )


def comparable(cells: dict[str, dict[str, object]]) -> dict[str, object]:
    """What must not depend on an interruption: everything but wall-clock times."""
    out = {}
    for key, r in cells.items():
        curve_ = [(p["updates"], p["task_evaluations"], p["score"]) for p in r["curve"]]  # type: ignore[index,union-attr]
        training = {k: v for k, v in r["training"].items() if "seconds" not in k}  # type: ignore[union-attr]
        out[key] = (r["evals"], curve_, training)
    return out


def test_interrupted_matrix_resumes_to_the_same_results(tmp_path: Path, data_dir: Path) -> None:
    s = settings()
    first, second = plan(s)
    assert len(first) == 4
    assert len(second) == 8
    stop_after_five = lambda: len(load_cells(tmp_path / "a")) >= 5  # noqa: E731
    partial = run_matrix(s, tmp_path / "a", str(data_dir), workers=1, should_stop=stop_after_five)
    assert len(partial) == 5
    assert len(load_cells(tmp_path / "a")) == 5
    resumed = run_matrix(s, tmp_path / "a", str(data_dir), workers=1)
    fresh = run_matrix(s, tmp_path / "b", str(data_dir), workers=1)
    assert len(resumed) == 12
    assert comparable(resumed) == comparable(fresh)
    with pytest.raises(TransferSearchError, match="other settings"):
        run_matrix(MatrixSettings(**{**s.to_dict(), "steps": 30}), tmp_path / "a", str(data_dir))

    from transfersearch_trainer.benchmark.loaders import load_benchmark

    analysis = analyse(resumed, s, load_benchmark(data_dir, "micro"))
    report = write_report(analysis, tmp_path / "a")
    text = report.read_text()
    assert "Pretraining on another task improves final performance" in text
    for name in (
        "matrix.json",
        "pairs.csv",
        "honest.csv",
        "gain_heatmap.png",
        "reduction_heatmap.png",
        "curves_jigsaw.png",
        "honest.png",
    ):
        assert (tmp_path / "a" / name).is_file(), name
    assert analysis["summary"]["targets"] == 2
    assert {h["total"] for h in analysis["summary"]["honest"]} == {10, 160}
