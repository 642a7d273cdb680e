"""The evaluation cache: a training that finished is never paid for again.

An own-data evaluation trains a network for minutes to hours, so its result is kept,
keyed by everything that decides it: the dataset's sha256, the space, the architecture,
the training recipe and the seed (`cache_key`). The cache lives in a `Blobs` store, an
S3 prefix for the operator's trial pods or a folder for local runs, so

* a pod that is killed and restarted finds the trainings it finished;
* the trials of one search share it, and a trial about to train an architecture first
  *claims* it (an atomic create-if-absent); a trial that finds the claim of another
  waits for that result instead of training the same network twice. While it trains, the
  claimant refreshes its claim every `heartbeat_seconds`, so a claim not refreshed for
  `claim_seconds` is from a trial that died (a pod deleted, a node lost) and is taken over
  within minutes, however long the trainings themselves are.

Every entry carries the sha256 of its own content and its key, and is checked before
use: an entry that does not verify is ignored (and trained again), never trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from transfersearch_trainer.search.evaluator import Evaluation
from transfersearch_trainer.store.blobs import Blobs, open_blobs, sha256_hex

log = logging.getLogger("transfersearch.cache")

SCHEMA = "transfersearch-evaluation/1"


def cache_key(dataset_sha256: str, space: str, arch: str, recipe: dict[str, Any], seed: int) -> str:
    """The identity of one evaluation: same data, architecture, recipe and seed, same result."""
    blob = json.dumps(
        {"data": dataset_sha256, "space": space, "arch": arch, "recipe": recipe, "seed": seed},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


class EvaluationCache(Protocol):
    def get(self, key: str) -> Evaluation | None: ...

    def put(self, key: str, evaluation: Evaluation, info: dict[str, Any]) -> None: ...


def _payload(key: str, evaluation: Evaluation, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "key": key,
        "metric": evaluation.metric,
        "device_seconds": evaluation.device_seconds,
        "gpu_seconds": evaluation.gpu_seconds,
        "info": info,
    }


def _digest(payload: dict[str, Any]) -> str:
    return sha256_hex(json.dumps(payload, sort_keys=True).encode())


class BlobCache:
    """Evaluations in a folder or under an S3 prefix (``evaluations/<key>.json``)."""

    def __init__(
        self,
        blobs: Blobs,
        claim_seconds: float = 600.0,
        poll_seconds: float = 2.0,
        owner: str | None = None,
        heartbeat_seconds: float | None = None,
    ) -> None:
        self.blobs = blobs
        self.claim_seconds = claim_seconds
        self.poll_seconds = poll_seconds
        # several beats fit in one claim period, so a slow S3 write or two never lets a live
        # claim look stale
        self.heartbeat_seconds = (
            heartbeat_seconds if heartbeat_seconds is not None else claim_seconds / 5
        )
        # Stable across restarts (a pod's trial name; locally this host), so a run that was
        # killed and started again takes its own claims back at once instead of waiting.
        self.owner = owner or f"local:{socket.gethostname()}"
        self.hits = 0
        self.rejected = 0  # entries that failed verification

    @classmethod
    def open(cls, location: str, **kwargs: Any) -> BlobCache:
        return cls(open_blobs(location), **kwargs)

    @property
    def location(self) -> str:
        return self.blobs.location

    @staticmethod
    def _entry(key: str) -> str:
        return f"evaluations/{key[:2]}/{key}.json"

    @staticmethod
    def _claim(key: str) -> str:
        return f"claims/{key[:2]}/{key}.json"

    def get(self, key: str) -> Evaluation | None:
        raw = self.blobs.get(self._entry(key))
        if raw is None:
            return None
        try:
            record = json.loads(raw)
            digest = record.pop("sha256")
            ok = record.get("key") == key and digest == _digest(record)
            evaluation = Evaluation(
                float(record["metric"]),
                float(record["device_seconds"]),
                float(record["gpu_seconds"]),
                cached=True,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            ok = False
        if not ok:
            self.rejected += 1
            log.warning("cache entry %s does not verify; training it again", self._entry(key))
            return None
        self.hits += 1
        return evaluation

    def put(self, key: str, evaluation: Evaluation, info: dict[str, Any]) -> None:
        payload = _payload(key, evaluation, info)
        record = {**payload, "sha256": _digest(payload)}
        self.blobs.put(self._entry(key), json.dumps(record, sort_keys=True).encode())

    def _claim_body(self) -> bytes:
        return json.dumps({"owner": self.owner, "time": time.time()}).encode()

    def holder(self, key: str) -> tuple[str | None, float]:
        """Who holds the claim on `key` and when they last refreshed it (None: nobody)."""
        raw = self.blobs.get(self._claim(key))
        try:
            held = json.loads(raw) if raw is not None else None
            return (str(held["owner"]), float(held["time"])) if held else (None, 0.0)
        except (ValueError, KeyError, TypeError):
            return None, 0.0

    def claim(self, key: str) -> bool:
        """True when this owner may train `key`: nobody claimed it, or the claim is stale."""
        if self.blobs.create(self._claim(key), self._claim_body()):
            return True
        owner, since = self.holder(key)
        if owner == self.owner:
            return True
        if owner is None or time.time() - since > self.claim_seconds:
            log.info("taking over the stale claim on %s (held by %s)", key, owner)
            self.blobs.put(self._claim(key), self._claim_body())
            return True
        return False

    def _beat(self, key: str, stop: threading.Event) -> None:
        """Refresh the claim on `key` until `stop`; give up if another trial took it over."""
        while not stop.wait(self.heartbeat_seconds):
            try:
                owner, _ = self.holder(key)
                if owner not in (None, self.owner):
                    log.warning("the claim on %s was taken over by %s", key, owner)
                    return
                self.blobs.put(self._claim(key), self._claim_body())
            except Exception as err:  # a store hiccup: the next beat tries again
                log.warning("could not refresh the claim on %s: %s", key, err)

    def release(self, key: str) -> None:
        """Drop this owner's claim (not one that another trial took over meanwhile)."""
        if self.holder(key)[0] in (None, self.owner):
            self.blobs.delete([self._claim(key)])

    def evaluate(
        self, key: str, train: Callable[[], Evaluation], info: dict[str, Any]
    ) -> Evaluation:
        """The cached result of `key`, or another trial's once it finishes, or `train()`'s."""
        while True:
            found = self.get(key)
            if found is not None:
                return found
            if self.claim(key):
                # the result may have landed between the look and the claim (its trainer
                # writes it, then releases): look again before paying for a training
                found = self.get(key)
                if found is not None:
                    self.release(key)
                    return found
                break
            time.sleep(self.poll_seconds)  # another trial trains it now: wait for its result
        stop = threading.Event()
        beat = threading.Thread(target=self._beat, args=(key, stop), daemon=True)
        beat.start()
        try:
            result = train()
            self.put(key, result, info)
        finally:
            stop.set()
            beat.join()
            self.release(key)
        return result
