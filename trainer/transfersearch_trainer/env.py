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

from .benchmark import Benchmark
from .errors import TransferSearchError
from .spaces import TOKEN_LEN

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
