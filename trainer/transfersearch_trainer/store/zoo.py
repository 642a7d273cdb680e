"""The agent zoo: pretrained agents that ship with TransferSearch, found by space and target.

Layout (written by `transfersearch zoo build`, see `study.zoo_build`)::

    <zoo>/index.json                           every agent: space, label, held-out target,
                                               sources, sha256 of agent.json and of the weights
    <zoo>/README.md
    <zoo>/<space>/<label>/agent.json           byte for byte as the study saved it
    <zoo>/<space>/<label>/weights.safetensors
    <zoo>/<space>/<label>/MODEL_CARD.md

``<label>`` is the agent's task label: ``all_but_<T>`` (pretrained on every task but T)
or ``all_tasks`` (on all seven). `--agent zoo` (and ``spec.source.agent: zoo``) means:
for a search on task T, ``<zoo>/<space>/all_but_T``; for a target outside the benchmark,
``<zoo>/<space>/all_tasks``. The agent for T never queried T, so using it under protocol
search spends nothing on the target outside the search's budget.

Where the zoo is: ``$TRANSFERSEARCH_ZOO`` when set, else the ``zoo/`` folder of the
source checkout this package runs from (an editable install), else
``/opt/transfersearch/zoo`` (the trainer image). Before an agent is used, both of its
files are checked against the sha256 that index.json records, so a zoo changed after it
was built is refused. No torch here: the store layer lists and verifies only.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.source import ZOO
from transfersearch_trainer.api.tasks import ALL_TASKS, check_task
from transfersearch_trainer.store.agents import AgentStore, StoredAgent, fetch_agent
from transfersearch_trainer.store.blobs import sha256_file
from transfersearch_trainer.store.layout import MANIFEST, WEIGHTS

ZOO_ENV = "TRANSFERSEARCH_ZOO"
IMAGE_ZOO = Path("/opt/transfersearch/zoo")
INDEX = "index.json"
INDEX_FORMAT = "transfersearch-zoo/1"
CARD = "MODEL_CARD.md"
README = "README.md"
BUILD_HINT = "build the zoo with `transfersearch zoo build --study DIR --out zoo`"


@dataclass(frozen=True)
class ZooEntry:
    """One agent of the zoo, as index.json lists it."""

    space: str
    label: str  # all_but_<target> or all_tasks
    target: str | None  # the task it never saw; None for all_tasks
    sources: tuple[str, ...]  # the tasks it was pretrained on
    digest: str  # sha256 of agent.json: the agent's id once pushed to a store
    weights_sha256: str
    path: str  # its folder, relative to the zoo: <space>/<label>
    seed: int  # the pretraining seed chosen
    validation: float | None  # that seed's pretraining-side validation score
    study: str  # the study folder's name

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZooEntry:
        return cls(**{**d, "sources": tuple(d["sources"])})


def zoo_label(target: str | None) -> str:
    """The label of the zoo agent for `target`: all_but_<target>, or all_tasks for none."""
    return ALL_TASKS if target is None else f"all_but_{check_task(target, 'target')}"


def _checkout_zoo() -> Path | None:
    """The zoo/ folder of the source checkout this module runs from (an editable install)."""
    root = Path(__file__).resolve().parents[3]
    return root / "zoo" if (root / "pyproject.toml").is_file() else None


def _at(field: str) -> str:
    """How a message starts: the flag or spec field that asked for the zoo (`--agent zoo`)."""
    return f"{field} {ZOO}" if field.startswith(("--", "spec.")) else field


def _fix(field: str) -> str:
    """What to do: build the zoo, or name an agent in the flag or field that asked for it."""
    if field.startswith("--"):
        return f"{BUILD_HINT} or pass --agent PATH (an agent folder or s3:// URI)"
    if field.startswith("spec."):
        return f"{BUILD_HINT} or set {field} to an agent folder or s3:// URI"
    return BUILD_HINT


def zoo_root(field: str = "--agent") -> Path:
    """Where the zoo is: $TRANSFERSEARCH_ZOO, the checkout's zoo/, or the image's."""
    env = os.environ.get(ZOO_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise TransferSearchError(
                f"{_at(field)}: ${ZOO_ENV} is {env}, which is not a folder; {_fix(field)}"
            )
        return root
    looked = [p for p in (_checkout_zoo(), IMAGE_ZOO) if p is not None]
    for path in looked:
        if path.is_dir():
            return path
    raise TransferSearchError(
        f"{_at(field)}: no agent zoo (looked in ${ZOO_ENV}, unset, and "
        f"{', '.join(map(str, looked))}); {_fix(field)}"
    )


def read_index(root: Path, field: str = "--agent") -> list[ZooEntry]:
    """The agents index.json lists (none read or verified yet)."""
    path = root / INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != INDEX_FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        return [ZooEntry.from_dict(e) for e in data["agents"]]
    except FileNotFoundError:
        raise TransferSearchError(
            f"{_at(field)}: {root} holds no agents yet (no {INDEX}); {_fix(field)}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise TransferSearchError(
            f"{_at(field)}: {path} is not a {INDEX_FORMAT} index ({err}); {_fix(field)}"
        ) from None


def verify_entry(root: Path, entry: ZooEntry, field: str = "--agent") -> Path:
    """The entry's folder, once both files match the sha256 index.json records for them."""
    folder = root / entry.path
    at, fix = _at(field), _fix(field)
    for name, recorded in ((MANIFEST, entry.digest), (WEIGHTS, entry.weights_sha256)):
        try:
            actual = sha256_file(folder / name)
        except OSError as err:
            raise TransferSearchError(
                f"{at}: {folder / name} is listed in {root / INDEX} but cannot be "
                f"read ({err.strerror}); {fix}"
            ) from None
        if actual != recorded:
            raise TransferSearchError(
                f"{at}: {folder / name} has sha256 {actual[:16]}... but {INDEX} "
                f"records {recorded[:16]}...: digest mismatch, the zoo was changed after it was "
                f"built; refusing it ({fix})"
            )
    manifest = json.loads((folder / MANIFEST).read_bytes())
    claims = (manifest.get("space"), manifest.get("task"), manifest["weights"].get("sha256"))
    if claims != (entry.space, entry.label, entry.weights_sha256):
        raise TransferSearchError(
            f"{at}: {folder / MANIFEST} describes {claims[0]}/{claims[1]}, not the "
            f"{entry.space}/{entry.label} that {INDEX} lists; {fix}"
        )
    return folder


