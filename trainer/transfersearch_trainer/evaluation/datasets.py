"""The user's dataset, from a spec to train and validation arrays: formats, splits, identity.

A `DatasetSpec` names an ``.npz`` file or an image folder, local or ``s3://`` (see
`evaluation.sources` for the cache), and how to get a validation set: a second file or
folder of the same format, or a seeded, stratified split of the training data.
`load_dataset` reads it (`evaluation.readers`), checks the labels once for both formats
and returns an `ArrayDataset` whose `sha256` is the same whenever the data *and* the
split are, and differs when either changes, because cached evaluations are keyed by it.
Every problem is one `TransferSearchError` line naming the file and the fix.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.evaluation.arrays import ArrayDataset
from transfersearch_trainer.evaluation.readers import RawData, read_image_folder, read_npz
from transfersearch_trainer.evaluation.sources import is_s3, local_file, local_folder

Format = Literal["npz", "imagefolder", "auto"]
FORMATS: tuple[str, ...] = ("npz", "imagefolder", "auto")


@dataclass(frozen=True)
class DatasetSpec:
    """What data to train on and how to validate.

    `format` "auto" means: a name ending ``.npz`` is an npz, a local folder or an s3://
    URI ending ``/`` is an image folder. `validation_uri` (same format) replaces the
    split; otherwise `validation_split` of each class, drawn with `seed`, is held out.
    `name` labels results (default: the file's or folder's name)."""

    uri: str
    format: Format = "auto"
    validation_split: float = 0.2
    validation_uri: str | None = None
    seed: int = 0
    name: str | None = None


def resolve_format(uri: str, fmt: str) -> Literal["npz", "imagefolder"]:
    """The concrete format of `uri`: as given, or guessed from its name (see `DatasetSpec`)."""
    if fmt == "npz":
        return "npz"
    if fmt == "imagefolder":
        return "imagefolder"
    if fmt != "auto":
        raise TransferSearchError(f"dataset format {fmt!r}: use one of {', '.join(FORMATS)}")
    if uri.lower().endswith(".npz"):
        return "npz"
    if uri.endswith("/") and is_s3(uri):
        return "imagefolder"
    if not is_s3(uri) and Path(uri).expanduser().is_dir():
        return "imagefolder"
    if not is_s3(uri) and not Path(uri).expanduser().exists():
        raise TransferSearchError(f"{uri}: no such file or folder")
    raise TransferSearchError(
        f"{uri}: cannot tell the format; name an npz file *.npz, end an s3:// image-folder "
        "prefix with /, or set the format (npz or imagefolder)"
    )


def load_dataset(spec: DatasetSpec, cache_dir: Path | None = None) -> ArrayDataset:
    """Read, check and split the data `spec` names; s3:// objects are cached in `cache_dir`
    (default ``$TRANSFERSEARCH_CACHE/datasets``)."""
    fmt = resolve_format(spec.uri, spec.format)
    train = _read(spec.uri, fmt, cache_dir)
    classes = _check_labels(train)
    if spec.validation_uri is not None:
        vfmt = resolve_format(spec.validation_uri, spec.format)
        if vfmt != fmt:
            raise TransferSearchError(
                f"{spec.validation_uri}: validation data is {vfmt} but {spec.uri} is {fmt}; "
                "give both in one format"
            )
        val = _align(train, _read(spec.validation_uri, fmt, cache_dir), classes)
        x_train, y_train = train.x, train.y.astype(np.int64)
        x_val, y_val = val.x, val.y.astype(np.int64)
        split: dict[str, Any] | None = None
    else:
        tr, va = stratified_split(train.y, spec.validation_split, spec.seed, train.where)
        x_train, y_train = train.x[tr], train.y[tr].astype(np.int64)
        x_val, y_val = train.x[va], train.y[va].astype(np.int64)
        split = {"fraction": spec.validation_split, "seed": spec.seed}
        val = None
    identity = {
        "format": fmt,
        "data": train.sha256,
        "validation": val.sha256 if val is not None else None,
        "split": split,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return ArrayDataset(
        name=spec.name or _default_name(spec.uri),
        x_train=np.ascontiguousarray(x_train),
        y_train=y_train,
        x_val=np.ascontiguousarray(x_val),
        y_val=y_val,
        classes=classes,
        sha256=digest,
    )


def _read(uri: str, fmt: str, cache_dir: Path | None) -> RawData:
    if fmt == "npz":
        return read_npz(local_file(uri, cache_dir), uri)
    return read_image_folder(local_folder(uri, cache_dir), uri.rstrip("/"))


def _default_name(uri: str) -> str:
    last = uri.rstrip("/").rsplit("/", 1)[-1]
    return last[: -len(".npz")] if last.lower().endswith(".npz") else last or uri


def _label_range(values: npt.NDArray[Any]) -> str:
    return f"{values.min()}..{values.max()}"


def _check_labels(data: RawData) -> int:
    """The number of classes; the labels must be integers 0..C-1 with every class present."""
    y = data.y
    if data.classes is not None:
        if len(data.classes) < 2:
            raise TransferSearchError(
                f"{data.where}: one class folder only ({data.classes[0]}); a classifier needs "
                "at least 2 classes: add a folder per class"
            )
        return len(data.classes)
    if not np.issubdtype(y.dtype, np.integer):
        raise TransferSearchError(
            f"{data.where}: labels y must be integers, found {y.dtype}; save y.astype('int64')"
        )
    present = np.unique(y)
    if len(present) < 2:
        raise TransferSearchError(
            f"{data.where}: every label is {present[0]}: one class only; a classifier needs at "
            "least 2 classes"
        )
    if present[0] != 0 or present[-1] != len(present) - 1:
        missing = sorted(set(range(int(present[-1]) + 1)) - {int(v) for v in present})
        gap = f" without {', '.join(map(str, missing[:5]))}" if present[0] >= 0 and missing else ""
        raise TransferSearchError(
            f"{data.where}: labels must be 0..C-1 with every class present; found "
            f"{_label_range(present)}{gap}: renumber them"
        )
    return len(present)


def _align(train: RawData, val: RawData, classes: int) -> RawData:
    """`val` checked against the training data: same image shape, only known classes.

    Image-folder labels are renumbered by class name (the folders' sort order may differ
    when a class has no validation images). Grayscale validation images of a colour
    training folder are repeated to three channels, as PIL converts L to RGB."""
    x = val.x
    if val.classes is not None and train.classes is not None:
        index = {name: i for i, name in enumerate(train.classes)}
        unknown = [name for name in val.classes if name not in index]
        if unknown:
            raise TransferSearchError(
                f"{val.where}/{unknown[0]}: a class the training folder {train.where} does not "
                f"have (it has {', '.join(train.classes[:10])}); rename or remove it"
            )
        y = np.array([index[val.classes[int(v)]] for v in val.y], dtype=np.int64)
        if x.shape[1] == 1 and train.x.shape[1] == 3:
            x = np.repeat(x, 3, axis=1)
    else:
        if not np.issubdtype(val.y.dtype, np.integer):
            raise TransferSearchError(
                f"{val.where}: labels y must be integers, found {val.y.dtype}; save "
                "y.astype('int64')"
            )
        if val.y.min() < 0 or val.y.max() >= classes:
            raise TransferSearchError(
                f"{val.where}: labels must be 0..{classes - 1} like the training data "
                f"({train.where}); found {_label_range(val.y)}: renumber them"
            )
        y = val.y.astype(np.int64)
    if x.shape[1:] != train.x.shape[1:]:
        c, h, w = x.shape[1:]
        tc, th, tw = train.x.shape[1:]
        raise TransferSearchError(
            f"{val.where}: validation images are {c}x{h}x{w} (channels x height x width) but "
            f"the training images of {train.where} are {tc}x{th}x{tw}; give them one shape"
        )
    return RawData(val.where, x, y, train.classes, val.sha256)


def stratified_split(
    y: npt.NDArray[Any], fraction: float, seed: int, where: str = "dataset"
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Train and validation indices (sorted): `fraction` of each class, drawn with `seed`.

    The validation set has ``round(N * fraction)`` images where the classes allow it;
    every class with at least two images gives at least one to validation and keeps at
    least one for training, so no class is missing from either side by chance."""
    if not 0.0 < fraction < 1.0:
        raise TransferSearchError(
            f"{where}: validation_split must be between 0 and 1 (exclusive), got {fraction:g}; "
            "or give a validation file"
        )
    labels, counts = np.unique(y, return_counts=True)
    wanted = counts * fraction
    lo = np.minimum(1, counts - 1)
    hi = counts - 1
    quota = np.clip(np.floor(wanted).astype(np.int64), lo, hi)
    remaining = round(len(y) * fraction) - int(quota.sum())
    while remaining > 0 and (quota < hi).any():
        room = np.where(quota < hi, wanted - quota, -np.inf)
        quota[int(np.argmax(room))] += 1
        remaining -= 1
    while remaining < 0 and (quota > lo).any():
        excess = np.where(quota > lo, quota - wanted, -np.inf)
        quota[int(np.argmax(excess))] -= 1
        remaining += 1
    rng = np.random.default_rng(seed)
    val_parts = []
    for label, k in zip(labels, quota, strict=True):
        members = np.flatnonzero(y == label)
        val_parts.append(rng.permutation(members)[:k])
    val = np.sort(np.concatenate(val_parts)).astype(np.int64)
    train = np.setdiff1d(np.arange(len(y)), val).astype(np.int64)
    if len(val) == 0:
        raise TransferSearchError(
            f"{where}: the validation split is empty ({len(y)} images, no class with 2 or more); "
            "add images, raise validation_split or give a validation file"
        )
    if len(train) == 0:
        raise TransferSearchError(f"{where}: the training split is empty; add images")
    return train, val
