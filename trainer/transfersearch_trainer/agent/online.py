"""The search on a target with an agent: zero-shot, online or scratch, every evaluation paid.

CleanRL style, top to bottom in `search_target`:

1. K walkers start at K distinct architectures (random and seeded, unless the caller
   gives starts, e.g. the sources' best); each start is one paid evaluation.
2. Every round the Q-network scores the moves of every walker from what the search has
   observed (see `search.observed`); each walker takes its best move (``eps``-greedy in
   the learning modes), the new architectures are evaluated together (K per round, as K
   GPUs would train them), known ones are revisited for free.
3. ``online`` and ``scratch``: the round's transitions go into a small replay and the
   network takes `updates_per_evaluation` double-DQN updates per architecture paid for
   (1-step TD, Huber loss, Adam, a target network synced every `target_sync` updates).
   The search *is* the fine-tuning: there is no other training on the target.
   ``zero-shot`` never updates.
4. It stops when the budget is spent; the result is the best of all paid evaluations.

Rewards come from paid values only: the improvement of the best found, in units of
the spread of the values seen (`ObservedSearch.spread`), times the agent's
`reward_scale`, the scale it was pretrained with.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
import torch

from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.learner import obs_tensors
from transfersearch_trainer.agent.qnet import QNetwork
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import SearchSpace
from transfersearch_trainer.search.env import AgentObs
from transfersearch_trainer.search.observed import Evaluate, ObservedSearch, Trajectory

SEARCH_MODES = ("zero-shot", "online", "scratch")


@dataclass(frozen=True)
class OnlineSettings:
    """How the agent acts and learns during one search on the target."""

    eps: float = 0.05  # exploration while learning (online, scratch); zero-shot is greedy
    updates_per_evaluation: int = 2  # gradient updates per paid evaluation (none per free move)
    batch_size: int = 32
    learning_starts: int = 8  # transitions before the first update
    lr: float = 1e-4
    gamma: float = 0.9
    target_sync: int = 25  # updates between target-network syncs
    grad_clip: float = 10.0
    max_free_moves: int = 8  # moves to known architectures before a walker must pay

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass
class SearchResult:
    trajectory: Trajectory
    updates: int
    device_seconds: float
    gpu_seconds: float

    @property
    def best_index(self) -> int:
        return int(self.trajectory.arch[int(np.argmax(self.trajectory.metric))])

    @property
    def best_metric(self) -> float:
        return float(max(self.trajectory.metric))


class _Replay:
    """The search's own transitions (at most a few hundred): plain arrays, uniform samples."""

    def __init__(self) -> None:
        self.obs: list[AgentObs] = []
        self.next_obs: list[AgentObs] = []
        self.action: list[int] = []
        self.reward: list[float] = []

    def add(self, obs: AgentObs, nxt: AgentObs, row: int, action: int, reward: float) -> None:
        self.obs.append(_row(obs, row))
        self.next_obs.append(_row(nxt, row))
        self.action.append(action)
        self.reward.append(reward)

    def __len__(self) -> int:
        return len(self.action)

    def sample(
        self, n: int, rng: np.random.Generator
    ) -> tuple[AgentObs, AgentObs, npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        idx = rng.integers(0, len(self), size=n)
        return (
            _stack([self.obs[i] for i in idx]),
            _stack([self.next_obs[i] for i in idx]),
            np.asarray(self.action, dtype=np.int64)[idx],
            np.asarray(self.reward, dtype=np.float32)[idx],
        )


def _row(obs: AgentObs, i: int) -> AgentObs:
    return AgentObs(
        obs.tokens[i : i + 1].copy(),
        obs.action_code[i : i + 1].copy(),
        obs.action_feats[i : i + 1].copy(),
        obs.global_feats[i : i + 1].copy(),
        obs.mask[i : i + 1].copy(),
    )


def _stack(rows: list[AgentObs]) -> AgentObs:
    return AgentObs(
        np.concatenate([r.tokens for r in rows]),
        np.concatenate([r.action_code for r in rows]),
        np.concatenate([r.action_feats for r in rows]),
        np.concatenate([r.global_feats for r in rows]),
        np.concatenate([r.mask for r in rows]),
    )


def search_target(
    net: QNetwork,
    hp: Hyperparameters,
    space: SearchSpace,
    evaluate: Evaluate,
    budget: int,
    mode: str,
    seed: int,
    device: torch.device,
    parallel: int = 1,
    starts: npt.NDArray[np.int64] | None = None,
    settings: OnlineSettings | None = None,
) -> SearchResult:
    """One search of `budget` distinct paid evaluations; `net` is not modified (a copy learns)."""
    if mode not in SEARCH_MODES:
        raise TransferSearchError(f"mode: unknown {mode!r}; use one of {', '.join(SEARCH_MODES)}")
    s = settings or OnlineSettings()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    if starts is None:
        starts = rng.choice(space.size, size=parallel, replace=False).astype(np.int64)
    learning = mode != "zero-shot"
    net = copy.deepcopy(net).to(device)
    target_net = copy.deepcopy(net)
    target_net.requires_grad_(False)
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr, fused=True) if learning else None
    search = ObservedSearch(space, evaluate, budget, parallel, starts)
    replay = _Replay()
    updates = 0
    started = time.perf_counter()
    obs = search.observe()
    while search.left > 0:
        spent = search.spent
        with torch.no_grad():
            net.eval()
            q = net(*obs_tensors(obs, device)).cpu().numpy()
        actions, rewards = search.step(q, rng, s.eps if learning else 0.0, s.max_free_moves)
        nxt = search.observe()
        if not learning or optimizer is None:
            obs = nxt
            continue
        for w in range(parallel):
            if actions[w] >= 0:
                replay.add(obs, nxt, w, int(actions[w]), float(rewards[w]) * hp.reward_scale)
        obs = nxt
        if len(replay) < max(s.learning_starts, 2):
            continue
        net.train()
        for _ in range(s.updates_per_evaluation * (search.spent - spent)):
            _update(net, target_net, optimizer, replay, s, rng, device)
            updates += 1
            if updates % s.target_sync == 0:
                target_net.load_state_dict(net.state_dict())
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return SearchResult(
        search.trajectory, updates, seconds, seconds if device.type == "cuda" else 0.0
    )


def _update(
    net: QNetwork,
    target_net: QNetwork,
    optimizer: torch.optim.Optimizer,
    replay: _Replay,
    s: OnlineSettings,
    rng: np.random.Generator,
    device: torch.device,
) -> None:
    """One double-DQN step on the search's own transitions (1-step TD: searches are short)."""
    obs, nxt, action, reward = replay.sample(min(s.batch_size, len(replay)), rng)
    q = net(*obs_tensors(obs, device)).gather(1, torch.as_tensor(action, device=device)[:, None])
    with torch.no_grad():
        pick = net(*obs_tensors(nxt, device)).argmax(dim=1, keepdim=True)
        q_next = target_net(*obs_tensors(nxt, device)).gather(1, pick)
        target = torch.as_tensor(reward, device=device)[:, None] + s.gamma * q_next
    loss = torch.nn.functional.huber_loss(q, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(net.parameters(), s.grad_clip)
    optimizer.step()
