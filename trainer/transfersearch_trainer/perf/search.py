"""What one search on a target costs in compute (not in evaluations): seconds per search.

Measured after a warm-up search in the same process, because the first torch optimiser
of a process imports torch's compiler stack (seconds, once per process, not per search).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import pick_device
from transfersearch_trainer.agent.online import SEARCH_MODES, search_target
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.observed import table_evaluator


def measure_search(
    bench: Benchmark, task: str, budget: int, repeats: int = 3, device: str | None = None
) -> dict[str, Any]:
    """Median seconds of a `budget`-evaluation search per mode, default agent, one thread."""
    torch.set_num_threads(1)
    dev = pick_device(device)
    agent = Agent.new(bench.space, Hyperparameters(), 0)
    evaluate = table_evaluator(bench.metric(task))

    search_target(agent.net, agent.hp, bench.space, evaluate, 10, "online", 0, dev)  # warm-up
    modes: dict[str, dict[str, float]] = {}
    for mode in SEARCH_MODES:
        seconds, updates = [], []
        for seed in range(repeats):
            started = time.perf_counter()
            result = search_target(
                agent.net, agent.hp, bench.space, evaluate, budget, mode, seed, dev
            )
            seconds.append(time.perf_counter() - started)
            updates.append(result.updates)
        modes[mode] = {
            "seconds_median": float(np.median(seconds)),
            "updates_median": float(np.median(updates)),
        }
    return {
        "task": task,
        "space": bench.space.name,
        "budget": budget,
        "repeats": repeats,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [],
        "modes": modes,
    }
