"""The agent store: agents pushed to S3 (or a folder) under content-addressed keys, and pulled back
only after every digest checks out.

Layout under the store's root (``s3://bucket/prefix`` or a folder)::

    agents/<space>/<task>/<id>/weights.safetensors   the Q-network (tensors only)
    agents/<space>/<task>/<id>/agent.json            the manifest, byte for byte as saved
    index/<space>/<task>/<id>.json                   listing entry (written last: publishes)

``<id>`` is the sha256 of the manifest's bytes, and the manifest records the
sha256 of the weights, so one digest pins both files (as an OCI image digest pins
its manifest and, through it, its layers). An agent's URI is its folder,
``<root>/agents/<space>/<task>/<id>``; whoever holds the URI can verify what they
pull without trusting the bucket:

* the manifest's sha256 must equal ``<id>``: a manifest edited after the push
  (a changed task, score, lineage or hyperparameter) is refused;
* the manifest's space and task must be the ones in the key;
* the weights' sha256 must equal the manifest's record (and the caller's expected
  digest, e.g. ``spec.source.digest``): swapped or corrupt weights are refused.

The index is a convenience for listing; pulls never trust it. Pushing the same
folder twice writes nothing new (same bytes, same id). Versions are never
overwritten: a retrained agent has a different manifest, hence a new id.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.store.blobs import Blobs, LocalBlobs, open_blobs, sha256_hex
from transfersearch_trainer.store.layout import FORMAT, MANIFEST, WEIGHTS, cache_dir

STORE_ENV = "TRANSFERSEARCH_STORE"
DEFAULT_STORE = "runs/store"
UNTRAINED = "untrained"  # the task segment of an agent that was never trained
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")

log = logging.getLogger("transfersearch.store")


@dataclass(frozen=True)
class AgentRef:
    """Where an agent lives in a store, parsed from its URI."""

    root: str
    space: str
    task: str
    digest: str  # sha256 of agent.json

    @property
    def key(self) -> str:
        return f"agents/{self.space}/{self.task}/{self.digest}"


@dataclass(frozen=True)
class StoredAgent:
    """One agent in a store, as listed and as reported after a push."""

    uri: str
    space: str
    task: str
    digest: str  # sha256 of agent.json: the agent's id in the store
    weights_digest: str  # sha256 of weights.safetensors (what spec.source.digest pins)
    mode: str | None = None
    steps: int | None = None
    created: str | None = None
    parent_digest: str | None = None  # the source agent's weights digest
    score: float | None = None  # mean best-found metric of its last evaluation

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_agent_uri(location: str) -> AgentRef | None:
    """The store root, space, task and id of `location`, or None when it is not in store layout."""
    parts = location.rstrip("/").split("/")
    if len(parts) < 4 or parts[-4] != "agents" or not _DIGEST.match(parts[-1]):
        return None
    if not (_NAME.match(parts[-3]) and _NAME.match(parts[-2])):
        return None
    root = "/".join(parts[:-4]) or "."
    return AgentRef(root, parts[-3], parts[-2], parts[-1])


def verify_manifest(where: str, ref: AgentRef, manifest_bytes: bytes) -> dict[str, Any]:
    """Check the manifest against the id in the key and its space/task; the manifest."""
    actual = sha256_hex(manifest_bytes)
    if actual != ref.digest:
        raise TransferSearchError(
            f"{where}: {MANIFEST} has sha256 {actual[:16]}... but the agent's id is "
            f"{ref.digest[:16]}...: the manifest was changed after the agent was pushed; "
            "refusing it (push the agent again to get a new id)"
        )
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise TransferSearchError(f"{where}: {MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise TransferSearchError(f"{where}: {MANIFEST} is not a {FORMAT} manifest")
    claims = (manifest.get("space"), manifest.get("task") or UNTRAINED)
    if claims != (ref.space, ref.task):
        raise TransferSearchError(
            f"{where}: the manifest says space {claims[0]}, task {claims[1]} but the agent is "
            f"stored under {ref.space}/{ref.task}; refusing it"
        )
    return manifest


def verify_agent_files(
    where: str,
    ref: AgentRef,
    manifest_bytes: bytes,
    weights: bytes,
    weights_digest: str | None = None,
) -> dict[str, Any]:
    """Check both files against the id in the key (and an expected weights digest); the manifest."""
    manifest = verify_manifest(where, ref, manifest_bytes)
    record = manifest.get("weights") or {}
    recorded = str(record.get("sha256"))
    if record.get("file") != WEIGHTS:
        raise TransferSearchError(f"{where}: the manifest names no {WEIGHTS} weights file")
    found = sha256_hex(weights)
    if found != recorded:
        raise TransferSearchError(
            f"{where}: {WEIGHTS} has sha256 {found[:16]}... but the manifest records "
            f"{recorded[:16]}...: digest mismatch, the weights are corrupt or were replaced; "
            "refusing them"
        )
    if weights_digest is not None and found != weights_digest.removeprefix("sha256:"):
        raise TransferSearchError(
            f"{where}: weights sha256 {found[:16]}... is not the expected "
            f"{weights_digest.removeprefix('sha256:')[:16]}... (digest mismatch)"
        )
    return manifest


class AgentStore:
    """Push, pull and list agents under one root (S3 prefix or folder)."""

    def __init__(self, location: str, blobs: Blobs | None = None) -> None:
        self.blobs = blobs or open_blobs(location)
        self.location = self.blobs.location

    def uri(self, ref: AgentRef) -> str:
        return self.blobs.uri(ref.key)

    def push(self, folder: str | Path) -> StoredAgent:
        """Copy a saved agent folder into the store (weights, manifest, then its index entry)."""
        folder = Path(folder)
        try:
            manifest_bytes = (folder / MANIFEST).read_bytes()
            weights = (folder / WEIGHTS).read_bytes()
        except FileNotFoundError as err:
            raise TransferSearchError(
                f"{folder}: not an agent folder ({Path(str(err.filename)).name} is missing)"
            ) from None
        except OSError as err:
            raise TransferSearchError(f"{folder}: cannot read the agent ({err.strerror})") from None
        try:
            manifest = json.loads(manifest_bytes)
        except ValueError:
            raise TransferSearchError(f"{folder}: {MANIFEST} is not valid JSON") from None
        space = str(manifest.get("space")) if isinstance(manifest, dict) else ""
        task = str(manifest.get("task") or UNTRAINED) if isinstance(manifest, dict) else ""
        if not (_NAME.match(space) and _NAME.match(task)):
            raise TransferSearchError(f"{folder}: {MANIFEST} has no valid space and task")
        ref = AgentRef(self.location, space, task, sha256_hex(manifest_bytes))
        verify_agent_files(str(folder), ref, manifest_bytes, weights)
        entry = self._entry(ref, manifest)
        index_key = f"index/{space}/{task}/{ref.digest}.json"
        if self.blobs.get(index_key) is None:
            self.blobs.put(f"{ref.key}/{WEIGHTS}", weights)
            self.blobs.put(f"{ref.key}/{MANIFEST}", manifest_bytes)
            self.blobs.put(index_key, json.dumps(entry.to_dict(), indent=2).encode())
        return entry

    def _entry(self, ref: AgentRef, manifest: dict[str, Any]) -> StoredAgent:
        evaluation = manifest.get("evaluation") or {}
        parent = manifest.get("parent") or {}
        score = evaluation.get("mean")
        return StoredAgent(
            uri=self.uri(ref),
            space=ref.space,
            task=ref.task,
            digest=ref.digest,
            weights_digest=str((manifest.get("weights") or {}).get("sha256")),
            mode=manifest.get("mode"),
            steps=manifest.get("steps"),
            created=manifest.get("created"),
            parent_digest=parent.get("digest"),
            score=float(score) if isinstance(score, int | float) else None,
        )

    def pull(
        self, ref: AgentRef, dest: str | Path | None = None, weights_digest: str | None = None
    ) -> Path:
        """A verified local copy of the agent (default: in the local cache, reused if intact)."""
        where = self.uri(ref)
        target = Path(dest) if dest is not None else cache_dir() / "agents" / ref.digest
        if dest is None and (target / MANIFEST).is_file():
            try:
                verify_local(target, ref, weights_digest)
                return target
            except TransferSearchError as err:
                log.warning("cached copy of %s is unusable (%s); fetching it again", where, err)
        manifest_bytes = self.blobs.get(f"{ref.key}/{MANIFEST}")
        if manifest_bytes is None:
            raise TransferSearchError(
                f"{where}: no such agent in the store {self.location} (list them with "
                f"`transfersearch agents list --store {self.location}`)"
            )
        weights = self.blobs.get(f"{ref.key}/{WEIGHTS}")
        if weights is None:
            raise TransferSearchError(f"{where}: the agent's {WEIGHTS} is missing from the store")
        verify_agent_files(where, ref, manifest_bytes, weights, weights_digest)
        local = LocalBlobs(target)
        local.put(WEIGHTS, weights)  # weights first, manifest last, as save_agent does
        local.put(MANIFEST, manifest_bytes)
        return target

    def manifest(self, ref: AgentRef) -> dict[str, Any]:
        """The agent's verified manifest alone, without fetching its weights."""
        where = self.uri(ref)
        manifest_bytes = self.blobs.get(f"{ref.key}/{MANIFEST}")
        if manifest_bytes is None:
            raise TransferSearchError(f"{where}: no such agent in the store {self.location}")
        return verify_manifest(where, ref, manifest_bytes)

    def list_agents(self, space: str | None = None, task: str | None = None) -> list[StoredAgent]:
        """Agents in the store, optionally of one space and task, oldest first."""
        prefix = "index/" + (f"{space}/" if space else "") + (f"{task}/" if space and task else "")
        found = []
        for key in self.blobs.keys(prefix):
            parts = key.split("/")
            if len(parts) != 4 or not parts[3].endswith(".json"):
                continue
            _, key_space, key_task, name = parts
            if task and key_task != task:
                continue
            raw = self.blobs.get(key)
            try:
                data = json.loads(raw or b"{}")
            except ValueError:
                data = {}
            ref = AgentRef(self.location, key_space, key_task, name.removesuffix(".json"))
            # what identifies the agent comes from the key; the entry only adds details
            found.append(
                StoredAgent(
                    uri=self.uri(ref),
                    space=ref.space,
                    task=ref.task,
                    digest=ref.digest,
                    weights_digest=str(data.get("weights_digest", "")),
                    mode=data.get("mode"),
                    steps=data.get("steps"),
                    created=data.get("created"),
                    parent_digest=data.get("parent_digest"),
                    score=data.get("score"),
                )
            )
        return sorted(found, key=lambda a: (a.space, a.task, a.created or "", a.digest))


