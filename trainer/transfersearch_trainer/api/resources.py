"""What a search's resource request means for the trainer: the CPU threads it computes with.

One rule for the operator (it sets OMP_NUM_THREADS/MKL_NUM_THREADS in trainer pods) and
for the local run and the pod (which set torch's thread count): the whole CPUs of
``spec.resources.cpu``, at least 1. The thread count is part of what a result depends
on (float sums are ordered by threads), so putting it in the manifest is what makes
the same manifest and seed give the same result everywhere.
"""

from __future__ import annotations

import math
from decimal import Decimal

from kubernetes.utils import parse_quantity

MAX_THREADS = 1024  # a "2k" CPU request is a typo, not a reason for 2,000 threads


def cpu_threads(quantity: str) -> int:
    """Whole CPUs in a Kubernetes CPU quantity ("500m" -> 1, "2" -> 2, "2500m" -> 2), at least 1."""
    cores: Decimal = parse_quantity(quantity)  # type: ignore[no-untyped-call]
    if cores >= MAX_THREADS:  # compared before rounding: "1e99" is no million-digit integer
        return MAX_THREADS
    return max(1, math.floor(cores))
