"""Studies over many agents: `matrix` and `bench transfer` (the one-source agent study)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_task
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.cli.common import (
    DataOpt,
    DeviceOpt,
    HpOpt,
    JsonOpt,
    RichReporter,
    Space,
    SpaceOpt,
    console,
    err_console,
    hyperparameters,
    print_results,
)


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

    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.study.analysis import analyse
    from transfersearch_trainer.study.matrix import MatrixSettings, run_matrix
    from transfersearch_trainer.study.report import write_report

    def ints(text: str, flag: str) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise TransferSearchError(
                f"{flag}: write comma-separated integers, e.g. 25,50,100"
            ) from None

    overrides = hyperparameters(hp).to_dict() if hp else {}
    defaults = hyperparameters(None).to_dict()
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

    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.study.agent_study import StudySettings, run_study
    from transfersearch_trainer.workflow.workspace import Workspace

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
    ws = Workspace(bench, pick_device(device), hyperparameters(hp), RichReporter(not json_out))
    results = run_study(ws, settings, Path(agents))
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
        print_results(
            rows,
            f"{source} -> {target} ({space.value}), budget {budget}, "
            f"{searches} searches, cap {target_evaluations} target evaluations",
            stats.optimum,
            stats.optimum_arch,
        )


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    app.command()(matrix)
    bench_app.command("transfer")(bench_transfer)
