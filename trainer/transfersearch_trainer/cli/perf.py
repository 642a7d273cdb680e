"""The `bench` measurements of the environment, the learner, metrics and checkpoints."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer
from rich.table import Table

from transfersearch_trainer.api.tasks import check_task
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.cli.common import (
    DataOpt,
    DeviceOpt,
    JsonOpt,
    Space,
    SpaceOpt,
    console,
    err_console,
    task_benchmark,
)


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

    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.perf.env import measure_env

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


def bench_learner(
    space: SpaceOpt = Space.micro,
    task: Annotated[str, typer.Option("--task")] = "class_scene",
    updates: Annotated[int, typer.Option("--updates", help="Learner updates to time.")] = 1000,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Learner throughput (updates/s, env steps/s) with the default hyperparameters."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.perf.training import measure_learner

    bench = task_benchmark(task, space, data)
    if not json_out:
        err_console.print(f"training {updates} updates on {space.value}/{task}...")
    result = measure_learner(bench, task, updates=updates, device=device)
    if json_out:
        print(json.dumps(result))
        return
    table = Table(
        title=f"learner on {result['device']} ({result['torch_threads']} torch threads), "
        f"{space.value}/{task}, batch {result['batch_size']}, {result['num_actors']} actors, "
        f"medians of {result['rounds']} runs of {updates} updates"
    )
    for col in (
        "network",
        "parameters",
        "updates/s",
        "bare update/s",
        "loop / bare",
        "env steps/s",
    ):
        table.add_column(col, justify="right")
    networks = result["networks"]
    assert isinstance(networks, dict)
    for name, r in networks.items():
        default = " (default)" if name == result["default_network"] else ""
        table.add_row(
            name + default,
            f"{r['parameters']:,}",
            f"{r['updates_per_second']:.1f}",
            f"{r['bare_updates_per_second']:.1f}",
            f"{r['updates_per_second'] / r['bare_updates_per_second']:.2f}",
            f"{r['env_steps_per_second']:,.0f}",
        )
    console.print(table)
    if "speedup" in result:
        console.print(
            f"{result['default_network']} / {result['reference_network']} updates/s = "
            f"{result['speedup']:.2f} (goal >= 3; the bare "
            "update is the double-DQN step alone, without acting)",
            highlight=False,
        )


def bench_metrics(
    space: SpaceOpt = Space.micro,
    task: Annotated[str, typer.Option("--task")] = "class_scene",
    updates: Annotated[int, typer.Option("--updates", help="Learner updates per run.")] = 600,
    rounds: Annotated[int, typer.Option("--rounds", help="Plain/instrumented pairs.")] = 3,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Cost of the Prometheus instrumentation on learner throughput, and one scrape's size."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.perf.training import measure_metrics

    bench = task_benchmark(task, space, data)
    if not json_out:
        err_console.print(
            f"{rounds} x (plain, instrumented + scraped every second) runs of {updates} updates..."
        )
    r = measure_metrics(bench, task, updates, rounds, device=device)
    if json_out:
        print(json.dumps(r))
        return
    console.print(
        f"learner on {r['device']}: {r['plain_updates_per_second']:.1f} updates/s plain, "
        f"{r['instrumented_updates_per_second']:.1f} instrumented and scraped "
        f"(ratio {r['ratio']:.3f}, medians of {r['rounds']}); one scrape: "
        f"{r['scrape_bytes']:,} bytes, {r['scrape_samples']} samples in {r['families']} families",
        highlight=False,
    )


def bench_checkpoint(
    space: SpaceOpt = Space.micro,
    task: Annotated[str, typer.Option("--task")] = "class_scene",
    updates: Annotated[int, typer.Option("--updates", help="Learner updates to train.")] = 3000,
    interval: Annotated[
        int, typer.Option("--interval", help="Updates between checkpoints.")
    ] = 1000,
    location: Annotated[
        str | None,
        typer.Option("--location", help="Where to write them (default: a temporary folder)."),
    ] = None,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Checkpoint size, time to write and to restore, training lost on a kill (default settings)."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.perf.training import measure_checkpoint

    bench = task_benchmark(task, space, data)
    if not json_out:
        err_console.print(f"training {updates} updates on {space.value}/{task}, checkpointing...")
    r = measure_checkpoint(bench, task, updates, interval, location, device=device)
    if json_out:
        print(json.dumps(r))
        return
    console.print(
        f"checkpoints to {r['location']} on {r['device']}: {r['checkpoint_bytes'] / 1e6:.1f} MB "
        f"({r['replay_rows']:,} replay rows), written in {r['save_seconds_mean']:.2f} s each "
        f"({r['checkpoint_share']:.1%} of {r['training_seconds']:.0f} s training); restore "
        f"{r['restore_seconds']:.2f} s; a kill loses at most {r['lost_updates_max']} updates "
        f"= {r['lost_seconds_max']:.1f} s at {r['updates_per_second']:.1f} updates/s",
        highlight=False,
    )


def bench_search(
    space: SpaceOpt = Space.micro,
    task: Annotated[str, typer.Option("--task")] = "class_object",
    budget: Annotated[int, typer.Option("--budget", help="Evaluations per search.")] = 100,
    repeats: Annotated[int, typer.Option("--repeats", help="Searches per mode.")] = 3,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Seconds of compute per search on a target, per mode (goal: online 100 evals <= 10 s)."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.perf.search import measure_search

    bench = task_benchmark(task, space, data)
    if one_core := hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    r = measure_search(bench, task, budget, repeats, device)
    if json_out:
        print(json.dumps(r))
        return
    for mode, m in r["modes"].items():
        console.print(
            f"{mode:>9} search, {budget} evaluations on {space.value}/{task}: "
            f"{m['seconds_median']:.2f} s ({m['updates_median']:.0f} online updates), "
            f"{r['device']}, {r['torch_threads']} thread{', one core' if one_core else ''}",
            highlight=False,
        )
    console.print("goal: an online search of 100 evaluations in <= 10 s on one core")


def bench_quality(
    space: SpaceOpt = Space.micro,
    source: Annotated[str, typer.Option("--source", help="Task to pretrain on.")] = "class_scene",
    target: Annotated[str, typer.Option("--target", help="Held-out task.")] = "class_object",
    updates: Annotated[int, typer.Option("--updates", help="Pretraining updates.")] = 3000,
    seeds: Annotated[int, typer.Option("--seeds", help="Pretraining seeds.")] = 3,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Agent quality per network on one fixed evaluation (source score, target zero-shot)."""
    from transfersearch_trainer.perf.quality import measure_quality
    from transfersearch_trainer.search.stats import fmt

    check_task(target, "--target")
    bench = task_benchmark(source, space, data)
    r = measure_quality(bench, source, target, updates, seeds, device=device)
    if json_out:
        print(json.dumps(r))
        return
    table = Table(
        title=f"{r['seeds']} pretraining seeds x {r['updates']} updates on {source}; "
        f"{r['searches']} zero-shot searches of {r['budget']} on {target} per agent "
        "(mean +- 95% CI over seeds)"
    )
    for col in ("network", "device s", f"{source} score", f"{target} best", "mean rank"):
        table.add_column(col, justify="right")
    for name, e in r["networks"].items():
        table.add_row(
            name + (" (default)" if name == r["default_network"] else ""),
            *(
                f"{fmt(e[k]['mean'])} +- {fmt(e[k]['ci95'])}"
                for k in ("device_seconds", "source_score", "target_mean", "target_mean_rank")
            ),
        )
    console.print(table)


def register(bench_app: typer.Typer) -> None:
    bench_app.command("quality")(bench_quality)
    bench_app.command("env")(bench_env)
    bench_app.command("learner")(bench_learner)
    bench_app.command("metrics")(bench_metrics)
    bench_app.command("checkpoint")(bench_checkpoint)
    bench_app.command("search")(bench_search)
