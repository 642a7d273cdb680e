"""The trainer's Prometheus metrics: what ops teams chart and alert on.

One `TrainerMetrics` per trainer process, in its own registry, served over HTTP
(`serve`). Labels are few and bounded: the search, its namespace, the task being
trained or evaluated, the trial index and the transfer mode; never an
architecture. Scores are exported twice: in the task's own units (for people) and
as a regret ratio (0 = the task's optimum, 1 = its median architecture), which is
what the alert rules compare, because it means the same on every task.

Counters are fed absolute totals (`record_progress`) and advance by the
difference, so callers can report whatever totals they keep without double
counting.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from transfersearch_trainer.api.version import __version__
from transfersearch_trainer.search.evaluator import Evaluation, Listener

LABELS = ("search", "namespace", "task", "trial", "mode")
# Seconds one evaluation spent: 0 for a table lookup or a cached training, seconds to
# hours for a network trained on the user's data.
EVALUATION_BUCKETS = (
    0.1,
    1,
    5,
    15,
    30,
    60,
    120,
    300,
    600,
    1200,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
)
CHECKPOINT_AGE = "transfersearch_checkpoint_age_seconds"
CHECKPOINT_AGE_HELP = (
    "Seconds since the last checkpoint was written (since training started if none yet)."
)


@dataclass(frozen=True)
class MetricLabels:
    search: str = "local"
    namespace: str = "local"
    task: str = ""
    trial: str = "0"
    mode: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in LABELS}


class TrainerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin per counter: half the scrape, no loss
        self.registry = registry or CollectorRegistry()
        self._lock = threading.Lock()
        self._totals: dict[tuple[str, tuple[str, ...]], float] = {}
        r = self.registry
        self.best_metric = Gauge(
            "transfersearch_evaluation_best_metric",
            "Mean best-found metric of the latest greedy evaluation, in the task's units.",
            LABELS,
            registry=r,
        )
        self.regret = Gauge(
            "transfersearch_evaluation_regret_ratio",
            "Regret of the latest greedy evaluation: (optimum - mean best) / (optimum - median).",
            LABELS,
            registry=r,
        )
        self.reference_regret = Gauge(
            "transfersearch_reference_regret_ratio",
            "Lowest evaluation regret this agent reached so far in this run (drift reference).",
            LABELS,
            registry=r,
        )
        self.scratch_regret = Gauge(
            "transfersearch_scratch_reference_regret_ratio",
            "Regret of a scratch agent trained with the same budget, when known "
            "(negative-transfer reference).",
            LABELS,
            registry=r,
        )
        self.drift_threshold = Gauge(
            "transfersearch_drift_threshold_ratio",
            "How far the regret may rise above its reference before the drift alert (spec.alerts).",
            LABELS,
            registry=r,
        )
        self.reward = Gauge(
            "transfersearch_episode_reward",
            "Mean return of the learner's last finished training window (normalised units).",
            LABELS,
            registry=r,
        )
        self.env_steps = Counter(
            "transfersearch_env_steps", "Environment steps taken by the actors.", LABELS, registry=r
        )
        self.updates = Counter(
            "transfersearch_learner_updates",
            "Gradient updates made by the learner.",
            LABELS,
            registry=r,
        )
        self.task_evaluations = Counter(
            "transfersearch_task_evaluations",
            "Distinct architectures of the task queried in training (networks trained in real "
            "life).",
            LABELS,
            registry=r,
        )
        self.device_seconds = Counter(
            "transfersearch_device_seconds",
            "Seconds of training on the compute device.",
            (*LABELS, "device"),
            registry=r,
        )
        self.gpu_seconds = Counter(
            "transfersearch_gpu_seconds",
            "Seconds of training on a GPU.",
            (*LABELS, "gpu_model"),
            registry=r,
        )
        self.gpu_budget = Gauge(
            "transfersearch_gpu_seconds_budget",
            "GPU seconds this search may use before the budget alert (spec.alerts).",
            LABELS,
            registry=r,
        )
        self.search_evaluations = Counter(
            "transfersearch_search_evaluations",
            "Distinct target architectures evaluated by the trial's search (protocol search; "
            "in real life each one is a network trained).",
            LABELS,
            registry=r,
        )
        self.search_budget = Gauge(
            "transfersearch_search_budget",
            "Distinct target evaluations the trial's search may spend (spec.evaluation.budget).",
            LABELS,
            registry=r,
        )
        self.search_best_metric = Gauge(
            "transfersearch_search_best_metric",
            "Best metric the trial's search found on the target, in the task's units.",
            LABELS,
            registry=r,
        )
        self.evaluation_seconds = Histogram(
            "transfersearch_search_evaluation_seconds",
            "Seconds each of the search's evaluations spent on its device (a network trained on "
            "your data; 0 for a benchmark table lookup or a cached result).",
            LABELS,
            buckets=EVALUATION_BUCKETS,
            registry=r,
        )
        self.search_rank = Gauge(
            "transfersearch_search_rank",
            "Rank of the search's best in the benchmark table (1 = the optimum).",
            LABELS,
            registry=r,
        )
        self.running = Gauge(
            "transfersearch_trainer_running",
            "1 while the learner is training, else 0.",
            LABELS,
            registry=r,
        )
        self.checkpoint_time = Gauge(
            "transfersearch_last_checkpoint_timestamp_seconds",
            "Unix time of the last checkpoint written.",
            LABELS,
            registry=r,
        )
        # computed at scrape time, so a trainer that stopped checkpointing shows it ageing
        self._checkpoints: dict[tuple[str, ...], float] = {}
        r.register(_CheckpointAge(self))
        self.build_info = Gauge(
            "transfersearch_trainer_build_info",
            "Always 1: what runs.",
            ("version", "python_version"),
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)

    def _advance(self, counter: Counter, labels: dict[str, str], total: float, *extra: str) -> None:
        key = (str(id(counter)), (*labels.values(), *extra))
        with self._lock:
            delta = total - self._totals.get(key, 0.0)
            self._totals[key] = max(total, self._totals.get(key, 0.0))
        child: Any = counter.labels(*labels.values(), *extra)
        if delta > 0:
            child.inc(delta)

    def record_progress(
        self,
        labels: MetricLabels,
        *,
        updates: int,
        env_steps: int,
        task_evaluations: int,
        device_seconds: float,
        device: str,
        gpu_model: str = "",
    ) -> None:
        lab = labels.as_dict()
        self._advance(self.updates, lab, updates)
        self._advance(self.env_steps, lab, env_steps)
        self._advance(self.task_evaluations, lab, task_evaluations)
        kind = "cuda" if device.startswith("cuda") else device
        self._advance(self.device_seconds, lab, device_seconds, kind)
        if kind == "cuda":
            self._advance(self.gpu_seconds, lab, device_seconds, gpu_model or "unknown")

    def init_device(self, labels: MetricLabels, device: str, gpu_model: str = "") -> None:
        """Create the device and GPU series at 0, so dashboards and the budget rule see them.

        A CPU trainer exports `gpu_seconds_total{gpu_model="none"} 0`: zero GPU time is
        a fact worth charting, and an absent series would look like a broken scrape.
        """
        lab = labels.as_dict()
        kind = "cuda" if device.startswith("cuda") else device
        self.device_seconds.labels(*lab.values(), kind)
        self.gpu_seconds.labels(
            *lab.values(), (gpu_model or "unknown") if kind == "cuda" else "none"
        )

    def start_search(
        self,
        labels: MetricLabels,
        budget: int,
        device: str,
        gpu_seconds_budget: float | None = None,
    ) -> None:
        """A search starts: its budget, its evaluations at 0 and its device series exist
        (and the GPU budget the alert compares with, spec.alerts.gpuSecondsBudget)."""
        lab = labels.as_dict()
        self.search_budget.labels(**lab).set(budget)
        self.search_evaluations.labels(**lab)
        self.evaluation_seconds.labels(**lab)
        self.init_device(labels, device, gpu_model() if device.startswith("cuda") else "")
        if gpu_seconds_budget is not None:
            self.gpu_budget.labels(**lab).set(gpu_seconds_budget)
        self.set_running(labels, True)

    def evaluation_listener(self, labels: MetricLabels, device: str) -> Listener:
        """Told of each of a search's evaluations as it comes (a `Ledger` listener): the
        evaluations done, the seconds each spent, device and GPU seconds, the best so far.

        The totals go through `_advance`, so the search's final `record_search` (whose
        totals include these) adds only what the evaluations did not report."""
        lab = labels.as_dict()
        kind = "cuda" if device.startswith("cuda") else device
        model = (gpu_model() or "unknown") if kind == "cuda" else ""
        seconds = self.evaluation_seconds.labels(**lab)
        best = self.search_best_metric.labels(**lab)
        done = {"n": 0.0, "device": 0.0, "gpu": 0.0, "best": float("-inf")}

        def listen(e: Evaluation) -> None:
            spent = 0.0 if e.cached else e.device_seconds
            done["n"] += 1
            done["device"] += spent
            done["gpu"] += 0.0 if e.cached else e.gpu_seconds
            seconds.observe(spent)
            self._advance(self.search_evaluations, lab, done["n"])
            self._advance(self.device_seconds, lab, done["device"], kind)
            if model:
                self._advance(self.gpu_seconds, lab, done["gpu"], model)
            if e.metric > done["best"]:
                done["best"] = e.metric
                best.set(e.metric)

        return listen

    def record_search(self, labels: MetricLabels, report: dict[str, Any]) -> None:
        """A search ended (a `run_search` or own-data report): its evaluations, best, rank
        (a benchmark task's only) and time, the agent's own compute included.

        The evaluations were exported as they came (`evaluation_listener`); this settles
        the totals (the counters advance only by what they lack).
        """
        lab = labels.as_dict()
        self._advance(self.search_evaluations, lab, int(report["evaluations"]))
        self.search_best_metric.labels(**lab).set(float(report["best_metric"]))
        if report.get("rank") is not None:
            self.search_rank.labels(**lab).set(int(report["rank"]))
        device = str(report.get("device") or "cpu")
        kind = "cuda" if device.startswith("cuda") else device
        self._advance(self.device_seconds, lab, float(report["device_seconds"]), kind)
        if kind == "cuda":
            model = gpu_model() or "unknown"
            self._advance(self.gpu_seconds, lab, float(report["gpu_seconds"]), model)
        self.set_running(labels, False)

    def record_reward(self, labels: MetricLabels, mean_return: float) -> None:
        if mean_return == mean_return:  # not NaN
            self.reward.labels(**labels.as_dict()).set(mean_return)

    def record_evaluation(
        self, labels: MetricLabels, mean_best: float, regret_ratio: float
    ) -> None:
        lab = labels.as_dict()
        self.best_metric.labels(**lab).set(mean_best)
        self.regret.labels(**lab).set(regret_ratio)
        ref = self.reference_regret.labels(**lab)
        key = ("reference", tuple(lab.values()))
        with self._lock:
            best = min(self._totals.get(key, float("inf")), regret_ratio)
            self._totals[key] = best
        ref.set(best)

    def set_scratch_reference(self, labels: MetricLabels, regret_ratio: float) -> None:
        self.scratch_regret.labels(**labels.as_dict()).set(regret_ratio)

    def set_limits(
        self, labels: MetricLabels, drift_threshold: float, gpu_seconds_budget: float | None
    ) -> None:
        self.drift_threshold.labels(**labels.as_dict()).set(drift_threshold)
        if gpu_seconds_budget is not None:
            self.gpu_budget.labels(**labels.as_dict()).set(gpu_seconds_budget)

    def set_running(self, labels: MetricLabels, running: bool) -> None:
        self.running.labels(**labels.as_dict()).set(1 if running else 0)

    def start_checkpoint_clock(self, labels: MetricLabels) -> None:
        """Training started: the checkpoint age counts from now until the first checkpoint."""
        with self._lock:
            self._checkpoints.setdefault(tuple(labels.as_dict().values()), time.time())

    def record_checkpoint(self, labels: MetricLabels, when: float | None = None) -> None:
        """A checkpoint was written now (or at `when`)."""
        when = when if when is not None else time.time()
        lab = labels.as_dict()
        with self._lock:
            self._checkpoints[tuple(lab.values())] = when
        self.checkpoint_time.labels(**lab).set(when)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Expose /metrics on `port` (0: any free one) from a daemon thread; the bound port."""
        server, _ = start_http_server(port, addr=addr, registry=self.registry)
        return int(server.server_port)


class _CheckpointAge(Collector):
    """`transfersearch_checkpoint_age_seconds`, per label set, as of the scrape."""

    def __init__(self, owner: TrainerMetrics) -> None:
        self.owner = owner

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily(CHECKPOINT_AGE, CHECKPOINT_AGE_HELP, labels=LABELS)]

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(CHECKPOINT_AGE, CHECKPOINT_AGE_HELP, labels=LABELS)
        now = time.time()
        with self.owner._lock:
            items = list(self.owner._checkpoints.items())
        for values, when in items:
            family.add_metric(list(values), max(now - when, 0.0))
        return [family]


def gpu_model() -> str:
    """The CUDA device's name, for the gpu_model label ('' when there is none)."""
    try:
        import torch

        return str(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else ""
    except Exception:  # a label is not worth failing for
        return ""
