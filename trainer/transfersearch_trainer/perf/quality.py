"""Agent quality per network on one fixed evaluation: is the faster network as good?

A speed-up only counts at equal quality. Each network pretrains the same number of
updates on the same source task with the same seeds; then every agent is scored the
same way on

* the source task: the pretraining curve's last point (greedy searches of the
  evaluation budget from the evaluation seed's starts, `agent.evaluate.curve_evaluator`);
* a held-out target: honest zero-shot searches (`agent.online.search_target`, every
  evaluation paid), mean best found and mean rank in the target's table.

Nothing here is tuned on: the settings are the defaults, the seeds fixed in advance.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from transfersearch_trainer.agent.learner import pick_device
from transfersearch_trainer.agent.online import search_target
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.perf.networks import DEFAULT_NAME, NETWORKS
from transfersearch_trainer.search.observed import table_evaluator
from transfersearch_trainer.search.stats import mean_ci
from transfersearch_trainer.workflow.source import pretrain
from transfersearch_trainer.workflow.workspace import QuietReporter, Workspace


def measure_quality(
    bench: Benchmark,
    source: str,
    target: str,
    updates: int = 3000,
    seeds: int = 3,
    budget: int = 50,
    searches: int = 10,
    device: str | None = None,
    networks: tuple[str, ...] = tuple(NETWORKS),
) -> dict[str, Any]:
    """Per network (`perf.networks`): training seconds, source score, target zero-shot results."""
    dev = pick_device(device)
    values = bench.metric(target)
    evaluate = table_evaluator(values)
    out: dict[str, Any] = {
        "space": bench.space.name,
        "source": source,
        "target": target,
        "updates": updates,
        "seeds": seeds,
        "budget": budget,
        "searches": searches,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "default_network": DEFAULT_NAME,
        "networks": {},
    }
    for name in networks:
        ws = Workspace(bench, dev, NETWORKS[name], QuietReporter())
        rows = []
        for seed in range(seeds):
            started = time.perf_counter()
            agent = pretrain(ws, source, updates, seed)
            seconds = time.perf_counter() - started
            curve = agent.training.get("curve") or []
            best, ranks = [], []
            for s in range(searches):
                result = search_target(
                    agent.net, agent.hp, bench.space, evaluate, budget, "zero-shot", s, dev
                )
                best.append(result.best_metric)
                ranks.append(1 + int((values > result.best_metric).sum()))
            rows.append(
                {
                    "seed": seed,
                    "train_seconds": seconds,
                    "device_seconds": float(agent.training.get("device_seconds", 0.0)),
                    "source_score": float(curve[-1]["score"]) if curve else float("nan"),
                    "target_mean": float(np.mean(best)),
                    "target_mean_rank": float(np.mean(ranks)),
                }
            )
        summary: dict[str, Any] = {"runs": rows}
        for key in ("device_seconds", "source_score", "target_mean", "target_mean_rank"):
            mean, half = mean_ci([float(r[key]) for r in rows])
            summary[key] = {"mean": mean, "ci95": half}
        out["networks"][name] = summary
    return out
