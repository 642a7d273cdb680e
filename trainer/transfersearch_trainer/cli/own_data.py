"""`transfersearch search --dataset`: the search on the user's own data, and its comparison.

Every evaluation trains a network (`evaluation.training`), so the options here are the
training recipe and the cache that keeps finished trainings. `--compare` runs baselines
through the same evaluator with the same budget: the table then says what the agent's
search bought against what a plain local or random search would have bought.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, cast

import typer
from rich.table import Table

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.cli.common import console, err_console

FormatOpt = Annotated[
    str, typer.Option("--format", help="Dataset format: npz, imagefolder or auto (by the path).")
]
ValSplitOpt = Annotated[
    float,
    typer.Option("--validation-split", help="Held-out fraction (seeded, stratified)."),
]
ValUriOpt = Annotated[
    str | None,
    typer.Option("--validation-uri", help="A separate validation set (same format)."),
]
EpochsOpt = Annotated[int, typer.Option("--epochs", help="Training epochs per evaluation.")]
WidthOpt = Annotated[
    int, typer.Option("--width", help="Base channels (the benchmark's networks use 64).")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Training batch size.")]
ResolutionOpt = Annotated[
    int | None,
    typer.Option(
        "--resolution",
        help="Resize images to N x N first (tiny images such as 8x8 digits shrink to 1x1 "
        "after the networks' first reductions; 32 keeps the architectures apart).",
    ),
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache",
        help="Where finished trainings are kept (folder or s3:// prefix); "
        "default $TRANSFERSEARCH_CACHE/evaluations or ~/.cache/transfersearch/evaluations.",
    ),
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Train every evaluation afresh.")]
CompareOpt = Annotated[
    str | None,
    typer.Option(
        "--compare",
        help="Baselines run through the same evaluator and budget, e.g. local,random "
        "(also evolution, multi-top-k, prior-local).",
    ),
]


def own_data_search(
    *,
    dataset: str,
    fmt_: str,
    validation_split: float,
    validation_uri: str | None,
    epochs: int,
    width: int,
    batch_size: int,
    resolution: int | None,
    cache: str | None,
    no_cache: bool,
    compare: str | None,
    space: str,
    agent: str | None,
    digest: str | None,
    mode: str,
    budget: int,
    parallel: int,
    seed: int,
    data: str | None,
    device: str | None,
    json_out: bool,
) -> None:
    # lazy: these import torch, which the light commands must not load
    from transfersearch_trainer.agent.learner import pick_device
    from transfersearch_trainer.benchmark.loaders import load_benchmark
    from transfersearch_trainer.evaluation.datasets import DatasetSpec, Format
    from transfersearch_trainer.evaluation.training import TrainingRecipe
    from transfersearch_trainer.workflow.own_data import (
        OWN_BASELINES,
        OwnDataTarget,
        default_cache,
        own_data_agent,
        own_data_evaluator,
        run_own_data_baseline,
        run_own_data_search,
    )

    methods = [m.strip() for m in (compare or "").split(",") if m.strip()]
    unknown = [m for m in methods if m not in OWN_BASELINES]
    if unknown:
        raise TransferSearchError(
            f"--compare: unknown {', '.join(unknown)}; use some of {', '.join(OWN_BASELINES)}"
        )
    if fmt_ not in ("npz", "imagefolder", "auto"):
        raise TransferSearchError(f"--format: unknown {fmt_!r}; use npz, imagefolder or auto")
    spec = DatasetSpec(
        uri=dataset,
        format=cast(Format, fmt_),
        validation_split=validation_split,
        validation_uri=validation_uri,
    )
    recipe = TrainingRecipe(
        epochs=epochs, width=width, batch_size=batch_size, resolution=resolution
    )
    target = OwnDataTarget(spec, recipe, None if no_cache else (cache or default_cache()), seed)
    chosen = own_data_agent(space, dataset, mode, agent, digest, seed)
    try:
        bench = load_benchmark(data, space)  # the sources: the prior start and priors
    except TransferSearchError as err:
        if mode != "scratch" or any(m not in ("random", "local", "evolution") for m in methods):
            raise
        err_console.print(f"no benchmark tables ({err}); starting at random", markup=False)
        bench = None
    ev = own_data_evaluator(space, target, pick_device(device), parallel)
    reports = [
        run_own_data_search(
            space,
            ev,
            chosen,
            mode=mode,
            budget=budget,
            seed=seed,
            bench=bench,
            parallel=parallel,
            device=device,
        )
    ]
    for method in methods:
        reports.append(
            run_own_data_baseline(space, ev, method, budget=budget, seed=seed, bench=bench)
        )
    if json_out:
        print(json.dumps(reports[0] if not methods else {"searches": reports}))
        return
    print_reports(reports)


def print_reports(reports: list[dict[str, Any]]) -> None:
    first = reports[0]
    d = first["dataset"]
    table = Table(
        title=f"{d['name']} ({first['space']}): budget {first['budget']}, {first['evaluator']}"
    )
    columns = ("method", "evaluations", "trained", "best val. accuracy", "architecture")
    for col in (*columns, "device s", "device s spent"):
        table.add_column(col, justify="left" if col in ("method", "architecture") else "right")
    for r in reports:
        table.add_row(
            r["method"],
            str(r["evaluations"]),
            str(r["trained"]),
            f"{r['best_metric']:.4f}",
            r["best_arch"],
            f"{r['cost_seconds']:.1f}",
            f"{r['evaluation_seconds']:.1f}",
        )
    console.print(table)
    console.print(
        f"{d['train']} training and {d['validation']} validation images, {d['classes']} "
        f"classes, sha256 {d['sha256'][:12]}. device s: the trainings' seconds, what the "
        "evaluations cost; spent: in this run (trained = evaluations the cache did not "
        "answer). Each method hands over the best of its own evaluations.",
        markup=False,
    )
