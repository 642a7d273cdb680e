"""A `Learner`'s whole state as tensors plus JSON, and back (what a checkpoint stores).

Everything the training loop changes is captured, so a learner restored into a fresh
one with the same settings continues exactly as the original would have.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from transfersearch_trainer.agent.hooks import CurvePoint, TrainStats
from transfersearch_trainer.agent.learner import Learner
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.search.env import AgentObs

# MemorySearchEnv arrays that change while training (views and scratch buffers excluded).
ENV_ARRAYS = (
    "arch",
    "value",
    "best",
    "budget_left",
    "memory",
    "seen_values",
    "n_seen",
    "steps",
    "since_improvement",
    "moved_to",
    "queried",
    "_tok64",  # `tokens` is a view of it
    "_metric_rows",  # the perturbed tasks (None without augmentation)
)
REPLAY_COLUMNS = ("action", "ret", "discount")
OBS_FIELDS = tuple(f.name for f in fields(AgentObs))


class CheckpointError(TransferSearchError):
    """A checkpoint that cannot be used (corrupt, or made for another training)."""


def _np(t: Tensor) -> np.ndarray:
    return t.numpy()


def _obs_tensors(prefix: str, obs: AgentObs) -> dict[str, Tensor]:
    return {f"{prefix}.{f}": torch.from_numpy(np.array(getattr(obs, f))) for f in OBS_FIELDS}


def _obs_from(prefix: str, tensors: dict[str, Tensor]) -> AgentObs:
    return AgentObs(*(_np(tensors[f"{prefix}.{f}"]) for f in OBS_FIELDS))


def capture(learner: Learner) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The learner's state as tensors (for safetensors) and JSON-able metadata."""
    t: dict[str, Tensor] = {}
    for name, net in (("net", learner.net), ("target", learner.target_net)):
        for k, v in net.state_dict().items():
            t[f"{name}.{k}"] = v.detach().cpu().clone().contiguous()
    opt = learner.optimizer.state_dict()
    state_keys: dict[str, list[str]] = {}
    for idx, entry in opt["state"].items():
        state_keys[str(idx)] = sorted(entry)
        for k, v in entry.items():
            t[f"optim.{idx}.{k}"] = torch.as_tensor(v).detach().cpu().clone()
    env = learner.env
    for name in ENV_ARRAYS:
        value = getattr(env, name)
        if value is not None:
            t[f"env.{name}"] = torch.from_numpy(np.array(value))
    replay = learner.replay
    n = replay.size
    for store_name, store in (("obs", replay.obs), ("next_obs", replay.next_obs)):
        for f, arr in store.items():
            t[f"replay.{store_name}.{f}"] = torch.from_numpy(np.array(arr[:n]))
    for col in REPLAY_COLUMNS:
        t[f"replay.{col}"] = torch.from_numpy(np.array(getattr(replay, col)[:n]))
    t["replay.tree"] = torch.from_numpy(replay.tree.tree.copy())
    for i, obs in enumerate(learner.window_obs):
        t.update(_obs_tensors(f"window.obs.{i}", obs))
    for i, (act, rew) in enumerate(zip(learner.window_act, learner.window_rew, strict=True)):
        t[f"window.act.{i}"] = torch.from_numpy(np.array(act))
        t[f"window.rew.{i}"] = torch.from_numpy(np.array(rew))
    t.update(_obs_tensors("obs", learner.obs))
    t["rng.torch"] = torch.get_rng_state()
    meta = {
        "updates": learner.stats.updates,
        "acting": learner.acting,
        "stopped": learner.stopped,
        "last_return": learner.last_return,
        "score": learner.score,
        "regret": learner.regret,
        "elapsed_seconds": learner.elapsed(),
        "stats": learner.stats.to_dict(),
        "rng": {
            "learner": learner.rng.bit_generator.state,
            "env": env.rng.bit_generator.state,
            "replay": replay.rng.bit_generator.state,
        },
        "env": {"evaluations": int(env.evaluations)},
        "replay": {
            "size": n,
            "cursor": replay.cursor,
            "max_priority": replay.max_priority,
        },
        "window": {"obs": len(learner.window_obs), "moves": len(learner.window_act)},
        "optimizer": {"param_groups": opt["param_groups"], "state_keys": state_keys},
    }
    return t, meta


def restore(learner: Learner, t: dict[str, Tensor], meta: dict[str, Any]) -> None:
    """Put saved state into a freshly built learner (same settings); raises CheckpointError."""
    try:
        _restore(learner, t, meta)
    except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"the checkpoint does not fit this learner ({first})") from None


def _restore(learner: Learner, t: dict[str, Tensor], meta: dict[str, Any]) -> None:
    for name, net in (("net", learner.net), ("target", learner.target_net)):
        prefix = f"{name}."
        net.load_state_dict({k[len(prefix) :]: v for k, v in t.items() if k.startswith(prefix)})
    opt_meta = meta["optimizer"]
    learner.optimizer.load_state_dict(
        {
            "state": {
                int(idx): {k: t[f"optim.{idx}.{k}"] for k in keys}
                for idx, keys in opt_meta["state_keys"].items()
            },
            "param_groups": opt_meta["param_groups"],
        }
    )
    env = learner.env
    for name in ENV_ARRAYS:
        current = getattr(env, name)
        if current is None:
            continue
        saved = _np(t[f"env.{name}"])
        if saved.shape != current.shape or saved.dtype != current.dtype:
            raise ValueError(f"env.{name}: saved {saved.shape} {saved.dtype}, have {current.shape}")
        np.copyto(current, saved)  # in place: views (tokens) stay valid
    env.evaluations = int(meta["env"]["evaluations"])
    env.rng.bit_generator.state = meta["rng"]["env"]
    replay = learner.replay
    n = int(meta["replay"]["size"])
    for store_name, store in (("obs", replay.obs), ("next_obs", replay.next_obs)):
        for f, arr in store.items():
            arr[:n] = _np(t[f"replay.{store_name}.{f}"])
    for col in REPLAY_COLUMNS:
        getattr(replay, col)[:n] = _np(t[f"replay.{col}"])
    tree = _np(t["replay.tree"])
    if tree.shape != replay.tree.tree.shape:
        raise ValueError(f"replay tree of {tree.shape}, have {replay.tree.tree.shape}")
    replay.tree.tree[:] = tree
    replay.size = n
    replay.cursor = int(meta["replay"]["cursor"])
    replay.max_priority = float(meta["replay"]["max_priority"])
    replay.rng.bit_generator.state = meta["rng"]["replay"]
    windows = meta["window"]
    learner.window_obs = [_obs_from(f"window.obs.{i}", t) for i in range(int(windows["obs"]))]
    learner.window_act = [_np(t[f"window.act.{i}"]) for i in range(int(windows["moves"]))]
    learner.window_rew = [_np(t[f"window.rew.{i}"]) for i in range(int(windows["moves"]))]
    learner.obs = _obs_from("obs", t)
    torch.set_rng_state(t["rng.torch"])
    learner.rng.bit_generator.state = meta["rng"]["learner"]
    stats = dict(meta["stats"])
    stats["curve"] = [CurvePoint(**p) for p in stats["curve"]]
    learner.stats = TrainStats(**stats)
    learner.acting = bool(meta["acting"])
    learner.stopped = bool(meta["stopped"])
    learner.last_return = float(meta["last_return"])
    learner.score, learner.regret = float(meta["score"]), float(meta["regret"])
    learner.elapsed_before = float(meta["elapsed_seconds"])
    learner.fresh = False
