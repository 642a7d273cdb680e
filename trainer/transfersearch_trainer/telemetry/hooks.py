"""The learner's hook that feeds `TrainerMetrics`: how training becomes Prometheus series.

Kept out of the training loop (a `LearnerHooks`), and throttled: counters are
pushed at most every `every_seconds` and at the end, so instrumentation costs a
few dictionary updates per second whatever the step rate (`bench metrics`
measures it side by side). Counters count what *this process* did: a trainer
resumed from a checkpoint starts them at zero, as Prometheus expects after a
restart, instead of jumping by the restored totals.
"""

from __future__ import annotations

import time
from typing import Any

from transfersearch_trainer.agent.hooks import CurvePoint, LearnerHooks, TrainStats
from transfersearch_trainer.agent.learner import Learner
from transfersearch_trainer.api.spec import Alerts
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics, gpu_model


def metric_hooks(
    metrics: TrainerMetrics | None, labels: MetricLabels, alerts: Alerts
) -> list[LearnerHooks]:
    """The hooks that export one training (none when not exporting), with its alert limits."""
    if metrics is None:
        return []
    metrics.set_limits(labels, alerts.drift_threshold, alerts.gpu_seconds_budget)
    return [MetricsHook(metrics, labels)]


def final_regret(training: dict[str, Any]) -> float | None:
    """The regret ratio of a training record's last learning-curve point (None if none)."""
    curve = training.get("curve") or []
    return float(curve[-1]["normalised_regret"]) if curve else None


class MetricsHook(LearnerHooks):
    def __init__(
        self, metrics: TrainerMetrics, labels: MetricLabels, every_seconds: float = 1.0
    ) -> None:
        self.metrics = metrics
        self.labels = labels
        self.every = every_seconds
        self._next = 0.0
        self._base = (0, 0, 0, 0.0)  # updates, env steps, task evaluations, device seconds
        self._gpu = ""

    def on_start(self, learner: Learner) -> None:
        # runs after a checkpointer's on_start (hooks run in order): the restored totals
        # become this process's zero
        self._base = (
            learner.stats.updates,
            learner.stats.env_steps,
            int(learner.env.queried.sum()),
            learner.elapsed(),
        )
        self._gpu = gpu_model() if learner.device.type == "cuda" else ""
        self.metrics.set_running(self.labels, True)
        self.metrics.start_checkpoint_clock(self.labels)
        self.metrics.init_device(self.labels, learner.device.type, self._gpu)
        self._push(learner)

    def on_window(self, learner: Learner, mean_return: float) -> None:
        self.metrics.record_reward(self.labels, mean_return)

    def on_step(self, learner: Learner) -> None:
        if time.monotonic() >= self._next:
            self._push(learner)

    def on_curve(self, learner: Learner, point: CurvePoint) -> None:
        self.metrics.record_evaluation(self.labels, point.score, point.normalised_regret)

    def on_finish(self, learner: Learner, stats: TrainStats) -> None:
        self._push(learner)
        self.metrics.set_running(self.labels, False)

    def _push(self, learner: Learner) -> None:
        self._next = time.monotonic() + self.every
        updates, steps, evaluations, seconds = self._base
        self.metrics.record_progress(
            self.labels,
            updates=learner.stats.updates - updates,
            env_steps=learner.stats.env_steps - steps,
            task_evaluations=int(learner.env.queried.sum()) - evaluations,
            device_seconds=learner.elapsed() - seconds,
            device=learner.device.type,
            gpu_model=self._gpu,
        )
