"""The training evaluator: a `search.evaluator.Evaluator` that really trains each candidate.

A search asks it for a batch of architectures (one parallel round); each is answered from
the cache when the same data, architecture, recipe and seed were trained before (free,
``cached=True``), else trained with `training.train_and_validate` and stored. With
``parallel=K`` and K CUDA devices the round's trainings run K at once, one thread per
GPU (``cuda:0..K-1``), each pulling the next candidate when it is done; on CPU they run
one after another (threads would only split the same cores). The cache is read and
written from the calling thread only, so a cache need not be thread-safe.

`trained` counts the trainings that actually ran, so a caller can show that a warm cache
trained nothing.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from transfersearch_trainer.benchmark.spaces import SearchSpace
from transfersearch_trainer.evaluation.arrays import ArrayDataset
from transfersearch_trainer.evaluation.cache import EvaluationCache, cache_key
from transfersearch_trainer.evaluation.training import (
    TrainingRecipe,
    TrainResult,
    train_and_validate,
)
from transfersearch_trainer.search.evaluator import Evaluation


@dataclass
class TrainingEvaluator:
    """Architectures of `space` trained on `dataset` under `recipe` and `seed`."""

    space: SearchSpace
    dataset: ArrayDataset
    recipe: TrainingRecipe
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    cache: EvaluationCache | None = None
    parallel: int = 1
    trained: int = field(default=0, init=False)  # trainings that actually ran

    @property
    def description(self) -> str:
        size = f" resolution={self.recipe.resolution}" if self.recipe.resolution else ""
        return (
            f"training:{self.dataset.name} width={self.recipe.width} "
            f"epochs={self.recipe.epochs}{size}"
        )

    def key(self, arch: int) -> str:
        """The cache key of `arch`: data, space, architecture, recipe and seed."""
        return cache_key(
            self.dataset.sha256,
            self.space.name,
            self.space.arch_str(arch),
            self.recipe.to_dict(),
            self.seed,
        )

    def devices(self) -> list[torch.device]:
        """Where a round trains: K GPUs for ``parallel=K`` on CUDA, else the one device."""
        if self.device.type != "cuda" or self.parallel <= 1:
            return [self.device]
        count = min(self.parallel, torch.cuda.device_count())
        return [torch.device("cuda", i) for i in range(max(1, count))]

    def evaluate(self, archs: Sequence[int]) -> list[Evaluation]:
        keys = [self.key(int(a)) for a in archs]
        answers: dict[str, Evaluation] = {}
        todo: dict[str, int] = {}  # key -> arch, first occurrence, in order
        for arch, key in zip(archs, keys, strict=True):
            if key in answers or key in todo:
                continue
            hit = self.cache.get(key) if self.cache is not None else None
            if hit is not None:
                answers[key] = replace(hit, cached=True)  # the training's cost, marked cached
            else:
                todo[key] = int(arch)
        # A shared cache (the trials of one search) is claimed first: what another trial is
        # training now is waited for, not trained a second time.
        mine = {k: a for k, a in todo.items() if self._claim(k)}
        waiting = [k for k in todo if k not in mine]
        try:
            self._train_into(mine, answers)
        finally:
            for key in mine:
                self._release(key)
        for key in waiting:
            answers[key] = self._wait(key, todo[key])
        out: list[Evaluation] = []
        fresh: set[str] = set()
        for key in keys:
            e = answers[key]
            if key in mine and key not in fresh:
                fresh.add(key)  # the training itself; a repeat in the batch costs nothing
                out.append(e)
            else:
                out.append(Evaluation(e.metric, e.device_seconds, e.gpu_seconds, cached=True))
        return out

    def _train_into(self, todo: dict[str, int], answers: dict[str, Evaluation]) -> None:
        results = self._train_all(list(todo.values()))
        for (key, arch), result in zip(todo.items(), results, strict=True):
            evaluation = Evaluation(result.metric, result.device_seconds, result.gpu_seconds)
            answers[key] = evaluation
            if self.cache is not None:
                self.cache.put(key, evaluation, self._info(arch, result))
        self.trained += len(results)

    def _claim(self, key: str) -> bool:
        claim = getattr(self.cache, "claim", None)
        return True if claim is None else bool(claim(key))

    def _release(self, key: str) -> None:
        release = getattr(self.cache, "release", None)
        if release is not None:
            release(key)

    def _wait(self, key: str, arch: int) -> Evaluation:
        """Another trial's training of `key`: its result once stored, or ours if it gave up."""
        assert self.cache is not None  # only a shared cache refuses a claim
        poll = float(getattr(self.cache, "poll_seconds", 2.0))
        while True:
            found = self.cache.get(key)
            if found is not None:
                return replace(found, cached=True)
            if self._claim(key):  # the claim went stale: that trial died
                answers: dict[str, Evaluation] = {}
                try:
                    self._train_into({key: arch}, answers)
                finally:
                    self._release(key)
                return answers[key]
            time.sleep(poll)

    def _info(self, arch: int, result: TrainResult) -> dict[str, Any]:
        return {
            "arch": self.space.arch_str(arch),
            "space": self.space.name,
            "dataset": self.dataset.name,
            "params": result.params,
            "epochs": result.epochs,
            "train_loss": result.train_loss,
            "device_seconds": result.device_seconds,
            "gpu_seconds": result.gpu_seconds,
            "recipe": self.recipe.to_dict(),
            "seed": self.seed,
        }

    def _train(self, arch: int, device: torch.device) -> TrainResult:
        return train_and_validate(
            self.space.name, self.space.op_tuple(arch), self.dataset, self.recipe, self.seed, device
        )

    def _train_all(self, archs: list[int]) -> list[TrainResult]:
        devices = self.devices()
        if len(devices) == 1 or len(archs) <= 1:
            return [self._train(a, devices[0]) for a in archs]
        jobs: queue.Queue[int] = queue.Queue()
        for i in range(len(archs)):
            jobs.put(i)
        results: list[TrainResult | None] = [None] * len(archs)
        errors: list[BaseException] = []

        def worker(device: torch.device) -> None:
            while not errors:
                try:
                    i = jobs.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = self._train(archs[i], device)
                except BaseException as exc:  # re-raised in the caller's thread below
                    errors.append(exc)

        threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in devices]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return [r for r in results if r is not None]
