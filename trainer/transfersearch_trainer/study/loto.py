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
* ``agent/all_tasks/s<seed>``: the agent pretrained on every task, for targets that are
  not in the benchmark (the zoo's choice there); it searches no benchmark target, since
  every one of them was its source;
* ``source/<task>/s<seed>``: a single-source agent pretrained on `task` alone (saved
  under ``OUT/agents/source/<task>/s<seed>``), which then searches every other target
  online (``source_searches`` searches per seed; 0 leaves them out);
* ``search/<target>/<mode>/b<budget>/s<seed>``: `searches` searches of that agent
  (search seeds 0..searches-1), or for ``scratch`` of an untrained agent of seed
  `seed` (no pretraining: the seed only changes its initial weights); mode
  ``source:<task>`` is the single-source agent of `task`.

Every budget is its own search: the agent sees the fraction of the budget it has
spent, so a prefix of a longer search is not what it does with a shorter budget.

A rerun skips finished cells, so an interrupted study continues where it stopped;
every cell is seeded, so it ends with the results of an uninterrupted one. The work
goes seed by seed (that seed's agents, then their searches), and ``OUT/cells.jsonl.gz``
is rewritten after each step: committing that one file saves the study, and a fresh
checkout resumes from it, pretraining again only the agents that a search still needs
(the record's digest says whether the agent came out the same).
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
from transfersearch_trainer.api.tasks import ALL_TASKS, check_space, tasks_label
from transfersearch_trainer.study import cells
from transfersearch_trainer.study.cells import Progress, write_json
from transfersearch_trainer.workflow.search import SearchRequest, run_agent_search
from transfersearch_trainer.workflow.source import pretrain
from transfersearch_trainer.workflow.workspace import QuietReporter, Workspace

SCHEMA = "transfersearch-loto/1"
AGENT_MODES = ("online", "zero-shot", "scratch")

SOURCE_MODE = "source:"  # search mode prefix of a single-source agent: source:<task>


@dataclass(frozen=True)
class LotoSettings:
    space: str
    targets: tuple[str, ...]
    seeds: int = 5
    budgets: tuple[int, ...] = (25, 50, 100, 200)
    searches: int = 10
    updates: int = 3000
    modes: tuple[str, ...] = AGENT_MODES
    hp: dict[str, Any] = field(default_factory=dict)  # hyperparameter overrides (all agents)
    source_searches: int = 0  # per single-source agent seed, target and budget (0: none)
    all_tasks: bool = False  # also pretrain the all-task agents (for the zoo)
    tasks: tuple[str, ...] = ()  # the study's tasks, sources and targets (empty: all)

    def __post_init__(self) -> None:
        check_space(self.space, "--space")
        if self.seeds < 1 or self.searches < 1 or self.updates < 1:
            raise TransferSearchError("--seeds, --searches and --updates must be at least 1")
        outside = set(self.targets) - set(self.tasks) if self.tasks else set()
        if outside:
            raise TransferSearchError(
                f"--targets: {', '.join(sorted(outside))} not in --tasks; add them or drop them"
            )
        if self.source_searches < 0:
            raise TransferSearchError("--source-searches: must be 0 (none) or more")
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
        for extra in ("source_searches", "all_tasks", "tasks"):
            if not d[extra]:
                del d[extra]  # likewise: studies without them keep their settings file
        return {"schema": SCHEMA, **d}

    def universe(self, benchmark_tasks: tuple[str, ...]) -> tuple[str, ...]:
        """The tasks this study uses, as sources and targets, in the benchmark's order."""
        return tuple(t for t in benchmark_tasks if not self.tasks or t in self.tasks)

    def sources(self, benchmark_tasks: tuple[str, ...], target: str) -> tuple[str, ...]:
        """A leave-one-task-out agent's sources: the study's tasks but `target`."""
        return tuple(t for t in self.universe(benchmark_tasks) if t != target)

    def hyperparameters(self) -> Hyperparameters:
        return Hyperparameters().replace(**self.hp) if self.hp else Hyperparameters()


@dataclass(frozen=True)
class Cell:
    kind: str  # agent (leave-one-out or all tasks), source (single-source agent) or search
    target: str  # for a source cell: its one source task
    seed: int
    mode: str = ""
    budget: int = 0

    @property
    def id(self) -> str:
        if self.kind in ("agent", "source"):
            return f"{self.kind}/{self.target}/s{self.seed}"
        return f"search/{self.target}/{self.mode}/b{self.budget}/s{self.seed}"

    @property
    def file(self) -> str:
        return self.id.replace("/", "__").replace(":", "-") + ".json"


def plan(s: LotoSettings, tasks: tuple[str, ...]) -> tuple[list[Cell], list[Cell]]:
    """(pretraining cells, search cells); a search of a pretrained agent needs its agent.

    `tasks` are the benchmark's tasks: the sources of single-source agents."""
    pretrained = set(s.modes) != {"scratch"}  # scratch alone needs no agent
    seeds = range(s.seeds)
    agents = [Cell("agent", t, seed) for t in s.targets for seed in seeds if pretrained]
    if s.all_tasks:
        agents += [Cell("agent", ALL_TASKS, seed) for seed in seeds]
    sources = s.universe(tasks) if s.source_searches else ()
    agents += [Cell("source", task, seed) for task in sources for seed in seeds]
    modes = list(s.modes) + [SOURCE_MODE + task for task in sources]
    searches = [
        Cell("search", t, seed, mode, b)
        for t in s.targets
        for mode in modes
        for b in s.budgets
        for seed in seeds
        if mode != SOURCE_MODE + t  # a single-source agent never searches its own source
    ]
    return agents, searches


def agent_dir(out: Path, target: str, seed: int) -> Path:
    """A leave-one-task-out agent's folder (`target` all_tasks: the all-task agent's)."""
    return out / "agents" / target / f"s{seed}"


def source_dir(out: Path, task: str, seed: int) -> Path:
    return out / "agents" / "source" / task / f"s{seed}"


def run_cell(cell: Cell, s: LotoSettings, out: Path, data: str | None) -> dict[str, Any]:
    """Do one cell's work in this process; returns (and writes) its record."""
    bench = cells.worker_benchmark(data, s.space)
    started = time.perf_counter()
    if cell.kind in ("agent", "source"):
        ws = Workspace(bench, torch.device("cpu"), s.hyperparameters(), QuietReporter())
        if cell.kind == "source":
            sources: tuple[str, ...] = (cell.target,)
            agent = pretrain(ws, cell.target, s.updates, cell.seed)
            save_agent(agent, source_dir(out, cell.target, cell.seed))
        else:
            sources = s.sources(bench.tasks, cell.target)
            agent = pretrain(ws, tasks_label(sources), s.updates, cell.seed, tasks=sources)
            save_agent(agent, agent_dir(out, cell.target, cell.seed))
        curve = agent.training.get("curve") or []
        record: dict[str, Any] = {
            "sources": list(sources),
            "digest": agent.digest,
            "device_seconds": agent.training.get("device_seconds"),
            "validation": curve[-1]["score"] if curve else None,
            # scale-free (1 = the sources' optima, 0 = their medians): what the zoo picks by
            "validation_normalised": 1.0 - curve[-1]["normalised_regret"] if curve else None,
        }
    else:
        mode, searches = cell.mode, s.searches
        if mode == "scratch":
            agent = Agent.new(bench.space, s.hyperparameters(), cell.seed)
        elif mode.startswith(SOURCE_MODE):
            agent = load_agent(source_dir(out, mode[len(SOURCE_MODE) :], cell.seed), s.space)
            mode, searches = "online", s.source_searches
        else:
            agent = load_agent(agent_dir(out, cell.target, cell.seed), s.space)
        runs = []
        for k in range(searches):
            request = SearchRequest(cell.target, cell.budget, mode, seed=k, device="cpu")
            r = run_agent_search(bench, request, agent)
            runs.append(
                {
                    "seed": k,
                    "best_metric": r["best_metric"],
                    "rank": r["rank"],
                    "hit": r["hit"],
                    "device_seconds": r["device_seconds"],
                    "evaluations": r["evaluations"],
                    "improved": improvements([e["best"] for e in r["trajectory"]]),
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


def improvements(best: list[float]) -> list[list[float]]:
    """A best-so-far curve as its steps, ``[evaluation index, new best]``: a search improves
    a few times in hundreds of evaluations, so this keeps the pack small."""
    steps = [[0, best[0]]] if best else []
    steps += [[i, b] for i, b in enumerate(best) if i and b != best[i - 1]]
    return steps


def best_curve(run: dict[str, Any], budget: int) -> list[float]:
    """The best-so-far after each of the `budget` evaluations, from a run's steps."""
    if "best" in run:  # records written before the steps
        return list(run["best"])
    curve = np.empty(budget)
    steps = run["improved"]
    for (i, b), nxt in zip(steps, [*steps[1:], [budget, 0.0]], strict=True):
        curve[int(i) : int(nxt[0])] = b
    return [float(x) for x in curve]


def load_cells(out: Path) -> dict[str, dict[str, Any]]:
    return cells.load_cells(out, SCHEMA)


def agent_cell(search: Cell) -> Cell | None:
    """The pretraining cell a search needs (None: scratch, an untrained agent)."""
    if search.mode == "scratch":
        return None
    if search.mode.startswith(SOURCE_MODE):
        return Cell("source", search.mode[len(SOURCE_MODE) :], search.seed)
    return Cell("agent", search.target, search.seed)


def agent_files(out: Path, cell: Cell) -> Path:
    folder = source_dir if cell.kind == "source" else agent_dir
    return folder(out, cell.target, cell.seed)


def seed_steps(
    s: LotoSettings,
    out: Path,
    done: dict[str, dict[str, Any]],
    agents: list[Cell],
    searches: list[Cell],
) -> list[tuple[list[Cell], list[Cell]]]:
    """Per seed: (agents to pretrain, searches to run). An agent is pretrained when it has no
    record, or its files are gone (a fresh checkout) while a search of it is unfinished."""
    steps = []
    for seed in range(s.seeds):
        todo = [c for c in searches if c.seed == seed and c.id not in done]
        needed = {a.id for c in todo if (a := agent_cell(c)) is not None}
        pretrain = [
            a
            for a in agents
            if a.seed == seed
            and (
                a.id not in done
                or (a.id in needed and not (agent_files(out, a) / "agent.json").is_file())
            )
        ]
        steps.append((pretrain, todo))
    return steps


def run_loto(
    s: LotoSettings,
    out: Path,
    data: str | None,
    workers: int = 1,
    progress: Progress | None = None,
    pretrain_only: bool = False,
) -> dict[str, dict[str, Any]]:
    """Run every missing cell (pretraining first), `workers` processes at once.

    `pretrain_only` stops after the pretraining cells (e.g. to build the zoo first)."""
    out.mkdir(parents=True, exist_ok=True)
    cells.check_settings(out, s.to_dict(), "leave-one-task-out study")
    done = load_cells(out)
    agents, searches = plan(s, cells.worker_benchmark(data, s.space).tasks)
    total = len(agents) + len(searches)

    def tick(cell: str) -> None:
        if progress is not None:
            progress(cell, len(done), total)

    run = partial(run_cell, s=s, out=out, data=data)
    init = partial(cells.worker_benchmark, data, s.space)
    for fresh, todo in seed_steps(s, out, done, agents, [] if pretrain_only else searches):
        before = {c.id: done[c.id].get("digest") for c in fresh if c.id in done}
        for c in fresh:
            done.pop(c.id, None)
        # a search of a pretrained agent needs the agent: pretraining first
        for phase in (fresh, todo):
            cells.run_cells(phase, run, done, workers, init, tick)
            for c in fresh:  # pretrained again: did the same agent come out?
                if c.id in before and c.id in done and done[c.id].get("digest") != before[c.id]:
                    done[c.id]["reproduced"] = False
                    write_json(out / "cells" / c.file, done[c.id])
            cells.pack_cells(out, done)
    return done


def agent_methods(s: LotoSettings, tasks: tuple[str, ...]) -> list[tuple[str, str]]:
    """(search mode as in cell ids, method name as in summary.csv) of every agent searched."""
    out = [(m, f"agent-{m}") for m in s.modes]
    if s.source_searches:
        out += [(SOURCE_MODE + t, f"agent-source:{t}") for t in s.universe(tasks)]
    return out


def agent_rows(
    cells: dict[str, dict[str, Any]], s: LotoSettings, tasks: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Per (target, budget, agent): each pretraining seed's mean best and all searches' ranks.

    `curve` is the mean best-so-far after each evaluation over every search (for the plots
    and for the evaluations it takes to reach a score)."""
    rows = []
    for t in s.targets:
        for b in s.budgets:
            for mode, method in agent_methods(s, tasks):
                per_seed, ranks, hits, seconds, curves = [], [], [], [], []
                for seed in range(s.seeds):
                    rec = cells.get(Cell("search", t, seed, mode, b).id)
                    if rec is None:
                        continue
                    per_seed.append(float(np.mean([r["best_metric"] for r in rec["runs"]])))
                    ranks += [r["rank"] for r in rec["runs"]]
                    hits += [r["hit"] for r in rec["runs"]]
                    seconds += [r["device_seconds"] for r in rec["runs"]]
                    curves.append(np.mean([best_curve(r, b) for r in rec["runs"]], axis=0))
                if not per_seed:
                    continue
                arr = np.asarray(per_seed)
                rows.append(
                    {
                        "target": t,
                        "budget": b,
                        "method": method,
                        "mean": float(arr.mean()),
                        "stderr": float(arr.std(ddof=1) / np.sqrt(arr.size))
                        if arr.size > 1
                        else 0.0,
                        "mean_rank": float(np.mean(ranks)),
                        "hit_rate": float(np.mean(hits)),
                        "device_seconds": float(np.mean(seconds)),
                        "n": int(arr.size),
                        "curve": [float(x) for x in np.mean(curves, axis=0)],
                        "seed_curves": [[float(x) for x in c] for c in curves],
                    }
                )
    return rows
