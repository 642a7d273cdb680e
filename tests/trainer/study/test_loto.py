"""The leave-one-task-out study: cells, resume, and the summary's contract (summary.csv)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.conftest import TINY_HP
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.study.loto import LotoSettings, load_cells, plan, run_loto
from transfersearch_trainer.study.loto_report import (
    COLUMNS,
    average_ranks,
    summarize_study,
    versus,
    write_summary,
)

SETTINGS = LotoSettings(
    space="micro",
    targets=("jigsaw",),
    seeds=2,
    budgets=(6, 12),
    searches=2,
    updates=12,
    hp={**TINY_HP, "eval_interval": 0},
)


def test_plan_pretrains_one_agent_per_target_and_seed() -> None:
    agents, searches = plan(SETTINGS)
    assert [c.id for c in agents] == ["agent/jigsaw/s0", "agent/jigsaw/s1"]
    assert len(searches) == 3 * 2 * 2  # modes x budgets x seeds
    assert "search/jigsaw/scratch/b12/s1" in {c.id for c in searches}
    with pytest.raises(TransferSearchError, match="--modes: unknown finetune"):
        LotoSettings(space="micro", targets=("jigsaw",), modes=("finetune",))


def test_study_resumes_and_writes_the_summary_contract(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "loto"
    cells = run_loto(SETTINGS, out, str(data_dir))
    assert len(cells) == 2 + 12
    agent = cells["agent/jigsaw/s0"]
    assert "jigsaw" not in agent["sources"]
    assert len(agent["sources"]) == 6
    for rec in cells.values():
        for r in rec.get("runs", []):
            assert len(r["best"]) == rec["budget"]  # every evaluation paid, none more
    before = {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()}
    again = run_loto(SETTINGS, out, str(data_dir))  # nothing left to do: same cells, untouched
    assert again == cells
    assert {p.name: p.stat().st_mtime_ns for p in (out / "cells").iterdir()} == before
    with pytest.raises(TransferSearchError, match="other settings"):
        run_loto(LotoSettings(space="micro", targets=("jigsaw",), seeds=1), out, str(data_dir))

    bench = load_benchmark(str(data_dir), "micro")
    rows = summarize_study(load_cells(out), SETTINGS, bench)
    write_summary(rows, SETTINGS, out)
    with (out / "summary.csv").open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        table = list(reader)
    methods = {r["method"] for r in table}
    assert {"agent-online", "agent-zero-shot", "agent-scratch", "multi-top-k", "random"} <= methods
    optimum = float(bench.metric("jigsaw").max())
    for r in table:
        assert float(r["regret"]) == pytest.approx(optimum - float(r["mean"]))
        assert float(r["mean_rank"]) >= 1
    online = [r for r in table if r["method"] == "agent-online"]
    assert {int(r["n"]) for r in online} == {2}  # over pretraining seeds
    ranks = average_ranks(rows, 12)
    assert set(ranks) == methods
    assert min(ranks.values()) >= 1
    wtl = versus(rows, "agent-online", 12)
    assert all(sum(v) == 1 for v in wtl.values())  # one target: one win, tie or loss each
    assert "## Budget 12" in (out / "summary.md").read_text()
    assert json.loads((out / "summary.json").read_text())["settings"]["seeds"] == 2
