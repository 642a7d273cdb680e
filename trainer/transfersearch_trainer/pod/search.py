"""A trial under protocol search: the one search on the target that the product sells.

The trial's agent (the source agent, or for `scratch` an untrained one of the same
shape) runs one search on the target with budget spec.evaluation.budget,
spec.evaluation.parallel proposals at once and seed spec.training.seed + trial: on a
benchmark task (spec.target.task) `workflow.search.run_agent_search`, whose evaluations
are table lookups; on the user's dataset (spec.target.dataset) `search_own_data`, where
each evaluation trains a network with spec.target.training. Those distinct evaluations
are all the trial spends on the target: nothing trains on it before, nothing is scored
after. The same config and trial give the same search. The metrics follow each
evaluation as it comes (`TrainerMetrics.evaluation_listener`).

No checkpoint mid-search: on a table a search of a few hundred evaluations takes
seconds, so a trial stopped during it simply searches again (same seed, same result);
on a dataset the evaluation cache (`cache`, shared by the search's trials and claimed
per training as `owner`) keeps every finished training, so the search run again pays
nothing for those. The pretraining before it keeps its checkpoints.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from transfersearch_trainer.api.jobconfig import TrialSummary
from transfersearch_trainer.api.spec import TransferSearchSpec
from transfersearch_trainer.search.evaluator import Listener
from transfersearch_trainer.store.blobs import Blobs
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics
from transfersearch_trainer.workflow.searcher import Searcher, search_once, search_own_data
from transfersearch_trainer.workflow.workspace import Workspace

log = logging.getLogger("transfersearch.trial")


def search_trial(
    ws: Workspace,
    spec: TransferSearchSpec,
    searcher: Searcher,
    *,
    seed: int,
    identity: dict[str, Any],
    out: Blobs,
    prefix: str,
    pretrain_seconds: tuple[float, float],
    metrics: TrainerMetrics | None,
    labels: MetricLabels,
    extra: dict[str, Any],
    started: float,
    cache: str | None = None,
    owner: str | None = None,
) -> TrialSummary:
    """Run the trial's search, write results.json then summary.json (which marks it done).

    `started` is when the trial began (perf_counter), for its wall time, pretraining included.
    """
    device = str(ws.device)
    listeners: list[Listener] = []
    if metrics is not None:
        metrics.start_search(labels, spec.evaluation.budget, device, spec.alerts.gpu_seconds_budget)
        listeners.append(metrics.evaluation_listener(labels, device))
    if spec.target.dataset is not None:
        report = search_own_data(
            ws, spec, searcher, seed, cache=cache, owner=owner, listeners=listeners
        )
    else:
        report = search_once(ws, spec, searcher, seed, listeners=listeners)
    if metrics is not None:
        metrics.record_search(labels, report)
    rank = f" (rank {report['rank']})" if report.get("rank") is not None else ""
    log.info(
        "search on %s: best %s%s after %d/%d evaluations",
        spec.target.name,
        report["best_metric"],
        rank,
        report["evaluations"],
        report["budget"],
    )
    results = {
        **identity,
        "seed": seed,
        "protocol": "search",
        **report,
        "pretraining": {"device_seconds": pretrain_seconds[0], "gpu_seconds": pretrain_seconds[1]},
        **extra,
        "wall_seconds": time.perf_counter() - started,
    }
    results_key = f"{prefix}/results.json"
    out.put(results_key, json.dumps(results, indent=2).encode())
    agent = searcher.to_dict()
    summary = TrialSummary(
        trial=int(identity["trial"]),
        seed=seed,
        status="Succeeded",
        protocol="search",
        best_arch=report["best_arch"],
        best_metric=report["best_metric"],
        regret=report.get("regret"),
        rank=report.get("rank"),
        hit=report.get("hit"),
        evaluations=report["evaluations"],
        budget=report["budget"],
        device_seconds=float(report["device_seconds"]) + pretrain_seconds[0],
        gpu_seconds=float(report["gpu_seconds"]) + pretrain_seconds[1],
        target_evaluations=report["evaluations"],
        agent_uri=None if agent is None else agent["uri"],
        agent_digest=None if agent is None else agent["digest"],
        results_uri=out.uri(results_key),
    )
    out.put(f"{prefix}/summary.json", summary.to_message().encode())
    return summary
