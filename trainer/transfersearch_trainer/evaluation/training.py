"""Training one architecture on the user's data: the recipe, the loop, validation top-1.

The recipe follows TransNAS-Bench-101's classification training
(``configs/train_from_scratch/class_object/config.py`` and ``lib/optimizers/warmup.py``
in yawen-d/TransNASBench): SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4
on every parameter, batch 128, a cosine schedule stepped every update (the benchmark's
``WarmupCosine``), plain cross-entropy. What differs, and why:

* ``epochs`` is the caller's (the benchmark trains 25 epochs on 256x256 Taskonomy
  images; a search pays per epoch, so pilots use 1-2);
* ``width`` scales the base channels (the benchmark's 64) and ``resolution`` resizes the
  images (bilinear, once, before training) so that small pilots are cheap;
* augmentation is off by default (the benchmark flips and colour-jitters): a random
  shift crop (pad by H/8) is ``augment=True``, the flip is ``flip=True`` on top (wrong
  for digits and text, hence separate); no normalisation beyond the [0, 1] scale.

Reproducibility: the weights come from a ``torch.Generator`` seeded with ``seed``, the
data order and augmentation from another; nothing reads torch's global RNG, so trainings
in threads cannot disturb each other. On CPU the same seed gives bitwise the same metric
(for the same torch build and thread count); on CUDA kernels may differ in the last bits.
CUDA trains under ``torch.autocast`` (bfloat16 where supported, else float16 with a grad
scaler), and the GPU seconds are timed with CUDA events around the whole run.

The whole dataset is moved to the device once: ``ArrayDataset`` is already in memory, and
per-batch copies would cost more than these small networks' steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.evaluation.arrays import ArrayDataset
from transfersearch_trainer.evaluation.networks import build_network, count_parameters

# Offsets that give the weights and the data order independent streams from one seed.
_WEIGHT_STREAM = 0x5EED_0001
_DATA_STREAM = 0x5EED_0002


@dataclass(frozen=True)
class TrainingRecipe:
    """How a candidate is trained; part of the cache key (change it, and nothing is reused)."""

    epochs: int = 2
    width: int = 64
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    optimizer: str = "sgd"  # the only one: the benchmark's
    schedule: str = "cosine"  # "cosine" (per update, to 0) or "constant"
    warmup_epochs: float = 0.0  # linear warm-up before the cosine, in epochs
    label_smoothing: float = 0.0
    augment: bool = False  # random shift crop (zero pad by max(1, H // 8))
    flip: bool = False  # random horizontal flip (only with augment)
    resolution: int | None = None  # resize images to resolution x resolution; None: as given
    eval_batch_size: int = 512

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.width < 2 or self.width % 2:
            problems.append(f"width must be even and >= 2, got {self.width}")
        if self.batch_size < 2 or self.eval_batch_size < 1:
            problems.append("batch_size must be >= 2 (BatchNorm) and eval_batch_size >= 1")
        if self.optimizer != "sgd":
            problems.append(f"optimizer must be 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("cosine", "constant"):
            problems.append(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if self.lr <= 0 or self.warmup_epochs < 0 or not 0 <= self.label_smoothing < 1:
            problems.append("need lr > 0, warmup_epochs >= 0 and 0 <= label_smoothing < 1")
        if self.resolution is not None and self.resolution < 1:
            problems.append(f"resolution must be >= 1, got {self.resolution}")
        if problems:
            raise TransferSearchError("bad training recipe: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    """One training's outcome: validation top-1 (a fraction) and what it cost."""

    metric: float
    device_seconds: float  # wall seconds of the whole run (build, train, validate)
    gpu_seconds: float  # CUDA-event seconds on the GPU; 0 on CPU
    params: int
    epochs: int
    train_loss: float  # mean loss of the last epoch


def learning_rate(recipe: TrainingRecipe, step: int, total: int, per_epoch: int) -> float:
    """The lr of update `step` (0-based) of `total`: linear warm-up, then cosine to 0."""
    warmup = round(recipe.warmup_epochs * per_epoch)
    if step < warmup:
        return recipe.lr * (step + 1) / warmup
    if recipe.schedule == "constant":
        return recipe.lr
    progress = (step - warmup) / max(1, total - warmup)
    return recipe.lr * 0.5 * (1.0 + math.cos(math.pi * progress))


