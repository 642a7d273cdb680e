"""`transfersearch zoo build`: the agent zoo from finished leave-one-task-out studies.

For every space and every pretrained label of a study (``all_but_<T>`` per target T,
``all_tasks`` when the study pretrained on all seven tasks) the zoo keeps one agent:
the pretraining seed with the best ``validation``, ties to the lowest seed. Validation
is the last point of the agent's pretraining curve, greedy searches on its *source*
tasks only, taken scale-free: one minus the mean normalised regret over the sources
(1 = every source's optimum, 0 = their medians), because the mean raw metric would
weigh the sources by the scale of their metrics (jigsaw's ~95 against autoencoder's
~0.5). The choice never looks at the held-out target: the zoo's agent for T is
as honest on T as each of the study's seeds was. What the study measured on T is
written in the model card afterwards, for reading, never used to choose.

The files are copied byte for byte after their digests are checked against the cell's
record and the manifest (a study changed after it ran is refused), the sources are
checked to exclude the target, and the zoo is written in a staging folder, then put in
place of `out` in one rename. The same studies give the same bytes: nothing here adds a
time or an absolute path.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import ALL_TASKS, TASKS
from transfersearch_trainer.store.blobs import sha256_hex
from transfersearch_trainer.store.layout import MANIFEST, WEIGHTS
from transfersearch_trainer.store.zoo import (
    CARD,
    INDEX,
    INDEX_FORMAT,
    README,
    ZooEntry,
    is_zoo,
    zoo_label,
)
from transfersearch_trainer.study import cells
from transfersearch_trainer.study.loto import SCHEMA, agent_dir
from transfersearch_trainer.study.zoo_cards import model_card, zoo_readme

AGENT_FILES = (MANIFEST, WEIGHTS, CARD)


@dataclass(frozen=True)
class Seed:
    """One pretraining seed of a study's agent: its cell record."""

    seed: int
    validation: float | None  # None: the cell recorded no curve
    record: dict[str, Any]


@dataclass(frozen=True)
class Pick:
    """The seed chosen for one label of one study, among the seeds it finished."""

    study: Path
    settings: dict[str, Any]
    target: str | None  # the held-out task; None for all_tasks
    seeds: tuple[Seed, ...]  # by seed
    chosen: Seed

    @property
    def space(self) -> str:
        return str(self.settings["space"])

    @property
    def label(self) -> str:
        return zoo_label(self.target)

    @property
    def folder(self) -> Path:
        return agent_dir(self.study, self.target or ALL_TASKS, self.chosen.seed)


def best_seed(seeds: list[Seed]) -> Seed:
    """The seed with the best validation (None ranks last), the lowest seed on ties."""
    return min(seeds, key=lambda s: (s.validation is None, -(s.validation or 0.0), s.seed))


def _number(value: Any) -> float | None:
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _validation(record: dict[str, Any], folder: Path) -> float | None:
    """The seed's scale-free validation: the cell's; for a cell written before it recorded
    one, its manifest's last curve point (no curve: the cell's raw `validation`)."""
    if "validation_normalised" in record:  # None there: the agent drew no curve
        return _number(record["validation_normalised"])
    try:
        curve = json.loads((folder / MANIFEST).read_text())["training"].get("curve") or []
    except (OSError, ValueError, KeyError, TypeError):
        curve = []
    regret = _number(curve[-1].get("normalised_regret")) if curve else None
    return 1.0 - regret if regret is not None else _number(record.get("validation"))


def study_picks(study: Path) -> list[Pick]:
    """Each label's chosen seed in one study (a folder `transfersearch study loto` wrote)."""
    try:
        settings = json.loads((study / "settings.json").read_text())
    except (OSError, ValueError):
        raise TransferSearchError(
            f"--study {study}: not a leave-one-task-out study (no readable settings.json); "
            "run `transfersearch study loto --out DIR` first"
        ) from None
    if settings.get("schema") != SCHEMA:
        raise TransferSearchError(
            f"--study {study}: settings.json is {settings.get('schema')!r}, not a {SCHEMA} "
            "study; give the --out folder of `transfersearch study loto`"
        )
    by_target: dict[str, list[Seed]] = {}
    for record in cells.load_cells(study, SCHEMA).values():
        if record.get("kind") == "agent":
            folder = agent_dir(study, str(record["target"]), int(record["seed"]))
            seed = Seed(int(record["seed"]), _validation(record, folder), record)
            by_target.setdefault(str(record["target"]), []).append(seed)
    if not by_target:
        raise TransferSearchError(
            f"--study {study}: no finished pretraining cells (cells/agent__<target>__s<seed>"
            ".json); let `transfersearch study loto` pretrain its agents first"
        )
    picks = []
    for target, seeds in sorted(by_target.items()):
        held_out = None if target == ALL_TASKS else target
        ordered = tuple(sorted(seeds, key=lambda s: s.seed))
        picks.append(Pick(study, settings, held_out, ordered, best_seed(list(seeds))))
    return picks


