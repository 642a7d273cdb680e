"""`transfersearch zoo build|list`: the pretrained agent zoo, built from studies and shown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.cli.common import JsonOpt, console
from transfersearch_trainer.search.stats import fmt
from transfersearch_trainer.store.zoo import read_index, zoo_root

zoo_app = typer.Typer(
    help="The pretrained agent zoo: one agent per space and held-out target (`--agent zoo`).",
    no_args_is_help=True,
)


@zoo_app.command("build")
def zoo_build(
    study: Annotated[
        list[str],
        typer.Option("--study", help="A finished `study loto` folder (repeatable: one per space)."),
    ],
    out: Annotated[str, typer.Option("--out", help="The zoo folder to write (replaced).")],
    json_out: JsonOpt = False,
) -> None:
    """Per space and target, the best-validated pretraining seed of the studies, with its card."""
    # lazy: the study's cell layout lives beside torch-backed code
    from transfersearch_trainer.study.zoo_build import build_zoo

    if not study:
        raise TransferSearchError("--study: give at least one `transfersearch study loto` folder")
    entries = build_zoo([Path(s) for s in study], Path(out))
    if json_out:
        print(json.dumps([e.to_dict() for e in entries]))
        return
    for e in entries:
        console.print(
            f"{out}/{e.path}: seed s{e.seed} (validation {fmt(e.validation)}), weights sha256 "
            f"{e.weights_sha256[:16]}...",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    console.print(f"{len(entries)} agents in {out} (index.json, README.md, MODEL_CARD.md each)")


@zoo_app.command("list")
def zoo_list(
    zoo: Annotated[
        str | None,
        typer.Option(
            "--zoo", help="Zoo folder (default: where `--agent zoo` looks).", show_default=False
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """The agents of the zoo `--agent zoo` uses (or of --zoo), as its index lists them."""
    root = Path(zoo) if zoo else zoo_root("zoo list")
    entries = read_index(root, "zoo list")
    if json_out:
        print(json.dumps({"zoo": str(root), "agents": [e.to_dict() for e in entries]}))
        return
    table = Table(title=f"agent zoo {root}")
    for col in ("space", "label", "held-out target", "seed", "validation", "weights sha256"):
        table.add_column(col, justify="right" if col in ("seed", "validation") else "left")
    for e in entries:
        table.add_row(
            e.space,
            e.label,
            e.target or "(none)",
            str(e.seed),
            fmt(e.validation),
            e.weights_sha256[:16],
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(zoo_app, name="zoo")
