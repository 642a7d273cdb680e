"""Training a candidate: the recipe, seeded determinism on CPU, and the cached evaluator."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
import torch

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.evaluation.arrays import ArrayDataset
from transfersearch_trainer.evaluation.training import (
    TrainingRecipe,
    learning_rate,
    train_and_validate,
)
from transfersearch_trainer.evaluation.training_evaluator import TrainingEvaluator
from transfersearch_trainer.search.evaluator import Evaluation, Evaluator, Ledger

TINY = TrainingRecipe(epochs=2, width=8, batch_size=16)


def tiny_dataset(n: int = 64, classes: int = 3, seed: int = 0) -> ArrayDataset:
    """Random 1x8x8 images whose class shifts the mean brightness (so something is learnable)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n).astype(np.int64)
    x = (rng.random((n, 1, 8, 8)) * 0.5 + y[:, None, None, None] * 0.25).astype(np.float32)
    cut = n * 3 // 4
    return ArrayDataset("tiny", x[:cut], y[:cut], x[cut:], y[cut:], classes, f"sha-tiny-{seed}")


class DictCache:
    """The smallest `EvaluationCache`: a dict, and a record of what was stored."""

    def __init__(self) -> None:
        self.store: dict[str, Evaluation] = {}
        self.info: dict[str, dict[str, Any]] = {}

    def get(self, key: str) -> Evaluation | None:
        return self.store.get(key)

    def put(self, key: str, evaluation: Evaluation, info: dict[str, Any]) -> None:
        self.store[key] = evaluation
        self.info[key] = info


def test_same_seed_is_bitwise_the_same_and_another_seed_differs() -> None:
    data = tiny_dataset()
    ops = (3, 1, 3, 1, 1, 3)
    a = train_and_validate("micro", ops, data, TINY, seed=3)
    b = train_and_validate("micro", ops, data, TINY, seed=3)
    c = train_and_validate("micro", ops, data, TINY, seed=4)
    assert (a.metric, a.train_loss, a.params) == (b.metric, b.train_loss, b.params)
    assert c.train_loss != a.train_loss
    assert 0.0 <= a.metric <= 1.0
    assert a.gpu_seconds == 0.0
    assert a.device_seconds > 0.0
    assert a.epochs == 2


def test_a_macro_network_learns_the_tiny_task() -> None:
    data = tiny_dataset(n=96)
    recipe = TrainingRecipe(epochs=6, width=8, batch_size=16, lr=0.05)
    result = train_and_validate("macro", (1, 2, 3, 4), data, recipe, seed=0)
    assert result.metric > 0.6  # chance is 1/3
    assert math.isfinite(result.train_loss)


def test_augmentation_resolution_and_odd_batches_run() -> None:
    # 49 training images at batch 16: the last batch of one is dropped (BatchNorm on 1x1)
    data = tiny_dataset(n=65)
    recipe = TrainingRecipe(
        epochs=1, width=8, batch_size=16, augment=True, flip=True, resolution=12, warmup_epochs=0.5
    )
    result = train_and_validate("micro", (0, 0, 0, 0, 0, 0), data, recipe, seed=1)
    assert 0.0 <= result.metric <= 1.0


def test_learning_rate_warms_up_then_follows_a_cosine_to_zero() -> None:
    r = TrainingRecipe(lr=0.1, warmup_epochs=1.0)
    lrs = [learning_rate(r, s, total=40, per_epoch=10) for s in range(40)]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[9] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.1)
    assert lrs[-1] < 0.001
    assert all(x >= y for x, y in itertools.pairwise(lrs[10:]))
    assert learning_rate(TrainingRecipe(schedule="constant"), 7, 10, 5) == 0.1