def _checked_files(pick: Pick, earlier: Path | None = None) -> tuple[bytes, bytes, dict[str, Any]]:
    """The chosen agent's manifest and weights, once digests, space, label and sources agree.

    A study resumed from its committed pack has no agent files for the seeds it finished
    earlier; then the zoo being replaced (`earlier`) may hold that very agent: it is used
    when its weights have the digest the study's record names (checked below)."""
    folder = pick.folder
    if not (folder / WEIGHTS).is_file() and earlier is not None:
        folder = earlier / pick.space / pick.label
    where = f"--study {pick.study}: {folder}"
    try:
        manifest_bytes = (folder / MANIFEST).read_bytes()
        weights = (folder / WEIGHTS).read_bytes()
        manifest = json.loads(manifest_bytes)
    except (OSError, ValueError) as err:
        raise TransferSearchError(f"{where}: cannot read the agent ({err})") from None
    recorded = pick.chosen.record.get("digest")
    actual = sha256_hex(weights)
    if not actual == recorded == (manifest.get("weights") or {}).get("sha256"):
        raise TransferSearchError(
            f"{where}: {WEIGHTS} has sha256 {actual[:16]}... but the cell records "
            f"{str(recorded)[:16]}... and the manifest "
            f"{str((manifest.get('weights') or {}).get('sha256'))[:16]}...: digest mismatch, "
            "the study was changed after it ran; rerun its cell (delete "
            f"cells/agent__{pick.target or ALL_TASKS}__s{pick.chosen.seed}.json and resume)"
        )
    sources = tuple((manifest.get("training") or {}).get("tasks") or ())
    expected = tuple(t for t in TASKS if t != pick.target)
    claims = (manifest.get("space"), manifest.get("task"), sorted(sources))
    if claims != (pick.space, pick.label, sorted(expected)):
        raise TransferSearchError(
            f"{where}: the agent says space {claims[0]}, task {claims[1]}, sources "
            f"{','.join(sources) or 'none'}; the zoo needs {pick.space}/{pick.label} pretrained "
            f"on {','.join(expected)} (never on the target)"
        )
    return manifest_bytes, weights, manifest


def summary_rows(study: Path, target: str | None) -> list[dict[str, str]]:
    """The rows of the study's summary.csv for `target` (none without a summary or target)."""
    path = study / "summary.csv"
    if target is None or not path.is_file():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("target") == target]


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)  # readable by the image's non-root user once COPYed in as root


def build_zoo(studies: list[Path], out: Path) -> list[ZooEntry]:
    """Write the zoo of these studies to `out` (replacing a zoo there); its index entries."""
    picks: dict[tuple[str, str], Pick] = {}
    for study in studies:
        for pick in study_picks(study):
            key = (pick.space, pick.label)
            if key in picks:
                raise TransferSearchError(
                    f"--study: {picks[key].study} and {study} both pretrained {'/'.join(key)}; "
                    "give each space and target from one study only"
                )
            picks[key] = pick
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        earlier = out if is_zoo(out) else None
        entries = [_add(stage, picks[key], earlier) for key in sorted(picks)]
        index = {"format": INDEX_FORMAT, "agents": [e.to_dict() for e in entries]}
        _write(stage / INDEX, (json.dumps(index, indent=2) + "\n").encode())
        _write(stage / README, zoo_readme().encode())
        for folder in [stage, *(p for p in stage.rglob("*") if p.is_dir())]:
            folder.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return entries


def _add(stage: Path, pick: Pick, earlier: Path | None) -> ZooEntry:
    manifest_bytes, weights, manifest = _checked_files(pick, earlier)
    entry = ZooEntry(
        space=pick.space,
        label=pick.label,
        target=pick.target,
        sources=tuple(manifest["training"]["tasks"]),
        digest=sha256_hex(manifest_bytes),
        weights_sha256=sha256_hex(weights),
        path=f"{pick.space}/{pick.label}",
        seed=pick.chosen.seed,
        validation=pick.chosen.validation,
        study=pick.study.resolve().name,
    )
    folder = stage / entry.path
    folder.mkdir(parents=True)
    _write(folder / WEIGHTS, weights)
    _write(folder / MANIFEST, manifest_bytes)
    card = model_card(entry, manifest, pick, summary_rows(pick.study, pick.target))
    _write(folder / CARD, card.encode())
    return entry


def _check_out(out: Path) -> None:
    """`out` may be replaced only when it is missing, empty or a zoo: nothing else is lost."""
    if not out.exists():
        return
    if not out.is_dir():
        raise TransferSearchError(f"--out {out}: is a file, not a folder; choose another --out")
    found = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    agents = [p for p in found if len(p.parts) == 3 and p.name in AGENT_FILES]
    others = [p for p in found if p not in agents and p not in (Path(INDEX), Path(README))]
    if others or (agents and not is_zoo(out)):
        raise TransferSearchError(
            f"--out {out}: holds {(others or agents)[0]}, which is not part of a zoo; choose "
            "a new or empty folder, or the folder of an earlier zoo (which is replaced)"
        )
