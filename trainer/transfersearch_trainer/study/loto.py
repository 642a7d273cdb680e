"""`transfersearch study loto`: the honest leave-one-task-out study; resumable, parallel.

For every target of the space, the agent pretrained on the *other* tasks (free queries
on those sources, never on the target) searches the target the way a user's search
does (`workflow.search`: every evaluation paid, the best of them kept), in ``online``
and ``zero-shot`` mode, beside the ``scratch`` agent (untrained, learning online) and
every baseline of `search.runner` with the same sources, at every budget.

The work is *cells*, each written to ``OUT/cells/<id>.json`` when done (atomically):

* ``agent/<target>/s<seed>``: pretrain the leave-one-task-out agent (saved under
  ``OUT/agents/<target>/s<seed>``; ``updates`` learner updates, actors spread over
  the six sources);
* ``search/<target>/<mode>/b<budget>/s<seed>``: `searches` searches of that agent
  (search seeds 0..searches-1), or for ``scratch`` of an untrained agent of seed
  `seed` (no pretraining: the seed only changes its initial weights).

A rerun skips finished cells, so an interrupted study continues where it stopped;
every cell is seeded, so it ends with the results of an uninterrupted one.
Baselines need no training and are computed when the summary is written.

Why searches per pretraining seed and not one: the variance has two sources, the
pretraining seed and the search's start and choices; a few seeds with tens of
searches each measure both at the price of a few pretrainings (the expensive part).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from transfersearch_trainer.agent.artifact import Agent, load_agent, save_agent
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_space, tasks_label
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.study import cells
from transfersearch_trainer.study.cells import Progress, write_json
from transfersearch_trainer.workflow.search import SearchRequest, run_agent_search
from transfersearch_trainer.workflow.source import pretrain
from transfersearch_trainer.workflow.workspace import QuietReporter, Workspace

SCHEMA = "transfersearch-loto/1"
AGENT_MODES = ("online", "zero-shot", "scratch")


@dataclass(frozen=True)
class LotoSettings:
    space: str
    targets: tuple[str, ...]
    seeds: int = 3
    budgets: tuple[int, ...] = (50, 100)
    searches: int = 10
    updates: int = 3000
    modes: tuple[str, ...] = AGENT_MODES
    hp: dict[str, Any] = field(default_factory=dict)  # hyperparameter overrides (all agents)

    def __post_init__(self) -> None:
        check_space(self.space, "--space")
        if self.seeds < 1 or self.searches < 1 or self.updates < 1:
            raise TransferSearchError("--seeds, --searches and --updates must be at least 1")
        if not self.budgets or min(self.budgets) < 1:
            raise TransferSearchError("--budgets: give positive budgets, e.g. 50,100")
        unknown = set(self.modes) - set(AGENT_MODES)
        if unknown:
            raise TransferSearchError(
                f"--modes: unknown {', '.join(sorted(unknown))}; use {', '.join(AGENT_MODES)}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not self.hp:
            del d["hp"]  # the default: settings files stay as they were before overrides
        return {"schema": SCHEMA, **d}

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters().replace(**self.hp) if self.hp else Hyperparameters()


@dataclass(frozen=True)
class Cell:
    kind: str  # agent or search
    target: str
    seed: int
    mode: str = ""
    budget: int = 0

    @property
    def id(self) -> str:
        if self.kind == "agent":
            return f"agent/{self.target}/s{self.seed}"
        return f"search/{self.target}/{self.mode}/b{self.budget}/s{self.seed}"

    @property
    def file(self) -> str:
        return self.id.replace("/", "__") + ".json"


def plan(s: LotoSettings) -> tuple[list[Cell], list[Cell]]:
    """(pretraining cells, search cells); a search of a pretrained agent needs its agent."""
    pretrained = set(s.modes) != {"scratch"}  # scratch alone needs no agent
    agents = [Cell("agent", t, seed) for t in s.targets for seed in range(s.seeds) if pretrained]
    searches = [
        Cell("search", t, seed, mode, b)
        for t in s.targets
        for mode in s.modes
        for b in s.budgets
        for seed in range(s.seeds)
    ]
    return agents, searches


def agent_dir(out: Path, target: str, seed: int) -> Path:
    return out / "agents" / target / f"s{seed}"


_WORKER: dict[str, Benchmark] = {}


def _init_worker(data: str | None, space: str) -> None:
    if "bench" not in _WORKER:
        torch.set_num_threads(1)
        _WORKER["bench"] = load_benchmark(data, space)


def run_cell(cell: Cell, s: LotoSettings, out: Path, data: str | None) -> dict[str, Any]:
    """Do one cell's work in this process; returns (and writes) its record."""
    _init_worker(data, s.space)
    bench = _WORKER["bench"]
    started = time.perf_counter()
    if cell.kind == "agent":
        sources = tuple(t for t in bench.tasks if t != cell.target)
        ws = Workspace(bench, torch.device("cpu"), s.hyperparameters(), QuietReporter())
        agent = pretrain(ws, tasks_label(sources), s.updates, cell.seed, tasks=sources)
        save_agent(agent, agent_dir(out, cell.target, cell.seed))
        curve = agent.training.get("curve") or []
        record: dict[str, Any] = {
            "sources": list(sources),
            "digest": agent.digest,
            "device_seconds": agent.training.get("device_seconds"),
            "validation": curve[-1]["score"] if curve else None,
        }
    else:
        if cell.mode == "scratch":
            agent = Agent.new(bench.space, s.hyperparameters(), cell.seed)
        else:
            folder = agent_dir(out, cell.target, cell.seed)
            agent = load_agent(folder, s.space)
        runs = []
        for k in range(s.searches):
            request = SearchRequest(cell.target, cell.budget, cell.mode, seed=k, device="cpu")
            r = run_agent_search(bench, request, agent)
            runs.append(
                {
                    "seed": k,
                    "best_metric": r["best_metric"],
                    "rank": r["rank"],
                    "hit": r["hit"],
                    "device_seconds": r["device_seconds"],
                    "best": [e["best"] for e in r["trajectory"]],
                    "start": r["start"],
                }
            )
        record = {"runs": runs}
    record = {
        "schema": SCHEMA,
        "id": cell.id,
        **asdict(cell),
        "seconds": time.perf_counter() - started,
        **record,
    }
    write_json(out / "cells" / cell.file, record)
    return record