def test_recipe_defaults_follow_the_benchmark_and_bad_values_are_refused() -> None:
    d = TrainingRecipe().to_dict()
    assert d["lr"] == 0.1
    assert d["momentum"] == 0.9
    assert d["nesterov"] is True
    assert d["weight_decay"] == 5e-4
    assert d["batch_size"] == 128
    assert d["width"] == 64
    assert d["augment"] is False
    assert d["label_smoothing"] == 0.0
    assert TrainingRecipe(**d) == TrainingRecipe()
    for bad in ({"epochs": 0}, {"width": 7}, {"batch_size": 1}, {"optimizer": "adam"}):
        with pytest.raises(TransferSearchError):
            TrainingRecipe(**bad)


def test_the_evaluator_trains_once_and_then_answers_from_the_cache() -> None:
    space = get_space("micro")
    cache = DictCache()
    ev = TrainingEvaluator(
        space, tiny_dataset(), TrainingRecipe(epochs=1, width=8, batch_size=16), seed=0, cache=cache
    )
    protocol: Evaluator = ev  # satisfies the search's contract
    assert protocol.description == "training:tiny width=8 epochs=1"
    a, b = space.index("64-41414-3_13_113"), space.index("64-41414-1_02_300")
    first = ev.evaluate([a, b, a])
    assert ev.trained == 2
    assert [e.cached for e in first] == [False, False, True]
    assert first[0].metric == first[2].metric
    assert first[0].device_seconds > 0.0
    # a repeat keeps the cost it stands for, marked cached: a Ledger books nothing spent for it
    assert first[2].device_seconds == first[0].device_seconds
    assert len(cache.store) == 2
    info = cache.info[ev.key(a)]
    assert info["arch"] == "64-41414-3_13_113"
    assert info["params"] > 0
    assert info["recipe"]["width"] == 8
    assert info["seed"] == 0

    again = ev.evaluate([b, a])
    assert ev.trained == 2  # a warm cache trains nothing
    assert all(e.cached for e in again)
    assert [e.device_seconds for e in again] == [first[1].device_seconds, first[0].device_seconds]
    ledger = Ledger()
    ledger.add(again)
    assert (ledger.trained, ledger.device_seconds) == (0, 0.0)
    assert ledger.cost_seconds == pytest.approx(first[0].device_seconds + first[1].device_seconds)
    assert [e.metric for e in again] == [first[1].metric, first[0].metric]

    # a fresh evaluator on the same cache: still nothing trained
    warm = TrainingEvaluator(space, ev.dataset, ev.recipe, seed=0, cache=cache)
    assert all(e.cached for e in warm.evaluate([a]))
    assert warm.trained == 0


def test_the_key_changes_with_recipe_seed_and_data() -> None:
    space = get_space("macro")
    arch = space.index("64-2243-basic")
    base = TrainingEvaluator(space, tiny_dataset(), TINY, seed=0)
    others = [
        TrainingEvaluator(space, tiny_dataset(), TrainingRecipe(epochs=3, width=8), seed=0),
        TrainingEvaluator(space, tiny_dataset(), TINY, seed=1),
        TrainingEvaluator(space, tiny_dataset(seed=1), TINY, seed=0),
    ]
    assert len({base.key(arch), *(o.key(arch) for o in others)}) == 4


def test_without_a_cache_every_call_trains_and_cpu_stays_sequential() -> None:
    space = get_space("macro")
    ev = TrainingEvaluator(
        space, tiny_dataset(), TrainingRecipe(epochs=1, width=4, batch_size=16), parallel=4
    )
    assert ev.devices() == [torch.device("cpu")]
    arch = space.index("64-2243-basic")
    one, two = ev.evaluate([arch]), ev.evaluate([arch])
    assert ev.trained == 2
    assert not one[0].cached
    assert not two[0].cached
    assert one[0].metric == two[0].metric


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_trains_in_mixed_precision_and_counts_gpu_seconds() -> None:
    space = get_space("micro")
    n = torch.cuda.device_count()
    ev = TrainingEvaluator(space, tiny_dataset(), TINY, device=torch.device("cuda"), parallel=n)
    answers = ev.evaluate([space.index("64-41414-3_13_113"), space.index("64-41414-1_11_111")])
    assert ev.trained == 2
    assert all(e.gpu_seconds > 0.0 and 0.0 <= e.metric <= 1.0 for e in answers)
