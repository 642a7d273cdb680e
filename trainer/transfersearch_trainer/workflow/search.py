"""`transfersearch search`: one honest search on a target, what a user pays for.

The budget is the number of distinct target architectures evaluated, in total: the
agent (zero-shot, learning online, or from scratch) proposes, the evaluator answers,
nothing else touches the target. On a benchmark task the evaluator is a table lookup,
and after the search (for reporting only, never fed back) the result is placed in the
table: regret to the optimum, the rank of the best found (1 = optimum; ties share the
better rank) and whether it hit the optimum.

Where the search starts is the agent's choice: with ``start="prior"`` (the default for
a pretrained agent) its walkers start at the architectures with the best mean rank over
the tasks the agent was pretrained on (their tables are the sources' data, free and
known before the search; the target's own table is never a source), with ``random``
at seeded random architectures (the only choice for ``scratch``, which has no sources).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.agent.artifact import Agent, load_agent
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import pick_device
from transfersearch_trainer.agent.online import OnlineSettings, SearchResult, search_target
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.evaluator import Evaluation, Listener
from transfersearch_trainer.search.observed import Evaluate, table_evaluator
from transfersearch_trainer.search.oracle import SearchContext
from transfersearch_trainer.store.zoo import resolve_agent


@dataclass(frozen=True)
class SearchRequest:
    """One search: where, how much, with which agent and how it may learn."""

    task: str
    budget: int
    mode: str  # zero-shot, online, scratch
    seed: int = 0
    parallel: int = 1
    agent: str | None = None  # folder, s3:// agent URI or zoo; none: a fresh agent (scratch)
    digest: str | None = None
    device: str | None = None
    start: str = "prior"  # prior (the agent's source tasks' best) or random


def search_agent(bench: Benchmark, request: SearchRequest) -> Agent:
    """The agent that searches: the given one, or an untrained one for `scratch`."""
    if request.agent is None:
        if request.mode != "scratch":
            raise TransferSearchError(
                f"--agent: mode {request.mode} needs an agent (a folder, s3:// URI or zoo); "
                "only scratch starts from an untrained one"
            )
        return Agent.new(bench.space, Hyperparameters(), request.seed)
    space = bench.space.name
    folder, digest = resolve_agent(request.agent, space, request.task, request.digest)
    agent = load_agent(folder, space, digest)
    if request.mode == "scratch":  # the honest reference: same network shape, no weights
        return Agent.new(bench.space, agent.hp, request.seed)
    return agent


START_CHOICES = ("prior", "random")


def agent_sources(bench: Benchmark, agent: Agent, target: str) -> tuple[str, ...]:
    """The benchmark tasks the agent was pretrained on, the target excluded."""
    tasks = agent.training.get("tasks") or ([agent.task] if agent.task else [])
    return tuple(t for t in tasks if t in bench.tasks and t != target)


def search_starts(
    bench: Benchmark, request: SearchRequest, agent: Agent
) -> tuple[npt.NDArray[np.int64] | None, dict[str, Any]]:
    """The walkers' first architectures (None: seeded random) and how they were chosen."""
    if request.start not in START_CHOICES:
        raise TransferSearchError(
            f"--start: unknown {request.start!r}; use one of {', '.join(START_CHOICES)}"
        )
    sources = () if request.mode == "scratch" else agent_sources(bench, agent, request.task)
    if request.start == "random" or not sources:
        return None, {"start": "random", "sources": []}
    order = SearchContext.from_benchmark(bench, request.task, sources).order
    return order[: request.parallel].copy(), {"start": "prior", "sources": list(sources)}


def _told(evaluate: Evaluate, listeners: Sequence[Listener]) -> Evaluate:
    if not listeners:
        return evaluate

    def told(archs: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        values = evaluate(archs)
        for v in values:
            answer = Evaluation(float(v))
            for listen in listeners:
                listen(answer)
        return values

    return told


def table_rank(values: npt.NDArray[np.float64], best: float) -> int:
    """1 + the number of architectures strictly better than `best` (ties share the rank)."""
    return 1 + int((values > best).sum())


def run_search(bench: Benchmark, request: SearchRequest) -> dict[str, Any]:
    """Run the search on the benchmark task `request.task` and report it as one object."""
    _check(bench, request)
    return run_agent_search(bench, request, search_agent(bench, request))


def _check(bench: Benchmark, request: SearchRequest) -> None:
    if not 1 <= request.budget <= bench.space.size:
        raise TransferSearchError(f"--budget: must be between 1 and {bench.space.size}")
    if not 1 <= request.parallel <= request.budget:
        raise TransferSearchError("--parallel: must be between 1 and the budget")


def run_agent_search(
    bench: Benchmark,
    request: SearchRequest,
    agent: Agent,
    listeners: Sequence[Listener] = (),
) -> dict[str, Any]:
    """`run_search` with the agent already loaded (a study runs many searches per agent);
    for ``scratch`` pass an untrained agent (`search_agent` makes one). `listeners` are
    told of each evaluation (a table lookup: it costs 0 s), as an own-data search's are."""
    _check(bench, request)
    device = pick_device(request.device)
    evaluate = _told(table_evaluator(bench.metric(request.task)), listeners)

    starts, start_info = search_starts(bench, request, agent)
    settings = OnlineSettings()
    result = search_target(
        agent.net,
        agent.hp,
        bench.space,
        evaluate,
        request.budget,
        request.mode,
        request.seed,
        device,
        parallel=request.parallel,
        starts=starts,
        settings=settings,
    )
    return {**_report(bench, request, agent, result, settings, str(device)), **start_info}


def _report(
    bench: Benchmark,
    request: SearchRequest,
    agent: Agent,
    result: SearchResult,
    settings: OnlineSettings,
    device: str,
) -> dict[str, Any]:
    stats = bench.stats(request.task)
    traj = result.trajectory
    best = result.best_metric
    return {
        "task": request.task,
        "space": bench.space.name,
        "mode": request.mode,
        "budget": request.budget,
        "parallel": request.parallel,
        "seed": request.seed,
        "evaluations": len(set(traj.arch)),
        "agent": None
        if request.mode == "scratch"
        else {"uri": request.agent, "digest": agent.digest, "task": agent.task},
        "best_arch": bench.space.arch_str(result.best_index),
        "best_metric": best,
        "regret": stats.optimum - best,
        "rank": table_rank(bench.metric(request.task), best),
        "hit": bool(best >= stats.optimum),
        "optimum": stats.optimum,
        "trajectory": [
            {"arch": bench.space.arch_str(a), "metric": m, "best": b}
            for a, m, b in zip(traj.arch, traj.metric, traj.best, strict=True)
        ],
        "updates": result.updates,
        "online_settings": settings.to_dict() if request.mode != "zero-shot" else None,
        "device": device,
        "device_seconds": result.device_seconds,
        "gpu_seconds": result.gpu_seconds,
    }