def _prepare(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    if resolution is None or tuple(x.shape[2:]) == (resolution, resolution):
        return x
    return functional.interpolate(
        x, size=(resolution, resolution), mode="bilinear", align_corners=False
    )


def _augment(x: torch.Tensor, recipe: TrainingRecipe, gen: torch.Generator) -> torch.Tensor:
    """A random shift (zero padding, one offset per image) and optionally a flip."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen).tolist()
    out = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    if recipe.flip:
        mask = (torch.rand(n, generator=gen) < 0.5).to(x.device)
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[torch.Tensor]:
    """One epoch's shuffled index batches; a last batch of one image is dropped (BatchNorm
    cannot train on a single value per channel, which 1x1 feature maps would give)."""
    order = torch.randperm(n, generator=gen)
    chunks = list(torch.split(order, batch_size))
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks.pop()
    return chunks


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def validate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    amp: torch.dtype | None,
) -> float:
    """Top-1 accuracy on (x, y) as a fraction, BatchNorm in eval mode."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = x[start : start + batch_size]
            with torch.autocast(
                x.device.type, dtype=amp or torch.bfloat16, enabled=amp is not None
            ):
                logits = model(xb)
            correct += int((logits.argmax(1) == y[start : start + batch_size]).sum().item())
    return correct / max(1, len(x))


def train_and_validate(
    space: str,
    ops: tuple[int, ...],
    dataset: ArrayDataset,
    recipe: TrainingRecipe,
    seed: int,
    device: torch.device | str = "cpu",
) -> TrainResult:
    """Train the architecture `ops` of `space` on `dataset`'s train split, report val top-1."""
    device = torch.device(device)
    if len(dataset.x_train) < 2 or len(dataset.x_val) < 1:
        raise TransferSearchError(
            f"dataset {dataset.name!r} needs >= 2 training and >= 1 validation images"
        )
    wall = time.perf_counter()
    timer = _GpuTimer(device)
    timer.start()
    weight_gen = torch.Generator().manual_seed(seed + _WEIGHT_STREAM)
    data_gen = torch.Generator().manual_seed(seed + _DATA_STREAM)
    model = build_network(
        space, ops, dataset.channels, dataset.classes, recipe.width, generator=weight_gen
    ).to(device)
    params = count_parameters(model)
    x_train = _prepare(torch.from_numpy(dataset.x_train).to(device), recipe.resolution)
    y_train = torch.from_numpy(dataset.y_train).to(device)
    x_val = _prepare(torch.from_numpy(dataset.x_val).to(device), recipe.resolution)
    y_val = torch.from_numpy(dataset.y_val).to(device)

    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    amp = _amp_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    per_epoch = len(_batches(len(x_train), recipe.batch_size, torch.Generator().manual_seed(0)))
    total = per_epoch * recipe.epochs
    step = 0
    epoch_loss = 0.0
    for _ in range(recipe.epochs):
        model.train()
        losses: list[torch.Tensor] = []
        for idx in _batches(len(x_train), recipe.batch_size, data_gen):
            idx = idx.to(device)
            xb, yb = x_train[idx], y_train[idx]
            if recipe.augment:
                xb = _augment(xb, recipe, data_gen)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, step, total, per_epoch)
            with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                loss = functional.cross_entropy(
                    model(xb), yb, label_smoothing=recipe.label_smoothing
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.detach())
            step += 1
        epoch_loss = float(torch.stack(losses).float().mean().item())
    metric = validate(model, x_val, y_val, recipe.eval_batch_size, amp)
    gpu_seconds = timer.stop()
    return TrainResult(
        metric=metric,
        device_seconds=time.perf_counter() - wall,
        gpu_seconds=gpu_seconds,
        params=params,
        epochs=recipe.epochs,
        train_loss=epoch_loss,
    )


class _GpuTimer:
    """CUDA events around a run on one GPU (synchronised at the end); 0 s off the GPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.events: tuple[torch.cuda.Event, torch.cuda.Event] | None = None

    def start(self) -> None:
        if self.device.type != "cuda":
            return
        with torch.cuda.device(self.device):
            begin = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            begin.record()
            self.events = (begin, end)

    def stop(self) -> float:
        if self.events is None:
            return 0.0
        begin, end = self.events
        with torch.cuda.device(self.device):
            end.record()
            end.synchronize()
        return float(begin.elapsed_time(end)) / 1000.0