def verify_local(folder: Path, ref: AgentRef, weights_digest: str | None = None) -> None:
    try:
        manifest_bytes = (folder / MANIFEST).read_bytes()
        weights = (folder / WEIGHTS).read_bytes()
    except OSError as err:
        raise TransferSearchError(f"{folder}: cannot read the agent ({err.strerror})") from None
    verify_agent_files(str(folder), ref, manifest_bytes, weights, weights_digest)


def fetch_agent(location: str, weights_digest: str | None = None) -> Path:
    """A local, verified agent folder for `location`: an s3:// agent URI, or a path.

    S3 agents must be in store layout (their URI carries the manifest's digest). A
    local folder in store layout is verified the same way; any other local folder is
    returned as is (`load_agent` still checks the weights against its manifest).
    """
    ref = parse_agent_uri(location)
    if location.startswith("s3://"):
        if ref is None:
            raise TransferSearchError(
                f"{location}: not an agent in a TransferSearch store (expected "
                "s3://BUCKET/PREFIX/agents/<space>/<task>/<sha256>); push the agent folder with "
                "`transfersearch agents push DIR --store s3://BUCKET/PREFIX`"
            )
        return AgentStore(ref.root).pull(ref, weights_digest=weights_digest)
    folder = Path(location).expanduser()
    if ref is not None and (folder / MANIFEST).is_file():
        verify_local(folder, ref, weights_digest)
    return folder


def default_store() -> str:
    return os.environ.get(STORE_ENV) or DEFAULT_STORE
