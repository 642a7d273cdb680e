"""The dataset every loader produces and the training evaluator consumes: arrays in memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A classification dataset split into train and validation, ready for torch.

    Images are float32 ``(N, C, H, W)`` scaled to [0, 1]; labels int64 ``0..classes-1``.
    `sha256` identifies the data the user gave (the file's or folder's digest, plus the
    split), so a cached evaluation is reused only on the very same data."""

    name: str
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_val: npt.NDArray[np.float32]
    y_val: npt.NDArray[np.int64]
    classes: int
    sha256: str

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def resolution(self) -> tuple[int, int]:
        return int(self.x_train.shape[2]), int(self.x_train.shape[3])
