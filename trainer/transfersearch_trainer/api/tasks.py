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
# The label of an agent pretrained on every task: it has no held-out task, so it is the
# agent for targets outside the benchmark.
ALL_TASKS = "all_tasks"

TaskName = Literal[
    "class_object",
    "class_scene",
    "jigsaw",
    "room_layout",
    "segmentsemantic",
    "normal",
    "autoencoder",
]
assert set(TaskName.__args__) == set(TASKS)  # type: ignore[attr-defined]


def check_task(task: str, field: str = "task") -> str:
    """Return `task` if it is a benchmark task, else raise an error listing the valid names."""
    if task not in TASK_INFO:
        raise TransferSearchError(f"{field}: unknown task {task!r}; use one of: {', '.join(TASKS)}")
    return task


def check_space(space: str, field: str = "space") -> SpaceName:
    if space not in SPACES:
        raise TransferSearchError(f"{field}: unknown search space {space!r}; use micro or macro")
    return space


def parse_tasks(text: str, field: str = "tasks") -> tuple[str, ...]:
    """Source tasks: ``a,b,c`` or ``all-but:T`` (every task except T), each checked, no repeats."""
    text = text.strip()
    if text.startswith("all-but:"):
        left_out = check_task(text.removeprefix("all-but:").strip(), field)
        return tuple(t for t in TASKS if t != left_out)
    tasks = tuple(check_task(t.strip(), field) for t in text.split(",") if t.strip())
    if not tasks:
        raise TransferSearchError(f"{field}: give tasks as a,b,c or all-but:TASK")
    if len(set(tasks)) != len(tasks):
        raise TransferSearchError(f"{field}: a task is listed twice in {text!r}")
    return tasks


def tasks_label(tasks: tuple[str, ...]) -> str:
    """The name an agent trained on `tasks` is stored under (the store's task segment):
    the task itself, ``all_but_<T>`` for leave-one-task-out, ``all_tasks`` for every task,
    else the tasks joined."""
    if len(tasks) == 1:
        return tasks[0]
    if sorted(tasks) == sorted(TASKS):
        return ALL_TASKS
    missing = [t for t in TASKS if t not in tasks]
    if len(missing) == 1 and len(tasks) == len(TASKS) - 1:
        return f"all_but_{missing[0]}"
    return "_and_".join(tasks)
