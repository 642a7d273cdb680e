"""Agents pretrained on several source tasks at once (the leave-one-task-out agents)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_HP, hp_flags
from tests.trainer.agent.test_agent import synthetic
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import TASKS, parse_tasks, tasks_label
from transfersearch_trainer.search.env import MemorySearchEnv


def test_source_task_lists() -> None:
    loto = parse_tasks("all-but:jigsaw")
    assert loto == tuple(t for t in TASKS if t != "jigsaw")
    assert tasks_label(loto) == "all_but_jigsaw"
    assert tasks_label(("class_scene",)) == "class_scene"
    assert tasks_label(("class_scene", "normal")) == "class_scene_and_normal"
    assert tasks_label(TASKS[::-1]) == "all_tasks"  # every task: the zoo's all-task agent
    with pytest.raises(TransferSearchError, match="--tasks: a task is listed twice"):
        parse_tasks("normal,normal", "--tasks")
    with pytest.raises(TransferSearchError, match="--tasks"):
        parse_tasks("all-but:jigsw", "--tasks")


def test_actors_are_spread_over_the_source_tasks() -> None:
    bench = synthetic()
    tasks = ("jigsaw", "class_scene", "normal")
    env = MemorySearchEnv(bench, "label", 6, 10, seed=0, tasks=tasks)
    env.reset(np.arange(6))
    for row in range(6):
        task = tasks[row % 3]
        assert env.value[row] == pytest.approx(bench.normalised(task)[row])
    res = env.step(np.zeros(6, dtype=np.int64))
    moved = env.moved_to
    for row in range(6):
        assert env.value[row] == pytest.approx(bench.normalised(tasks[row % 3])[moved[row]])
    assert res.obs.tokens.shape == (6, 6)


def test_pretrain_leave_one_task_out_then_search_the_left_out_task(
    tmp_path: Path, data_dir: Path
) -> None:
    env = {**os.environ, "TRANSFERSEARCH_DATA": str(data_dir)}
    main = [sys.executable, "-m", "transfersearch_trainer.cli.main"]
    hp = hp_flags({**TINY_HP, "eval_interval": 20, "eval_searches": 4, "eval_budget": 8})
    out = subprocess.run(
        [*main, "pretrain", "--tasks", "all-but:jigsaw", "--steps", "40", "--out",
         str(tmp_path / "loto"), *hp],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "loto" / "agent.json").read_text())
    assert manifest["task"] == "all_but_jigsaw"
    assert manifest["training"]["tasks"] == [t for t in TASKS if t != "jigsaw"]
    assert manifest["training"]["updates"] == 40
    found = subprocess.run(
        [*main, "search", "--task", "jigsaw", "--budget", "10", "--agent", str(tmp_path / "loto"),
         "--mode", "zero-shot", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["evaluations"] == 10
    both = subprocess.run(
        [*main, "pretrain", "--task", "jigsaw", "--tasks", "normal", "--out", str(tmp_path / "x")],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert both.returncode == 2
    assert "--task or --tasks" in both.stderr
