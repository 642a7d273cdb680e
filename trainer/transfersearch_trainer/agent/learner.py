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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from transfersearch_trainer.agent.hooks import CurvePoint, LearnerHooks, TrainStats
from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.qnet import QNetwork
from transfersearch_trainer.agent.replay import PrioritizedReplay, nstep_targets
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.table import Benchmark
from transfersearch_trainer.search.env import AgentObs, MemorySearchEnv


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


def adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam as one fused kernel: on a CPU the per-tensor loop cost more than the update itself."""
    return torch.optim.Adam(params, lr=lr, eps=1.5e-4, fused=True)


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


@dataclass(frozen=True)
class TrainingRun:
    """One training: on which table and task, with which settings, how long, what may change.

    `trainable` None trains every parameter; `evaluation_cap` bounds the distinct task
    architectures the actors may query (None: free queries, as on a source task).
    """

    bench: Benchmark
    task: str
    hp: Hyperparameters
    steps: int
    seed: int
    device: torch.device
    trainable: list[torch.nn.Parameter] | None = None
    evaluation_cap: int | None = None
    tasks: tuple[str, ...] = ()  # several source tasks (then `task` is their label)


@dataclass(frozen=True)
class Watch:
    """Who observes a training: the greedy evaluator of the curve, progress, hooks."""

    evaluator: Evaluator | None = None
    progress: Progress | None = None
    hooks: Sequence[LearnerHooks] = field(default_factory=tuple)


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise TransferSearchError(f"device: {requested} requested but CUDA is not available")
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Learner:
    """The training loop's state, advanced one actor step (and its updates) at a time.

    ``train`` below is the whole algorithm in one call; the class exists so that the
    loop can stop between steps and continue later from saved state (`checkpoint`).
    Every attribute that changes while training is listed in `__init__`.
    """

    def __init__(self, net: QNetwork, run: TrainingRun, watch: Watch | None = None) -> None:
        hp, steps, seed, device = run.hp, run.steps, run.seed, run.device
        watch = watch or Watch()
        if run.evaluation_cap is not None and run.evaluation_cap < 2 * hp.num_actors:
            raise TransferSearchError(
                f"training.targetEvaluations: {run.evaluation_cap} is too small for "
                f"{hp.num_actors} parallel searches; give at least {2 * hp.num_actors} "
                "or use fewer actors"
            )
        self.hp, self.task, self.steps, self.seed, self.device = hp, run.task, steps, seed, device
        self.evaluation_cap, self.evaluator = run.evaluation_cap, watch.evaluator
        self.progress = watch.progress
        self.hooks = list(watch.hooks)
        # a learning curve of about ten points however long, at most eval_interval apart
        self.eval_every = min(hp.eval_interval, max(steps // 10, 1)) if hp.eval_interval else 0
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        self.net = net.to(device)
        self.params = run.trainable if run.trainable is not None else list(net.parameters())
        self.target_net = copy.deepcopy(net)
        self.target_net.requires_grad_(False)
        self.optimizer = adam(self.params, hp.lr)
        self.env = MemorySearchEnv(
            run.bench,
            run.task,
            hp.num_actors,
            budget=hp.episode_steps + 2,
            seed=seed,
            shaping=hp.shaping,
            max_steps=hp.episode_steps,
            budget_ref=hp.budget_ref,
            augment=hp.augment,
            tasks=run.tasks,
        )
        self.replay = PrioritizedReplay(
            hp.replay_capacity,
            net.cfg.token_len,
            net.cfg.num_actions,
            net.cfg.action_features,
            net.cfg.global_features,
            alpha=hp.per_alpha,
            eps=hp.per_eps,
            seed=seed,
        )
        self.eps = epsilon_ladder(hp.num_actors, hp.eps_base, hp.eps_alpha)
        self.stats = TrainStats(device=str(device))
        self.obs = self.env.reset()
        # the current window of moves, turned into n-step transitions when it ends
        self.window_obs: list[AgentObs] = [self.obs]
        self.window_act: list[npt.NDArray[np.int64]] = []
        self.window_rew: list[npt.NDArray[np.float32]] = []
        self.acting = True  # False once the evaluation cap stops queries
        self.stopped = False  # capped before there was enough to learn from
        self.fresh = True  # nothing done yet (a restored learner is not fresh)
        self.last_return = 0.0
        self.score, self.regret = float("nan"), float("nan")
        self.elapsed_before = 0.0  # device seconds of earlier runs of this training (resumed)
        self._clock = time.perf_counter()

    @property
    def done(self) -> bool:
        return self.stopped or self.stats.updates >= self.steps

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self._clock

    def run(self) -> TrainStats:
        self._clock = time.perf_counter()
        for h in self.hooks:
            h.on_start(self)
        if self.fresh:
            self._record()
            self.fresh = False
        elif self.progress is not None and self.stats.updates:
            self.progress(self.stats.updates, self._info())  # a resumed run starts part-way
        while not self.done:
            self.step()
        return self.finish()

    def step(self) -> None:
        """One vectorised actor step (unless capped), then `updates_per_step` updates."""
        hp = self.hp
        if (
            self.acting
            and self.evaluation_cap is not None
            and self.env.queried.sum() + 2 * hp.num_actors > self.evaluation_cap
        ):
            self.acting = False  # the next step could exceed the cap: stop querying the task
            self.stats.stopped_by_cap = True
            if self.window_act:
                self._flush()
        if self.acting:
            self._act()
        if len(self.replay) < max(hp.learning_starts if self.acting else 0, hp.batch_size):
            self.stopped = not self.acting
        else:
            for _ in range(hp.updates_per_step):
                loss = learner_update(self)
                self.stats.updates += 1
                if self.stats.updates % hp.target_update == 0:
                    self.target_net.load_state_dict(self.net.state_dict())
                if self.eval_every and self.stats.updates % self.eval_every == 0:
                    self._record()
                if self.progress is not None:
                    self.progress(1, self._info())
                for h in self.hooks:
                    h.on_update(self, loss)
                if self.stats.updates >= self.steps:
                    break
        for h in self.hooks:
            h.on_step(self)

    def finish(self) -> TrainStats:
        stats = self.stats
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        stats.device_seconds = self.elapsed()
        stats.gpu_seconds = stats.device_seconds if self.device.type == "cuda" else 0.0
        stats.distinct_evaluations = int(self.env.queried.sum())
        stats.total_evaluations = int(self.env.evaluations)
        if not stats.curve or stats.curve[-1].updates != stats.updates:
            self._record()
        for h in self.hooks:
            h.on_finish(self, stats)
        return stats

    def _info(self) -> dict[str, float]:
        return {
            "return": self.last_return,
            "score": self.score,
            "evals": float(self.env.queried.sum()),
        }

    def _act(self) -> None:
        actions = select_actions(self.net, self.obs, self.eps, self.rng, self.device)
        res = self.env.step(actions)
        self.stats.env_steps += self.hp.num_actors
        self.window_act.append(actions)
        self.window_rew.append(res.reward)
        if res.final is not None:
            self.window_obs.append(res.final)
            self._flush()
            self.window_obs, self.window_act, self.window_rew = [res.obs], [], []
        else:
            self.window_obs.append(res.obs)
        self.obs = res.obs

    def _flush(self) -> None:
        """Turn the finished window into n-step transitions in the replay."""
        hp = self.hp
        rewards = np.stack(self.window_rew) * np.float32(hp.reward_scale)
        returns, discounts, nxt = nstep_targets(rewards, hp.gamma, hp.n_step)
        for t in range(len(self.window_act)):
            self.replay.add(
                self.window_obs[t],
                self.window_act[t],
                returns[t],
                discounts[t],
                self.window_obs[nxt[t]],
            )
        self.last_return = float(np.stack(self.window_rew).sum(axis=0).mean())
        for h in self.hooks:
            h.on_window(self, self.last_return)

    def _record(self) -> None:
        if self.evaluator is None:
            return
        self.score, self.regret = self.evaluator(self.net)
        point = CurvePoint(
            self.stats.updates,
            self.stats.env_steps,
            int(self.env.queried.sum()),
            self.elapsed(),
            self.score,
            self.regret,
        )
        self.stats.curve.append(point)
        for h in self.hooks:
            h.on_curve(self, point)


def train(net: QNetwork, run: TrainingRun, watch: Watch | None = None) -> TrainStats:
    """Train `net` in place for `run.steps` learner updates on `run.task`; returns what it cost."""
    return Learner(net, run, watch).run()


def learner_update(learner: Learner) -> float:
    """One double-DQN update of the learner's network from its replay; returns the loss."""
    net, target_net, replay, hp = learner.net, learner.target_net, learner.replay, learner.hp
    device, optimizer, params = learner.device, learner.optimizer, learner.params
    progress_fraction = learner.stats.updates / max(learner.steps, 1)
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
