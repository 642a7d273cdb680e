"""An agent on disk: weights in safetensors plus a JSON manifest, never a pickle.

Layout of an agent folder::

    agent.json           manifest: format, space, task, steps, seed, mode, parent,
                         hyperparameters, network config, training cost, evaluation,
                         code version, and the sha256 of the weights file
    weights.safetensors  the Q-network's parameters (tensors only)

Loading checks, in order: the manifest parses and has the expected format; the
weights file's sha256 equals the manifest's (so a corrupt or swapped file is
refused before any tensor is read); the search space is the one asked for; the
tensors match the network the manifest describes, name for name and shape for
shape. Any failure is a `TransferSearchError` naming the folder and the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.agent.qnet import NetConfig, QNetwork
from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.version import __version__
from transfersearch_trainer.benchmark.spaces import SearchSpace
from transfersearch_trainer.store.layout import FORMAT, MANIFEST, WEIGHTS


@dataclass
class Agent:
    net: QNetwork
    hp: Hyperparameters
    space: str
    task: str | None  # the task it was last trained on (None: untrained)
    seed: int
    steps: int = 0  # learner updates over its whole history
    mode: str = "scratch"  # how it was made: pretrain, scratch, finetune, freeze-encoder, zero-shot
    parent: dict[str, Any] | None = None  # the source agent: task, digest, uri
    training: dict[str, Any] = field(default_factory=dict)  # cost of the last training
    evaluation: dict[str, Any] | None = None
    digest: str | None = None  # sha256 of the weights, once saved or loaded
    choice: dict[str, Any] | None = None  # how it was chosen as a source (source: auto), if so

    @classmethod
    def new(cls, space: SearchSpace, hp: Hyperparameters, seed: int) -> Agent:
        torch.manual_seed(seed)
        cfg = NetConfig.for_space(
            space,
            encoder=hp.encoder,
            d_model=hp.d_model,
            layers=hp.layers,
            heads=hp.heads,
            ff=hp.ff,
        )
        return cls(QNetwork(cfg), hp, space.name, None, seed)

    def manifest(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "space": self.space,
            "task": self.task,
            "steps": self.steps,
            "seed": self.seed,
            "mode": self.mode,
            "parent": self.parent,
            "hyperparameters": self.hp.to_dict(),
            "network": self.net.cfg.to_dict(),
            "training": self.training,
            "evaluation": self.evaluation,
            "code_version": __version__,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "weights": {"file": WEIGHTS, "sha256": self.digest},
        }


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_agent(agent: Agent, folder: str | Path) -> str:
    """Write the agent to `folder` (weights first, manifest last); returns the weights' sha256."""
    from safetensors.torch import save

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in agent.net.state_dict().items()}
    blob = save(state)
    agent.digest = hashlib.sha256(blob).hexdigest()
    _atomic_write(out / WEIGHTS, blob)
    _atomic_write(out / MANIFEST, json.dumps(agent.manifest(), indent=2).encode())
    return agent.digest


def read_manifest(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TransferSearchError(
            f"{folder}: not an agent folder (no {MANIFEST}); pretrain one with "
            "`transfersearch pretrain --out DIR`"
        ) from None
    except (OSError, ValueError) as err:
        raise TransferSearchError(f"{path}: unreadable agent manifest ({err})") from None
    found = manifest.get("format") if isinstance(manifest, dict) else None
    if found != FORMAT:
        raise TransferSearchError(f"{path}: not a {FORMAT} manifest (format {found!r})")
    result: dict[str, Any] = manifest
    return result


def load_agent(folder: str | Path, space: str | None = None, digest: str | None = None) -> Agent:
    """Load and verify an agent; `space` and `digest` (``sha256:<hex>`` or hex) must match."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise TransferSearchError(f"{folder}: the weights file {WEIGHTS} is missing")
    blob = weights.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    recorded = (manifest.get("weights") or {}).get("sha256")
    if actual != recorded:
        raise TransferSearchError(
            f"{folder}: {WEIGHTS} has sha256 {actual[:16]}... but the manifest records "
            f"{str(recorded)[:16]}...: the file is corrupt or was replaced; refusing to load it"
        )
    if digest is not None and actual != digest.removeprefix("sha256:"):
        raise TransferSearchError(
            f"{folder}: weights sha256 {actual[:16]}... is not the expected {digest[:23]}..."
        )
    if space is not None and manifest.get("space") != space:
        raise TransferSearchError(
            f"{folder}: this agent searches the {manifest.get('space')} space, not {space}; "
            "agents do not transfer between search spaces"
        )
    try:
        cfg = NetConfig.from_dict(manifest["network"])
        # saved before the encoder was a choice: the network says which one it has
        hp = Hyperparameters.from_dict({"encoder": cfg.encoder, **manifest["hyperparameters"]})
        net = QNetwork(cfg)
        state = load(blob)
        net.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise TransferSearchError(
            f"{folder}: the agent does not match its manifest ({first})"
        ) from None
    return Agent(
        net=net,
        hp=hp,
        space=str(manifest["space"]),
        task=manifest.get("task"),
        seed=int(manifest.get("seed", 0)),
        steps=int(manifest.get("steps", 0)),
        mode=str(manifest.get("mode", "scratch")),
        parent=manifest.get("parent"),
        training=manifest.get("training") or {},
        evaluation=manifest.get("evaluation"),
        digest=actual,
    )
