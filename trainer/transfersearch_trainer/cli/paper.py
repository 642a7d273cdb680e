"""`transfersearch study paper`: the paper's transfer protocol on its four tasks (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.cli.common import (
    DataOpt,
    HpOpt,
    Space,
    SpaceOpt,
    cell_progress,
    console,
    err_console,
    hp_overrides,
    task_names,
)


def paper(
    out: Annotated[str, typer.Option("--out", help="Output folder (resumable).")],
    space: SpaceOpt = Space.micro,
    seeds: Annotated[int, typer.Option("--seeds", help="Training seeds per agent.")] = 5,
    updates: Annotated[
        int, typer.Option("--updates", help="Pretraining = scratch learner updates.")
    ] = 3000,
    tasks: Annotated[
        str | None,
        typer.Option(
            "--tasks",
            help="Comma-separated tasks, sources and targets (default: the paper's "
            "class_object, room_layout, autoencoder, segmentsemantic).",
        ),
    ] = None,
    finetune_fraction: Annotated[
        float, typer.Option("--finetune-fraction", help="Fine-tune updates / --updates.")
    ] = 0.1,
    retrain_fraction: Annotated[
        float, typer.Option("--retrain-fraction", help="Re-train updates / --updates.")
    ] = 1.0,
    segmentation_power: Annotated[
        float,
        typer.Option(
            "--segmentation-power", help="Train on segmentsemantic ** this (1: no shaping)."
        ),
    ] = 0.478,
    eval_budget: Annotated[
        int, typer.Option("--eval-budget", help="Budget of each evaluation search.")
    ] = 50,
    searches: Annotated[
        int, typer.Option("--searches", help="Evaluation searches per curve point.")
    ] = 100,
    curve_points: Annotated[
        int, typer.Option("--curve-points", help="Learning-curve points per agent (>= 10).")
    ] = 10,
    workers: Annotated[int, typer.Option("--workers", help="Parallel processes.")] = 1,
    data: DataOpt = None,
    hp: HpOpt = None,
) -> None:
    """Zero-shot, fine-tune and re-train vs scratch: 4x4 matrices of score and time, claims."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.study.paper import PAPER_TASKS, PaperSettings, run_paper
    from transfersearch_trainer.study.paper_analysis import analyse
    from transfersearch_trainer.study.paper_report import write_report

    settings = PaperSettings(
        space=space.value,
        tasks=task_names(tasks, "--tasks") if tasks else PAPER_TASKS,
        seeds=seeds,
        updates=updates,
        finetune_fraction=finetune_fraction,
        retrain_fraction=retrain_fraction,
        segmentation_power=segmentation_power,
        eval_budget=eval_budget,
        searches=searches,
        curve_points=curve_points,
        hp=hp_overrides(hp),
    )
    load_benchmark(data, space.value)  # fail fast on bad data, before any worker starts
    out_dir = Path(out)
    with cell_progress("paper cells") as tick:
        cells = run_paper(settings, out_dir, data, workers=workers, progress=tick)
    err_console.print(f"{len(cells)} cells done; writing the report...")
    report = write_report(analyse(cells, settings), out_dir)
    console.print(report.read_text(), markup=False, highlight=False, soft_wrap=True)
    console.print(f"report: {report} (summary.json, heatmaps, curves)", markup=False)


def register(study_app: typer.Typer) -> None:
    study_app.command("paper")(paper)
