"""The seven TransNAS-Bench-101 tasks and the metric each one is scored by.

Task names are a public contract (CLI flags, manifests, metric labels), so they
are the benchmark's own spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transfersearch_trainer.api.errors import TransferSearchError

SpaceName = Literal["micro", "macro"]
SPACES: tuple[SpaceName, ...] = ("micro", "macro")


@dataclass(frozen=True)
class TaskInfo:
    name: str
    metric: str  # human-readable; all are last-epoch validation values
    pth_metric: str  # key in the official .pth file's per-epoch metrics
    unit: str


TASK_INFO: dict[str, TaskInfo] = {
    t.name: t
    for t in (
        TaskInfo("class_object", "top-1 accuracy", "valid_top1", "%"),
        TaskInfo("class_scene", "top-1 accuracy", "valid_top1", "%"),
        TaskInfo("jigsaw", "top-1 accuracy", "valid_top1", "%"),
        TaskInfo("room_layout", "negative L2 loss", "valid_neg_loss", "higher is better"),
        TaskInfo("segmentsemantic", "pixel accuracy", "valid_acc", "%"),
        TaskInfo("normal", "SSIM", "valid_ssim", "0..1"),
        TaskInfo("autoencoder", "SSIM", "valid_ssim", "0..1"),
    )
}
TASKS: tuple[str, ...] = tuple(TASK_INFO)


def check_task(task: str, field: str = "task") -> str:
    """Return `task` if it is a benchmark task, else raise an error listing the valid names."""
    if task not in TASK_INFO:
        raise TransferSearchError(f"{field}: unknown task {task!r}; use one of: {', '.join(TASKS)}")
    return task


def check_space(space: str, field: str = "space") -> SpaceName:
    if space not in SPACES:
        raise TransferSearchError(f"{field}: unknown search space {space!r}; use micro or macro")
    return space
