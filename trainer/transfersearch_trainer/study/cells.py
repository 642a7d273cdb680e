"""What every resumable study shares: cells written atomically, settings pinned, a pool.

A study is split into cells, each written to ``OUT/cells/<file>.json`` when done; a
rerun skips the cells on disk, so an interrupted study continues where it stopped and,
every cell being seeded, ends with the results of an uninterrupted one. An output
folder belongs to one set of settings (``OUT/settings.json``).

``OUT/cells.jsonl.gz`` (`pack_cells`) holds every finished record, one sorted JSON line each:
the part of a study worth committing. A fresh checkout resumes from it alone, the
cell files and agents being scratch space (a missing agent is pretrained again).
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

import torch

from transfersearch_trainer.api.errors import TransferSearchError
from transfersearch_trainer.api.tasks import check_task
from transfersearch_trainer.benchmark.loaders import load_benchmark
from transfersearch_trainer.benchmark.table import Benchmark

Progress = Callable[[str, int, int], None]  # (cell id, cells done, cells in all)


class CellLike(Protocol):
    @property
    def id(self) -> str: ...


def write_atomic(path: Path, data: bytes) -> None:
    """A reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(data).encode())


PACK = "cells.jsonl.gz"


def load_cells(out: Path, schema: str) -> dict[str, dict[str, Any]]:
    """The finished cells' records by id, from the pack and the cell files (files of another
    schema or unreadable: redone; a cell file wins over the pack's line)."""
    found = {}
    pack = out / PACK
    if pack.is_file():
        try:
            lines = gzip.decompress(pack.read_bytes()).decode().splitlines()
        except (OSError, EOFError, UnicodeDecodeError):
            lines = []  # not written by us (ours are atomic): every cell is redone
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short: that cell is redone
            if isinstance(record, dict) and record.get("schema") == schema:
                found[record["id"]] = record
    for path in sorted((out / "cells").glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except ValueError:
            continue  # not written by us (ours are atomic): recompute it
        if record.get("schema") == schema:
            found[record["id"]] = record
    return found


def pack_cells(out: Path, done: dict[str, dict[str, Any]]) -> Path:
    """Write every finished record to ``OUT/cells.jsonl.gz``, one per line, sorted by id
    (atomically: a reader sees the old pack or the new one; no timestamp in the gzip
    header, so the same cells give the same bytes)."""
    path = out / PACK
    text = "".join(json.dumps(done[c], sort_keys=True) + "\n" for c in sorted(done))
    write_atomic(path, gzip.compress(text.encode(), mtime=0))
    return path


def check_tasks(tasks: Sequence[str], flag: str = "--tasks") -> None:
    """A study's tasks, each both a source and a target: two or more, valid, no repeats."""
    if len(tasks) < 2:
        raise TransferSearchError(f"{flag}: give at least two tasks (comma-separated)")
    if len(set(tasks)) != len(tasks):
        raise TransferSearchError(f"{flag}: a task is listed twice")
    for t in tasks:
        check_task(t, flag)


def check_settings(out: Path, settings: dict[str, Any], what: str) -> None:
    """An output folder belongs to one set of settings: resuming with others would mix results."""
    path = out / "settings.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != json.loads(json.dumps(settings)):
            raise TransferSearchError(
                f"{out}: holds a {what} with other settings ({path}); use another --out or "
                "the same flags to resume it"
            )
    else:
        write_json(path, settings)


_BENCHMARKS: dict[tuple[str | None, str], Benchmark] = {}


def worker_benchmark(data: str | None, space: str) -> Benchmark:
    """This process's benchmark, loaded once (a worker runs many cells, each reads it), with
    one torch thread: N workers then share N cores instead of fighting over them."""
    if (data, space) not in _BENCHMARKS:
        torch.set_num_threads(1)
        _BENCHMARKS[(data, space)] = load_benchmark(data, space)
    return _BENCHMARKS[(data, space)]


def run_cells(
    todo: Sequence[CellLike],
    run: Callable[[Any], dict[str, Any]],
    done: dict[str, dict[str, Any]],
    workers: int,
    init: Callable[[], object],
    tick: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> bool:
    """Run `todo` (in this process, or `workers` processes each started with `init`),
    recording each result in `done`; False when `should_stop` ended it part-way.

    `should_stop` is asked before each cell is started (one worker) or collected (many).
    `run` and `init` must be picklable (module-level functions or partials of them).
    """
    if not todo:
        return True
    if workers <= 1:
        init()
        for c in todo:
            if should_stop is not None and should_stop():
                return False
            done[c.id] = run(c)
            if tick is not None:
                tick(c.id)
        return True
    with ProcessPoolExecutor(workers, initializer=init) as pool:
        pending: dict[Future[dict[str, Any]], CellLike] = {pool.submit(run, c): c for c in todo}
        while pending:
            if should_stop is not None and should_stop():
                for fut in pending:
                    fut.cancel()
                return False
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                c = pending.pop(fut)
                done[c.id] = fut.result()
                if tick is not None:
                    tick(c.id)
    return True


def run_phases(
    phases: Sequence[Sequence[CellLike]],
    run: Callable[[Any], dict[str, Any]],
    done: dict[str, dict[str, Any]],
    workers: int,
    init: Callable[[], object],
    tick: Callable[[str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> bool:
    """`run_cells` on each phase's unfinished cells in turn (a later phase needs the earlier
    ones' agents); False, and the later phases left alone, when `should_stop` ended one."""
    for phase in phases:
        todo = [c for c in phase if c.id not in done]
        if not run_cells(todo, run, done, workers, init, tick, should_stop):
            return False
    return True
