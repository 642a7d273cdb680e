"""The `transfersearch` command line.

Heavy modules (torch, the agent) are imported inside the commands that need
them, so `transfersearch --help` and the benchmark commands start fast and work
without the trainer extra. A `TransferSearchError` becomes a one-line
``error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from transfersearch_trainer.api.errors import TransferSearchError

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

# Piped output (CI logs, files) gets 120 columns instead of rich's 80, so tables stay readable.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


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
LingerOpt = Annotated[
    float,
    typer.Option(
        "--metrics-linger",
        help="Keep serving /metrics this many seconds after the work ends (a last scrape).",
    ),
]


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
    from transfersearch_trainer.benchmark.loaders import load_benchmark

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
    from transfersearch_trainer.search.baselines import METHODS, run_baseline
    from transfersearch_trainer.search.stats import summarize

    bench = _task_benchmark(task, space, data)
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

    from transfersearch_trainer.api.tasks import check_task
    from transfersearch_trainer.benchmark.loaders import load_benchmark
    from transfersearch_trainer.perf.bench import measure_env

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


@bench_app.command("learner")
def bench_learner(
    space: SpaceOpt = Space.micro,
    task: Annotated[str, typer.Option("--task")] = "class_scene",
    updates: Annotated[int, typer.Option("--updates", help="Learner updates to time.")] = 1000,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Learner throughput (updates/s, env steps/s) with the default hyperparameters."""
    from transfersearch_trainer.perf.bench import measure_learner

    bench = _task_benchmark(task, space, data)
    if not json_out:
        err_console.print(f"training {updates} updates on {space.value}/{task}...")
    result = measure_learner(bench, task, updates=updates, device=device)
    if json_out:
        print(json.dumps(result))
        return
    console.print(
        f"learner on {result['device']} ({result['torch_threads']} torch threads), "
        f"{space.value}/{task}: {result['updates_per_second']:.1f} updates/s "
        f"(batch {result['batch_size']}), {result['env_steps_per_second']:,.0f} env steps/s "
        f"with learning ({result['num_actors']} actors); actors alone "
        f"{result['actors_only_env_steps_per_second']:,.0f} env steps/s"
    )


@bench_app.command("metrics")
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
    from transfersearch_trainer.perf.bench import measure_metrics

    bench = _task_benchmark(task, space, data)
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


@bench_app.command("transfer")
def bench_transfer(
    source: Annotated[str, typer.Option("--source", help="Source task (pretrained here).")],
    targets: Annotated[str, typer.Option("--targets", help="Comma-separated target tasks.")],
    space: SpaceOpt = Space.micro,
    pretrain_steps: Annotated[int, typer.Option("--pretrain-steps")] = 10000,
    steps: Annotated[int, typer.Option("--steps", help="Learner updates on each target.")] = 2000,
    target_evaluations: Annotated[
        int, typer.Option("--target-evaluations", help="Cap on target evaluations in training.")
    ] = 1000,
    budget: Annotated[int, typer.Option("--budget")] = 50,
    searches: Annotated[int, typer.Option("--searches")] = 200,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    agents: Annotated[
        str, typer.Option("--agents", help="Pretrained-agent cache.")
    ] = "runs/agents",
    data: DataOpt = None,
    device: DeviceOpt = None,
    hp: HpOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Zero-shot, fine-tuned and scratch agents (same target-evaluation cap) vs baselines."""
    from pathlib import Path

    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.api.tasks import check_task
    from transfersearch_trainer.benchmark.loaders import load_benchmark
    from transfersearch_trainer.study.agent_study import StudySettings, run_study

    check_task(source, "--source")
    target_list = tuple(t.strip() for t in targets.split(",") if t.strip())
    for t in target_list:
        check_task(t, "--targets")
    bench = load_benchmark(data, space.value)
    settings = StudySettings(
        source,
        target_list,
        pretrain_steps,
        steps,
        target_evaluations,
        budget=budget,
        searches=searches,
        seed=seed,
    )
    results = run_study(
        bench,
        settings,
        _hyperparameters(hp),
        Path(agents),
        pick_device(device),
        RichReporter(not json_out),
    )
    if json_out:
        print(
            json.dumps(
                {
                    "source": source,
                    "space": space.value,
                    "budget": budget,
                    "searches": searches,
                    "target_evaluations": target_evaluations,
                    "targets": {t: [r.to_dict() for r in rs] for t, rs in results.items()},
                }
            )
        )
        return
    for target, rows in results.items():
        stats = bench.stats(target)
        _print_results(
            rows,
            f"{source} -> {target} ({space.value}), budget {budget}, "
            f"{searches} searches, cap {target_evaluations} target evaluations",
            stats.optimum,
            stats.optimum_arch,
        )


# --- agents ------------------------------------------------------------------------------


class RichReporter:
    """Progress bars on stderr with the learner's live return, score and evaluations."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    @contextmanager
    def task(self, description: str, total: int) -> Any:
        if not self.enabled:
            yield lambda n, info: None
            return
        columns = (
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[live]}"),
        )
        with Progress(*columns, console=err_console) as progress:
            task_id = progress.add_task(description, total=total, live="")

            def tick(n: int, info: dict[str, float]) -> None:
                live = "  ".join(
                    f"{k} {v:.4g}"
                    for k, v in info.items()
                    if v == v  # skip NaN
                )
                progress.update(task_id, advance=n, live=live)

            yield tick

    def log(self, text: str) -> None:
        if self.enabled:
            err_console.print(text, highlight=False)


