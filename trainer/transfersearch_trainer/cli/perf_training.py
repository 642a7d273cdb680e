"""`transfersearch bench training`: seconds per own-data evaluation at each width."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from transfersearch_trainer.cli.common import JsonOpt, console


def bench_training(
    widths: Annotated[str, typer.Option("--widths", help="Base channel counts.")] = "8,16,64",
    epochs: Annotated[int, typer.Option("--epochs")] = 2,
    resolution: Annotated[
        int | None, typer.Option("--resolution", help="Resize the 8x8 digits to N x N.")
    ] = None,
    repeats: Annotated[int, typer.Option("--repeats", help="Timed trainings each.")] = 1,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda[:N].")] = "cpu",
    json_out: JsonOpt = False,
) -> None:
    """Seconds per evaluation (one training on the digits pilot) per width and space."""
    from transfersearch_trainer.api.errors import TransferSearchError
    from transfersearch_trainer.perf.evaluation import measure_training

    try:
        chosen = tuple(int(w) for w in widths.split(",") if w.strip())
    except ValueError:
        raise TransferSearchError("--widths: write even integers, e.g. 8,16,64") from None
    r = measure_training(chosen, epochs, resolution, repeats, device)
    if json_out:
        print(json.dumps(r))
        return
    size = f"{r['resolution']}x{r['resolution']}" if r["resolution"] else "8x8"
    table = Table(
        title=f"one evaluation = {epochs} epochs on {r['dataset']['train']} digits ({size}), "
        f"{r['device']}, {r['torch_threads']} torch threads"
    )
    for col in ("space", "architecture", "width", "parameters", "seconds", "val. accuracy"):
        table.add_column(col, justify="left" if col in ("space", "architecture") else "right")
    for row in r["rows"]:
        table.add_row(
            row["space"],
            row["arch"],
            str(row["width"]),
            f"{row['params']:,}",
            f"{row['seconds']:.2f}",
            f"{row['metric']:.3f}",
        )
    console.print(table)


def register(bench_app: typer.Typer) -> None:
    bench_app.command("training")(bench_training)
