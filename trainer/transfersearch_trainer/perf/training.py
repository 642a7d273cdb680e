"""Training costs measured in one run: learner throughput, instrumentation, checkpoints."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from transfersearch_trainer.agent.artifact import Agent
from transfersearch_trainer.agent.checkpoint import Checkpointer
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import (
    Learner,
    TrainingRun,
    Watch,
    learner_update,
    pick_device,
    select_actions,
    train,
)
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.perf.networks import DEFAULT_NAME, NETWORKS, REFERENCE
from transfersearch_trainer.search.env import MemorySearchEnv
from transfersearch_trainer.store.blobs import open_blobs
from transfersearch_trainer.telemetry.hooks import MetricsHook
from transfersearch_trainer.telemetry.metrics import MetricLabels, TrainerMetrics


def measure_learner(
    bench: Benchmark,
    task: str,
    updates: int = 1000,
    seed: int = 0,
    device: str | None = None,
    networks: tuple[str, ...] = tuple(NETWORKS),
    rounds: int = 2,
) -> dict[str, object]:
    """Learner throughput per network, side by side, with the bare-network limit of each.

    Each round trains every network (`perf.networks`) for `updates` updates, otherwise
    with the default hyperparameters (same seed, same work; rounds alternate so drift in
    the machine's speed hits all alike) and reports the median updates/s. The *bare*
    limit is the double-DQN update alone (sample, three network passes, backward, Adam,
    priorities) on the replay that training filled: what the learner would reach if
    acting cost nothing. Also times the actors alone (greedy forward + env step).
    """
    import statistics

    dev = pick_device(device)
    runs: dict[str, dict[str, list[float]]] = {
        e: {"updates_per_second": [], "bare_updates_per_second": [], "env_steps_per_second": []}
        for e in networks
    }
    actors: dict[str, float] = {}
    parameters: dict[str, int] = {}
    for _ in range(rounds):
        for name in networks:
            hp = NETWORKS[name]
            learner = Learner(
                Agent.new(bench.space, hp, seed).net,
                TrainingRun(bench, task, hp, updates, seed, dev),
            )
            stats = learner.run()
            runs[name]["updates_per_second"].append(stats.updates / stats.device_seconds)
            runs[name]["env_steps_per_second"].append(stats.env_steps / stats.device_seconds)
            runs[name]["bare_updates_per_second"].append(_bare_rate(learner, 200))
            actors[name] = _actors_rate(learner, bench, task, seed, dev)
            parameters[name] = sum(p.numel() for p in learner.net.parameters())
    hp = Hyperparameters()
    by: dict[str, dict[str, object]] = {
        e: {
            **{k: statistics.median(v) for k, v in r.items()},
            "runs": r["updates_per_second"],
            "actors_only_env_steps_per_second": actors[e],
            "parameters": parameters[e],
        }
        for e, r in runs.items()
    }
    result: dict[str, object] = {
        "space": bench.space.name,
        "task": task,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "updates": updates,
        "rounds": rounds,
        "num_actors": hp.num_actors,
        "batch_size": hp.batch_size,
        "default_network": DEFAULT_NAME,
        "reference_network": REFERENCE,
        "warmup_env_steps": -(-hp.learning_starts // hp.num_actors) * hp.num_actors,
        "networks": by,
    }
    if DEFAULT_NAME in by and REFERENCE in by:
        result["speedup"] = statistics.median(runs[DEFAULT_NAME]["updates_per_second"]) / (
            statistics.median(runs[REFERENCE]["updates_per_second"])
        )
    return result


def _bare_rate(learner: Learner, n: int) -> float:
    """Updates/s of the update alone on a trained learner's replay (its weights then change)."""
    started = time.perf_counter()
    for _ in range(n):
        learner_update(learner)
    return n / (time.perf_counter() - started)


def _actors_rate(
    learner: Learner, bench: Benchmark, task: str, seed: int, dev: torch.device
) -> float:
    hp = learner.hp
    env = MemorySearchEnv(
        bench, task, hp.num_actors, hp.episode_steps + 2, max_steps=hp.episode_steps, seed=seed
    )
    obs = env.reset()
    rng = np.random.default_rng(seed)
    steps = 200
    started = time.perf_counter()
    for _ in range(steps):
        obs = env.step(select_actions(learner.net, obs, 0.01, rng, dev)).obs
    return steps * hp.num_actors / (time.perf_counter() - started)


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

    dev = pick_device(device)
    hp = Hyperparameters()
    fingerprint = {"task": task, "seed": seed, "steps": updates}
    with tempfile.TemporaryDirectory(prefix="transfersearch-ckpt-bench-") as tmp:
        blobs = open_blobs(location or tmp)
        prefix = f"checkpoint-bench-{uuid.uuid4().hex[:8]}"

        def learner(ckpt: Checkpointer) -> Learner:
            net = Agent.new(bench.space, hp, seed).net
            return Learner(
                net, TrainingRun(bench, task, hp, updates, seed, dev), Watch(hooks=[ckpt])
            )

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
            run = TrainingRun(bench, task, hp, updates, seed, dev)
            stats = train(agent.net, run, Watch(hooks=hooks))
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
