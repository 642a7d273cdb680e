"""Throughput of the search environment, measured side by side in one process.

Three ways to run the same searches with the same actions:

* ``vectorised``: `VecSearchEnv.step`, observations and rewards built;
* ``python-loop``: one `PySearch` object per search stepped in a plain Python loop
  (also the readable reference the tests compare the vectorised env against);
* ``bare-gather``: only ``next = neighbours[current, action]; value = metric[next]``,
  the floor no environment can beat.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.env import VecSearchEnv


class PySearch:
    """One search of the environment's MDP, in plain Python (same rules as `VecSearchEnv`)."""

    def __init__(
        self,
        table: list[list[int]],
        metric: list[float],
        codes: list[tuple[int, ...]],
        start: int,
        budget: int,
        shaping: float = 0.0,
    ) -> None:
        self.table, self.metric, self.codes = table, metric, codes
        self.budget, self.shaping = budget, shaping
        self.reset(start)

    def reset(self, start: int) -> None:
        self.arch = start
        self.value = self.best = self.metric[start]
        self.budget_left = self.budget - 1
        self.tokens = self.codes[start]

    def step(self, action: int) -> tuple[float, bool]:
        """Move, evaluate, reward; returns (reward, truncated). The caller resets when truncated."""
        self.arch = self.table[self.arch][action]
        new = self.metric[self.arch]
        reward = max(new - self.best, 0.0) + self.shaping * (new - self.value)
        self.best = max(self.best, new)
        self.value = new
        self.tokens = self.codes[self.arch]
        self.budget_left -= 1
        return reward, self.budget_left <= 0


def py_searches(
    bench: Benchmark, task: str, starts: npt.NDArray[np.integer], budget: int, shaping: float = 0.0
) -> list[PySearch]:
    table = bench.space.table.tolist()
    metric = [float(x) for x in bench.normalised(task)]
    codes = [tuple(int(c) for c in row) for row in bench.space.codes]
    return [PySearch(table, metric, codes, int(s), budget, shaping) for s in starts]


@dataclass(frozen=True)
class Rate:
    name: str
    steps: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.steps / self.seconds


def _best_of(repeats: int, fn: Callable[[], int]) -> tuple[int, float]:
    best = float("inf")
    steps = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        steps = fn()
        best = min(best, time.perf_counter() - t0)
    return steps, best


def measure_env(
    bench: Benchmark,
    task: str,
    batch: int = 4096,
    steps: int = 2000,
    budget: int = 100,
    python_steps: int = 60,
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, object]:
    """Steps per second of the three variants, plus a check that env and loop agree."""
    rng = np.random.default_rng(seed)
    space = bench.space
    actions = rng.integers(0, space.num_actions, size=(steps, batch))
    starts = rng.integers(0, space.size, size=batch)
    env = VecSearchEnv(bench, task, batch, budget, seed=seed)

    def vectorised() -> int:
        env.reset(starts)
        for t in range(steps):
            env.step(actions[t])
        return steps * batch

    table2d = space.table
    metric = bench.normalised(task)

    def bare() -> int:
        cur = starts.copy()
        for t in range(steps):
            cur = table2d[cur, actions[t]]
            metric[cur]
        return steps * batch

    py_steps = max(1, min(steps, python_steps))
    py_starts = starts

    def loop() -> int:
        searches = py_searches(bench, task, py_starts, budget)
        rng_restart = np.random.default_rng(seed).integers(
            0, space.size, size=py_steps * len(searches)
        )
        k = 0
        for t in range(py_steps):
            row = actions[t].tolist()
            for i, search in enumerate(searches):
                _, done = search.step(row[i])
                if done:
                    search.reset(int(rng_restart[k]))
                    k += 1
        return py_steps * len(searches)

    rates = [
        Rate(name, *_best_of(repeats, fn))
        for name, fn in (("vectorised", vectorised), ("python-loop", loop), ("bare-gather", bare))
    ]
    agree = _agreement(bench, task, starts[:64], actions[: min(steps, budget - 2), :64], budget)
    by = {r.name: r.per_second for r in rates}
    return {
        "space": space.name,
        "task": task,
        "batch": batch,
        "steps_per_run": steps,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "rates": [asdict(r) | {"per_second": r.per_second} for r in rates],
        "vectorised_over_python": by["vectorised"] / by["python-loop"],
        "vectorised_over_bare": by["vectorised"] / by["bare-gather"],
        "env_matches_python_loop": agree,
    }


