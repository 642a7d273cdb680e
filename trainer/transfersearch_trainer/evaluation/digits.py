"""The pilot dataset: scikit-learn's bundled digits (1,797 real 8x8 images, 10 classes).

It ships inside the scikit-learn wheel, so a first own-data search needs no download
and no account, and it is small enough to train real networks on a CPU in minutes.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from transfersearch_trainer.api.errors import TransferSearchError


def export_digits(out: Path) -> Path:
    """Write the digits as an npz the loaders read: `x` uint8 (1797, 8, 8), `y` int64 (1797,).

    scikit-learn's pixels are counts 0..16 (of a 4x4 block of a 32x32 bitmap); they are
    scaled to 0..255 (x * 255 / 16, rounded) so the file looks like any 8-bit image set
    and loads through the same uint8 path as users' data. The file is written under a
    temporary name and renamed, so an interrupted export leaves no half file. The zip
    members carry a fixed timestamp (numpy.savez stamps the current time), so every
    export has the same bytes and so the same dataset digest, on every machine."""
    from sklearn.datasets import load_digits

    if out.suffix.lower() != ".npz":
        raise TransferSearchError(f"{out}: name the file *.npz (numpy.load reads it back)")
    if out.is_dir():
        raise TransferSearchError(f"{out}: is a folder; give a file name ending .npz")
    digits = load_digits()
    x = np.rint(np.asarray(digits.images, dtype=np.float64) * (255.0 / 16.0)).astype(np.uint8)
    y = np.asarray(digits.target, dtype=np.int64)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".npz")
    except OSError as err:
        raise TransferSearchError(f"{out}: cannot write here ({err.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w") as archive:
            for name, array in (("x", x), ("y", y)):
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, array, allow_pickle=False)
                member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                archive.writestr(member, buffer.getvalue(), compress_type=zipfile.ZIP_DEFLATED)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
