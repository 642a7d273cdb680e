"""Checkpoints of a `Learner`: save every N updates, resume from the newest after a restart.

A checkpoint holds everything the training loop changes, so a resumed run makes
exactly the moves and updates the uninterrupted run would have made (on CPU,
bit for bit; see docs/trainer.md for GPUs):

* tensors, in one safetensors file (never a pickle): online and target network,
  Adam's moments and step counts, the replay buffer's filled rows and its sum tree,
  the environment's arrays (current architectures, per-search memory, task
  perturbations, the set of queried architectures), the unfinished window of
  moves, the current observation, torch's CPU RNG state;
* JSON: counters and training stats (curve included), numpy RNG states, the
  optimiser's param groups, replay cursor and max priority, and a *fingerprint*
  of the training (task, seed, steps, hyperparameters, source agent...).

Layout under a prefix (a folder or an S3 prefix)::

    ckpt-000001000/state.safetensors
    ckpt-000001000/meta.json      sha256 and size of state.safetensors, counters, fingerprint
    latest.json                   {"checkpoint": "ckpt-000001000", "meta_sha256": ...}

Publishing is atomic: state first, then meta, then ``latest.json``; a checkpoint
that is not named by ``latest.json`` is never read, so a pod killed mid-write
resumes from the previous one. On resume every digest is checked; a corrupt
checkpoint falls back to the one before it (two are kept), and a checkpoint
made with a different fingerprint is refused rather than silently mixed in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from torch import Tensor

from transfersearch_trainer.agent.hooks import LearnerHooks, TrainStats
from transfersearch_trainer.agent.learner import Learner
from transfersearch_trainer.agent.snapshot import CheckpointError, capture, restore
from transfersearch_trainer.api.errors import TransferSearchError, TransientError
from transfersearch_trainer.api.version import __version__
from transfersearch_trainer.store.blobs import Blobs, sha256_hex

FORMAT = "transfersearch-checkpoint/1"
STATE = "state.safetensors"
META = "meta.json"
LATEST = "latest.json"
log = logging.getLogger("transfersearch.checkpoint")


class TrainingStoppedError(TransientError):
    """Training was asked to stop (SIGTERM) and saved a checkpoint first."""


@dataclass(frozen=True)
class SaveRecord:
    name: str
    updates: int
    bytes: int
    seconds: float


class Checkpointer(LearnerHooks):
    """Saves the learner every `interval` updates (and at the end) and resumes it on start.

    `should_stop` is polled after every step; when it says so (a SIGTERM arrived),
    the learner is saved and `TrainingStoppedError` ends the run with a retryable error.
    """

    def __init__(
        self,
        blobs: Blobs,
        prefix: str,
        interval: int,
        fingerprint: dict[str, Any],
        should_stop: Callable[[], bool] | None = None,
        on_saved: Callable[[SaveRecord], None] | None = None,
    ) -> None:
        if interval < 1:
            raise TransferSearchError("training.checkpointInterval: must be at least 1")
        self.blobs = blobs
        self.prefix = prefix.strip("/")
        self.interval = interval
        self.fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back from JSON
        self.should_stop = should_stop
        self.on_saved = on_saved  # e.g. the checkpoint-age metric
        self.last_saved = -1  # updates at the last save (or restore)
        self.final_saved = False
        self.published: str | None = None  # the checkpoint latest.json names
        self.resumed_from: int | None = None
        self.restore_seconds = 0.0
        self.saves: list[SaveRecord] = []

    def _key(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    # --- hooks -------------------------------------------------------------------------
    def on_start(self, learner: Learner) -> None:
        started = time.perf_counter()
        name = self.load_latest(learner)
        if name is not None:
            self.restore_seconds = time.perf_counter() - started
            self.resumed_from = learner.stats.updates
            self.last_saved = learner.stats.updates
            log.info(
                "resumed from %s: %d updates, %d env steps (restore took %.2f s)",
                self.blobs.uri(self._key(name)),
                learner.stats.updates,
                learner.stats.env_steps,
                self.restore_seconds,
            )
        else:
            self.last_saved = 0

    def on_step(self, learner: Learner) -> None:
        updates = learner.stats.updates
        due = updates // self.interval > self.last_saved // self.interval
        if due and not learner.done:  # when done, on_finish saves the final state instead
            self.save(learner)
        if self.should_stop is not None and self.should_stop():
            if updates != self.last_saved:
                self.save(learner)
            raise TrainingStoppedError(
                f"stopped on request after {updates} updates; checkpoint "
                f"{self.published} is saved and a restart resumes from it"
            )

    def on_finish(self, learner: Learner, stats: TrainStats) -> None:
        if not self.final_saved:
            self.save(learner, final=True)

    # --- saving ----------------------------------------------------------------------
    def save(self, learner: Learner, final: bool = False) -> SaveRecord:
        from safetensors.torch import save

        started = time.perf_counter()
        tensors, meta = capture(learner)
        blob = save(tensors)
        updates = learner.stats.updates
        name = f"ckpt-{updates:09d}" + ("-final" if final else "")
        meta.update(
            {
                "format": FORMAT,
                "name": name,
                "final": final,
                "fingerprint": self.fingerprint,
                "state": {"file": STATE, "sha256": sha256_hex(blob), "bytes": len(blob)},
                "code_version": __version__,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        meta_bytes = json.dumps(meta).encode()
        self.blobs.put(self._key(name, STATE), blob)
        self.blobs.put(self._key(name, META), meta_bytes)
        pointer = {"checkpoint": name, "updates": updates, "meta_sha256": sha256_hex(meta_bytes)}
        self.blobs.put(self._key(LATEST), json.dumps(pointer).encode())  # publishes it
        previous, self.published = self.published, name
        self._prune(keep={name, previous})
        self.last_saved = updates
        self.final_saved = final
        record = SaveRecord(
            name, updates, len(blob) + len(meta_bytes), time.perf_counter() - started
        )
        self.saves.append(record)
        if self.on_saved is not None:
            self.on_saved(record)
        log.info(
            "checkpoint %s: %.2f MB in %.2f s",
            self.blobs.uri(self._key(name)),
            record.bytes / 1e6,
            record.seconds,
        )
        return record

    def _prune(self, keep: set[str | None]) -> None:
        stale = [
            key
            for key in self.blobs.keys(self.prefix + "/")
            if key.count("/") > self.prefix.count("/") + 1
            and key[len(self.prefix) + 1 :].split("/")[0] not in keep
        ]
        if stale:
            self.blobs.delete(stale)

    # --- loading ---------------------------------------------------------------------
    def _checkpoints(self) -> list[tuple[int, str]]:
        names = {
            key[len(self.prefix) + 1 :].split("/")[0] for key in self.blobs.keys(self.prefix + "/")
        }
        found = []
        for name in names:
            parts = name.split("-")
            if name.startswith("ckpt-") and len(parts) >= 2 and parts[1].isdigit():
                found.append((int(parts[1]), name))
        return sorted(found, reverse=True)

    def load_latest(self, learner: Learner) -> str | None:
        """Restore the newest published, intact checkpoint; its name (None: start fresh)."""
        raw = self.blobs.get(self._key(LATEST))
        if raw is None:
            return None
        try:
            pointer = json.loads(raw)
            newest, updates = str(pointer["checkpoint"]), int(pointer["updates"])
            meta_digest = str(pointer["meta_sha256"])
        except (ValueError, KeyError, TypeError):
            log.warning("%s is unreadable; looking for older checkpoints", self._key(LATEST))
            newest, updates, meta_digest = "", 1 << 62, ""
        candidates = [newest] if newest else []
        candidates += [n for u, n in self._checkpoints() if n != newest and u <= updates]
        for name in candidates:
            try:
                tensors, meta = self._read(name, meta_digest if name == newest else None)
            except CheckpointError as err:
                log.warning("checkpoint %s is unusable (%s); trying an older one", name, err)
                continue
            restore(learner, tensors, meta)
            self.published = name
            self.final_saved = bool(meta.get("final"))
            return name
        log.warning("no usable checkpoint under %s; starting from scratch", self.prefix)
        return None

    def _read(self, name: str, meta_digest: str | None) -> tuple[dict[str, Tensor], dict[str, Any]]:
        from safetensors import SafetensorError
        from safetensors.torch import load

        meta_bytes = self.blobs.get(self._key(name, META))
        if meta_bytes is None:
            raise CheckpointError(f"{META} is missing")
        if meta_digest is not None and sha256_hex(meta_bytes) != meta_digest:
            raise CheckpointError(f"{META} does not match the digest in {LATEST}")
        try:
            meta = json.loads(meta_bytes)
            state_digest = meta["state"]["sha256"]
        except (ValueError, KeyError, TypeError):
            raise CheckpointError(f"{META} is not valid checkpoint metadata") from None
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"not a {FORMAT} checkpoint")
        if meta.get("fingerprint") != self.fingerprint:
            saved = meta.get("fingerprint") or {}
            differ = sorted(
                k
                for k in set(saved) | set(self.fingerprint)
                if saved.get(k) != self.fingerprint.get(k)
            )
            raise TransferSearchError(
                f"{self.blobs.uri(self._key(name))}: this checkpoint belongs to a different "
                f"training (differs in: {', '.join(differ)}); use a new output location, or "
                "delete the old checkpoints to start over"
            )
        blob = self.blobs.get(self._key(name, STATE))
        if blob is None or sha256_hex(blob) != state_digest:
            raise CheckpointError(f"{STATE} is missing or does not match its digest")
        try:
            return load(blob), meta
        except SafetensorError as err:
            raise CheckpointError(f"{STATE} is unreadable ({err})") from None