def load_cells(out: Path) -> dict[str, dict[str, Any]]:
    return cells.load_cells(out, SCHEMA)


def run_loto(
    s: LotoSettings,
    out: Path,
    data: str | None,
    workers: int = 1,
    progress: Progress | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every missing cell (pretraining first), `workers` processes at once."""
    out.mkdir(parents=True, exist_ok=True)
    cells.check_settings(out, s.to_dict(), "leave-one-task-out study")
    done = load_cells(out)
    agents, searches = plan(s)
    total = len(agents) + len(searches)

    def tick(cell: str) -> None:
        if progress is not None:
            progress(cell, len(done), total)

    for phase in (agents, searches):  # a search of a pretrained agent needs the agent
        cells.run_cells(
            [c for c in phase if c.id not in done],
            partial(run_cell, s=s, out=out, data=data),
            done,
            workers,
            partial(_init_worker, data, s.space),
            tick,
        )
    return done


def agent_rows(cells: dict[str, dict[str, Any]], s: LotoSettings) -> list[dict[str, Any]]:
    """Per (target, budget, mode): each pretraining seed's mean best and all searches' ranks."""
    rows = []
    for t in s.targets:
        for b in s.budgets:
            for mode in s.modes:
                per_seed, ranks, hits, seconds = [], [], [], []
                for seed in range(s.seeds):
                    rec = cells.get(Cell("search", t, seed, mode, b).id)
                    if rec is None:
                        continue
                    per_seed.append(float(np.mean([r["best_metric"] for r in rec["runs"]])))
                    ranks += [r["rank"] for r in rec["runs"]]
                    hits += [r["hit"] for r in rec["runs"]]
                    seconds += [r["device_seconds"] for r in rec["runs"]]
                if not per_seed:
                    continue
                arr = np.asarray(per_seed)
                rows.append(
                    {
                        "target": t,
                        "budget": b,
                        "method": f"agent-{mode}",
                        "mean": float(arr.mean()),
                        "stderr": float(arr.std(ddof=1) / np.sqrt(arr.size))
                        if arr.size > 1
                        else 0.0,
                        "mean_rank": float(np.mean(ranks)),
                        "hit_rate": float(np.mean(hits)),
                        "device_seconds": float(np.mean(seconds)),
                        "n": int(arr.size),
                    }
                )
    return rows
