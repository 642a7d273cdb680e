"""The paper-protocol study: its cells, shaping, resume, report, and the claims' arithmetic.

The study runs on the synthetic micro table of `test_loto` (every task rewards matching
its own architecture) with class_object and segmentsemantic, so the shaped task is in it.
The claims are checked on crafted cell records whose answer is known.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import TINY_HP, hp_flags
from tests.trainer.study.test_loto import write_synthetic
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.shaping import shaped_benchmark
from transfersearch_trainer.study.matrix import Cell
from transfersearch_trainer.study.paper import PaperSettings, agent_dir, plan, run_paper
from transfersearch_trainer.study.paper_analysis import analyse, difference_ci, time_to_reach
from transfersearch_trainer.study.paper_report import write_report

TASKS = ("class_object", "segmentsemantic")
HP = {k: v for k, v in TINY_HP.items() if getattr(Hyperparameters(), k) != v}  # as --hp keeps
SETTINGS = PaperSettings(
    space="micro", tasks=TASKS, seeds=2, updates=40, eval_budget=8, searches=4, hp=HP
)
WALL_CLOCK = {"seconds", "device_seconds", "gpu_seconds", "wall_seconds"}


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("paper") / "tnb101_micro_final_valid.csv")


@pytest.fixture(scope="module")
def whole(synthetic_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("whole")
    run_paper(SETTINGS, out, str(synthetic_csv))
    return out


def results(x: Any) -> Any:
    """A record without its wall-clock fields (the same study's results must match)."""
    if isinstance(x, dict):
        return {k: results(v) for k, v in x.items() if k not in WALL_CLOCK}
    if isinstance(x, list):
        return [results(v) for v in x]
    return x


def test_plan_has_scratch_then_every_pair_and_regime() -> None:
    scratch, transfer = plan(SETTINGS)
    assert [c.id for c in scratch] == [
        "scratch/class_object/s0",
        "scratch/class_object/s1",
        "scratch/segmentsemantic/s0",
        "scratch/segmentsemantic/s1",
    ]
    ids = {c.id for c in transfer}
    assert len(transfer) == len(ids) == 2 * 3 * 2  # pairs x regimes x seeds
    assert "transfer/segmentsemantic/class_object/zero-shot/s1" in ids
    assert "transfer/class_object/segmentsemantic/retrain/s0" in ids
    assert [SETTINGS.steps(r) for r in ("scratch", "zero-shot", "finetune", "retrain")] == [
        40,
        0,
        4,
        40,
    ]
    assert PaperSettings(space="micro").tasks == (
        "class_object",
        "room_layout",
        "autoencoder",
        "segmentsemantic",
    )
    with pytest.raises(TransferSearchError, match="--finetune-fraction: must be positive"):
        PaperSettings(space="micro", finetune_fraction=0)
    with pytest.raises(TransferSearchError, match="--tasks: a task is listed twice"):
        PaperSettings(space="micro", tasks=("jigsaw", "jigsaw"))


def test_shaping_bends_only_the_segmentation_table(synthetic_csv: Path) -> None:
    bench = load_benchmark(str(synthetic_csv), "micro")
    before = bench.values.copy()
    shaped = shaped_benchmark(bench, "segmentsemantic", 0.478)
    raw = bench.metric("segmentsemantic")
    expected = ((raw - raw.min()) / (raw.max() - raw.min())) ** 0.478
    np.testing.assert_allclose(shaped.metric("segmentsemantic"), expected)
    for t in bench.tasks:
        if t != "segmentsemantic":
            np.testing.assert_array_equal(shaped.metric(t), bench.metric(t))
    np.testing.assert_array_equal(bench.values, before)  # a copy: the raw table is untouched
    assert (
        shaped.stats("segmentsemantic").optimum_index
        == bench.stats("segmentsemantic").optimum_index
    )
    with pytest.raises(TransferSearchError, match="--segmentation-power: must be positive"):
        shaped_benchmark(bench, "segmentsemantic", 0.0)
    assert SETTINGS.shaping("class_object") is None
    assert PaperSettings(space="micro", segmentation_power=1.0).shaping("segmentsemantic") is None


def test_interrupted_study_resumes_to_the_same_results(synthetic_csv: Path, whole: Path) -> None:
    data = str(synthetic_csv)
    assert json.loads((whole / "settings.json").read_text())["schema"] == "transfersearch-paper/1"
    done = run_paper(SETTINGS, whole, data)  # finished: loads, runs nothing
    part = whole.parent / "part"
    stopped = run_paper(
        SETTINGS, part, data, should_stop=lambda: len(list(part.glob("cells/*"))) >= 6
    )
    assert 0 < len(stopped) < len(done)
    # ... and as if killed mid-way: a source agent's cell and its folder are lost
    (part / "cells" / "scratch__segmentsemantic__s1.json").unlink()
    shutil.rmtree(agent_dir(part, "segmentsemantic", 1))
    resumed = run_paper(SETTINGS, part, data)
    assert results(resumed) == results(done)

    seg = done["scratch/segmentsemantic/s0"]
    assert seg["shaping"] == {
        "task": "segmentsemantic",
        "power": 0.478,
        "rule": seg["shaping"]["rule"],
    }
    assert done["scratch/class_object/s0"]["shaping"] is None
    into_seg = done["transfer/class_object/segmentsemantic/finetune/s0"]
    assert into_seg["shaping"]["task"] == "segmentsemantic"
    assert into_seg["source"]["shaping"] is None
    from_seg = done["transfer/segmentsemantic/class_object/retrain/s1"]
    assert from_seg["shaping"] is None
    assert from_seg["source"]["shaping"]["power"] == 0.478
    raw = load_benchmark(data, "micro").stats("segmentsemantic")
    assert seg["final"]["metric"] > 1.0  # scored on the raw table (shaped values are <= 1)
    assert seg["final"]["score"] == pytest.approx(
        1 - (raw.optimum - seg["final"]["metric"]) / raw.scale
    )
    zero = done["transfer/class_object/segmentsemantic/zero-shot/s1"]
    assert [p["updates"] for p in zero["curve"]] == [0]
    assert zero["training"]["updates"] == 0
    fine = done["transfer/class_object/segmentsemantic/finetune/s1"]
    assert fine["curve"][-1]["updates"] == 4
    assert fine["curve"][0]["updates"] == 0
    assert fine["curve"][0]["score"] == zero["curve"][0]["score"]  # same agent before training
    assert all(p["seconds"] <= p["device_seconds"] for p in seg["curve"])
    with pytest.raises(TransferSearchError, match="other settings"):
        run_paper(PaperSettings(space="micro", tasks=TASKS, seeds=1), part, data)


def test_report_has_the_matrices_and_the_claims(synthetic_csv: Path, whole: Path) -> None:
    env = {**os.environ, "COLUMNS": "160"}
    exe = str(Path(sys.executable).parent / "transfersearch")
    args = ["study", "paper", "--out", str(whole), "--tasks", ",".join(TASKS), "--seeds", "2"]
    args += [
        "--updates",
        "40",
        "--eval-budget",
        "8",
        "--searches",
        "4",
        "--data",
        str(synthetic_csv),
    ]
    cli = subprocess.run(
        [exe, *args, *hp_flags(HP)], capture_output=True, text=True, env=env, timeout=120
    )
    assert cli.returncode == 0, cli.stderr
    md = (whole / "report.md").read_text()
    assert "## The paper's two claims" in cli.stdout
    assert "report: " in cli.stdout
    for heading in (
        "## Final performance",
        "## Gain over scratch",
        "## Time to reach the reference",
    ):
        assert heading in md
    assert md.count("| source \\ target | class_object | segmentsemantic |") == 4 * 3
    assert "*Pretraining helps final performance in all but one target*: **" in md
    assert "*Training time is shortened significantly*: **" in md
    summary = json.loads((whole / "summary.json").read_text())  # strict JSON: no NaN or Infinity
    assert len(summary["pairs"]) == 2 * 3
    assert set(summary["claims"]) == {"final", "time"}
    for name in (
        "final_score.png",
        "gain.png",
        "time_to_reference.png",
        "curves_segmentsemantic.png",
    ):
        assert (whole / name).stat().st_size > 1000


def crafted(improve: set[str], fast: set[str]) -> dict[str, dict[str, Any]]:
    """Cells of three tasks and three seeds: scratch ends at 0.5 after 300 updates on every
    target; pretrained agents beat it (+0.1) into `improve` and reach 0.5 after 10 updates
    (fine-tune) into `fast`, else after all 300 (re-train) or never (zero-shot)."""
    tasks = ("class_object", "jigsaw", "autoencoder")
    cells: dict[str, dict[str, Any]] = {}

    def add(cell: Cell, scores: list[float], step: int) -> None:
        curve = [
            {"updates": i * step, "queries": 50 * i, "seconds": 0.1 * i, "score": v, "metric": v}
            for i, v in enumerate(scores)
        ]
        final = {"score": scores[-1], "metric": scores[-1]}
        cells[cell.id] = {"cell": asdict(cell), "steps": step * (len(scores) - 1), "curve": curve}
        cells[cell.id].update(final=final, shaping=None)

    for t in tasks:
        for k, jitter in enumerate((-0.01, 0.0, 0.01)):
            add(Cell("scratch", t, k), [0.0, 0.2, 0.4, 0.5 + jitter], 100)
            for src in tasks:
                if src == t:
                    continue
                gain = 0.1 if t in improve else 0.0
                add(Cell("transfer", t, k, src, "zero-shot"), [0.3], 0)
                if t in fast:
                    add(
                        Cell("transfer", t, k, src, "finetune"),
                        [0.3, 0.55, 0.5 + gain + jitter],
                        10,
                    )
                else:
                    add(Cell("transfer", t, k, src, "finetune"), [0.3, 0.35, 0.4 + jitter], 10)
                add(
                    Cell("transfer", t, k, src, "retrain"),
                    [0.3, 0.4, 0.45, 0.5 + gain + jitter],
                    100,
                )
    return cells


@pytest.mark.parametrize(
    ("improve", "fast", "final_holds", "time_holds"),
    [
        (
            {"class_object", "jigsaw", "autoencoder"},
            {"class_object", "jigsaw", "autoencoder"},
            True,
            True,
        ),
        ({"class_object", "jigsaw"}, {"class_object", "jigsaw"}, True, True),  # all but one
        ({"class_object"}, {"class_object"}, False, False),
        (set(), set(), False, False),
    ],
)
def test_claims_are_computed_from_the_numbers(
    improve: set[str], fast: set[str], final_holds: bool, time_holds: bool, tmp_path: Path
) -> None:
    s = PaperSettings(space="micro", tasks=("class_object", "jigsaw", "autoencoder"), seeds=3)
    a = analyse(crafted(improve, fast), s)
    c1, c2 = a["claims"]["final"], a["claims"]["time"]
    assert (c1["holds"], c1["improved_beyond_ci"]) == (final_holds, len(improve))
    assert (c2["holds"], c2["shortened"], c2["pairs"]) == (time_holds, 2 * len(fast), 6)
    assert a["scratch"]["jigsaw"]["reference"] == pytest.approx(0.5)
    assert a["scratch"]["jigsaw"]["time"] == {
        "updates": 300.0,
        "queries": 150.0,
        "seconds": pytest.approx(0.3),
    }
    pair = {(p["source"], p["target"], p["regime"]): p for p in a["pairs"]}
    zero = pair[("jigsaw", "class_object", "zero-shot")]
    assert zero["time"] is None
    assert zero["speedup"]["updates"] is None
    retrain = pair[("jigsaw", "autoencoder", "retrain")]
    assert retrain["time"] == {"updates": 300.0, "queries": 150.0, "seconds": pytest.approx(0.3)}
    assert retrain["speedup"]["updates"] == pytest.approx(1.0)
    if "class_object" in fast:
        fine = pair[("jigsaw", "class_object", "finetune")]
        assert fine["speedup"]["updates"] == pytest.approx(30.0)  # 300 updates vs 10
        assert fine["gain"][0] == pytest.approx(0.1)
        assert fine["beyond_ci"]
    md = write_report(a, tmp_path).read_text()
    verdict = "**holds here**" if final_holds else "**does not hold here**"
    assert f"*Pretraining helps final performance in all but one target*: {verdict}" in md
    assert "not reached" in md
    json.loads((tmp_path / "summary.json").read_text())


def test_time_and_interval_rules() -> None:
    curve = [
        {"updates": 0, "queries": 63, "seconds": 1e-5, "score": 0.4},
        {"updates": 30, "queries": 700, "seconds": 0.5, "score": 0.6},
        {"updates": 60, "queries": 900, "seconds": 1.0, "score": 0.7},
    ]
    assert time_to_reach(curve, 0.55) == {"updates": 30.0, "queries": 700.0, "seconds": 0.5}
    assert time_to_reach(curve, 0.4) == {"updates": 0.0, "queries": 0.0, "seconds": 0.0}  # as is
    assert time_to_reach(curve, 0.71) is None
    d, half = difference_ci([1.0, 2.0, 3.0], [0.0, 0.0, 0.0, 0.0])
    assert d == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 * 1 / math.sqrt(3), rel=1e-5)  # df 2: only a varies
    assert math.isnan(difference_ci([1.0], [0.0, 1.0])[1])