HpOpt = Annotated[
    list[str] | None,
    typer.Option("--hp", help="Override a hyperparameter, e.g. --hp lr=0.0001 (repeatable)."),
]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda or cuda:N (default: cuda if present).")
]


def _task_benchmark(task: str, space: Space, data: str | None) -> Any:
    """`--task` checked first (a typo fails before any loading), then the space's tables."""
    from transfersearch_trainer.api.tasks import check_task
    from transfersearch_trainer.benchmark.loaders import load_benchmark

    check_task(task, "--task")
    return load_benchmark(data, space.value)


def _hyperparameters(overrides: list[str] | None, base: Any = None) -> Any:
    from transfersearch_trainer.agent.learner import Hyperparameters

    hp = base or Hyperparameters()
    changes: dict[str, object] = {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or key not in hp.to_dict():
            raise TransferSearchError(
                f"--hp {item!r}: write name=value with a name from: {', '.join(hp.to_dict())}"
            )
        current = hp.to_dict()[key]
        try:
            changes[key] = type(current)(value)
        except ValueError:
            raise TransferSearchError(
                f"--hp {key}: {value!r} is not a {type(current).__name__}"
            ) from None
    return hp.replace(**changes) if changes else hp


def _print_results(results: list[Any], title: str, optimum: float, optimum_arch: str) -> None:
    table = Table(title=title)
    for col in (
        "method",
        "mean best",
        "± stderr",
        "regret",
        "norm. regret",
        "hit rate",
        "target evals in training (distinct/total)",
    ):
        table.add_column(col, justify="left" if col == "method" else "right")
    for r in results:
        s = r.summary
        cost = f"{r.training_evaluations:,} / {r.training_queries:,}" if r.training_queries else "0"
        table.add_row(
            r.method,
            _fmt(s.mean),
            _fmt(s.stderr),
            _fmt(s.regret),
            f"{s.normalised_regret:.3f}",
            f"{s.hit_rate:.1%}",
            cost,
        )
    console.print(table)
    console.print(f"task optimum {_fmt(optimum)} at {optimum_arch}")


@app.command()
def pretrain(
    task: Annotated[str, typer.Option("--task", help="Source task to learn searching on.")],
    out: Annotated[str, typer.Option("--out", help="Folder to write the agent to.")],
    space: SpaceOpt = Space.micro,
    steps: Annotated[int, typer.Option("--steps", help="Learner updates.")] = 10000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data: DataOpt = None,
    device: DeviceOpt = None,
    hp: HpOpt = None,
) -> None:
    """Train a new agent on a source task and save it (safetensors + JSON manifest)."""
    from pathlib import Path

    from transfersearch_trainer.agent.artifact import save_agent
    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.api.tasks import check_task
    from transfersearch_trainer.benchmark.loaders import load_benchmark
    from transfersearch_trainer.workflow.local import pretrain as run_pretrain

    check_task(task, "--task")
    if steps < 1:
        raise TransferSearchError("--steps: must be at least 1")
    bench = load_benchmark(data, space.value)
    dev = pick_device(device)
    agent = run_pretrain(bench, task, steps, seed, _hyperparameters(hp), dev, RichReporter())
    digest = save_agent(agent, Path(out))
    t = agent.training
    console.print(
        f"agent saved to {out} (sha256 {digest}); {t['updates']} updates, {t['env_steps']:,} env "
        f"steps, {t['distinct_evaluations']:,} distinct {task} architectures queried, "
        f"{t['device_seconds']:.1f} s on {t['device']}"
    )


class Mode(StrEnum):
    finetune = "finetune"
    freeze_encoder = "freeze-encoder"
    zero_shot = "zero-shot"
    scratch = "scratch"


@app.command()
def finetune(
    agent_dir: Annotated[
        str, typer.Option("--agent", help="Source agent: folder, or s3:// agent URI in a store.")
    ],
    task: Annotated[str, typer.Option("--task", help="Target task.")],
    out: Annotated[str, typer.Option("--out", help="Folder to write the new agent to.")],
    mode: Annotated[Mode, typer.Option("--mode", help="Transfer mode.")] = Mode.finetune,
    steps: Annotated[int, typer.Option("--steps", help="Learner updates on the target.")] = 2000,
    target_evaluations: Annotated[
        int | None,
        typer.Option("--target-evaluations", help="Cap on distinct target architectures queried."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data: DataOpt = None,
    device: DeviceOpt = None,
    hp: HpOpt = None,
) -> None:
    """Transfer an agent to a target task: finetune, freeze-encoder, zero-shot or scratch."""
    from pathlib import Path

    from transfersearch_trainer.agent.artifact import load_agent, save_agent
    from transfersearch_trainer.agent.evaluate import curve_evaluator
    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.agent.transfer import fit, make_target_agent
    from transfersearch_trainer.api.tasks import check_task
    from transfersearch_trainer.benchmark.loaders import load_benchmark
    from transfersearch_trainer.store.agents import fetch_agent

    check_task(task, "--task")
    source = load_agent(fetch_agent(agent_dir))
    bench = load_benchmark(data, source.space)
    dev = pick_device(device)
    agent, trainable = make_target_agent(
        source, mode.value, bench.space, seed, _hyperparameters(hp, source.hp)
    )
    reporter = RichReporter()
    n = steps if trainable is not None else 0
    evaluator = curve_evaluator(bench, task, agent.hp.eval_budget, agent.hp.eval_searches, dev)
    with reporter.task(f"{mode.value} on {task}", max(n, 1)) as tick:
        fit(agent, bench, task, n, trainable, dev, target_evaluations, evaluator, tick)
    digest = save_agent(agent, Path(out))
    t = agent.training
    console.print(
        f"agent saved to {out} (sha256 {digest}); {t['updates']} updates on {task}, "
        f"{t['distinct_evaluations']:,} distinct target architectures queried "
        f"({t['total_evaluations']:,} queries), {t['device_seconds']:.1f} s on {t['device']}"
    )


@app.command()
def evaluate(
    agent_dir: Annotated[
        str, typer.Option("--agent", help="Agent: folder, or s3:// agent URI in a store.")
    ],
    task: Annotated[str, typer.Option("--task", help="Task to search on.")],
    budget: Annotated[int, typer.Option("--budget", help="Evaluations per search.")] = 50,
    searches: Annotated[int, typer.Option("--searches", help="Independent searches.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Evaluation seed.")] = 1_000_000,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Greedy agent vs random, local search, evolution and source top-k, on the same starts."""
    from transfersearch_trainer.agent.artifact import load_agent
    from transfersearch_trainer.agent.evaluate import compare
    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.api.tasks import check_task
    from transfersearch_trainer.benchmark.loaders import load_benchmark
    from transfersearch_trainer.store.agents import fetch_agent
    from transfersearch_trainer.workflow.local import training_cost

    check_task(task, "--task")
    agent = load_agent(fetch_agent(agent_dir))
    bench = load_benchmark(data, agent.space)
    if not 2 <= budget <= bench.space.size:
        raise TransferSearchError(f"--budget: must be between 2 and {bench.space.size}")
    dev = pick_device(device)
    source_task = (agent.parent or {}).get("task") or agent.task
    distinct, total = training_cost(agent, task)
    with progress_bar(searches * 5, f"searching {task}", not json_out) as advance:
        results = compare(
            bench,
            task,
            budget,
            searches,
            seed,
            {"agent": (agent.net, distinct, total)},
            dev,
            source_task=source_task,
            progress=advance,
        )
    stats = bench.stats(task)
    if json_out:
        mine = results[0]
        print(
            json.dumps(
                {
                    "task": task,
                    "space": agent.space,
                    "budget": budget,
                    "searches": searches,
                    "seed": seed,
                    "agent": agent_dir,
                    "agent_digest": agent.digest,
                    "agent_task": agent.task,
                    "mode": agent.mode,
                    "optimum": stats.optimum,
                    **{k: v for k, v in mine.to_dict().items() if k != "method"},
                    "baselines": {r.method: r.to_dict() for r in results[1:]},
                }
            )
        )
        return
    _print_results(
        results,
        f"{task} ({agent.space}), budget {budget}, {searches} searches, "
        f"agent {agent.mode} from {source_task}",
        stats.optimum,
        stats.optimum_arch,
    )


@app.command()
def run(
    manifest_file: Annotated[
        str, typer.Argument(help="TransferSearch manifest (YAML).", metavar="FILE")
    ],
    out: Annotated[
        str | None, typer.Option("--out", help="Report folder (default runs/NAME).")
    ] = None,
    agents: Annotated[
        str | None,
        typer.Option("--agents", help="Cache of pretrained source agents (default runs/agents)."),
    ] = None,
    compare_scratch: Annotated[
        bool, typer.Option(help="Also train a scratch agent with the same budget, for reference.")
    ] = True,
    data: DataOpt = None,
    device: DeviceOpt = None,
    hp: HpOpt = None,
    json_out: JsonOpt = False,
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port", help="Serve Prometheus /metrics on this port while running; 0: off."
        ),
    ] = 0,
    metrics_linger: LingerOpt = 0.0,
) -> None:
    """Run a TransferSearch manifest locally: source agent, transfer, evaluation, report."""
    from pathlib import Path

    from transfersearch_trainer.agent.evaluate import MethodResult
    from transfersearch_trainer.api.spec import load_manifest
    from transfersearch_trainer.search.stats import Summary
    from transfersearch_trainer.workflow.local import RunOptions, run_manifest

    manifest = load_manifest(manifest_file)
    out_dir = Path(out or Path("runs") / manifest.metadata.name)
    metrics = None
    if metrics_port:
        from transfersearch_trainer.telemetry.metrics import TrainerMetrics

        metrics = TrainerMetrics()
        try:
            metrics.serve(metrics_port)
        except OSError as err:
            raise TransferSearchError(
                f"--metrics-port: cannot listen on {metrics_port} ({err.strerror}); "
                "choose a free port or 0"
            ) from None
        err_console.print(f"metrics on http://localhost:{metrics_port}/metrics")
    opts = RunOptions(
        out=out_dir,
        data=data,
        agents_dir=Path(agents) if agents else None,
        compare_scratch=compare_scratch,
        device=device,
        hp=_hyperparameters(hp),
        metrics=metrics,
    )
    report = run_manifest(manifest, opts, RichReporter(not json_out))
    if metrics is not None and metrics_linger > 0:
        err_console.print(f"serving the final metrics for {metrics_linger:.0f} s more")
        time.sleep(metrics_linger)
    if json_out:
        print(json.dumps(report))
        return
    results = [
        MethodResult(
            r["method"],
            Summary(**{k: r[k] for k in Summary.__dataclass_fields__}),
            r["training_evaluations"],
            r["training_queries"],
            r["best_arch"],
            r["best_value"],
        )
        for r in report["results"]
    ]
    _print_results(
        results,
        f"{manifest.metadata.name}: {report['source_task'] or 'no source'} -> "
        f"{report['target_task']} "
        f"({report['mode']}), budget {report['budget']}, {report['searches']} searches",
        report["optimum"],
        report["optimum_arch"],
    )
    console.print(
        f"report: {out_dir}/ (results.json, curves.csv, learning_curves.png, "
        f"comparison.png, agents/); {report['wall_seconds']:.0f} s on {report['device']}"
    )


@app.command()
def matrix(
    tasks: Annotated[
        str, typer.Option("--tasks", help="Comma-separated tasks (sources and targets).")
    ],
    out: Annotated[str, typer.Option("--out", help="Output folder (resumable).")],
    space: SpaceOpt = Space.micro,
    seeds: Annotated[int, typer.Option("--seeds", help="Training seeds per agent.")] = 3,
    steps: Annotated[int, typer.Option("--steps", help="Learner updates per agent.")] = 2000,
    budgets: Annotated[str, typer.Option("--budgets", help="Search budgets.")] = "25,50,100",
    modes: Annotated[str, typer.Option("--modes")] = "finetune,freeze-encoder,zero-shot",
    caps: Annotated[
        str, typer.Option("--caps", help="Honest protocol: target-evaluation caps in training.")
    ] = "100,300,1000",
    honest_steps: Annotated[int, typer.Option("--honest-steps")] = 500,
    searches: Annotated[int, typer.Option("--searches", help="Searches per evaluation.")] = 100,
    probe: Annotated[int, typer.Option("--probe", help="Similarity probe size.")] = 30,
    workers: Annotated[int, typer.Option("--workers", help="Parallel processes.")] = 2,
    data: DataOpt = None,
    hp: HpOpt = None,
) -> None:
    """Every source x target pair: paper protocol, honest protocol, similarity, ROI, report."""
    from pathlib import Path

    from transfersearch_trainer.benchmark.loaders import load_benchmark
    from transfersearch_trainer.study.matrix import MatrixSettings, run_matrix
    from transfersearch_trainer.study.report import analyse, write_report

    def ints(text: str, flag: str) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise TransferSearchError(
                f"{flag}: write comma-separated integers, e.g. 25,50,100"
            ) from None

    overrides = _hyperparameters(hp).to_dict() if hp else {}
    defaults = _hyperparameters(None).to_dict()
    settings = MatrixSettings(
        space=space.value,
        tasks=tuple(t.strip() for t in tasks.split(",") if t.strip()),
        seeds=seeds,
        steps=steps,
        budgets=ints(budgets, "--budgets"),
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
        caps=ints(caps, "--caps"),
        honest_steps=honest_steps,
        searches=searches,
        probe=probe,
        hp={k: v for k, v in overrides.items() if defaults[k] != v},
    )
    bench = load_benchmark(data, space.value)  # fail fast on bad data, before any worker starts
    out_dir = Path(out)
    columns = (
        TextColumn("{task.description:<40}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console) as progress:
        task_id = progress.add_task("matrix cells", total=None)

        def tick(cell: str, done: int, total: int) -> None:
            progress.update(task_id, completed=done, total=total, description=cell[:40])

        cells = run_matrix(settings, out_dir, data, workers=workers, progress=tick)
    err_console.print(f"{len(cells)} cells done; writing the report...")
    report = write_report(analyse(cells, settings, bench), out_dir)
    console.print(report.read_text())
    console.print(f"report: {report} (matrix.json, pairs.csv, honest.csv, plots)")


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
    s3_bucket: Annotated[
        str | None,
        typer.Option(
            envvar="TRANSFERSEARCH_DEFAULT_S3_BUCKET",
            help="Default S3 bucket for searches whose spec has no s3 section.",
        ),
    ] = None,
    s3_prefix: Annotated[
        str, typer.Option(envvar="TRANSFERSEARCH_DEFAULT_S3_PREFIX", help="Its key prefix.")
    ] = "transfersearch",
    s3_endpoint: Annotated[
        str | None,
        typer.Option(envvar="TRANSFERSEARCH_DEFAULT_S3_ENDPOINT", help="Its endpoint URL."),
    ] = None,
    s3_region: Annotated[
        str | None, typer.Option(envvar="TRANSFERSEARCH_DEFAULT_S3_REGION", help="Its region.")
    ] = None,
    s3_credentials_secret: Annotated[
        str | None,
        typer.Option(
            envvar="TRANSFERSEARCH_DEFAULT_S3_SECRET",
            help="Secret (in each search's namespace) with its credentials.",
        ),
    ] = None,
) -> None:
    """Run the Kubernetes operator that turns TransferSearch resources into trainer Jobs."""
    from transfersearch_operator.main import run
    from transfersearch_trainer.api.spec import S3Settings, format_validation_error

    default_s3 = None
    if s3_bucket:
        from pydantic import ValidationError

        try:
            default_s3 = S3Settings(
                bucket=s3_bucket,
                prefix=s3_prefix,
                endpoint=s3_endpoint,
                region=s3_region,
                credentials_secret=s3_credentials_secret,
            )
        except ValidationError as err:
            raise TransferSearchError(
                " ".join(format_validation_error(err, "--s3-* flags").split())
            ) from None

    run(
        namespace or [],
        all_namespaces,
        peering,
        metrics_port,
        liveness_port,
        trainer_image,
        verbose,
        default_s3,
    )


# --- the trainer workload: agent store, and the trainer pod's entry point ---------------

agents_app = typer.Typer(
    help="Push, pull and list agents in an agent store (s3://bucket/prefix or a folder).",
    no_args_is_help=True,
)
app.add_typer(agents_app, name="agents")
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Agent store: s3://bucket/prefix or a folder (default: $TRANSFERSEARCH_STORE, "
        "else runs/store).",
        show_default=False,
    ),
]


@agents_app.command("push")
def agents_push(
    folder: Annotated[str, typer.Argument(help="Agent folder to push.", metavar="DIR")],
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Copy an agent folder into the store under its content digest; prints its URI."""
    from transfersearch_trainer.store.agents import AgentStore, default_store

    entry = AgentStore(store or default_store()).push(folder)
    if json_out:
        print(json.dumps(entry.to_dict()))
        return
    console.print(f"{entry.uri}\nweights sha256:{entry.weights_digest}", highlight=False)


@agents_app.command("pull")
def agents_pull(
    uri: Annotated[
        str, typer.Argument(help="Agent URI, as `agents push` or `agents list` print it.")
    ],
    out: Annotated[str, typer.Option("--out", help="Folder to write the agent to.")],
    digest: Annotated[
        str | None,
        typer.Option("--digest", help="Expected weights digest (sha256:<hex>), checked too."),
    ] = None,
) -> None:
    """Fetch an agent and verify its manifest and weights digests before writing it."""
    from pathlib import Path

    from transfersearch_trainer.store.agents import AgentStore, parse_agent_uri

    ref = parse_agent_uri(uri)
    if ref is None:
        raise TransferSearchError(
            f"{uri}: not an agent URI; expected <store>/agents/<space>/<task>/<sha256>, as "
            "`transfersearch agents list` prints them"
        )
    path = AgentStore(ref.root).pull(ref, Path(out), digest)
    console.print(f"verified agent {ref.space}/{ref.task}/{ref.digest[:12]} written to {path}")


@agents_app.command("list")
def agents_list(
    store: StoreOpt = None,
    space: Annotated[str | None, typer.Option("--space", help="Only this space.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Agents in the store, by space and task, oldest first."""
    from transfersearch_trainer.store.agents import AgentStore, default_store

    agents = AgentStore(store or default_store()).list_agents(space, task)
    if json_out:
        print(json.dumps([a.to_dict() for a in agents]))
        return
    table = Table(title=f"agents in {store or default_store()}")
    for col in ("space", "task", "mode", "steps", "score", "created", "id", "uri"):
        table.add_column(col, justify="right" if col in ("steps", "score") else "left")
    for a in agents:
        table.add_row(
            a.space,
            a.task,
            a.mode or "",
            str(a.steps or ""),
            "" if a.score is None else _fmt(a.score),
            a.created or "",
            a.digest[:12],
            a.uri,
        )
    console.print(table)


@bench_app.command("checkpoint")
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
    from transfersearch_trainer.perf.bench import measure_checkpoint

    bench = _task_benchmark(task, space, data)
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


@app.command()
def train(
    config: Annotated[
        str, typer.Option("--config", help="Job config JSON (what the operator mounts).")
    ],
    termination_log: Annotated[
        str | None,
        typer.Option(
            "--termination-log",
            help="Where the trial summary goes (default: the config's terminationLog).",
            show_default=False,
        ),
    ] = None,
    trial: Annotated[
        int | None,
        typer.Option(
            "--trial",
            help="Trial index (default: $JOB_COMPLETION_INDEX, else 0).",
            show_default=False,
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Prometheus /metrics port (default: the config's metricsPort; 0: off).",
            show_default=False,
        ),
    ] = None,
    metrics_linger: LingerOpt = 0.0,
) -> None:
    """Run one trial of a search as a trainer pod does (exit 0 ok, 2 permanent, 75 retryable)."""
    from transfersearch_trainer.pod.trial import main as run_trial

    code = run_trial(config, termination_log, trial, metrics_port, metrics_linger)
    if code:
        raise typer.Exit(code)


def main() -> None:
    try:
        app()
    except TransferSearchError as err:
        err_console.print(f"[bold red]error:[/] {err}", highlight=False, soft_wrap=True)
        sys.exit(err.exit_code)  # 2: fix the input; 75: transient, try again later
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
