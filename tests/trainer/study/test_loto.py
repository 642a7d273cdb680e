"""The leave-one-task-out study: cells, resume, and the summary's contract (summary.csv).

Most of it runs on a tiny synthetic benchmark written as a real table file (every task's
value counts the positions that match a task-specific architecture, so tasks are related
the way the benchmark's are), with three tasks in the study.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_HP, hp_flags
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import TASKS
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.study.loto import LotoSettings, best_curve, load_cells, plan, run_loto
from transfersearch_trainer.study.loto_plots import plot_study
from transfersearch_trainer.study.loto_report import (
    COLUMNS,
    average_ranks,
    roi,
    summarize_study,
    versus,
    write_summary,
)

STUDY_TASKS = ("class_object", "jigsaw", "autoencoder")
SETTINGS = LotoSettings(
    space="micro",
    targets=("class_object", "jigsaw"),
    seeds=2,
    budgets=(6, 12),
    searches=2,
    updates=12,
    hp={**TINY_HP, "eval_interval": 0},
    source_searches=1,
    all_tasks=True,
    tasks=STUDY_TASKS,
)


def write_synthetic(path: Path) -> Path:
    """A micro table in NASLib's CSV layout; task t rewards matching architecture t."""
    space = get_space("micro")
    rng = np.random.default_rng(7)
    best = [space.codes[i] for i in rng.choice(space.size, size=len(TASKS), replace=False)]
    shared = space.codes[0]
    lines = ["arch_str," + ",".join(TASKS)]
    for i in range(space.size):
        codes = space.codes[i]
        vals = [
            float((codes == best[t]).sum() + 0.7 * (codes == shared).sum() + 0.01 * rng.random())
            for t in range(len(TASKS))
        ]
        lines.append(space.arch_str(i) + "," + ",".join(f"{v:.5f}" for v in vals))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def synthetic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic(tmp_path_factory.mktemp("synthetic") / "tnb101_micro_final_valid.csv")


def test_plan_covers_every_agent_of_the_study() -> None:
    agents, searches = plan(SETTINGS, TASKS)
    ids = [c.id for c in agents]
    assert ids[:4] == [
        "agent/class_object/s0",
        "agent/class_object/s1",
        "agent/jigsaw/s0",
        "agent/jigsaw/s1",
    ]
    assert {"agent/all_tasks/s0", "agent/all_tasks/s1"} <= set(ids)
    assert {f"source/{t}/s1" for t in STUDY_TASKS} <= set(ids)  # only the study's tasks
    assert not any("normal" in i for i in ids)
    search_ids = {c.id for c in searches}
    assert "search/jigsaw/scratch/b12/s1" in search_ids
    assert "search/jigsaw/source:autoencoder/b6/s0" in search_ids
    assert "search/jigsaw/source:jigsaw/b6/s0" not in search_ids  # never its own source
    # per target: 3 modes + 2 single sources, x 2 budgets x 2 seeds
    assert len(searches) == 2 * (3 + 2) * 2 * 2
    with pytest.raises(TransferSearchError, match="--modes: unknown finetune"):
        LotoSettings(space="micro", targets=("jigsaw",), modes=("finetune",))
    with pytest.raises(TransferSearchError, match="--targets: normal not in --tasks"):
        LotoSettings(space="micro", targets=("normal",), tasks=STUDY_TASKS)


