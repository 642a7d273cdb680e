"""`transfersearch study paper`: the paper's transfer protocol on its four tasks; resumable.

The paper pretrains a DQN search agent on a source task (1e7 steps, free benchmark
queries), then compares on each target three regimes against an agent trained from
scratch there for as long as the pretraining (whose final score is the *reference*):
zero-shot (the source agent as it is), fine-tune (+10% of the pretraining on the
target) and re-train (+100%). Scaled down here, one learner update per step:

* ``scratch/<task>/s<seed>``: an agent trained from scratch on `task` with free queries
  for `updates` updates, saved under ``OUT/agents/scratch-<task>-s<seed>``: the scratch
  reference on `task` and the source agent for every other task;
* ``transfer/<source>/<target>/<regime>/s<seed>``: that source agent (same seed), trained
  on the target with free queries for ``fraction x updates`` updates, every parameter
  trainable (zero-shot: none).

Every cell records a learning curve *on the target*: (updates, distinct target queries,
training seconds, score) at about `curve_points` points, where the score is the greedy
agent's mean normalised best-found value (1 = optimum, 0 = median) over `searches`
searches of budget `eval_budget` on the *raw* table; its last point is the final score.
The training seconds leave out the curve's own evaluations (measurement, not training).

When the task trained on is segmentsemantic, training reads a shaped copy of the table
(`benchmark.shaping`), as the paper shapes that reward; the cell records it.

Cells are written to ``OUT/cells/`` when done (`study.cells`): a rerun with the same
settings skips them, and, every cell being seeded, ends with the uninterrupted results.
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
from transfersearch_trainer.agent.evaluate import curve_evaluator
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import Watch
from transfersearch_trainer.agent.qnet import QNetwork
from transfersearch_trainer.agent.transfer import agent_run, fit, make_target_agent
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_space
from transfersearch_trainer.benchmark.shaping import shaped_benchmark
from transfersearch_trainer.store.layout import MANIFEST
from transfersearch_trainer.study import cells
from transfersearch_trainer.study.cells import Progress, write_json
from transfersearch_trainer.study.matrix import Cell  # same ids: scratch/..., transfer/...

SCHEMA = "transfersearch-paper/1"
PAPER_TASKS = ("class_object", "room_layout", "autoencoder", "segmentsemantic")
REGIMES = ("zero-shot", "finetune", "retrain")
REGIME_NAMES = {"zero-shot": "zero-shot", "finetune": "fine-tune", "retrain": "re-train"}
SHAPED_TASK = "segmentsemantic"  # the paper shapes only the segmentation reward


@dataclass(frozen=True)
class PaperSettings:
    space: str
    tasks: tuple[str, ...] = PAPER_TASKS
    seeds: int = 5
    updates: int = 3000  # pretraining = scratch updates (the paper's 1e7 steps)
    finetune_fraction: float = 0.1  # of `updates`, on the target (the paper's 1e6)
    retrain_fraction: float = 1.0  # of `updates`, on the target (the paper's 1e7)
    segmentation_power: float = 0.478  # R' = R ** power on segmentsemantic (1: no shaping)
    eval_budget: int = 50  # distinct evaluations per greedy search of a curve point
    searches: int = 100  # greedy searches per curve point
    curve_points: int = 10  # at least this many points per curve (the learner keeps >= 10)
    hp: dict[str, Any] = field(default_factory=dict)  # hyperparameter overrides

    def __post_init__(self) -> None:
        check_space(self.space, "--space")
        cells.check_tasks(self.tasks)
        for flag, n in (
            ("--seeds", self.seeds),
            ("--updates", self.updates),
            ("--searches", self.searches),
            ("--curve-points", self.curve_points),
        ):
            if n < 1:
                raise TransferSearchError(f"{flag}: must be at least 1, got {n}")
        if self.eval_budget < 2:
            raise TransferSearchError(f"--eval-budget: must be at least 2, got {self.eval_budget}")
        for flag, x in (
            ("--finetune-fraction", self.finetune_fraction),
            ("--retrain-fraction", self.retrain_fraction),
            ("--segmentation-power", self.segmentation_power),
        ):
            if not x > 0:
                raise TransferSearchError(f"{flag}: must be positive, got {x}")

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters().replace(**self.hp) if self.hp else Hyperparameters()

    def steps(self, regime: str) -> int:
        """Learner updates of a regime on its task (scratch: the pretraining's)."""
        if regime == "zero-shot":
            return 0
        if regime == "scratch":
            return self.updates
        fraction = self.finetune_fraction if regime == "finetune" else self.retrain_fraction
        return max(1, round(fraction * self.updates))

    def shaping(self, task: str) -> dict[str, Any] | None:
        """How training on `task` is shaped (None: the raw table)."""
        if task != SHAPED_TASK or self.segmentation_power == 1:
            return None
        return {"task": task, "power": self.segmentation_power, "rule": "((v-min)/(max-min))**p"}


def plan(s: PaperSettings) -> tuple[list[Cell], list[Cell]]:
    """(scratch cells, transfer cells): a transfer starts from a scratch cell's agent."""
    scratch = [Cell("scratch", t, k) for t in s.tasks for k in range(s.seeds)]
    transfer = [
        Cell("transfer", tgt, k, src, regime)  # the matrix's cell, the regime as its mode
        for src in s.tasks
        for tgt in s.tasks
        if src != tgt
        for regime in REGIMES
        for k in range(s.seeds)
    ]
    return scratch, transfer


def agent_dir(out: Path, task: str, seed: int) -> Path:
    return out / "agents" / f"scratch-{task}-s{seed}"


class TimedEvaluator:
    """The curve evaluator, timing itself: the learner's clock runs through evaluations, and
    a curve's training seconds are its clock minus the evaluations done up to each point."""

    def __init__(self, evaluate: Callable[[QNetwork], tuple[float, float]]) -> None:
        self.evaluate = evaluate
        self.spent: list[float] = []  # seconds of evaluation up to and including call i

    def __call__(self, net: QNetwork) -> tuple[float, float]:
        started = time.perf_counter()
        result = self.evaluate(net)
        before = self.spent[-1] if self.spent else 0.0
        self.spent.append(before + time.perf_counter() - started)
        return result


def curve_points(agent: Agent, evaluator: TimedEvaluator) -> list[dict[str, Any]]:
    """The training's curve on the target (a zero-shot agent: one point, at 0 updates)."""
    raw = agent.training.get("curve") or []
    if not raw:  # not trained: evaluate it as it is
        metric, regret = evaluator(agent.net)
        raw = [
            {
                "updates": 0,
                "env_steps": 0,
                "task_evaluations": 0,
                "device_seconds": evaluator.spent[-1],
                "score": metric,
                "normalised_regret": regret,
            }
        ]
    return [
        {
            "updates": int(p["updates"]),
            "env_steps": int(p["env_steps"]),
            "queries": int(p["task_evaluations"]),  # distinct target architectures queried
            "seconds": max(0.0, float(p["device_seconds"]) - spent),  # training only
            "device_seconds": float(p["device_seconds"]),  # the learner's clock, evaluations in
            "metric": float(p["score"]),  # mean best-found raw metric
            "score": 1.0 - float(p["normalised_regret"]),  # normalised: 1 optimum, 0 median
        }
        for p, spent in zip(raw, evaluator.spent, strict=True)
    ]


def run_cell(cell: Cell, s: PaperSettings, out: Path, data: str | None) -> dict[str, Any]:
    """Train (or not: zero-shot) and evaluate one cell's agent; returns (and writes) its record."""
    bench = cells.worker_benchmark(data, s.space)
    device = torch.device("cpu")
    started = time.perf_counter()
    steps = s.steps(cell.mode)
    hp = s.hyperparameters().replace(eval_interval=max(1, steps // s.curve_points))
    shaping = s.shaping(cell.target)
    table = shaped_benchmark(bench, cell.target, shaping["power"]) if shaping else bench
    if cell.kind == "scratch":
        source_record: dict[str, Any] | None = None
        agent = Agent.new(bench.space, hp, cell.seed)
        agent.mode = "scratch"
        trainable: list[torch.nn.Parameter] | None = list(agent.net.parameters())
    else:
        source = load_agent(agent_dir(out, cell.source, cell.seed), s.space)
        source_record = {
            "task": cell.source,
            "digest": source.digest,
            "steps": source.steps,
            "shaping": s.shaping(cell.source),  # the table the source agent trained on
        }
        mode = "zero-shot" if cell.mode == "zero-shot" else "finetune"  # all parameters
        agent, trainable = make_target_agent(source, mode, bench.space, cell.seed, hp)
    evaluator = TimedEvaluator(
        curve_evaluator(bench, cell.target, s.eval_budget, s.searches, device)  # raw table
    )
    fit(agent, agent_run(agent, table, cell.target, steps, device, trainable), Watch(evaluator))
    digest = None
    if cell.kind == "scratch":
        digest = save_agent(agent, agent_dir(out, cell.target, cell.seed))
    curve = curve_points(agent, evaluator)
    record = {
        "schema": SCHEMA,
        "id": cell.id,
        "cell": asdict(cell),
        "steps": steps,
        "shaping": shaping,  # the table trained on (None: raw); evaluations are raw
        "source": source_record,
        "digest": digest,
        "curve": curve,
        "final": {"score": curve[-1]["score"], "metric": curve[-1]["metric"]},
        "training": {k: v for k, v in agent.training.items() if k != "curve"},
        "wall_seconds": time.perf_counter() - started,
    }
    write_json(out / "cells" / cell.file, record)
    return record


def load_cells(out: Path) -> dict[str, dict[str, Any]]:
    """Finished cells; a scratch cell whose agent is gone is redone (its targets need it)."""
    found = cells.load_cells(out, SCHEMA)
    return {
        k: r
        for k, r in found.items()
        if r["cell"]["kind"] != "scratch"
        or (agent_dir(out, r["cell"]["target"], r["cell"]["seed"]) / MANIFEST).is_file()
    }


def run_paper(
    s: PaperSettings,
    out: Path,
    data: str | None,
    workers: int = 1,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every missing cell (scratch first), `workers` processes at once; the records so far.

    `should_stop` is asked before each cell is started (one worker) or collected (many);
    a later run with the same settings resumes from the cells on disk."""
    out.mkdir(parents=True, exist_ok=True)
    cells.check_settings(out, s.to_dict(), "paper-protocol study")
    done = load_cells(out)
    scratch, transfer = plan(s)
    total = len(scratch) + len(transfer)

    def tick(cell: str) -> None:
        if progress is not None:
            progress(cell, len(done), total)

    cells.run_phases(  # a transfer needs its source's scratch agent
        (scratch, transfer),
        partial(run_cell, s=s, out=out, data=data),
        done,
        workers,
        partial(cells.worker_benchmark, data, s.space),
        tick,
        should_stop,
    )
    return done
