"""The search MDP, vectorised: a batch of independent architecture searches stepped at once.

One search (an *episode*) starts at a random architecture, which is evaluated,
and then makes ``budget - 1`` moves; every move goes to a neighbour (see
`spaces`) and evaluates it, so a search spends exactly ``budget`` evaluations.
Every step is charged, revisits included: a policy that wanders back pays for it.

Observation of each search (arrays owned by the environment and overwritten by
the next call: copy what you keep):

* ``tokens`` (B, 6) int8: the current architecture's op codes (macro: 0 = no module);
* ``value`` (B,) float32: the current architecture's normalised metric;
* ``best`` (B,) float32: the best normalised metric found so far in this search;
* ``budget_left`` (B,) int32: evaluations this search may still spend;
* ``arch`` (B,) int32: the current canonical index (for masks and bookkeeping).

Normalised metric ``u(x) = (x - median_task) / (optimum_task - median_task)``: 0 at
the task's median architecture, 1 at its optimum, so rewards mean the same on
every task, which transfer between tasks needs.

Reward for the move from ``s_{t-1}`` to ``s_t`` with value ``u_t`` and best-so-far ``b``:

    r_t = max(u_t - b_{t-1}, 0) + shaping * (u_t - u_{t-1})

The first term telescopes to ``b_final - u_0``: the return is the search's
improvement of its best-found architecture, which is what a search is for. The
second is potential-based shaping with the current value as potential (a nudge
towards good regions; it leaves the optimal policy unchanged and sums to
``shaping * (u_T - u_0)``); ``shaping=0`` switches it off.

Searches end by *truncation* when their budget is spent, never by termination:
nothing in the search problem is absorbing, so a learner should bootstrap from
the final observation (partial-episode bootstrapping). A truncated search is
reset in place, and its final observation is returned in ``StepResult.final``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import TOKEN_LEN
from transfersearch_trainer.benchmark.table import Benchmark

I32 = npt.NDArray[np.int32]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Observation:
    tokens: npt.NDArray[np.int8]
    value: F32
    best: F32
    budget_left: I32
    arch: I32

    def copy(self) -> Observation:
        return Observation(
            self.tokens.copy(),
            self.value.copy(),
            self.best.copy(),
            self.budget_left.copy(),
            self.arch.copy(),
        )


@dataclass(frozen=True)
class StepResult:
    obs: Observation
    reward: F32
    truncated: npt.NDArray[np.bool_]
    final: Observation | None  # the pre-reset observation of all searches, when any truncated


class VecSearchEnv:
    """`num_envs` searches on one task of one benchmark, stepped together with numpy."""

    def __init__(
        self,
        bench: Benchmark,
        task: str,
        num_envs: int,
        budget: int,
        seed: int = 0,
        shaping: float = 0.0,
    ) -> None:
        if num_envs < 1:
            raise TransferSearchError(f"num_envs: must be at least 1, got {num_envs}")
        if budget < 2:
            raise TransferSearchError(
                f"budget: a search needs at least 2 evaluations (a start and a move), got {budget}"
            )
        self.bench = bench
        self.task = task
        self.space = bench.space
        self.num_envs = num_envs
        self.budget = budget
        self.shaping = float(shaping)
        self.num_actions = self.space.num_actions
        self.rng = np.random.default_rng(seed)
        self._metric = bench.normalised(task)
        self._table = np.ascontiguousarray(self.space.table.reshape(-1), dtype=np.int32)
        # Op codes padded to 8 bytes, so fetching a row of tokens is one int64 gather.
        padded = np.zeros((self.space.size, 8), dtype=np.int8)
        padded[:, :TOKEN_LEN] = self.space.codes
        self._codes64 = padded.view(np.int64).reshape(-1)
        self._tok64 = np.zeros(num_envs, dtype=np.int64)
        self._flat = np.zeros(num_envs, dtype=np.int32)
        self._new = np.zeros(num_envs, dtype=np.float32)
        self.arch = np.zeros(num_envs, dtype=np.int32)
        self.value = np.zeros(num_envs, dtype=np.float32)
        self.best = np.zeros(num_envs, dtype=np.float32)
        self.budget_left = np.zeros(num_envs, dtype=np.int32)
        self.reward = np.zeros(num_envs, dtype=np.float32)
        self.truncated = np.zeros(num_envs, dtype=bool)
        self.tokens = self._tok64.view(np.int8).reshape(num_envs, 8)[:, :TOKEN_LEN]
        self.evaluations = 0  # total benchmark queries made (starts included)

    @property
    def obs(self) -> Observation:
        return Observation(self.tokens, self.value, self.best, self.budget_left, self.arch)

    def action_mask(self) -> npt.NDArray[np.bool_]:
        """(B, A) valid moves from each current architecture (all True in the micro space)."""
        return self.space.valid[self.arch]

    def reset(self, starts: npt.ArrayLike | None = None) -> Observation:
        """Start every search afresh, at `starts` (canonical indices) or at random architectures."""
        self._start(np.arange(self.num_envs), starts)
        return self.obs

    def _start(self, rows: npt.NDArray[np.intp], starts: npt.ArrayLike | None) -> None:
        if starts is None:
            chosen = self.rng.integers(0, self.space.size, size=rows.size)
        else:
            chosen = np.asarray(starts, dtype=np.int64).reshape(-1)
            if chosen.size != rows.size or chosen.min() < 0 or chosen.max() >= self.space.size:
                raise TransferSearchError(
                    f"starts: need {rows.size} architecture indices in [0, {self.space.size})"
                )
        self.arch[rows] = chosen
        self.value[rows] = self._metric[chosen]
        self.best[rows] = self.value[rows]
        self.budget_left[rows] = self.budget - 1
        self._tok64[rows] = self._codes64[chosen]
        self.evaluations += rows.size

    def step(self, actions: npt.NDArray[np.integer]) -> StepResult:
        """Move every search, evaluate, reward; reset the searches whose budget is spent."""
        flat = self._flat
        np.multiply(self.arch, self.num_actions, out=flat)
        np.add(flat, actions, out=flat, casting="unsafe")
        np.take(self._table, flat, out=self.arch)
        new = self._new
        np.take(self._metric, self.arch, out=new)
        reward = self.reward
        np.subtract(new, self.best, out=reward)
        np.maximum(reward, 0.0, out=reward)
        np.maximum(self.best, new, out=self.best)
        if self.shaping:
            shaped = (new - self.value) * np.float32(self.shaping)
            reward += shaped
        self.value, self._new = new, self.value
        np.take(self._codes64, self.arch, out=self._tok64)
        np.subtract(self.budget_left, 1, out=self.budget_left)
        np.less_equal(self.budget_left, 0, out=self.truncated)
        self.evaluations += self.num_envs
        final = None
        if self.truncated.any():
            final = self.obs.copy()
            self._start(np.flatnonzero(self.truncated), None)
        return StepResult(self.obs, reward, self.truncated, final)


# --- The agent's view: searches that remember what they evaluated -------------------------

ACTION_FEATURES = 4  # per move: neighbour visited, better than current, is the best, worse
GLOBAL_FEATURES = 5  # current is best, its rank, neighbours visited, staleness, budget used


@dataclass(frozen=True)
class AgentObs:
    """What an agent sees of each search: the architecture, the moves, and its own history.

    Every feature is free of the task's scale (ranks and comparisons of values this
    search has seen), so the same features mean the same thing on every task, and no
    feature needs the task's optimum or median, which a real search would not know.
    """

    tokens: npt.NDArray[np.int8]  # (B, L) current op codes
    action_code: npt.NDArray[np.int8]  # (B, A) the code each move writes
    action_feats: F32  # (B, A, ACTION_FEATURES)
    global_feats: F32  # (B, GLOBAL_FEATURES)
    mask: npt.NDArray[np.bool_]  # (B, A) valid moves

    def copy(self) -> AgentObs:
        return AgentObs(
            self.tokens.copy(),
            self.action_code.copy(),
            self.action_feats.copy(),
            self.global_feats.copy(),
            self.mask.copy(),
        )


@dataclass(frozen=True)
class MemoryStep:
    obs: AgentObs
    reward: F32
    truncated: npt.NDArray[np.bool_]
    final: AgentObs | None  # observation of all searches before the reset, when any truncated
    fresh: npt.NDArray[np.bool_]  # (B,) the move evaluated a new architecture


class MemorySearchEnv(VecSearchEnv):
    """Searches that remember every architecture they evaluated, as a real search would.

    Revisiting a remembered architecture is free (its result is known), so the
    budget counts *distinct* evaluations, exactly as the baselines do; a search ends
    when its budget is spent or after `max_steps` moves (default 4 x budget), which
    bounds a policy that wanders among known architectures.
    """

    def __init__(
        self,
        bench: Benchmark,
        task: str,
        num_envs: int,
        budget: int,
        seed: int = 0,
        shaping: float = 0.0,
        max_steps: int | None = None,
        budget_ref: int | None = None,
        augment: float = 0.0,
        tasks: tuple[str, ...] = (),
    ) -> None:
        super().__init__(bench, tasks[0] if tasks else task, num_envs, budget, seed, shaping)
        self.max_steps = max_steps or 4 * budget
        self.augment = float(augment)
        # Several source tasks (a multi-source agent): search i works on tasks[i % n], each
        # in its normalised units, so one batch of actors learns from all of them at once.
        self._base_rows: F32 | None = None
        if len(tasks) > 1:
            per_task = np.stack([bench.normalised(t) for t in tasks])
            self._base_rows = per_task[np.arange(num_envs) % len(tasks)]
        # per-search perturbed copies of the task (training only; see `_perturb`)
        self._metric_rows: F32 | None = None
        if self._base_rows is not None:
            self._metric_rows = self._base_rows.copy()
        elif self.augment > 0:
            self._metric_rows = np.repeat(self._metric[None, :], num_envs, axis=0)
        self.budget_ref = float(budget_ref or budget)
        cap = min(budget, self.max_steps + 1)
        self.memory = np.full((num_envs, self.space.size), np.nan, dtype=np.float32)
        self.seen_values = np.full((num_envs, cap), np.inf, dtype=np.float32)
        self.n_seen = np.zeros(num_envs, dtype=np.int32)
        self.steps = np.zeros(num_envs, dtype=np.int32)
        self.since_improvement = np.zeros(num_envs, dtype=np.int32)
        self._rows = np.arange(num_envs)
        self.moved_to = np.zeros(num_envs, dtype=np.int32)  # where the last step went (pre-reset)
        # Every architecture any search of this environment evaluated: the count of task
        # evaluations an agent consumed in training (its cost if each were a real training).
        self.queried = np.zeros(self.space.size, dtype=bool)

    def reset(self, starts: npt.ArrayLike | None = None) -> AgentObs:  # type: ignore[override]
        self._start(self._rows, starts)
        return self.agent_obs()

    def _perturb(self, rows: npt.NDArray[np.intp]) -> None:
        """Give each restarted search its own nearby task: the source plus a random shift.

        ``u'(x) = u(x) + sum_i W[i, code_i(x)] + e(x)`` with ``W ~ N(0, s^2 / L)`` per
        (position, code) and ``e ~ N(0, (s / 2)^2)`` per architecture, ``s = augment``. Tasks
        differ from each other roughly like this (the effect of an op at a position
        changes, plus noise), so an agent trained on such neighbours of its source task
        cannot just memorise where the source's optimum is: it has to use what it observes.
        """
        assert self._metric_rows is not None
        s = self.augment
        codes = self.space.codes.astype(np.int64)
        length = codes.shape[1]
        weights = self.rng.normal(
            0.0, s / np.sqrt(length), size=(rows.size, length, self.space.vocab)
        )
        shift = np.zeros((rows.size, self.space.size), dtype=np.float32)
        for i in range(length):
            shift += weights[:, i, :][:, codes[:, i]]
        shift += self.rng.normal(0.0, s / 2, size=shift.shape).astype(np.float32)
        base = self._metric[None, :] if self._base_rows is None else self._base_rows[rows]
        self._metric_rows[rows] = base + shift

    def _start(self, rows: npt.NDArray[np.intp], starts: npt.ArrayLike | None) -> None:
        if self._metric_rows is not None and self.augment > 0:
            self._perturb(rows)
        super()._start(rows, starts)
        if self._metric_rows is not None:
            self.value[rows] = self._metric_rows[rows, self.arch[rows]]
            self.best[rows] = self.value[rows]
        self.queried[self.arch[rows]] = True
        self.memory[rows] = np.nan
        self.memory[rows, self.arch[rows]] = self.value[rows]
        self.seen_values[rows] = np.inf
        self.seen_values[rows, 0] = self.value[rows]
        self.n_seen[rows] = 1
        self.steps[rows] = 0
        self.since_improvement[rows] = 0

    def agent_obs(self) -> AgentObs:
        arch = self.arch
        nbrs = self.space.table[arch]  # (B, A)
        seen = self.memory[self._rows[:, None], nbrs]
        visited = ~np.isnan(seen)
        cur = self.value[:, None]
        feats = np.zeros((self.num_envs, self.num_actions, ACTION_FEATURES), dtype=np.float32)
        mask = self.space.valid[arch]
        visited &= mask
        feats[..., 0] = visited
        with np.errstate(invalid="ignore"):
            feats[..., 1] = visited & (seen > cur)
            feats[..., 2] = visited & (seen >= self.best[:, None])
            feats[..., 3] = visited & (seen < cur)
        glob = np.empty((self.num_envs, GLOBAL_FEATURES), dtype=np.float32)
        glob[:, 0] = self.value >= self.best
        glob[:, 1] = (self.seen_values <= cur).sum(axis=1) / self.n_seen
        glob[:, 2] = visited.sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
        glob[:, 3] = np.minimum(self.since_improvement, 20) / 20.0
        glob[:, 4] = np.minimum(self.n_seen / self.budget_ref, 2.0)
        return AgentObs(self.tokens.copy(), self.space.action_code[arch], feats, glob, mask)

    def step(self, actions: npt.NDArray[np.integer]) -> MemoryStep:  # type: ignore[override]
        rows = self._rows
        self.arch = self.space.table[self.arch, actions].astype(np.int32)
        new = (
            self._metric[self.arch]
            if self._metric_rows is None
            else self._metric_rows[rows, self.arch]
        )
        fresh = np.isnan(self.memory[rows, self.arch])
        self.memory[rows, self.arch] = new
        self.queried[self.arch[fresh]] = True
        self.moved_to = self.arch.copy()
        slot = np.minimum(self.n_seen, self.seen_values.shape[1] - 1)
        self.seen_values[rows[fresh], slot[fresh]] = new[fresh]
        self.n_seen += fresh
        self.budget_left -= fresh
        self.evaluations += int(fresh.sum())
        reward = np.maximum(new - self.best, 0.0).astype(np.float32)
        if self.shaping:
            reward += np.float32(self.shaping) * (new - self.value)
        improved = new > self.best
        self.since_improvement = np.where(improved, 0, self.since_improvement + 1).astype(np.int32)
        np.maximum(self.best, new, out=self.best)
        self.value = new.astype(np.float32)
        self._tok64[:] = self._codes64[self.arch]
        self.steps += 1
        truncated = (self.budget_left <= 0) | (self.steps >= self.max_steps)
        final = None
        if truncated.any():
            final = self.agent_obs()
            self._start(np.flatnonzero(truncated), None)
        return MemoryStep(self.agent_obs(), reward, truncated, final, fresh)