def test_interrupted_study_resumes_to_the_same_results(tmp_path: Path, synthetic_csv: Path) -> None:
    data = str(synthetic_csv)
    whole = run_loto(SETTINGS, tmp_path / "whole", data)
    part = tmp_path / "part"
    run_loto(SETTINGS, part, data, pretrain_only=True)  # stopped after pretraining...
    cells_dir = part / "cells"
    assert all(not p.name.startswith("search") for p in cells_dir.iterdir())
    # ... and as if killed mid-way: one agent's cell and its folder are lost
    (cells_dir / "agent__jigsaw__s1.json").unlink()
    shutil.rmtree(part / "agents" / "jigsaw" / "s1")
    resumed = run_loto(SETTINGS, part, data)

    def results(cells: dict[str, dict[str, object]]) -> dict[str, object]:
        drop = {"seconds", "device_seconds"}  # wall-clock, not results
        out = {}
        for k, rec in cells.items():
            runs = rec.get("runs")
            out[k] = (
                [{x: v for x, v in r.items() if x not in drop} for r in runs]  # type: ignore[union-attr]
                if runs
                else {x: v for x, v in rec.items() if x not in drop}
            )
        return out

    assert results(resumed) == results(whole)
    agent = whole["agent/jigsaw/s0"]
    assert agent["sources"] == ["class_object", "autoencoder"]  # the study's tasks but the target
    assert whole["agent/all_tasks/s0"]["sources"] == list(STUDY_TASKS)
    assert whole["source/autoencoder/s0"]["sources"] == ["autoencoder"]
    for rec in whole.values():
        for r in rec.get("runs", []):
            assert r["evaluations"] == rec["budget"]  # every evaluation paid, none more
            curve = best_curve(r, rec["budget"])
            assert curve[-1] == r["best_metric"]
            assert curve == sorted(curve)  # best so far never drops
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "whole" / "cells").iterdir()}
    again = run_loto(SETTINGS, tmp_path / "whole", data)  # nothing left: same cells, untouched
    assert again == whole
    assert {
        p.name: p.stat().st_mtime_ns for p in (tmp_path / "whole" / "cells").iterdir()
    } == before
    with pytest.raises(TransferSearchError, match="other settings"):
        run_loto(LotoSettings(space="micro", targets=("jigsaw",), seeds=1), part, data)

    # A fresh checkout holds only what is committed: settings.json and the pack. Half of the
    # searches lost too, so some agents must be pretrained again, to the same digests.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copy(tmp_path / "whole" / "settings.json", fresh)
    lines = gzip.decompress((tmp_path / "whole" / "cells.jsonl.gz").read_bytes()).decode()
    lines = lines.splitlines()
    assert len(lines) == len(whole)
    kept = [ln for ln in lines if '"search/jigsaw/' not in ln]
    (fresh / "cells.jsonl.gz").write_bytes(gzip.compress(("\n".join(kept) + "\n").encode()))
    revived = run_loto(SETTINGS, fresh, data)
    assert results(revived) == results(whole)
    pretrained_again = {
        p.name for p in (fresh / "cells").iterdir() if not p.name.startswith("search")
    }
    # jigsaw's own agents and the single-source agents that search jigsaw, nothing else
    assert pretrained_again == {
        f"{kind}__{task}__s{seed}.json"
        for kind, task in (
            ("agent", "jigsaw"),
            ("source", "class_object"),
            ("source", "autoencoder"),
        )
        for seed in (0, 1)
    }
    assert not any("reproduced" in rec for rec in revived.values())

    bench = load_benchmark(data, "micro")
    out = tmp_path / "whole"
    rows = summarize_study(load_cells(out), SETTINGS, bench)
    write_summary(rows, SETTINGS, out)
    with (out / "summary.csv").open() as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        table = list(reader)
    methods = {r["method"] for r in table}
    assert {
        "agent-online",
        "agent-zero-shot",
        "agent-scratch",
        "agent-source:autoencoder",
        "multi-top-k",
        "random",
    } <= methods
    for r in table:
        optimum = float(bench.metric(r["target"]).max())
        assert float(r["regret"]) == pytest.approx(optimum - float(r["mean"]))
        assert float(r["mean_rank"]) >= 1
    online = [r for r in table if r["method"] == "agent-online"]
    assert {int(r["n"]) for r in online} == {2}  # over pretraining seeds
    ranks = average_ranks(rows, 12)
    assert set(ranks) == {m for m in methods if not m.startswith("agent-source:")}
    assert min(ranks.values()) >= 1
    wtl = versus(rows, "agent-online", 12)
    assert all(sum(v) == 2 for v in wtl.values())  # two targets: a win, tie or loss each
    for r in roi(rows, 12):
        assert r["evaluations"] is None or 1 <= r["evaluations"] <= 12
        assert r["saved"] is None or r["saved"] == 12 - r["evaluations"]
    md = (out / "summary.md").read_text()
    assert "## Budget 12" in md
    assert "## Single-source agents" in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["seeds"] == 2
    assert summary["roi"]
    names = {p.name for p in plot_study(rows, SETTINGS, out)}
    assert names == {"curves-b12.png", "wins.png", "avg-rank.png"}
    assert all((out / n).stat().st_size > 1000 for n in names)


def test_the_command_pretrains_then_searches_and_plots(tmp_path: Path, synthetic_csv: Path) -> None:
    """`study loto` end to end as a user runs it: first --pretrain-only, then the rest."""
    exe = str(Path(sys.executable).with_name("transfersearch"))
    env = dict(os.environ, COLUMNS="200")
    out = tmp_path / "study"
    hp = hp_flags({**TINY_HP, "eval_interval": 0})
    common = [exe, "study", "loto", "--space", "micro", "--data", str(synthetic_csv)]
    flags = ["--tasks", "jigsaw,autoencoder", "--seeds", "1", "--budgets", "6", "--searches", "1"]
    flags += ["--updates", "8", "--out", str(out), *hp]
    first = subprocess.run(
        [*common, *flags, "--pretrain-only"], capture_output=True, text=True, env=env
    )
    assert first.returncode == 0, first.stderr
    assert "agents under" in first.stdout
    assert not list((out / "cells").glob("search__*"))
    done = subprocess.run([*common, *flags], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "## Budget 6" in done.stdout
    assert {"summary.csv", "curves-b6.png", "wins.png", "avg-rank.png"} <= {
        p.name for p in out.iterdir()
    }
    bad = subprocess.run(
        [*common, "--tasks", "jigsaw,autoencoder", "--targets", "normal", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: --targets: normal not in --tasks; add them or drop them"
    ]
