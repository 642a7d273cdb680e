from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.perf.env import py_searches
from transfersearch_trainer.search.env import VecSearchEnv


@pytest.fixture(scope="module", params=["micro", "macro"])
def bench(request: pytest.FixtureRequest, data_dir: Path) -> Benchmark:
    return load_benchmark(data_dir, request.param)


def _run(env: VecSearchEnv, starts: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
    env.reset(starts)
    out: dict[str, list[np.ndarray]] = {"reward": [], "arch": [], "best": [], "tokens": []}
    for a in actions:
        res = env.step(a)
        obs = res.final if res.final is not None else res.obs
        out["reward"].append(res.reward.copy())
        out["arch"].append(obs.arch.copy())
        out["best"].append(obs.best.copy())
        out["tokens"].append(obs.tokens.copy())
    return {k: np.stack(v) for k, v in out.items()}


def test_batch_equals_single_searches(bench: Benchmark) -> None:
    rng = np.random.default_rng(1)
    budget, n = 12, 9
    starts = rng.integers(0, bench.space.size, n)
    actions = rng.integers(0, bench.space.num_actions, (budget - 1, n))
    batch = _run(VecSearchEnv(bench, "jigsaw", n, budget, shaping=0.3), starts, actions)
    for i in range(n):
        single = _run(
            VecSearchEnv(bench, "jigsaw", 1, budget, shaping=0.3),
            starts[i : i + 1],
            actions[:, i : i + 1],
        )
        for key in batch:
            np.testing.assert_array_equal(batch[key][:, i], single[key][:, 0])


def test_env_matches_plain_python_reference(bench: Benchmark) -> None:
    rng = np.random.default_rng(2)
    budget, n = 30, 16
    starts = rng.integers(0, bench.space.size, n)
    actions = rng.integers(0, bench.space.num_actions, (budget - 1, n))
    got = _run(VecSearchEnv(bench, "normal", n, budget, shaping=0.5), starts, actions)
    ref = py_searches(bench, "normal", starts, budget, shaping=0.5)
    for t in range(budget - 1):
        rewards = [s.step(int(a))[0] for s, a in zip(ref, actions[t], strict=True)]
        np.testing.assert_allclose(got["reward"][t], rewards, rtol=1e-5, atol=1e-5)
        assert got["arch"][t].tolist() == [s.arch for s in ref]
        assert [tuple(r) for r in got["tokens"][t].tolist()] == [s.tokens for s in ref]


def test_budget_accounting_and_truncation(bench: Benchmark) -> None:
    budget, n = 7, 5
    env = VecSearchEnv(bench, "class_scene", n, budget, seed=3)
    obs = env.reset()
    assert (obs.budget_left == budget - 1).all()
    assert env.evaluations == n
    for t in range(budget - 1):
        res = env.step(np.zeros(n, dtype=np.int64))
        if t < budget - 2:
            assert res.final is None
            assert not res.truncated.any()
            assert (res.obs.budget_left == budget - 2 - t).all()
    # the last move spends the budget: truncated (not terminated), final obs kept, reset done
    assert res.truncated.all()
    assert res.final is not None
    assert (res.final.budget_left == 0).all()
    assert (res.obs.budget_left == budget - 1).all()
    assert env.evaluations == n * budget + n  # n searches of `budget` evaluations + n new starts


def test_rewards_telescope_to_improvement_of_best(bench: Benchmark) -> None:
    rng = np.random.default_rng(4)
    budget, n, shaping = 40, 32, 0.25
    env = VecSearchEnv(bench, "room_layout", n, budget, shaping=shaping)
    obs = env.reset(rng.integers(0, bench.space.size, n))
    u0 = obs.value.copy()
    total = np.zeros(n)
    for _ in range(budget - 1):
        res = env.step(rng.integers(0, bench.space.num_actions, n))
        total += res.reward
    final = res.final
    assert final is not None
    expected = (final.best - u0) + shaping * (final.value - u0)
    np.testing.assert_allclose(total, expected, atol=1e-4)
    # best-so-far is the max of the normalised values actually visited, and u is normalised
    norm = bench.normalised("room_layout")
    assert norm.max() == pytest.approx(1.0)
    assert np.median(norm) == pytest.approx(0.0, abs=1e-6)


def test_tokens_and_values_match_the_tables(bench: Benchmark) -> None:
    env = VecSearchEnv(bench, "autoencoder", 64, 10, seed=5)
    obs = env.reset()
    res = env.step(np.random.default_rng(5).integers(0, bench.space.num_actions, 64))
    np.testing.assert_array_equal(res.obs.tokens, bench.space.codes[res.obs.arch])
    np.testing.assert_array_equal(res.obs.value, bench.normalised("autoencoder")[res.obs.arch])
    assert obs.tokens.dtype == np.int8


def test_deterministic_under_a_seed(bench: Benchmark) -> None:
    def trace(seed: int) -> np.ndarray:
        env = VecSearchEnv(bench, "class_object", 8, 5, seed=seed)
        env.reset()
        acts = np.random.default_rng(seed).integers(0, bench.space.num_actions, (20, 8))
        return np.stack([env.step(a).obs.arch.copy() for a in acts])

    np.testing.assert_array_equal(trace(11), trace(11))
    assert not np.array_equal(trace(11), trace(12))


def test_macro_invalid_moves_stay_and_are_masked(data_dir: Path) -> None:
    bench = load_benchmark(data_dir, "macro")
    env = VecSearchEnv(bench, "class_object", 1, 5)
    six = bench.space.index("64-111234-basic")  # six modules: no insertion is valid
    env.reset([six])
    mask = env.action_mask()[0]
    insert = [k for k, name in enumerate(bench.space.action_names) if name.startswith("ins")]
    assert not mask[insert].any()
    res = env.step(np.array([insert[0]]))
    assert res.obs.arch[0] == six  # a wasted, charged step
    assert res.reward[0] == 0.0
    assert res.obs.budget_left[0] == 3


def test_bad_arguments(bench: Benchmark) -> None:
    with pytest.raises(TransferSearchError, match="budget"):
        VecSearchEnv(bench, "jigsaw", 4, 1)
    with pytest.raises(TransferSearchError, match="num_envs"):
        VecSearchEnv(bench, "jigsaw", 0, 10)
    with pytest.raises(TransferSearchError, match="unknown task"):
        VecSearchEnv(bench, "jigsaws", 4, 10)
    env = VecSearchEnv(bench, "jigsaw", 4, 10)
    with pytest.raises(TransferSearchError, match="starts"):
        env.reset([0, 1])
