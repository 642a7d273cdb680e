"""What one own-data evaluation costs: seconds per training, per width, side by side.

An own-data search spends its time training candidates, so the pilot's knobs (`width`,
`epochs`, `resolution`) decide what a search costs. This trains the same architectures
of both spaces on the digits pilot set at each width, in one run, and reports the
seconds of each training (the median of `repeats`, after one untimed warm-up).
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.evaluation.datasets import DatasetSpec, load_dataset
from transfersearch_trainer.evaluation.digits import export_digits
from transfersearch_trainer.evaluation.training import TrainingRecipe, train_and_validate

ARCHS = {"micro": "64-41414-3_13_113", "macro": "64-2243-basic"}


def measure_training(
    widths: tuple[int, ...] = (8, 16, 64),
    epochs: int = 2,
    resolution: int | None = None,
    repeats: int = 1,
    device: str = "cpu",
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        dataset = load_dataset(DatasetSpec(str(export_digits(Path(tmp) / "digits.npz"))))
    dev = torch.device(device)
    rows = []
    for space, arch in ARCHS.items():
        ops = get_space(space).op_tuple(get_space(space).index(arch))
        for width in widths:
            recipe = TrainingRecipe(
                epochs=epochs, width=width, batch_size=64, resolution=resolution
            )
            train_and_validate(space, ops, dataset, TrainingRecipe(epochs=1, width=width), 0, dev)
            runs = [train_and_validate(space, ops, dataset, recipe, 0, dev) for _ in range(repeats)]
            rows.append(
                {
                    "space": space,
                    "arch": arch,
                    "width": width,
                    "params": runs[0].params,
                    "seconds": statistics.median(r.device_seconds for r in runs),
                    "gpu_seconds": statistics.median(r.gpu_seconds for r in runs),
                    "metric": runs[0].metric,
                }
            )
    return {
        "dataset": {"name": dataset.name, "train": int(dataset.y_train.size)},
        "epochs": epochs,
        "resolution": resolution,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }
