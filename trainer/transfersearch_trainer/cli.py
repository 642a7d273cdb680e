"""The `transfersearch` command line.

Heavy modules (torch, the agent) are imported inside the commands that need
them, so `transfersearch --help` and the benchmark commands start fast and work
without the trainer extra. A `TransferSearchError` becomes a one-line
``error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import TransferSearchError

app = typer.Typer(
    help="Reinforcement-learning NAS whose agents transfer between tasks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
benchmark_app = typer.Typer(help="Inspect the TransNAS-Bench-101 tables.", no_args_is_help=True)
bench_app = typer.Typer(
    help="Performance measurements (printed, side by side).", no_args_is_help=True
)
app.add_typer(benchmark_app, name="benchmark")
app.add_typer(bench_app, name="bench")

console = Console()
err_console = Console(stderr=True)


class Space(StrEnum):
    micro = "micro"
    macro = "macro"


DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Benchmark folder or file, local or s3:// (default: $TRANSFERSEARCH_DATA).",
        show_default=False,
    ),
]
SpaceOpt = Annotated[Space, typer.Option("--space", help="Search space.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object and nothing else.")]


@contextmanager
def progress_bar(total: int, description: str, enabled: bool = True) -> Any:
    """A progress bar on stderr that advances by the callback it yields."""
    if not enabled:
        yield lambda n: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task_id = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task_id, n)


@benchmark_app.command("info")
def benchmark_info(
    space: SpaceOpt = Space.micro,
    data: DataOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Per task: architectures, metric, optimum and its architecture, median."""
    from .loaders import load_benchmark

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
            s.task, f"{s.metric} ({s.unit})", _fmt(s.optimum), s.optimum_arch, _fmt(s.median)
        )
    console.print(table)
    console.print(f"source: {bench.source}")


def _fmt(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.3f}"


class Method(StrEnum):
    random = "random"
    local = "local"
    evolution = "evolution"
    all = "all"


@app.command()
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
    from .baselines import METHODS, run_baseline
    from .loaders import load_benchmark
    from .stats import summarize
    from .tasks import check_task

    check_task(task, "--task")
    bench = load_benchmark(data, space.value)
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
            _fmt(s.mean),
            _fmt(s.stderr),
            f"±{_fmt(s.ci95)}",
            _fmt(s.regret),
            f"{s.normalised_regret:.3f}",
            f"{s.hit_rate:.1%}",
        )
    console.print(table)
    console.print(
        f"optimum {_fmt(stats.optimum)} at {stats.optimum_arch}; median {_fmt(stats.median)}"
    )


@bench_app.command("env")
def bench_env(
    space: SpaceOpt = Space.micro,
    task: Annotated[str, typer.Option("--task")] = "class_object",
    batch: Annotated[int, typer.Option("--batch", help="Searches stepped at once.")] = 4096,
    steps: Annotated[int, typer.Option("--steps", help="Vectorised steps per timing.")] = 2000,
    one_core: Annotated[bool, typer.Option(help="Pin the process to one CPU core.")] = True,
    data: DataOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Environment steps/s: vectorised vs a per-search Python loop vs bare numpy gathers."""
    import os

    from .bench import measure_env
    from .loaders import load_benchmark
    from .tasks import check_task

    check_task(task, "--task")
    if one_core and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    bench = load_benchmark(data, space.value)
    if not json_out:
        err_console.print(f"measuring {space.value}/{task}, batch {batch}, best of 5 runs each...")
    result = measure_env(bench, task, batch=batch, steps=steps)
    if json_out:
        print(json.dumps(result))
        return
    table = Table(
        title=f"search env throughput, {space.value}/{task}, batch {batch}, "
        f"CPU {result['cpu_affinity']}"
    )
    for col in ("variant", "steps", "seconds", "steps/s", "vs bare gather"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    rates = result["rates"]
    assert isinstance(rates, list)
    bare = next(r["per_second"] for r in rates if r["name"] == "bare-gather")
    for r in rates:
        table.add_row(
            r["name"],
            f"{r['steps']:,}",
            f"{r['seconds']:.4f}",
            f"{r['per_second']:,.0f}",
            f"{r['per_second'] / bare:.2f}x",
        )
    console.print(table)
    console.print(
        f"vectorised / python loop = {result['vectorised_over_python']:.1f}x (goal >= 30x); "
        f"vectorised / bare gather = {result['vectorised_over_bare']:.2f} (goal >= 0.33); "
        f"env matches the python loop: {result['env_matches_python_loop']}"
    )


@app.command("operator")
def operator_cmd(
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Namespace to serve (repeatable; globs allowed)."),
    ] = None,
    all_namespaces: Annotated[
        bool, typer.Option("--all-namespaces", "-A", help="Serve every namespace.")
    ] = False,
    peering: Annotated[
        str | None,
        typer.Option(help="kopf peering name (replicas with one active); default: standalone."),
    ] = None,
    metrics_port: Annotated[int, typer.Option(help="Prometheus /metrics port; 0: off.")] = 8000,
    liveness_port: Annotated[int, typer.Option(help="/healthz port for probes; 0: off.")] = 8080,
    trainer_image: Annotated[
        str | None,
        typer.Option(
            envvar="TRANSFERSEARCH_TRAINER_IMAGE", help="Trainer image when a spec names none."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    """Run the Kubernetes operator that turns TransferSearch resources into trainer Jobs."""
    from transfersearch_operator.main import run

    run(
        namespace or [],
        all_namespaces,
        peering,
        metrics_port,
        liveness_port,
        trainer_image,
        verbose,
    )


def main() -> None:
    try:
        app()
    except TransferSearchError as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