def _agreement(
    bench: Benchmark,
    task: str,
    starts: npt.NDArray[np.integer],
    actions: npt.NDArray[np.integer],
    budget: int,
) -> bool:
    """Same starts and actions, before any budget reset: same rewards and positions?"""
    env = VecSearchEnv(bench, task, starts.size, budget, seed=0)
    env.reset(starts)
    searches = py_searches(bench, task, starts, budget)
    for t in range(actions.shape[0]):
        out = env.step(actions[t])
        expected = [s.step(int(a))[0] for s, a in zip(searches, actions[t], strict=True)]
        if not np.allclose(out.reward, expected, atol=1e-6):
            return False
        if env.arch.tolist() != [s.arch for s in searches]:
            return False
    return True


def measure_learner(
    bench: Benchmark, task: str, updates: int = 1000, seed: int = 0, device: str | None = None
) -> dict[str, object]:
    """Learner throughput with the default hyperparameters: updates/s and actor env steps/s.

    Also times the actors alone (greedy network forward + env step, no learning), which
    is the ceiling on env steps/s when the learner is not the bottleneck.
    """
    import torch

    from transfersearch_trainer.agent.artifact import Agent
    from transfersearch_trainer.agent.learner import (
        Hyperparameters,
        pick_device,
        select_actions,
        train,
    )
    from transfersearch_trainer.search.env import MemorySearchEnv

    dev = pick_device(device)
    hp = Hyperparameters()
    agent = Agent.new(bench.space, hp, seed)
    stats = train(agent.net, bench, task, hp, updates, seed, dev)
    # the first learning_starts transitions are collected without updates: time the rest
    warmup_steps = -(-hp.learning_starts // hp.num_actors)
    env = MemorySearchEnv(
        bench, task, hp.num_actors, hp.episode_steps + 2, max_steps=hp.episode_steps, seed=seed
    )
    obs = env.reset()
    rng = np.random.default_rng(seed)
    steps = 300
    t0 = time.perf_counter()
    for _ in range(steps):
        obs = env.step(select_actions(agent.net, obs, 0.01, rng, dev)).obs
    actor_seconds = time.perf_counter() - t0
    return {
        "space": bench.space.name,
        "task": task,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "updates": stats.updates,
        "env_steps": stats.env_steps,
        "seconds": stats.device_seconds,
        "updates_per_second": stats.updates / stats.device_seconds,
        "env_steps_per_second": stats.env_steps / stats.device_seconds,
        "warmup_env_steps": warmup_steps * hp.num_actors,
        "actors_only_env_steps_per_second": steps * hp.num_actors / actor_seconds,
        "num_actors": hp.num_actors,
        "batch_size": hp.batch_size,
    }


def measure_checkpoint(
    bench: Benchmark,
    task: str,
    updates: int = 3000,
    interval: int = 1000,
    location: str | None = None,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, Any]:
    """What checkpoints cost with the default hyperparameters: size, time to write, time to resume.

    Trains `updates` updates with a checkpoint every `interval` (to a temporary folder,
    or to `location`, e.g. an s3:// prefix), then times what a restarted trainer pays to
    restore the newest one into a fresh learner. A kill loses the updates since the last
    checkpoint: at most `interval`, about half of it on average.
    """
    import tempfile
    import uuid

    from transfersearch_trainer.agent.artifact import Agent
    from transfersearch_trainer.agent.checkpoint import Checkpointer
    from transfersearch_trainer.agent.learner import Hyperparameters, Learner, pick_device
    from transfersearch_trainer.store.blobs import open_blobs

    dev = pick_device(device)
    hp = Hyperparameters()
    fingerprint = {"task": task, "seed": seed, "steps": updates}
    with tempfile.TemporaryDirectory(prefix="transfersearch-ckpt-bench-") as tmp:
        blobs = open_blobs(location or tmp)
        prefix = f"checkpoint-bench-{uuid.uuid4().hex[:8]}"

        def learner(ckpt: Checkpointer) -> Learner:
            net = Agent.new(bench.space, hp, seed).net
            return Learner(net, bench, task, hp, updates, seed, dev, hooks=[ckpt])

        saver = Checkpointer(blobs, prefix, interval, fingerprint)
        stats = learner(saver).run()
        loader = Checkpointer(blobs, prefix, interval, fingerprint)
        fresh = learner(loader)
        started = time.perf_counter()
        loader.load_latest(fresh)
        restore_seconds = time.perf_counter() - started
        blobs.delete(blobs.keys(prefix + "/"))
    periodic = [s for s in saver.saves if not s.name.endswith("-final")] or saver.saves
    save_seconds = sum(s.seconds for s in saver.saves)
    rate = stats.updates / max(stats.device_seconds - save_seconds, 1e-9)
    return {
        "space": bench.space.name,
        "task": task,
        "device": str(dev),
        "location": location or "local folder",
        "updates": stats.updates,
        "interval": interval,
        "replay_rows": min(stats.env_steps, hp.replay_capacity),
        "checkpoint_bytes": max(s.bytes for s in saver.saves),
        "save_seconds": [round(s.seconds, 3) for s in saver.saves],
        "save_seconds_mean": sum(s.seconds for s in periodic) / len(periodic),
        "training_seconds": stats.device_seconds,
        "checkpoint_share": save_seconds / stats.device_seconds,
        "updates_per_second": rate,
        "restore_seconds": restore_seconds,
        "lost_updates_max": interval,
        "lost_seconds_max": interval / rate,
    }


def measure_metrics(
    bench: Benchmark,
    task: str,
    updates: int = 600,
    rounds: int = 3,
    seed: int = 0,
    device: str | None = None,
) -> dict[str, object]:
    """Instrumentation cost, side by side: the same training with and without metrics.

    Rounds alternate plain and instrumented runs (same seed, same work) so drift in
    the machine's speed hits both alike; the instrumented runs also serve /metrics
    and are scraped every second by a thread, as Prometheus would. Reports the
    median updates/s of each, their ratio, and the size of one scrape.
    """
    import statistics
    import threading
    import urllib.request

    from transfersearch_trainer.agent.artifact import Agent
    from transfersearch_trainer.agent.learner import Hyperparameters, pick_device, train
    from transfersearch_trainer.telemetry.hooks import MetricsHook
    from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics

    dev = pick_device(device)
    hp = Hyperparameters()
    metrics = TrainerMetrics()
    port = metrics.serve(0, addr="127.0.0.1")
    url = f"http://127.0.0.1:{port}/metrics"
    labels = MetricLabels(search="bench", namespace="bench", task=task, trial="0", mode="scratch")
    metrics.set_limits(labels, 0.1, 3600.0)
    stop = threading.Event()
    scrapes: list[int] = []

    def scrape() -> None:
        while not stop.wait(1.0):
            with urllib.request.urlopen(url, timeout=5) as response:
                scrapes.append(len(response.read()))

    plain: list[float] = []
    instrumented: list[float] = []
    for _ in range(rounds):
        for hooked in (False, True):
            agent = Agent.new(bench.space, hp, seed)
            hooks = [MetricsHook(metrics, labels)] if hooked else []
            scraper = threading.Thread(target=scrape, daemon=True) if hooked else None
            if scraper is not None:
                stop.clear()
                scraper.start()
            stats = train(agent.net, bench, task, hp, updates, seed, dev, hooks=hooks)
            if scraper is not None:
                stop.set()
                scraper.join()
            (instrumented if hooked else plain).append(stats.updates / stats.device_seconds)
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    samples = [line for line in body.splitlines() if line and not line.startswith("#")]
    plain_ups, hooked_ups = statistics.median(plain), statistics.median(instrumented)
    return {
        "device": str(dev),
        "task": task,
        "updates": updates,
        "rounds": rounds,
        "plain_updates_per_second": plain_ups,
        "instrumented_updates_per_second": hooked_ups,
        "ratio": hooked_ups / plain_ups,
        "plain_runs": plain,
        "instrumented_runs": instrumented,
        "scrapes": len(scrapes),
        "scrape_bytes": len(body.encode()),
        "scrape_samples": len(samples),
        "families": sum(1 for line in body.splitlines() if line.startswith("# TYPE")),
    }
