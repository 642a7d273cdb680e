"""Prioritised experience replay (Schaul et al. 2016) with n-step transitions, in numpy.

Transitions are stored column-wise in preallocated arrays; a sum tree over the
priorities samples proportionally to ``priority ** alpha`` in O(log n) per draw,
vectorised over the batch. New transitions get the largest priority seen so far
(so each is replayed at least once soon), and importance weights are normalised
by the batch's largest weight (a common simplification of the global maximum).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.search.env import AgentObs

F32 = npt.NDArray[np.float32]


def nstep_targets(rewards: F32, gamma: float, n: int) -> tuple[F32, F32, npt.NDArray[np.int64]]:
    """n-step returns of one window of T steps for B searches, all bootstrapped at its end.

    ``rewards`` is (T, B). For step t the horizon is ``k = min(n, T - t)``; returns
    ``R[t] = sum_{i<k} gamma^i r[t+i]``, the bootstrap discount ``gamma^k`` and the
    index ``t + k`` of the observation to bootstrap from (observation T is the
    window's final one). Nothing in the search problem terminates, so every
    transition bootstraps, including at the window's end (partial-episode
    bootstrapping).
    """
    steps = rewards.shape[0]
    t = np.arange(steps)
    k = np.minimum(n, steps - t)
    returns = np.zeros_like(rewards, dtype=np.float32)
    for i in range(n):
        live = (i < k)[:, None]
        shifted = rewards[np.minimum(t + i, steps - 1)]
        returns += np.where(live, (gamma**i) * shifted, 0.0).astype(np.float32)
    discounts = np.repeat((gamma**k).astype(np.float32)[:, None], rewards.shape[1], axis=1)
    return returns, discounts, t + k


class SumTree:
    """Binary tree of sums over a power-of-two number of leaves, updated and searched in batches."""

    def __init__(self, capacity: int) -> None:
        self.leaves = 1 << max(0, int(np.ceil(np.log2(max(capacity, 1)))))
        self.tree = np.zeros(2 * self.leaves, dtype=np.float64)
        self.depth = self.leaves.bit_length() - 1

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def update(self, index: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> None:
        node = index + self.leaves
        self.tree[node] = values
        # level by level up to the root; a parent listed twice is written twice with the
        # same sum (its children are final), so no np.unique (a sort) per level
        for _ in range(self.depth):
            node = node // 2
            self.tree[node] = self.tree[2 * node] + self.tree[2 * node + 1]

    def find(self, mass: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        """Leaf index whose cumulative-sum interval holds each `mass` value."""
        node = np.ones(mass.shape, dtype=np.int64)
        mass = mass.copy()
        while node[0] < self.leaves:
            left = 2 * node
            go_right = mass > self.tree[left]
            mass -= np.where(go_right, self.tree[left], 0.0)
            node = left + go_right
        return node - self.leaves


@dataclass
class Batch:
    index: npt.NDArray[np.int64]
    weights: F32
    obs: AgentObs
    action: npt.NDArray[np.int64]
    ret: F32
    discount: F32
    next_obs: AgentObs


class PrioritizedReplay:
    def __init__(
        self,
        capacity: int,
        token_len: int,
        num_actions: int,
        action_features: int,
        global_features: int,
        alpha: float = 0.6,
        eps: float = 1e-3,
        seed: int = 0,
    ) -> None:
        self.capacity = capacity
        self.alpha = alpha
        self.eps = eps
        self.rng = np.random.default_rng(seed)
        self.tree = SumTree(capacity)
        self.max_priority = 1.0
        self.size = 0
        self.cursor = 0

        def obs_arrays() -> dict[str, np.ndarray]:
            return {
                "tokens": np.zeros((capacity, token_len), dtype=np.int8),
                "action_code": np.zeros((capacity, num_actions), dtype=np.int8),
                # features are 0/1 flags: stored as bytes
                "action_feats": np.zeros((capacity, num_actions, action_features), dtype=np.uint8),
                "global_feats": np.zeros((capacity, global_features), dtype=np.float32),
                "mask": np.zeros((capacity, num_actions), dtype=bool),
            }

        self.obs = obs_arrays()
        self.next_obs = obs_arrays()
        self.action = np.zeros(capacity, dtype=np.int64)
        self.ret = np.zeros(capacity, dtype=np.float32)
        self.discount = np.zeros(capacity, dtype=np.float32)

    def __len__(self) -> int:
        return self.size

    @staticmethod
    def _fields(obs: AgentObs) -> dict[str, np.ndarray]:
        return {
            "tokens": obs.tokens,
            "action_code": obs.action_code,
            "action_feats": obs.action_feats,
            "global_feats": obs.global_feats,
            "mask": obs.mask,
        }

    def add(
        self,
        obs: AgentObs,
        action: npt.NDArray[np.integer],
        ret: F32,
        discount: F32,
        next_obs: AgentObs,
    ) -> None:
        """Append a batch of transitions (overwriting the oldest when full)."""
        n = len(action)
        idx = (self.cursor + np.arange(n)) % self.capacity
        for store, fields in (
            (self.obs, self._fields(obs)),
            (self.next_obs, self._fields(next_obs)),
        ):
            for name, values in fields.items():
                store[name][idx] = values
        self.action[idx] = action
        self.ret[idx] = ret
        self.discount[idx] = discount
        self.tree.update(idx, np.full(n, self.max_priority**self.alpha))
        self.cursor = int((self.cursor + n) % self.capacity)
        self.size = min(self.capacity, self.size + n)

    def _gather(self, store: dict[str, np.ndarray], idx: npt.NDArray[np.int64]) -> AgentObs:
        return AgentObs(
            store["tokens"][idx],
            store["action_code"][idx],
            store["action_feats"][idx].astype(np.float32),
            store["global_feats"][idx],
            store["mask"][idx],
        )

    def sample(self, batch_size: int, beta: float) -> Batch:
        """Stratified proportional sampling, with importance-sampling weights."""
        total = self.tree.total
        segment = total / batch_size
        mass = (np.arange(batch_size) + self.rng.random(batch_size)) * segment
        idx = np.minimum(self.tree.find(np.minimum(mass, total * (1 - 1e-12))), self.size - 1)
        probs = self.tree.tree[idx + self.tree.leaves] / total
        weights = (self.size * np.maximum(probs, 1e-12)) ** (-beta)
        weights = (weights / weights.max()).astype(np.float32)
        return Batch(
            idx,
            weights,
            self._gather(self.obs, idx),
            self.action[idx],
            self.ret[idx],
            self.discount[idx],
            self._gather(self.next_obs, idx),
        )

    def update_priorities(
        self, idx: npt.NDArray[np.int64], td_error: npt.NDArray[np.floating]
    ) -> None:
        priority = np.abs(td_error).astype(np.float64) + self.eps
        self.max_priority = max(self.max_priority, float(priority.max()))
        self.tree.update(idx, priority**self.alpha)
