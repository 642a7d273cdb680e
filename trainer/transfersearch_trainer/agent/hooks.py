"""What a training reports (its curve points and cost) and the callbacks that observe it.

Kept apart from the loop so checkpointing and metrics can depend on these types
without the learner depending on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the learner calls the hooks; the hooks only name it in their signatures
    from transfersearch_trainer.agent.learner import Learner


@dataclass
class CurvePoint:
    updates: int
    env_steps: int
    task_evaluations: int  # distinct architectures queried on the training task so far
    device_seconds: float
    score: float  # greedy evaluation: mean best-found metric
    normalised_regret: float


@dataclass
class TrainStats:
    updates: int = 0
    env_steps: int = 0
    distinct_evaluations: int = 0
    total_evaluations: int = 0
    device_seconds: float = 0.0
    gpu_seconds: float = 0.0
    device: str = "cpu"
    stopped_by_cap: bool = False
    curve: list[CurvePoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["curve"] = [asdict(p) for p in self.curve]
        return d


class LearnerHooks:
    """Callbacks at the learner's points of interest; each default does nothing.

    Metrics export and checkpointing plug in here, so the training loop itself does
    no I/O. Callbacks run in the training thread, between updates: keep them cheap
    or make them rare (a checkpointer writes every N updates, not every update).
    """

    def on_start(self, learner: Learner) -> None:
        """Before the first step; a checkpointer restores saved state here."""

    def on_update(self, learner: Learner, loss: float) -> None:
        """After each gradient update (``learner.stats.updates`` already counts it)."""

    def on_window(self, learner: Learner, mean_return: float) -> None:
        """When a window of moves ends and its transitions go into the replay."""

    def on_curve(self, learner: Learner, point: CurvePoint) -> None:
        """After each learning-curve evaluation."""

    def on_step(self, learner: Learner) -> None:
        """After each actor step and its updates: the state is consistent here (checkpoint)."""

    def on_finish(self, learner: Learner, stats: TrainStats) -> None:
        """When training has ended (steps reached, or capped), after the final curve point."""
