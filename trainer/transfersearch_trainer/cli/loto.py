"""`transfersearch study loto`: the honest leave-one-task-out study (resumable, parallel)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from transfersearch_trainer.api.errors import TransferSearchError
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

study_app = typer.Typer(
    help="Studies: the honest target search (loto), the paper's transfer protocol (paper).",
    no_args_is_help=True,
)


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise TransferSearchError(f"{flag}: write comma-separated integers, e.g. 50,100") from None


@study_app.command("loto")
def loto(
    out: Annotated[str, typer.Option("--out", help="Output folder (resumable).")],
    space: SpaceOpt = Space.micro,
    seeds: Annotated[int, typer.Option("--seeds", help="Pretraining seeds per agent.")] = 5,
    budgets: Annotated[str, typer.Option("--budgets", help="Search budgets.")] = "25,50,100,200",
    searches: Annotated[
        int, typer.Option("--searches", help="Searches per agent seed and budget.")
    ] = 10,
    updates: Annotated[int, typer.Option("--updates", help="Pretraining updates.")] = 3000,
    targets: Annotated[
        str | None, typer.Option("--targets", help="Comma-separated targets (default: all).")
    ] = None,
    modes: Annotated[str, typer.Option("--modes")] = "online,zero-shot,scratch",
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", help="The study's tasks, sources and targets (default: all)."),
    ] = None,
    source_searches: Annotated[
        int,
        typer.Option(
            "--source-searches",
            help="Single-source agents: searches per seed, target and budget (0: none).",
        ),
    ] = 0,
    all_tasks: Annotated[
        bool, typer.Option("--all-tasks", help="Also pretrain the all-task agents (the zoo's).")
    ] = False,
    pretrain_only: Annotated[
        bool, typer.Option("--pretrain-only", help="Stop after pretraining (no searches).")
    ] = False,
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only",
            help="Run nothing: write the summary of the cells finished so far (a partial study).",
        ),
    ] = False,
    workers: Annotated[int, typer.Option("--workers", help="Parallel processes.")] = 1,
    data: DataOpt = None,
    hp: HpOpt = None,
) -> None:
    """Every target: its leave-one-task-out agent (online, zero-shot), scratch, every baseline."""
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.study.cells import check_settings
    from transfersearch_trainer.study.loto import LotoSettings, load_cells, run_loto
    from transfersearch_trainer.study.loto_plots import plot_study
    from transfersearch_trainer.study.loto_report import summarize_study, write_summary

    bench = load_benchmark(data, space.value)  # fail fast on bad data, before any worker starts
    universe = task_names(tasks, "--tasks") if tasks else ()
    chosen = task_names(targets, "--targets") if targets else universe or bench.tasks
    settings = LotoSettings(
        space=space.value,
        targets=chosen,
        seeds=seeds,
        budgets=_ints(budgets, "--budgets"),
        searches=searches,
        updates=updates,
        modes=tuple(m.strip() for m in modes.split(",") if m.strip()),
        hp=hp_overrides(hp),
        source_searches=source_searches,
        all_tasks=all_tasks,
        tasks=universe,
    )
    out_dir = Path(out)
    if report_only:
        if not (out_dir / "settings.json").is_file():
            raise TransferSearchError(f"--out {out}: no study here (settings.json is missing)")
        check_settings(out_dir, settings.to_dict(), "leave-one-task-out study")
        cells = load_cells(out_dir)
    else:
        with cell_progress("loto cells") as tick:
            cells = run_loto(
                settings, out_dir, data, workers=workers, progress=tick, pretrain_only=pretrain_only
            )
    if pretrain_only:
        console.print(f"{len(cells)} cells done; agents under {out_dir / 'agents'}", markup=False)
        return
    err_console.print(f"{len(cells)} cells done; running the baselines and writing the summary...")
    rows = summarize_study(cells, settings, bench)
    summary = write_summary(rows, settings, out_dir)
    plots = plot_study(rows, settings, out_dir)
    console.print(summary.read_text(), markup=False, highlight=False)
    console.print(
        f"summary: {summary} (summary.csv, summary.json); plots: "
        + ", ".join(p.name for p in plots),
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(study_app, name="study")
