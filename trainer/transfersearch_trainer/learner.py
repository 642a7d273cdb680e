"""Ape-X-style DQN on one machine: many vectorised actors, one learner (CleanRL-style, explicit).

* Actors: `num_actors` searches of a `MemorySearchEnv` stepped together; actor i
  explores with its own epsilon from the Ape-X ladder
  ``eps_i = eps_base ** (1 + eps_alpha * i / (N - 1))`` (0.4 down to 0.0007).
* Episodes are fixed windows of `episode_steps` moves from a random start, all
  actors in step; the window's end is a truncation, not a termination, and every
  transition bootstraps (partial-episode bootstrapping, as in Cassimon et al.).
* n-step returns, prioritised replay (new transitions at max priority), double
  DQN targets (online network picks, target network evaluates), Huber loss with
  importance weights, Adam, gradient clipping, periodic target sync.

One learner *step* is one gradient update; `updates_per_step` of them follow each
vectorised actor step. Target-task evaluations are counted as the distinct
architectures the actors queried; with a cap, acting stops before the cap could
be exceeded and the learner continues on what it has (no further queries).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from .benchmark import Benchmark
from .env import AgentObs, MemorySearchEnv
from .errors import TransferSearchError
from .qnet import QNetwork
from .replay import PrioritizedReplay, nstep_targets


@dataclass(frozen=True)
class Hyperparameters:
    """All learning settings in one place; saved with every agent."""

    num_actors: int = 64  # parallel searches (Ape-X actors)
    episode_steps: int = 48  # moves per training window (PEB truncation)
    eps_base: float = 0.4  # Ape-X epsilon ladder
    eps_alpha: float = 7.0
    gamma: float = 0.9
    n_step: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    grad_clip: float = 10.0
    replay_capacity: int = 1 << 17
    learning_starts: int = 2048  # transitions before the first update
    updates_per_step: int = 1  # learner updates per vectorised actor step
    target_update: int = 500  # learner updates between target-network syncs
    per_alpha: float = 0.6
    per_beta0: float = 0.4
    per_eps: float = 1e-3
    huber_delta: float = 1.0
    reward_scale: float = 10.0  # rewards are normalised improvements (optimum - median = 1)
    shaping: float = 0.0  # potential-based shaping coefficient (see env)
    augment: float = 0.3  # task augmentation: scale of random shifts of the training task
    budget_ref: int = 50  # the search budget the "budget used" feature is relative to
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    ff: int = 128
    eval_interval: int = 1000  # at most this many updates between curve points (0: no curve)
    eval_searches: int = 64
    eval_budget: int = 50

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Hyperparameters:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise TransferSearchError(
                f"hyperparameters: unknown field(s) {', '.join(sorted(unknown))}"
            )
        return cls(**d)  # type: ignore[arg-type]

    def replace(self, **changes: object) -> Hyperparameters:
        return Hyperparameters.from_dict({**self.to_dict(), **changes})


@dataclass
class CurvePoint:
    updates: int
    env_steps: int
    task_evaluations: int  # distinct architectures queried on the training task so far
    device_seconds: float
    score: float  # greedy evaluation: mean best-found metric
    normalised_regret: float


@dataclass
class TrainStats:
    updates: int = 0
    env_steps: int = 0
    distinct_evaluations: int = 0
    total_evaluations: int = 0
    device_seconds: float = 0.0
    gpu_seconds: float = 0.0
    device: str = "cpu"
    stopped_by_cap: bool = False
    curve: list[CurvePoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["curve"] = [asdict(p) for p in self.curve]
        return d


def epsilon_ladder(n: int, base: float, alpha: float) -> npt.NDArray[np.float64]:
    if n == 1:
        return np.array([base])
    ladder: npt.NDArray[np.float64] = base ** (1 + alpha * np.arange(n) / (n - 1))
    return ladder


def obs_tensors(obs: AgentObs, device: torch.device) -> tuple[Tensor, ...]:
    return (
        torch.as_tensor(obs.tokens, device=device).long(),
        torch.as_tensor(obs.action_code, device=device).long(),
        torch.as_tensor(obs.action_feats, device=device, dtype=torch.float32),
        torch.as_tensor(obs.global_feats, device=device, dtype=torch.float32),
        torch.as_tensor(obs.mask, device=device),
    )


def select_actions(
    net: QNetwork,
    obs: AgentObs,
    eps: npt.NDArray[np.float64] | float,
    rng: np.random.Generator,
    device: torch.device,
) -> npt.NDArray[np.int64]:
    """Epsilon-greedy over valid moves, one epsilon per search."""
    with torch.no_grad():
        greedy = net(*obs_tensors(obs, device)).argmax(dim=1).cpu().numpy()
    n = obs.mask.shape[0]
    random = np.argmax(rng.random(obs.mask.shape) * obs.mask, axis=1)
    explore = rng.random(n) < eps
    chosen: npt.NDArray[np.int64] = np.where(explore, random, greedy).astype(np.int64)
    return chosen


Evaluator = Callable[[QNetwork], tuple[float, float]]  # -> (mean best metric, normalised regret)
Progress = Callable[[int, dict[str, float]], None]


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise TransferSearchError(f"device: {requested} requested but CUDA is not available")
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def train(
    net: QNetwork,
    bench: Benchmark,
    task: str,
    hp: Hyperparameters,
    steps: int,
    seed: int,
    device: torch.device,
    trainable: list[torch.nn.Parameter] | None = None,
    evaluation_cap: int | None = None,
    evaluator: Evaluator | None = None,
    progress: Progress | None = None,
) -> TrainStats:
    """Train `net` in place for `steps` learner updates on `task`; returns what it cost."""
    if evaluation_cap is not None and evaluation_cap < 2 * hp.num_actors:
        raise TransferSearchError(
            f"training.targetEvaluations: {evaluation_cap} is too small for {hp.num_actors} "
            f"parallel searches; give at least {2 * hp.num_actors} or use fewer actors"
        )
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net.to(device)
    params = trainable if trainable is not None else list(net.parameters())
    target_net = copy.deepcopy(net)
    target_net.requires_grad_(False)
    optimizer = torch.optim.Adam(params, lr=hp.lr, eps=1.5e-4, foreach=True)
    env = MemorySearchEnv(
        bench,
        task,
        hp.num_actors,
        budget=hp.episode_steps + 2,
        seed=seed,
        shaping=hp.shaping,
        max_steps=hp.episode_steps,
        budget_ref=hp.budget_ref,
        augment=hp.augment,
    )
    replay = PrioritizedReplay(
        hp.replay_capacity,
        net.cfg.token_len,
        net.cfg.num_actions,
        net.cfg.action_features,
        net.cfg.global_features,
        alpha=hp.per_alpha,
        eps=hp.per_eps,
        seed=seed,
    )
    eps = epsilon_ladder(hp.num_actors, hp.eps_base, hp.eps_alpha)
    stats = TrainStats(device=str(device))
    started = time.perf_counter()
    obs = env.reset()
    window_obs: list[AgentObs] = [obs]
    window_act: list[npt.NDArray[np.int64]] = []
    window_rew: list[npt.NDArray[np.float32]] = []
    acting = True
    last_return = 0.0
    score, regret = float("nan"), float("nan")

    def flush() -> float:
        """Turn the finished window into n-step transitions in the replay."""
        rewards = np.stack(window_rew) * np.float32(hp.reward_scale)
        returns, discounts, nxt = nstep_targets(rewards, hp.gamma, hp.n_step)
        for t in range(len(window_act)):
            replay.add(window_obs[t], window_act[t], returns[t], discounts[t], window_obs[nxt[t]])
        return float(np.stack(window_rew).sum(axis=0).mean())

    def record() -> None:
        nonlocal score, regret
        if evaluator is None:
            return
        score, regret = evaluator(net)
        stats.curve.append(
            CurvePoint(
                stats.updates,
                stats.env_steps,
                int(env.queried.sum()),
                time.perf_counter() - started,
                score,
                regret,
            )
        )

    # a learning curve of about ten points however long the training, at most eval_interval apart
    interval = min(hp.eval_interval, max(steps // 10, 1)) if hp.eval_interval else 0
    record()
    while stats.updates < steps:
        if (
            acting
            and evaluation_cap is not None
            and env.queried.sum() + 2 * hp.num_actors > evaluation_cap
        ):
            acting = False  # the next step could exceed the cap: stop querying the task
            stats.stopped_by_cap = True
            if window_act:
                last_return = flush()
        if acting:
            actions = select_actions(net, obs, eps, rng, device)
            res = env.step(actions)
            stats.env_steps += hp.num_actors
            window_act.append(actions)
            window_rew.append(res.reward)
            if res.final is not None:
                window_obs.append(res.final)
                last_return = flush()
                window_obs, window_act, window_rew = [res.obs], [], []
            else:
                window_obs.append(res.obs)
            obs = res.obs
        if len(replay) < max(hp.learning_starts if acting else 0, hp.batch_size):
            if not acting:
                break  # capped before there was enough to learn from
            continue
        for _ in range(hp.updates_per_step):
            _update(
                net,
                target_net,
                optimizer,
                params,
                replay,
                hp,
                stats.updates / max(steps, 1),
                device,
            )
            stats.updates += 1
            if stats.updates % hp.target_update == 0:
                target_net.load_state_dict(net.state_dict())
            if interval and stats.updates % interval == 0:
                record()
            if progress is not None:
                progress(
                    1, {"return": last_return, "score": score, "evals": float(env.queried.sum())}
                )
            if stats.updates >= steps:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    stats.device_seconds = time.perf_counter() - started
    stats.gpu_seconds = stats.device_seconds if device.type == "cuda" else 0.0
    stats.distinct_evaluations = int(env.queried.sum())
    stats.total_evaluations = int(env.evaluations)
    if not stats.curve or stats.curve[-1].updates != stats.updates:
        record()
    return stats


def _update(
    net: QNetwork,
    target_net: QNetwork,
    optimizer: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    replay: PrioritizedReplay,
    hp: Hyperparameters,
    progress_fraction: float,
    device: torch.device,
) -> float:
    beta = hp.per_beta0 + (1.0 - hp.per_beta0) * min(1.0, progress_fraction)
    batch = replay.sample(hp.batch_size, beta)
    s = obs_tensors(batch.obs, device)
    s2 = obs_tensors(batch.next_obs, device)
    action = torch.as_tensor(batch.action, device=device).unsqueeze(1)
    q = net(*s).gather(1, action).squeeze(1)
    with torch.no_grad():
        best_next = net(*s2).argmax(dim=1, keepdim=True)  # double DQN: online picks,
        q_next = target_net(*s2).gather(1, best_next).squeeze(1)  # target evaluates
        target = (
            torch.as_tensor(batch.ret, device=device)
            + torch.as_tensor(batch.discount, device=device) * q_next
        )
    td = target - q
    weights = torch.as_tensor(batch.weights, device=device)
    loss = (
        weights * torch.nn.functional.huber_loss(q, target, reduction="none", delta=hp.huber_delta)
    ).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    torch.nn.utils.clip_grad_norm_(params, hp.grad_clip)
    optimizer.step()
    replay.update_priorities(batch.index, td.detach().cpu().numpy())
    return float(loss.item())
