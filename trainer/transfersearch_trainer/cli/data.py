"""Commands on the benchmark tables: `benchmark info` and `baseline`."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.cli.common import (
    DataOpt,
    JsonOpt,
    Space,
    SpaceOpt,
    console,
    progress_bar,
    task_benchmark,
)
from transfersearch_trainer.search.baselines import METHODS, run_baseline
from transfersearch_trainer.search.stats import fmt, summarize

benchmark_app = typer.Typer(help="Inspect the TransNAS-Bench-101 tables.", no_args_is_help=True)


@benchmark_app.command("info")
def benchmark_info(
    space: SpaceOpt = Space.micro,
    data: DataOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Per task: architectures, metric, optimum and its architecture, median."""

    bench = load_benchmark(data, space.value)
    stats = [bench.stats(task) for task in bench.tasks]
    if json_out:
        print(
            json.dumps(
                {
                    "space": space.value,
                    "source": bench.source,
                    "architectures": bench.space.size,
                    "actions": bench.space.num_actions,
                    "tasks": [s.to_dict() for s in stats],
                }
            )
        )
        return
    neighbours = bench.space.valid.sum(axis=1)
    table = Table(
        title=f"TransNAS-Bench-101 {space.value}: {bench.space.size} architectures, "
        f"{bench.space.num_actions} actions, {neighbours.min()}-{neighbours.max()} neighbours"
    )
    for col in ("task", "metric", "optimum", "optimum architecture", "median"):
        table.add_column(
            col, justify="left" if col in ("task", "metric", "optimum architecture") else "right"
        )
    for s in stats:
        table.add_row(
            s.task, f"{s.metric} ({s.unit})", fmt(s.optimum), s.optimum_arch, fmt(s.median)
        )
    console.print(table)
    console.print(f"source: {bench.source}")


class Method(StrEnum):
    random = "random"
    local = "local"
    evolution = "evolution"
    all = "all"


def baseline(
    task: Annotated[str, typer.Option("--task", help="Benchmark task, e.g. class_object.")],
    space: SpaceOpt = Space.micro,
    method: Annotated[Method, typer.Option("--method", help="Search method, or all.")] = Method.all,
    budget: Annotated[int, typer.Option("--budget", help="Evaluations per search.")] = 50,
    searches: Annotated[int, typer.Option("--searches", help="Independent searches.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed (starts and each search).")] = 0,
    data: DataOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Random search, local search or regularised evolution at a fixed evaluation budget."""

    bench = task_benchmark(task, space, data)
    stats = bench.stats(task)
    methods = list(METHODS) if method is Method.all else [method.value]
    summaries = {}
    with progress_bar(searches * len(methods), f"{task} searches", not json_out) as advance:
        for name in methods:
            runs = run_baseline(bench, task, name, budget, searches, seed, progress=advance)
            summaries[name] = summarize(runs.best, stats)
    results = [{"method": name, **s.to_dict()} for name, s in summaries.items()]
    head = {
        "task": task,
        "space": space.value,
        "budget": budget,
        "searches": searches,
        "seed": seed,
        "optimum": stats.optimum,
    }
    if json_out:
        print(
            json.dumps(
                head | results[0]
                if len(results) == 1
                else head | {"method": "all", "results": results}
            )
        )
        return
    table = Table(
        title=f"{task} ({space.value}), budget {budget}, {searches} searches, seed {seed}"
    )
    for col in ("method", "mean best", "± stderr", "95% CI", "regret", "norm. regret", "hit rate"):
        table.add_column(col, justify="left" if col == "method" else "right")
    for name, s in summaries.items():
        table.add_row(
            name,
            fmt(s.mean),
            fmt(s.stderr),
            f"±{fmt(s.ci95)}",
            fmt(s.regret),
            f"{s.normalised_regret:.3f}",
            f"{s.hit_rate:.1%}",
        )
    console.print(table)
    console.print(
        f"optimum {fmt(stats.optimum)} at {stats.optimum_arch}; median {fmt(stats.median)}"
    )


def register(app: typer.Typer) -> None:
    app.command()(baseline)
