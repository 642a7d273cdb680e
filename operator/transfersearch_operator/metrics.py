"""The operator's Prometheus metrics (`transfersearch_operator_*`).

Labels stay low-cardinality: a phase, a handler name or a reason, never a
search's name or an architecture. Trial and rejection counters advance by the
difference between the status the operator replaces and the one it writes, so a
restarted operator (whose previous status is in the cluster) does not count a
trial or a rejection twice.

Reconcile errors are the operator's own trouble (API errors, its RBAC), which
is what pages on-call; a user's spec that is refused is counted apart.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from transfersearch_trainer.api.version import __version__

from .compute import FINAL_REFUSALS
from .status import PHASES, TransferSearchStatus

PREFIX = "transfersearch_operator"
HANDLERS = ("children", "status")  # what `reconciling` is called with (reconcile.py)
# Why a spec was refused: past the schema (InvalidSpec), by the admission policy, by the
# API server (the Job as the spec makes it). The reasons of the Failed condition.
REJECTION_REASONS = ("InvalidSpec", *sorted(FINAL_REFUSALS))


class OperatorMetrics:
    """One set of metrics in its own registry (so tests can run several operators)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin per counter: half the scrape, no loss
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.searches = Gauge(
            f"{PREFIX}_searches", "TransferSearches by phase.", ["phase"], registry=r
        )
        self.trials_started = Counter(f"{PREFIX}_trials_started", "Trial pods started.", registry=r)
        self.trials_succeeded = Counter(
            f"{PREFIX}_trials_succeeded", "Trials that succeeded.", registry=r
        )
        self.trials_failed = Counter(
            f"{PREFIX}_trials_failed", "Trial pods that failed.", registry=r
        )
        self.search_evaluations = Counter(
            f"{PREFIX}_search_evaluations",
            "Target evaluations spent by finished trials (each one a network trained in real "
            "life), as their summaries report.",
            registry=r,
        )
        self.search_device_seconds = Counter(
            f"{PREFIX}_search_device_seconds",
            "Device seconds (search and pretraining) of finished trials.",
            registry=r,
        )
        self.reconcile_errors = Counter(
            f"{PREFIX}_reconcile_errors",
            "Reconciliations that raised (they are retried).",
            ["handler"],
            registry=r,
        )
        self.reconcile_duration = Histogram(
            f"{PREFIX}_reconcile_duration_seconds",
            "Time to reconcile one search.",
            ["handler"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.specs_rejected = Counter(
            f"{PREFIX}_specs_rejected",
            "Search generations refused for their spec (users' mistakes, not the operator's).",
            ["reason"],
            registry=r,
        )
        for handler in HANDLERS:  # every series exists from the start, at 0 (no gaps in rates)
            self.reconcile_errors.labels(handler)
            self.reconcile_duration.labels(handler)
        for reason in REJECTION_REASONS:
            self.specs_rejected.labels(reason)
        self.build_info = Gauge(
            f"{PREFIX}_build_info",
            "Always 1; the labels say which build runs.",
            ["version", "python_version"],
            registry=r,
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self._phases: dict[str, str] = {}
        self._refresh_phases()

    @contextmanager
    def reconciling(self, handler: str) -> Iterator[None]:
        """Time a reconciliation and count it as an error if it raises."""
        start = perf_counter()
        try:
            yield
        except Exception:
            self.reconcile_errors.labels(handler).inc()
            raise
        finally:
            self.reconcile_duration.labels(handler).observe(perf_counter() - start)

    def set_phase(self, uid: str, phase: str) -> None:
        if self._phases.get(uid) != phase:
            self._phases[uid] = phase
            self._refresh_phases()

    def forget(self, uid: str) -> None:
        if self._phases.pop(uid, None) is not None:
            self._refresh_phases()

    def _refresh_phases(self) -> None:
        counts = dict.fromkeys(PHASES, 0)
        for phase in self._phases.values():
            counts[phase] = counts.get(phase, 0) + 1
        for phase, n in counts.items():
            self.searches.labels(phase).set(n)

    def count_trials(
        self, before: TransferSearchStatus | None, after: TransferSearchStatus
    ) -> None:
        """Advance the trial counters by what changed within one generation."""
        same_generation = (
            before is not None and before.observed_generation == after.observed_generation
        )
        old = before.trials if before is not None and same_generation else None
        old_started = old.active + old.succeeded + old.failed if old else 0
        new = after.trials
        self.trials_started.inc(max(0, new.active + new.succeeded + new.failed - old_started))
        self.trials_succeeded.inc(max(0, new.succeeded - (old.succeeded if old else 0)))
        self.trials_failed.inc(max(0, new.failed - (old.failed if old else 0)))
        was = before if before is not None and same_generation else None
        self.search_evaluations.inc(
            max(0, after.evaluations_done - (was.evaluations_done if was else 0))
        )
        self.search_device_seconds.inc(
            max(0.0, after.device_seconds - (was.device_seconds if was else 0.0))
        )

    def count_rejected(
        self, before: TransferSearchStatus | None, after: TransferSearchStatus
    ) -> None:
        """Count a generation once when its status first says its spec was refused."""
        reason = _rejection(after)
        if reason is None:
            return
        same_generation = (
            before is not None and before.observed_generation == after.observed_generation
        )
        if same_generation and before is not None and _rejection(before) == reason:
            return
        self.specs_rejected.labels(reason).inc()

    def serve(self, port: int) -> None:
        """Expose /metrics on all interfaces (a thread; stops with the process)."""
        start_http_server(port, registry=self.registry)


def _rejection(status: TransferSearchStatus) -> str | None:
    if status.phase != "Failed":
        return None
    failed = next((c for c in status.conditions if c.type == "Failed"), None)
    return failed.reason if failed is not None and failed.reason in REJECTION_REASONS else None
