"""`transfersearch datasets export|inspect`: the pilot dataset, and a check of the user's own.

`inspect` loads a dataset exactly as a search would (same checks, same split, same
cache) and prints what it found, so data problems surface while preparing the data,
not an hour into a search.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from transfersearch_trainer.cli.common import JsonOpt, console

datasets_app = typer.Typer(
    help="Datasets for own-data searches: export the pilot set, inspect yours.",
    no_args_is_help=True,
)


class Pilot(StrEnum):
    digits = "digits"


class FormatChoice(StrEnum):
    auto = "auto"
    npz = "npz"
    imagefolder = "imagefolder"


def _print(text: str) -> None:
    # paths are the user's text: never read them as rich markup
    console.print(text, highlight=False, markup=False, soft_wrap=True)


@datasets_app.command("export")
def datasets_export(
    name: Annotated[Pilot, typer.Argument(help="The bundled dataset to write.")],
    out: Annotated[Path, typer.Option("--out", help="The .npz file to write (replaced).")],
) -> None:
    """Write a bundled dataset as an .npz (digits: scikit-learn's 1,797 8x8 images, 10 classes)."""
    from transfersearch_trainer.evaluation.digits import export_digits

    path = export_digits(out)
    _print(f"wrote {path}: {name.value}, x uint8 (1797, 8, 8), y int64 0..9")


@datasets_app.command("inspect")
def datasets_inspect(
    uri: Annotated[str, typer.Argument(help="An .npz file or image folder, local or s3://.")],
    fmt: Annotated[FormatChoice, typer.Option("--format", help="npz, imagefolder or auto.")] = (
        FormatChoice.auto
    ),
    validation: Annotated[
        str | None,
        typer.Option(
            "--validation",
            help="A validation file or folder (instead of a split).",
            show_default=False,
        ),
    ] = None,
    validation_split: Annotated[
        float, typer.Option("--validation-split", help="Share of each class held out.")
    ] = 0.2,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """Load a dataset as a search would; print its sizes, image shape, classes and sha256."""
    from transfersearch_trainer.evaluation.datasets import DatasetSpec, load_dataset

    spec = DatasetSpec(
        uri=uri,
        format=fmt.value,
        validation_split=validation_split,
        validation_uri=validation,
        seed=seed,
    )
    data = load_dataset(spec)
    c, (h, w) = data.channels, data.resolution
    if json_out:
        print(
            json.dumps(
                {
                    "name": data.name,
                    "train": len(data.y_train),
                    "validation": len(data.y_val),
                    "shape": [c, h, w],
                    "classes": data.classes,
                    "sha256": data.sha256,
                }
            )
        )
        return
    split = (
        f"given ({validation})" if validation else f"{validation_split:g} per class, seed {seed}"
    )
    _print(f"dataset {data.name} ({uri})")
    _print(f"  train       {len(data.y_train)} images")
    _print(f"  validation  {len(data.y_val)} images, {split}")
    _print(f"  images      {c} x {h} x {w} (channels x height x width)")
    _print(f"  classes     {data.classes}")
    _print(f"  sha256      {data.sha256}")


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
