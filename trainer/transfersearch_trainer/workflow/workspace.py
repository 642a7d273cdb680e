"""What every step of a search works with, and where its progress goes.

The steps (get a source agent, train the target agent, evaluate it) are shared by the
local run, the trainer pod and the studies; each passes one `Workspace` instead of the
same four arguments to every step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import torch

from transfersearch_trainer.agent.hyperparameters import Hyperparameters
from transfersearch_trainer.api.resources import cpu_threads
from transfersearch_trainer.api.spec import TransferSearchSpec
from transfersearch_trainer.benchmark.table import Benchmark

Tick = Callable[[int, dict[str, float]], None]


class Reporter(Protocol):
    """Progress of long steps: a bar on a terminal, log lines in a pod, nothing in tests."""

    def task(self, description: str, total: int) -> AbstractContextManager[Tick]: ...

    def log(self, text: str) -> None: ...


class QuietReporter:
    @contextmanager
    def task(self, description: str, total: int) -> Iterator[Tick]:
        yield lambda n, info: None

    def log(self, text: str) -> None:
        pass


@dataclass(frozen=True)
class Workspace:
    bench: Benchmark
    device: torch.device
    hp: Hyperparameters
    reporter: Reporter


def use_threads(spec: TransferSearchSpec) -> int:
    """Compute with the whole CPUs of spec.resources.cpu, as the operator's pods do.

    Float sums depend on how work is split between threads, and a trained agent on every
    bit of its updates: with the thread count taken from the manifest instead of the
    machine, the same manifest and seed give the same agents and results everywhere.
    """
    threads = cpu_threads(spec.resources.cpu)
    torch.set_num_threads(threads)
    return threads
