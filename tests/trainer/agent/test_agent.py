"""The agent: network shapes, replay math, learning on a known task, agents on disk, transfer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from transfersearch_trainer.agent.artifact import Agent, load_agent, save_agent
from transfersearch_trainer.agent.evaluate import agent_searches
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import obs_tensors
from transfersearch_trainer.agent.qnet import NEG_INF, NetConfig, QNetwork
from transfersearch_trainer.agent.replay import PrioritizedReplay, SumTree, nstep_targets
from transfersearch_trainer.agent.transfer import agent_run, fit, make_target_agent
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import TASKS
from transfersearch_trainer.benchmark.spaces import get_space
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.env import MemorySearchEnv
from transfersearch_trainer.search.priors import source_top_k
from transfersearch_trainer.store.layout import WEIGHTS

CPU = torch.device("cpu")
TINY = Hyperparameters(
    d_model=16,
    layers=1,
    heads=2,
    ff=32,
    num_actors=16,
    episode_steps=12,
    lr=1e-3,
    augment=0.0,
    batch_size=64,
    learning_starts=128,
    target_update=50,
    eval_interval=0,
)


def synthetic(space: str = "micro") -> Benchmark:
    """Value = positions that match one target architecture: the best move is known everywhere."""
    s = get_space(space)
    target = s.codes[s.index("64-41414-2_13_102" if space == "micro" else "64-214312-basic")]
    base = (s.codes == target).sum(axis=1).astype(np.float64) + 0.001 * np.arange(s.size) / s.size
    values = np.stack([base + 0.01 * t for t in range(len(TASKS))])
    return Benchmark(s, TASKS, values, "synthetic")


@pytest.mark.parametrize("encoder", ["mlp", "transformer"])
@pytest.mark.parametrize("space", ["micro", "macro"])
def test_qnet_shapes_and_masking(space: str, encoder: str) -> None:
    bench = synthetic(space)
    cfg = NetConfig.for_space(bench.space, encoder=encoder, d_model=16, layers=1, heads=2, ff=32)
    net = QNetwork(cfg)
    env = MemorySearchEnv(bench, "jigsaw", 5, 10, seed=0)
    obs = env.reset()
    q = net(*obs_tensors(obs, CPU))
    assert q.shape == (5, bench.space.num_actions)
    assert (q[~torch.as_tensor(obs.mask)] == NEG_INF).all()
    assert torch.isfinite(q[torch.as_tensor(obs.mask)]).all()
    assert obs.action_feats.shape == (5, bench.space.num_actions, 4)
    assert obs.global_feats.shape == (5, 5)


def test_an_agent_saved_before_the_encoder_was_a_choice_loads_as_a_transformer(
    tmp_path: Path,
) -> None:
    agent = Agent.new(synthetic().space, TINY.replace(encoder="transformer"), seed=0)
    save_agent(agent, tmp_path / "old")
    manifest_path = tmp_path / "old" / "agent.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["network"]["encoder"]
    del manifest["hyperparameters"]["encoder"]
    manifest_path.write_text(json.dumps(manifest))
    loaded = load_agent(tmp_path / "old", "micro")
    assert loaded.net.cfg.encoder == loaded.hp.encoder == "transformer"
    with pytest.raises(TransferSearchError, match="hyperparameters.encoder: unknown 'cnn'"):
        TINY.replace(encoder="cnn")
    assert Hyperparameters().with_overrides({"encoder": "transformer"}, "--hp ").encoder == (
        "transformer"
    )
    with pytest.raises(TransferSearchError, match="hyperparameters.encoder: must be a string"):
        Hyperparameters().with_overrides({"encoder": 3}, "hyperparameters.")


def test_nstep_targets_by_hand() -> None:
    rewards = np.array([[1.0], [2.0], [3.0], [4.0]], dtype=np.float32)
    returns, discounts, nxt = nstep_targets(rewards, gamma=0.5, n=2)
    np.testing.assert_allclose(returns[:, 0], [1 + 0.5 * 2, 2 + 0.5 * 3, 3 + 0.5 * 4, 4])
    np.testing.assert_allclose(discounts[:, 0], [0.25, 0.25, 0.25, 0.5])
    assert nxt.tolist() == [2, 3, 4, 4]  # the window's last observation (index 4) bootstraps


def test_sum_tree_and_priorities() -> None:
    tree = SumTree(4)
    tree.update(np.arange(4), np.array([1.0, 2.0, 3.0, 4.0]))
    assert tree.total == 10.0
    assert tree.find(np.array([0.5, 1.5, 3.5, 9.9])).tolist() == [0, 1, 2, 3]
    replay = PrioritizedReplay(8, 6, 18, 4, 5, alpha=1.0, eps=0.0, seed=0)
    env = MemorySearchEnv(synthetic(), "jigsaw", 4, 10)
    obs = env.reset()
    replay.add(
        obs, np.zeros(4, dtype=np.int64), np.zeros(4, np.float32), np.ones(4, np.float32), obs
    )
    replay.update_priorities(np.arange(4), np.array([1.0, 1.0, 1.0, 7.0]))
    counts = np.bincount(
        np.concatenate([replay.sample(10, 1.0).index for _ in range(400)]), minlength=4
    )
    assert counts[3] / counts.sum() == pytest.approx(0.7, abs=0.05)
    batch = replay.sample(4, beta=1.0)
    # weights (N P(i))^-beta, normalised by the largest: the rare transitions weigh 1
    expected = (4 * np.array([0.1, 0.1, 0.1, 0.7])[batch.index]) ** -1.0
    np.testing.assert_allclose(batch.weights, expected / expected.max(), rtol=1e-5)


def test_learning_solves_a_task_with_a_known_best_policy() -> None:
    bench = synthetic()
    agent = Agent.new(bench.space, TINY, seed=0)
    before = agent_searches(agent.net, bench, "jigsaw", 8, 64, seed=5, device=CPU)
    fit(agent, agent_run(agent, bench, "jigsaw", 800, CPU))
    after = agent_searches(agent.net, bench, "jigsaw", 8, 64, seed=5, device=CPU)
    optimum = bench.stats("jigsaw").optimum
    # from any start, at most 6 right moves reach the target cell within 7 evaluations
    assert (after.best >= optimum - 0.01).mean() >= 0.9
    assert after.best.mean() > before.best.mean()
    assert agent.training["updates"] == 800


def test_memory_env_charges_distinct_evaluations() -> None:
    bench = synthetic()
    env = MemorySearchEnv(bench, "jigsaw", 1, budget=5, max_steps=20)
    env.reset([0])
    for _ in range(6):  # back and forth between two architectures: only the first move is new
        env.step(np.array([0]))
        env.step(np.array([0]))
    assert env.n_seen[0] == 2
    assert env.budget_left[0] == 3
    obs = env.agent_obs()
    assert obs.action_feats[0, 0, 0] == 1.0  # that neighbour is remembered
    assert obs.action_feats[0, 1:, 0].sum() == 0.0


def test_save_load_round_trip_and_refusals(tmp_path: Path) -> None:
    bench = synthetic()
    agent = Agent.new(bench.space, TINY, seed=1)
    agent.task = "jigsaw"
    digest = save_agent(agent, tmp_path / "a")
    loaded = load_agent(tmp_path / "a", space="micro", digest=f"sha256:{digest}")
    obs = MemorySearchEnv(bench, "jigsaw", 3, 10).reset()
    torch.testing.assert_close(
        loaded.net(*obs_tensors(obs, CPU)), agent.net(*obs_tensors(obs, CPU))
    )
    assert loaded.hp == TINY
    manifest = json.loads((tmp_path / "a" / "agent.json").read_text())
    assert manifest["weights"]["sha256"] == digest
    assert {"space", "task", "steps", "seed", "hyperparameters", "code_version"} <= set(manifest)
    with pytest.raises(TransferSearchError, match="searches the micro space, not macro"):
        load_agent(tmp_path / "a", space="macro")
    with pytest.raises(TransferSearchError, match="not the expected"):
        load_agent(tmp_path / "a", digest="sha256:" + "0" * 64)
    weights = tmp_path / "a" / WEIGHTS
    blob = bytearray(weights.read_bytes())
    blob[-5] ^= 0xFF  # one flipped bit in a tensor
    weights.write_bytes(bytes(blob))
    with pytest.raises(TransferSearchError, match="corrupt or was replaced"):
        load_agent(tmp_path / "a")
    with pytest.raises(TransferSearchError, match="not an agent folder"):
        load_agent(tmp_path / "nothing")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "agent.json").write_text("{not json")
    with pytest.raises(TransferSearchError, match="unreadable agent manifest"):
        load_agent(tmp_path / "b")


def test_manifest_that_lies_about_the_network_is_refused(tmp_path: Path) -> None:
    agent = Agent.new(get_space("micro"), TINY, seed=1)
    save_agent(agent, tmp_path)
    manifest = json.loads((tmp_path / "agent.json").read_text())
    manifest["network"]["d_model"] = 32
    (tmp_path / "agent.json").write_text(json.dumps(manifest))
    with pytest.raises(TransferSearchError, match="does not match its manifest"):
        load_agent(tmp_path)


def _changed(before: dict[str, torch.Tensor], net: QNetwork) -> set[str]:
    return {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}


@pytest.mark.parametrize("mode", ["scratch", "finetune", "freeze-encoder", "zero-shot"])
def test_transfer_modes_train_what_they_say(mode: str) -> None:
    bench = synthetic()
    source = Agent.new(bench.space, TINY, seed=0)
    source.task = "class_scene"
    agent, trainable = make_target_agent(source, mode, bench.space, seed=3)
    start = {k: v.clone() for k, v in agent.net.state_dict().items()}
    fit(agent, agent_run(agent, bench, "jigsaw", 30, CPU, trainable))
    changed = _changed(start, agent.net)
    encoder = {
        n
        for n, _ in agent.net.named_parameters()
        if n
        in {
            m
            for m, p in agent.net.named_parameters()
            if any(p is q for q in agent.net.encoder_parameters())
        }
    }
    if mode == "zero-shot":
        assert trainable is None
        assert not changed
        assert agent.training["distinct_evaluations"] == 0
    elif mode == "freeze-encoder":
        assert changed
        assert not (changed & encoder)
    else:
        assert changed & encoder
    same_as_source = all(torch.equal(v, source.net.state_dict()[k]) for k, v in start.items())
    assert same_as_source == (mode != "scratch")
    if mode != "scratch":
        assert agent.parent is not None
        assert agent.parent["task"] == "class_scene"


def test_target_evaluation_cap_is_never_exceeded() -> None:
    bench = synthetic()
    agent = Agent.new(bench.space, TINY, seed=0)
    fit(agent, agent_run(agent, bench, "jigsaw", 200, CPU, evaluation_cap=150))
    assert agent.training["distinct_evaluations"] <= 150
    assert agent.training["stopped_by_cap"]
    with pytest.raises(TransferSearchError, match="too small"):
        fit(agent, agent_run(agent, bench, "jigsaw", 10, CPU, evaluation_cap=10))


def test_source_top_k_evaluates_the_source_best() -> None:
    bench = synthetic()
    runs = source_top_k(bench, "class_scene", "jigsaw", 5, 3)
    assert runs.evaluated.shape == (3, 5)
    assert runs.evaluated[0, 0] == bench.stats("class_scene").optimum_index
    assert (runs.best == runs.best[0]).all()


def test_task_augmentation_gives_each_search_a_nearby_task() -> None:
    bench = synthetic()
    env = MemorySearchEnv(bench, "jigsaw", 8, 10, seed=0, augment=0.4)
    env.reset()
    assert env._metric_rows is not None
    shift = env._metric_rows - bench.normalised("jigsaw")[None, :]
    # additive (position, code) part with variance s^2 plus noise with variance (s/2)^2
    assert shift.std() == pytest.approx(np.sqrt(0.4**2 + 0.2**2), rel=0.15)
    assert abs(shift.mean()) < 0.1
    assert not np.allclose(shift[0], shift[1])
    # the searches see their own task's values
    np.testing.assert_allclose(env.value, env._metric_rows[np.arange(8), env.arch])
    plain = MemorySearchEnv(bench, "jigsaw", 8, 10, seed=0)
    plain.reset()
    assert plain._metric_rows is None
