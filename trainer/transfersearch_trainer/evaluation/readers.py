"""Reading the users' files into arrays: an ``.npz`` of images and labels, or an image folder.

Each reader returns `RawData`: float32 ``(N, C, H, W)`` images in [0, 1], the labels as
given (checked later, once, for both formats) and a digest of exactly the bytes read,
so two loads of the same files always carry the same identity. Every problem with a
file becomes one `TransferSearchError` line naming the file and the fix, because the
people who hit them are preparing data, not debugging Python.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.store.blobs import sha256_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Modes PIL reads as one channel; any other mode (RGB, RGBA, P, CMYK, ...) is colour.
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
_SAVE_HINT = "save it with numpy.savez(path, x=images, y=labels)"


@dataclass(frozen=True, eq=False)
class RawData:
    """Images and labels read from one file or folder, before any split.

    `classes` holds the class names of an image folder (index = label) and is None for
    an npz, whose labels are numbers already. `sha256` covers the bytes read."""

    where: str
    x: npt.NDArray[np.float32]
    y: npt.NDArray[Any]
    classes: tuple[str, ...] | None
    sha256: str


def read_npz(path: Path, where: str) -> RawData:
    """`x` ``(N, H, W)`` or ``(N, H, W, C)``, `y` ``(N,)``; `where` names the file in errors.

    Scaling: ``uint8`` (and other integer types whose values lie in 0..255) is divided by
    255; floats already in [0, 1] are kept, floats with a maximum above 1 are divided by
    that maximum. Other dtypes, negative values, NaN and infinities are refused.
    """
    if not path.is_file():
        raise TransferSearchError(f"{where}: no such file (give the path of an .npz file)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise TransferSearchError(
            f"{where}: not an .npz file ({_reason(err)}); {_SAVE_HINT}"
        ) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise TransferSearchError(f"{where}: a single .npy array, not an .npz; {_SAVE_HINT}")
    with loaded:
        names = sorted(loaded.files)
        for key in ("x", "y"):
            if key not in names:
                found = ", ".join(names) or "nothing"
                raise TransferSearchError(
                    f"{where}: no array named {key!r} (found: {found}); {_SAVE_HINT}"
                )
        try:
            x, y = loaded["x"], loaded["y"]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise TransferSearchError(
                f"{where}: cannot read its arrays ({_reason(err)}); the file is damaged: "
                "write it again"
            ) from None
    images = _scaled(_channels_first(x, where), where)
    if y.ndim != 1:
        raise TransferSearchError(
            f"{where}: y has shape {y.shape}; it must be one label per image, shape (N,)"
        )
    if len(y) != len(images):
        raise TransferSearchError(
            f"{where}: x has {len(images)} images but y has {len(y)} labels; give one label "
            "per image"
        )
    return RawData(where, images, y, None, sha256_file(path))


def _reason(err: Exception) -> str:
    return str(err).splitlines()[0][:120] if str(err) else type(err).__name__


def _channels_first(x: npt.NDArray[Any], where: str) -> npt.NDArray[Any]:
    if x.ndim == 3:
        return x[:, None, :, :]
    if x.ndim == 4 and 1 <= x.shape[3] <= 4:
        return np.transpose(x, (0, 3, 1, 2))
    hint = (
        "; channels-first arrays: x.transpose(0, 2, 3, 1)"
        if x.ndim == 4 and 1 <= x.shape[1] <= 4
        else ""
    )
    raise TransferSearchError(
        f"{where}: x has shape {x.shape}; it must be (N, H, W) or (N, H, W, C) with C "
        f"1..4 channels last{hint}"
    )


def _scaled(x: npt.NDArray[Any], where: str) -> npt.NDArray[np.float32]:
    if len(x) == 0:
        raise TransferSearchError(f"{where}: x holds no images")
    if x.dtype == np.uint8:
        return (x.astype(np.float32) / 255.0).astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise TransferSearchError(
                f"{where}: x ({x.dtype}) has values {lo}..{hi}; integer images must be 0..255"
            )
        return (x.astype(np.float32) / 255.0).astype(np.float32)
    if not np.issubdtype(x.dtype, np.floating):
        raise TransferSearchError(
            f"{where}: x has dtype {x.dtype}; give uint8 0..255 or float images"
        )
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(x), -1).any(axis=1))[0][0])
        raise TransferSearchError(
            f"{where}: x has NaN or infinite values (first in image {first}); remove or fix them"
        )
    low, high = float(x.min()), float(x.max())
    if low < 0:
        raise TransferSearchError(
            f"{where}: x has negative values (min {low:g}); give images in 0..1 or 0..255, "
            "not normalised ones"
        )
    out = x.astype(np.float32)
    return (out / np.float32(high)).astype(np.float32) if high > 1.0 else out


def read_image_folder(root: Path, where: str) -> RawData:
    """``root/<class>/<file>.png|jpg|jpeg``: class folders sorted by name are labels 0..C-1.

    All images must have one size (nothing is resized: that would change the data behind
    the user's back). They are all read as grayscale when every image is grayscale, and
    as RGB otherwise (alpha dropped). Hidden files and files with other suffixes are
    skipped, so a README or .DS_Store beside the images does no harm.
    """
    from PIL import Image

    if not root.is_dir():
        raise TransferSearchError(f"{where}: no such folder (give a folder of class folders)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(
            p
            for p in (root / name).iterdir()
            if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise TransferSearchError(
                f"{where}/{name}: class folder without .png/.jpg images; add images or remove it"
            )
        files += [(p, label) for p in found]
    if not files:
        raise TransferSearchError(
            f"{where}: no class folders with images; lay it out as <class>/<file>.png"
        )

    def rel(path: Path) -> str:
        return f"{where.rstrip('/')}/{path.relative_to(root).as_posix()}"

    first_size: tuple[int, int] | None = None
    gray = True
    for path, _ in files:
        try:
            with Image.open(path) as img:
                size, mode = img.size, img.mode
        except (OSError, SyntaxError, ValueError) as err:
            raise TransferSearchError(
                f"{rel(path)}: unreadable image ({_reason(err)}); replace or delete it"
            ) from None
        if first_size is None:
            first_size = size
        elif size != first_size:
            raise TransferSearchError(
                f"{rel(path)} is {size[0]}x{size[1]} but {rel(files[0][0])} is "
                f"{first_size[0]}x{first_size[1]}: all images must have one size; resize them"
            )
        gray = gray and mode in _GRAY_MODES
    target = "L" if gray else "RGB"
    arrays = []
    digest = hashlib.sha256()
    for path, _ in files:
        try:
            with Image.open(path) as img:
                arrays.append(np.asarray(img.convert(target), dtype=np.uint8))
        except (OSError, SyntaxError, ValueError) as err:
            raise TransferSearchError(
                f"{rel(path)}: unreadable image ({_reason(err)}); replace or delete it"
            ) from None
        digest.update(f"{path.relative_to(root).as_posix()}\t{sha256_file(path)}\n".encode())
    stacked = np.stack(arrays)
    x = _scaled(_channels_first(stacked, where), where)
    y = np.array([label for _, label in files], dtype=np.int64)
    return RawData(where, x, y, tuple(classes), digest.hexdigest())
