"""`transfersearch search`: one search on a target with a budget of paid evaluations."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_task
from transfersearch_trainer.cli.common import (
    DataOpt,
    DeviceOpt,
    JsonOpt,
    Space,
    SpaceOpt,
    console,
    task_benchmark,
)
from transfersearch_trainer.cli.own_data import (
    BatchOpt,
    CacheOpt,
    CompareOpt,
    EpochsOpt,
    FormatOpt,
    NoCacheOpt,
    ResolutionOpt,
    ValSplitOpt,
    ValUriOpt,
    WidthOpt,
    own_data_search,
)
from transfersearch_trainer.search.stats import fmt


class SearchStart(StrEnum):
    prior = "prior"
    random = "random"


class SearchMode(StrEnum):
    zero_shot = "zero-shot"
    online = "online"
    scratch = "scratch"


def search(
    task: Annotated[
        str | None, typer.Option("--task", help="Target task (a benchmark task), or --dataset.")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Your own data instead of --task: an .npz (x, y) or an image folder "
            "(<class>/<image>), a path or s3:// URI. Every evaluation trains a network.",
        ),
    ] = None,
    budget: Annotated[
        int, typer.Option("--budget", help="Distinct target evaluations, in total.")
    ] = 50,
    space: SpaceOpt = Space.micro,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent",
            help="Agent: folder, s3:// URI, or zoo (the zoo's agent pretrained on every task "
            "but --task); scratch: optional.",
        ),
    ] = None,
    digest: Annotated[
        str | None, typer.Option("--digest", help="Expected weights digest (sha256:<hex>).")
    ] = None,
    mode: Annotated[
        SearchMode,
        typer.Option(
            "--mode",
            help="zero-shot (fixed weights), online (learns from the "
            "search's own evaluations) or scratch (untrained, learns online).",
        ),
    ] = SearchMode.online,
    parallel: Annotated[
        int, typer.Option("--parallel", help="Architectures proposed (trained) at once.")
    ] = 1,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    start: Annotated[
        SearchStart,
        typer.Option(
            "--start",
            help="prior: the best architectures of the agent's source tasks "
            "(none for scratch); random: seeded random ones.",
        ),
    ] = SearchStart.prior,
    data: DataOpt = None,
    device: DeviceOpt = None,
    json_out: JsonOpt = False,
    fmt_: FormatOpt = "auto",
    validation_split: ValSplitOpt = 0.2,
    validation_uri: ValUriOpt = None,
    epochs: EpochsOpt = 2,
    width: WidthOpt = 16,
    batch_size: BatchOpt = 64,
    resolution: ResolutionOpt = None,
    cache: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    compare: CompareOpt = None,
) -> None:
    """Search a target: every evaluation paid from the budget, the best of them kept."""
    if (task is None) == (dataset is None):
        raise TransferSearchError(
            "--task/--dataset: give exactly one (a benchmark task, or your own data)"
        )
    if dataset is not None:
        own_data_search(
            dataset=dataset,
            fmt_=fmt_,
            validation_split=validation_split,
            validation_uri=validation_uri,
            epochs=epochs,
            width=width,
            batch_size=batch_size,
            resolution=resolution,
            cache=cache,
            no_cache=no_cache,
            compare=compare,
            space=space.value,
            agent=agent,
            digest=digest,
            mode=mode.value,
            budget=budget,
            parallel=parallel,
            seed=seed,
            data=data,
            device=device,
            json_out=json_out,
        )
        return
    assert task is not None
    if compare:
        raise TransferSearchError(
            "--compare: for --dataset searches; on a benchmark task `transfersearch run` "
            "or `transfersearch baseline` compares every method"
        )
    check_task(task, "--task")
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.workflow.search import SearchRequest, run_search

    bench = task_benchmark(task, space, data)
    request = SearchRequest(
        task, budget, mode.value, seed, parallel, agent, digest, device, start.value
    )
    report = run_search(bench, request)
    if json_out:
        print(json.dumps(report))
        return
    table = Table(title=f"{task} ({space.value}): {mode.value} search, budget {budget}")
    for col in ("evaluations", "best found", "architecture", "rank", "regret", "seconds"):
        table.add_column(col, justify="left" if col == "architecture" else "right")
    table.add_row(
        str(report["evaluations"]),
        fmt(report["best_metric"]),
        report["best_arch"],
        str(report["rank"]),
        fmt(report["regret"]),
        f"{report['device_seconds']:.1f}",
    )
    console.print(table)
    console.print(
        f"task optimum {fmt(report['optimum'])}; {report['updates']} online updates on "
        f"{report['device']}; the rank and regret come from the table after the search"
    )


def register(app: typer.Typer) -> None:
    app.command("search")(search)
