"""Commands on the benchmark tables: `benchmark info` and `baseline`."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.cli.baselines import print_table, run_methods
from transfersearch_trainer.cli.common import (
    DataOpt,
    JsonOpt,
    Space,
    SpaceOpt,
    console,
    task_benchmark,
)
from transfersearch_trainer.search.baselines import check_run
from transfersearch_trainer.search.oracle import ALL_BUT_TARGET
from transfersearch_trainer.search.runner import build_methods, transfer_context
from transfersearch_trainer.search.stats import fmt

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
    source_top_k = "source-top-k"
    multi_top_k = "multi-top-k"
    zero_shot_transfer = "zero-shot-transfer"
    prior_local = "prior-local"
    bounding_box = "bounding-box"
    surrogate = "surrogate"
    all = "all"


SourcesOpt = Annotated[
    str,
    typer.Option(
        "--sources",
        help="Tasks the transfer baselines may read in full: all-but-target, or a,b "
        "(never the target).",
    ),
]


def baseline(
    task: Annotated[str, typer.Option("--task", help="Benchmark task, e.g. class_object.")],
    space: SpaceOpt = Space.micro,
    method: Annotated[Method, typer.Option("--method", help="Search method, or all.")] = Method.all,
    budget: Annotated[int, typer.Option("--budget", help="Evaluations per search.")] = 50,
    searches: Annotated[int, typer.Option("--searches", help="Independent searches.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed (starts and each search).")] = 0,
    sources: SourcesOpt = ALL_BUT_TARGET,
    data: DataOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Classic and transfer baselines at a fixed budget of distinct target evaluations.

    random, local, evolution; and from the source tasks' tables: source-top-k (per
    source), multi-top-k, zero-shot-transfer, prior-local, bounding-box, surrogate.
    Deterministic methods run once and report a spread of 0.
    """

    bench = task_benchmark(task, space, data)
    check_run(bench.space.size, budget, searches)
    ctx = transfer_context(bench, task, sources, field="--sources")
    methods = build_methods(method.value, ctx.sources)
    results = run_methods(bench, ctx, task, methods, budget, searches, seed, not json_out)
    stats = bench.stats(task)
    head = {
        "task": task,
        "space": space.value,
        "budget": budget,
        "searches": searches,
        "seed": seed,
        "sources": list(ctx.sources),
        "optimum": stats.optimum,
    }
    if json_out:
        one = len(results) == 1
        print(
            json.dumps(
                head | results[0] if one else head | {"method": method.value, "results": results}
            )
        )
        return
    print_table(
        results,
        f"{task} ({space.value}), budget {budget}, {searches} searches, seed {seed}",
        f"optimum {fmt(stats.optimum)} at {stats.optimum_arch}; median {fmt(stats.median)}; "
        f"sources: {', '.join(ctx.sources) or 'none'}",
    )


def register(app: typer.Typer) -> None:
    app.command()(baseline)
