"""A search on a target that knows only what it has paid for.

This is the product's search: each evaluation trains a network, the user pays per
distinct architecture evaluated and keeps the best one. So everything here is built
from the values this search has bought through `evaluate` and nothing else: no
table of the target, no optimum or median, no index of unevaluated architectures.
The space's structure (encodings, neighbours) is not the target's and is free.

`ObservedSearch` holds K walkers (K architectures proposed per round, as K GPUs
training at once would) that share one memory of evaluated architectures and one
budget. It builds the agent's observation of each walker with the same scale-free
features `MemorySearchEnv` trains agents on (comparisons and ranks among seen
values), and a reward from observed values only: the improvement of the best found,
in units of the spread of the values seen so far.

The rule is enforced by construction (the target's values enter only through
`evaluate`) and by a test that replaces every unevaluated target value by NaN and
gets the same trajectory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.benchmark.spaces import SearchSpace
from transfersearch_trainer.search.env import ACTION_FEATURES, GLOBAL_FEATURES, AgentObs

Evaluate = Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]]  # indices -> metrics
# The improvement reward is divided by this many standard deviations of the values seen:
# on the benchmark's tasks (optimum - median) is about 3 standard deviations, so the
# reward has the scale pretrained agents learnt with (normalised improvement).
SPREAD_UNITS = 3.0


def table_evaluator(values: npt.NDArray[np.float64]) -> Evaluate:
    """The evaluator of a benchmark task: a lookup in its table (what a training would return)."""

    def evaluate(archs: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        looked_up: npt.NDArray[np.float64] = values[archs]
        return looked_up

    return evaluate


@dataclass
class Trajectory:
    """Every paid evaluation in order: architecture index and its metric."""

    arch: list[int] = field(default_factory=list)
    metric: list[float] = field(default_factory=list)

    def add(self, arch: int, value: float) -> None:
        self.arch.append(arch)
        self.metric.append(value)

    @property
    def best(self) -> list[float]:
        """The best metric found so far, after each evaluation."""
        return np.maximum.accumulate(self.metric).tolist() if self.metric else []


class ObservedSearch:
    """K walkers on one space, one shared memory of paid evaluations, one budget."""

    def __init__(
        self,
        space: SearchSpace,
        evaluate: Evaluate,
        budget: int,
        walkers: int,
        starts: npt.NDArray[np.int64],
    ) -> None:
        if budget < 1:
            raise TransferSearchError(f"budget: must be at least 1, got {budget}")
        if not 1 <= walkers <= budget:
            raise TransferSearchError(
                f"parallel: must be between 1 and the budget ({budget}), got {walkers}"
            )
        self.space, self.budget, self.walkers = space, budget, walkers
        self._evaluate = evaluate
        self.memory = np.full(space.size, np.nan, dtype=np.float64)  # paid values only
        self.trajectory = Trajectory()
        self.arch = np.zeros(walkers, dtype=np.int64)
        self.since_improvement = np.zeros(walkers, dtype=np.int64)
        self.free_moves = np.zeros(walkers, dtype=np.int64)  # moves to known archs in a row
        first = np.unique(np.asarray(starts, dtype=np.int64))[:walkers]
        self.pay(first)
        self.arch[:] = np.resize(first, walkers)

    @property
    def spent(self) -> int:
        return len(self.trajectory.arch)

    @property
    def left(self) -> int:
        return self.budget - self.spent

    @property
    def best(self) -> float:
        return max(self.trajectory.metric) if self.trajectory.metric else -np.inf

    def known(self, arch: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        known: npt.NDArray[np.bool_] = ~np.isnan(self.memory[arch])
        return known

    def pay(self, archs: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Evaluate distinct new architectures through the target: the only way values enter."""
        archs = np.asarray(archs, dtype=np.int64)
        if archs.size == 0:
            return np.zeros(0)
        if np.unique(archs).size != archs.size or self.known(archs).any():
            raise TransferSearchError("internal: an architecture would be paid for twice")
        if archs.size > self.left:
            raise TransferSearchError(
                f"internal: {archs.size} evaluations asked with {self.left} left of the budget"
            )
        values = np.asarray(self._evaluate(archs), dtype=np.float64).reshape(-1)
        if values.shape != archs.shape or not np.isfinite(values).all():
            raise TransferSearchError(
                "the evaluator returned no finite metric for some architectures: "
                f"{[self.space.arch_str(int(a)) for a in archs[~np.isfinite(values)]]}"
            )
        for a, v in zip(archs.tolist(), values.tolist(), strict=True):
            self.memory[a] = v
            self.trajectory.add(a, v)
        return values

    def observe(self) -> AgentObs:
        """Each walker as the agent sees it: computed from paid values only."""
        arch = self.arch
        nbrs = self.space.table[arch]  # (K, A)
        seen = self.memory[nbrs]
        mask = self.space.valid[arch]
        visited = ~np.isnan(seen) & mask
        cur = self.memory[arch][:, None]
        best = self.best
        feats = np.zeros((self.walkers, self.space.num_actions, ACTION_FEATURES), np.float32)
        with np.errstate(invalid="ignore"):
            feats[..., 0] = visited
            feats[..., 1] = visited & (seen > cur)
            feats[..., 2] = visited & (seen >= best)
            feats[..., 3] = visited & (seen < cur)
        paid = np.asarray(self.trajectory.metric)
        glob = np.empty((self.walkers, GLOBAL_FEATURES), dtype=np.float32)
        glob[:, 0] = cur[:, 0] >= best
        glob[:, 1] = (paid[None, :] <= cur).sum(axis=1) / paid.size
        glob[:, 2] = visited.sum(axis=1) / np.maximum(mask.sum(axis=1), 1)
        glob[:, 3] = np.minimum(self.since_improvement, 20) / 20.0
        glob[:, 4] = min(self.spent / self.budget, 2.0)
        tokens = self.space.codes[arch].astype(np.int8)
        return AgentObs(tokens, self.space.action_code[arch], feats, glob, mask)

    def spread(self) -> float:
        """The reward's unit: SPREAD_UNITS standard deviations of the values paid for."""
        paid = np.asarray(self.trajectory.metric)
        sd = float(paid.std()) if paid.size > 1 else 0.0
        return SPREAD_UNITS * sd if sd > 0 else 1.0

    def step(
        self, q: npt.NDArray[np.float32], rng: np.random.Generator, eps: float, max_free: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Move every walker by its Q-values; pay for the new architectures; return
        (actions, rewards). Two walkers never pay for the same architecture in one round:
        the later one takes its best move to an architecture nobody claimed. A walker
        that made `max_free` free moves in a row (to known architectures) must pay."""
        k = self.walkers
        actions = np.zeros(k, dtype=np.int64)
        claimed: set[int] = set()
        best_before = self.best
        for w in range(k):
            valid = self.space.valid[self.arch[w]]
            scores = np.where(valid, q[w], -np.inf).astype(np.float64)
            if eps > 0 and rng.random() < eps:
                scores = np.where(valid, rng.random(scores.size), -np.inf)
            targets = self.space.table[self.arch[w]].astype(np.int64)
            unknown = ~self.known(targets)
            must_pay = self.free_moves[w] >= max_free
            for a in np.argsort(-scores, kind="stable"):
                t = int(targets[a])
                if not valid[a] or (unknown[a] and t in claimed):
                    continue
                if must_pay and not unknown[a]:
                    continue
                if unknown[a] and len(claimed) >= self.left:
                    continue  # the budget is spoken for this round
                actions[w] = a
                if unknown[a]:
                    claimed.add(t)
                break
            else:  # every neighbour known or claimed: jump to an unevaluated architecture
                actions[w] = -1
        new = np.array(sorted(claimed), dtype=np.int64)
        self.pay(new)
        rewards = np.zeros(k, dtype=np.float32)
        unit = self.spread()
        for w in range(k):
            if actions[w] < 0:
                self.arch[w] = self._jump(rng, claimed)
                self.free_moves[w] = 0
                continue
            before = self.arch[w]
            self.arch[w] = int(self.space.table[before, actions[w]])
            paid_now = int(self.arch[w]) in claimed
            self.free_moves[w] = 0 if paid_now else self.free_moves[w] + 1
            if paid_now:
                gain = max(float(self.memory[self.arch[w]]) - best_before, 0.0)
                rewards[w] = gain / unit
        improved = self.best > best_before
        self.since_improvement = np.where(improved, 0, self.since_improvement + 1)
        return actions, rewards

    def _jump(self, rng: np.random.Generator, claimed: set[int]) -> int:
        """A stuck walker restarts at the best-known architecture's nearest unknown, or anywhere."""
        unknown = np.flatnonzero(np.isnan(self.memory))
        unknown = unknown[~np.isin(unknown, list(claimed))]
        if unknown.size == 0 or self.left == 0:
            return int(self.trajectory.arch[int(np.argmax(self.trajectory.metric))])
        pick = np.array([int(rng.choice(unknown))], dtype=np.int64)
        self.pay(pick)
        return int(pick[0])