def zoo_agent(
    space: str, target: str | None, root: Path | None = None, field: str = "--agent"
) -> tuple[Path, ZooEntry]:
    """The verified folder of the zoo's agent for `target` in `space` (None: a target
    outside the benchmark, served by the all-task agent), and its index entry."""
    root = root if root is not None else zoo_root(field)
    label = zoo_label(target)
    entries = read_index(root, field)
    entry = next((e for e in entries if (e.space, e.label) == (space, label)), None)
    if entry is None:
        held = ", ".join(f"{e.space}/{e.label}" for e in entries) or "nothing"
        what = f"target {target}" if target is not None else "a target outside the benchmark"
        raise TransferSearchError(
            f"{_at(field)}: the zoo at {root} has no {space}/{label} agent for {what} (it "
            f"holds {held}); a study that pretrained {label} is needed: {_fix(field)}"
        )
    return verify_entry(root, entry, field), entry


def resolve_agent(
    location: str,
    space: str,
    target: str | None,
    digest: str | None = None,
    field: str = "--agent",
) -> tuple[Path, str | None]:
    """A local, verified agent folder for `location` and the weights digest to load it with.

    `location` is ``zoo`` (the zoo's agent for `target` in `space`), an s3:// agent URI
    or a folder (`fetch_agent`). The digest is the caller's (which must then match the
    weights, `load_agent` checks) or, for the zoo, the one its index records.
    """
    if location != ZOO:
        return fetch_agent(location, digest), digest
    folder, entry = zoo_agent(space, target, field=field)
    return folder, digest or f"sha256:{entry.weights_sha256}"


def is_zoo(folder: Path) -> bool:
    return (folder / INDEX).is_file()


def push_zoo(store: AgentStore, root: Path) -> list[StoredAgent]:
    """Verify every agent of the zoo against its index, then push each one to `store`."""
    entries = read_index(root, "agents push")
    folders = [verify_entry(root, e, "agents push") for e in entries]
    return [store.push(folder) for folder in folders]
