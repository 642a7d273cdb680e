"""`transfersearch matrix`: every source x target pair under two protocols; resumable, parallel.

The work is split into *cells*, each one agent trained and evaluated, written to
``OUT/cells/<id>.json`` when done (atomically). A rerun skips the cells that
exist, so an interrupted matrix continues where it stopped and, every cell being
seeded, ends with the same results as an uninterrupted one. Cells run in a pool
of worker processes (one torch thread each).

* ``scratch/<task>/s<seed>``: an agent trained on `task` from scratch with free
  benchmark queries for `steps` updates. It is both the scratch reference on that
  task and the source agent for every other task.
* ``transfer/<source>/<target>/<mode>/s<seed>``: the paper's protocol: the source's
  scratch agent, transferred by `mode` and trained on the target with free
  queries for `steps` updates (zero-shot: not trained).
* ``honest/<source>/<target>/<mode>/<cap>/s<seed>``: a target evaluation is a
  network trained: ``finetune`` from the source, or ``scratch`` (source ``-``),
  trained with at most `cap` distinct target evaluations, then searching with the
  evaluation budget; its total cost is cap + budget.

Baselines need no training and are computed when the report is written
(`report.py`), at the same budgets and at the same totals.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from transfersearch_trainer.agent.artifact import Agent, load_agent, save_agent
from transfersearch_trainer.agent.evaluate import agent_searches, curve_evaluator
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import Watch
from transfersearch_trainer.agent.transfer import (
    agent_run,
    fit,
    make_target_agent,
    target_hyperparameters,
)
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_space
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.search.stats import summarize
from transfersearch_trainer.study import cells
from transfersearch_trainer.study.cells import Progress, write_json

SCHEMA = "transfersearch-matrix/1"


@dataclass(frozen=True)
class MatrixSettings:
    space: str
    tasks: tuple[str, ...]
    seeds: int = 3
    steps: int = 2000  # learner updates per agent in the paper's protocol
    budgets: tuple[int, ...] = (25, 50, 100)  # search budgets of the paper's protocol
    modes: tuple[str, ...] = ("finetune", "freeze-encoder", "zero-shot")
    caps: tuple[int, ...] = (100, 300, 1000)  # honest protocol: target evaluations in training
    honest_steps: int = 500  # learner updates when training under a cap
    eval_budget: int = 50  # honest protocol: the search budget after training
    searches: int = 100  # evaluation searches per agent and budget
    eval_seed: int = 1_000_000
    probe: int = 30  # task-similarity probe size (target evaluations)
    threshold: float = 0.95  # time to reach this fraction of scratch's final normalised score
    curve_points: int = 10
    hp: dict[str, Any] = field(default_factory=dict)  # hyperparameter overrides

    def __post_init__(self) -> None:
        check_space(self.space, "--space")
        cells.check_tasks(self.tasks)
        if self.seeds < 1:
            raise TransferSearchError("--seeds: must be at least 1")
        if self.steps < 1:
            raise TransferSearchError("--steps: must be at least 1")
        bad = [m for m in self.modes if m not in ("finetune", "freeze-encoder", "zero-shot")]
        if bad:
            raise TransferSearchError(
                f"--modes: unknown {', '.join(bad)}; use finetune, freeze-encoder, zero-shot"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Cell:
    kind: str  # scratch, transfer, honest
    target: str
    seed: int
    source: str = "-"
    mode: str = "scratch"
    cap: int | None = None

    @property
    def id(self) -> str:
        if self.kind == "scratch":
            return f"scratch/{self.target}/s{self.seed}"
        if self.kind == "transfer":
            return f"transfer/{self.source}/{self.target}/{self.mode}/s{self.seed}"
        return f"honest/{self.source}/{self.target}/{self.mode}/{self.cap}/s{self.seed}"

    @property
    def file(self) -> str:
        return self.id.replace("/", "__") + ".json"


def plan(s: MatrixSettings) -> tuple[list[Cell], list[Cell]]:
    """Cells in two phases: the second needs the scratch agents of the first as sources."""
    first = [Cell("scratch", t, k) for t in s.tasks for k in range(s.seeds)]
    first += [
        Cell("honest", t, k, "-", "scratch", c)
        for t in s.tasks
        for c in s.caps
        for k in range(s.seeds)
    ]
    second = [
        Cell("transfer", t, k, src, m)
        for t in s.tasks
        for src in s.tasks
        if src != t
        for m in s.modes
        for k in range(s.seeds)
    ]
    second += [
        Cell("honest", t, k, src, "finetune", c)
        for t in s.tasks
        for src in s.tasks
        if src != t
        for c in s.caps
        for k in range(s.seeds)
    ]
    return first, second


def scratch_agent_dir(out: Path, task: str, seed: int) -> Path:
    return out / "agents" / f"scratch-{task}-s{seed}"


# --- one cell, in a worker process ---------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(data: str | None, space: str) -> None:

    torch.set_num_threads(1)

    _WORKER["bench"] = load_benchmark(data, space)


def run_cell(cell: Cell, s: MatrixSettings, out: Path, data: str | None) -> dict[str, Any]:
    """Train and evaluate one cell's agent; returns (and writes) its record."""
    if "bench" not in _WORKER:
        _init_worker(data, s.space)
    bench = _WORKER["bench"]
    device = torch.device("cpu")
    hp = Hyperparameters().replace(**s.hp) if s.hp else Hyperparameters()
    started = time.perf_counter()
    steps = s.honest_steps if cell.kind == "honest" else s.steps
    hp = hp.replace(eval_interval=max(1, steps // s.curve_points), eval_searches=32)
    cap = cell.cap if cell.kind == "honest" else None
    source = None
    if cell.source != "-":
        source = load_agent(scratch_agent_dir(out, cell.source, cell.seed), s.space)
    if cell.kind == "scratch":
        agent, trainable = Agent.new(bench.space, hp, cell.seed), None
        agent.mode = "scratch"
        trainable = list(agent.net.parameters())
    else:
        agent, trainable = make_target_agent(
            source, cell.mode, bench.space, cell.seed, target_hyperparameters(hp, cap)
        )
    evaluator = curve_evaluator(bench, cell.target, hp.eval_budget, hp.eval_searches, device)
    run = agent_run(agent, bench, cell.target, steps, device, trainable, cap)
    fit(agent, run, Watch(evaluator=evaluator))
    if cell.kind == "scratch":
        save_agent(agent, scratch_agent_dir(out, cell.target, cell.seed))
    stats = bench.stats(cell.target)
    budgets = (
        (s.eval_budget,) if cell.kind == "honest" else tuple(sorted({*s.budgets, s.eval_budget}))
    )
    evals = {}
    for b in budgets:
        runs = agent_searches(agent.net, bench, cell.target, b, s.searches, s.eval_seed, device)
        evals[str(b)] = summarize(runs.best, stats).to_dict()
    training = {k: v for k, v in agent.training.items() if k != "curve"}
    record = {
        "schema": SCHEMA,
        "cell": asdict(cell),
        "id": cell.id,
        "curve": agent.training.get("curve", []),
        "training": training,
        "evals": evals,
        "wall_seconds": time.perf_counter() - started,
    }
    write_json(out / "cells" / cell.file, record)
    return record


# --- the driver ----------------------------------------------------------------------------


def load_cells(out: Path) -> dict[str, dict[str, Any]]:
    return cells.load_cells(out, SCHEMA)


def run_matrix(
    s: MatrixSettings,
    out: Path,
    data: str | None,
    workers: int = 2,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every missing cell; returns the cell records done so far.

    `should_stop` is asked before each cell is started (one worker) or collected (many):
    when it says yes, the run ends there, as an interrupted one would, and a later run
    with the same settings resumes from the cells on disk.
    """
    out.mkdir(parents=True, exist_ok=True)
    cells.check_settings(out, s.to_dict(), "matrix run")
    done = load_cells(out)
    first, second = plan(s)
    total = len(first) + len(second)
    count = [len([c for c in first + second if c.id in done])]

    def tick(cell: str) -> None:
        count[0] += 1
        if progress:
            progress(cell, count[0], total)

    def phase(todo: list[Cell]) -> bool:
        return cells.run_cells(
            [c for c in todo if c.id not in done],
            partial(run_cell, s=s, out=out, data=data),
            done,
            workers,
            partial(_init_worker, data, s.space),
            tick,
            should_stop,
        )

    if phase(first):  # the second phase transfers from the first's agents
        phase(second)
    return done
