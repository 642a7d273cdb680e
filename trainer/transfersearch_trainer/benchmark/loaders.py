"""Readers for the TransNAS-Bench-101 result files.

Three formats hold the same numbers: NASLib's flat CSVs, NASLib's zipped JSON
lists (``zen/benchmark--transbench101_<space>--<task>--<start>.json``), and the
official API file ``transnas-bench_v10141024.pth``. Each reader checks what it
reads (counts, duplicates, unknown tasks, non-finite values) and names the file
and the problem, because a silently short table would bias every search result.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from transfersearch_trainer.api.errors import BenchmarkDataError, TransferSearchError
from transfersearch_trainer.api.tasks import TASK_INFO, TASKS, SpaceName, check_space
from transfersearch_trainer.benchmark.datasource import resolve_data
from transfersearch_trainer.benchmark.spaces import SearchSpace, get_space
from transfersearch_trainer.benchmark.table import Benchmark

PthMode = Literal["final", "best"]
DATA_ENV = "TRANSFERSEARCH_DATA"
OFFICIAL_PTH = "transnas-bench_v10141024.pth"
CSV_NAME = "tnb101_{space}_final_valid.csv"
ZIP_NAMES = {"micro": "all_benchmarks_zen.zip", "macro": "tnb101_macro_zen.zip"}
_ZIP_MEMBER = re.compile(r"benchmark--transbench101_(micro|macro)--(\w+)--(\d+)\.json$")


class _Table:
    """Collects values per (task, architecture) and reports gaps and duplicates."""

    def __init__(self, space: SearchSpace, source: str) -> None:
        self.space = space
        self.source = source
        self.values = {t: np.full(space.size, np.nan) for t in TASKS}
        self.seen = {t: np.zeros(space.size, dtype=bool) for t in TASKS}

    def put(self, task: str, arch: str, value: Any, where: str) -> None:
        if task not in TASK_INFO:
            raise BenchmarkDataError(
                f"{self.source}: {where}: unknown task {task!r} "
                f"(expected one of {', '.join(TASKS)})"
            )
        try:
            i = self.space.index(arch)
        except TransferSearchError as err:
            raise BenchmarkDataError(f"{self.source}: {where}: {err}") from None
        if self.seen[task][i]:
            raise BenchmarkDataError(
                f"{self.source}: {where}: architecture {self.space.arch_str(i)} appears twice "
                f"for task {task}"
            )
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise BenchmarkDataError(
                f"{self.source}: {where}: value {value!r} for task {task} is not a number"
            ) from None
        if not np.isfinite(number):
            raise BenchmarkDataError(
                f"{self.source}: {where}: value for task {task} of {self.space.arch_str(i)} "
                f"is {number} (NaN or infinite); the file is corrupt, fetch it again"
            )
        self.seen[task][i] = True
        self.values[task][i] = number

    def finish(self) -> Benchmark:
        for task in TASKS:
            missing = np.flatnonzero(~self.seen[task])
            if missing.size:
                raise BenchmarkDataError(
                    f"{self.source}: task {task} has {self.space.size - missing.size} of "
                    f"{self.space.size} {self.space.name} architectures (missing e.g. "
                    f"{self.space.arch_str(int(missing[0]))}); the file is truncated or not "
                    f"a complete TransNAS-Bench-101 {self.space.name} table"
                )
        values = np.stack([self.values[t] for t in TASKS])
        return Benchmark(self.space, TASKS, values, source=self.source)


def load_csv(path: Path, space: SpaceName) -> Benchmark:
    """NASLib's flat table: one row per architecture, one column per task."""
    table = _Table(get_space(space), str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BenchmarkDataError(f"{path}: cannot read ({err})") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    if "arch_str" not in columns and "op_tuple" not in columns:
        raise BenchmarkDataError(
            f"{path}: no 'arch_str' or 'op_tuple' column (header: {','.join(columns) or 'empty'})"
        )
    known = {"naslib_idx", "op_tuple", "arch_str", *TASKS}
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise BenchmarkDataError(
            f"{path}: unknown column(s) {', '.join(unknown)}; task columns must be named "
            f"{', '.join(TASKS)}"
        )
    missing = [t for t in TASKS if t not in columns]
    if missing:
        raise BenchmarkDataError(f"{path}: missing task column(s) {', '.join(missing)}")
    key = "arch_str" if "arch_str" in columns else "op_tuple"
    for line, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise BenchmarkDataError(f"{path}: line {line}: wrong number of fields (truncated?)")
        for task in TASKS:
            table.put(task, row[key], row[task], f"line {line}")
    return table.finish()


def load_naslib_zip(path: Path, space: SpaceName) -> Benchmark:
    """NASLib's zip of JSON lists, entries like ``{"arch": "(1, 3, 0, 3, 2, 1)", ...}``.

    Each entry's ``val_accuracy`` is the task's metric; other keys (the zero-cost
    proxy ``zen``, ``idx``) are ignored.
    """
    table = _Table(get_space(space), str(path))
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as err:
        raise BenchmarkDataError(
            f"{path}: not a readable zip file ({err}); it is truncated or corrupt, fetch it again"
        ) from None
    members = 0
    with archive:
        for name in sorted(archive.namelist()):
            m = _ZIP_MEMBER.search(name)
            if not m or m.group(1) != space:
                continue
            members += 1
            try:
                entries = json.loads(archive.read(name))
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
                raise BenchmarkDataError(
                    f"{path}: member {name} is unreadable ({err}); the zip is corrupt"
                ) from None
            if not isinstance(entries, list):
                raise BenchmarkDataError(f"{path}: member {name} is not a JSON list")
            for n, entry in enumerate(entries):
                if (
                    not isinstance(entry, dict)
                    or "arch" not in entry
                    or "val_accuracy" not in entry
                ):
                    raise BenchmarkDataError(
                        f"{path}: member {name} entry {n} lacks 'arch' or 'val_accuracy'"
                    )
                table.put(m.group(2), str(entry["arch"]), entry["val_accuracy"], f"{name}[{n}]")
    if members == 0:
        raise BenchmarkDataError(
            f"{path}: holds no 'zen/benchmark--transbench101_{space}--<task>--<n>.json' members; "
            f"is it the {space} file ({ZIP_NAMES[space]})?"
        )
    return table.finish()


def load_pth(path: Path, space: SpaceName, mode: PthMode = "final") -> Benchmark:
    """The official API file: ``data[space][arch_str][task]['metrics'][name]`` is a per-epoch list.

    Read with torch's weights-only unpickler, which only builds plain containers,
    numbers and tensors: a file that needs anything else is refused.
    """
    try:
        import torch
    except ImportError:
        raise TransferSearchError(
            f"{path}: reading the official .pth file needs torch: "
            "pip install 'transfersearch[trainer]'"
        ) from None
    # numpy scalars and dtypes rebuild from raw bytes, without running code: allowed,
    # since files written by numpy-based tools contain them. Nothing else is.
    numpy_types = [np.dtype, np._core.multiarray.scalar]  # type: ignore[attr-defined]
    numpy_types += [type(np.dtype(c)) for c in "fdeihlqbBHILQ?"]
    try:
        with torch.serialization.safe_globals(numpy_types):
            database = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        text = str(err)
        detail = next(
            (ln.strip() for ln in text.splitlines() if "WeightsUnpickler error" in ln),
            text.splitlines()[0] if text else type(err).__name__,
        )
        raise BenchmarkDataError(
            f"{path}: cannot read as a TransNAS-Bench-101 .pth file ({detail}); it is corrupt, "
            "or holds objects other than plain containers, numbers and tensors, which are "
            "never unpickled"
        ) from None
    if not isinstance(database, Mapping) or not isinstance(database.get("data"), Mapping):
        raise BenchmarkDataError(f"{path}: no 'data' mapping; not a TransNAS-Bench-101 API file")
    archs = database["data"].get(space)
    if not isinstance(archs, Mapping):
        raise BenchmarkDataError(
            f"{path}: no '{space}' search space in data "
            f"(has {', '.join(map(str, database['data']))})"
        )
    table = _Table(get_space(space), str(path))
    for arch, per_task in archs.items():
        if not isinstance(per_task, Mapping):
            raise BenchmarkDataError(f"{path}: data/{space}/{arch} is not a mapping of tasks")
        for task, result in per_task.items():
            where = f"data/{space}/{arch}/{task}"
            if task not in TASK_INFO:
                raise BenchmarkDataError(
                    f"{path}: {where}: unknown task {task!r} (expected one of {', '.join(TASKS)})"
                )
            series = _metric_series(result, TASK_INFO[task].pth_metric, path, where)
            value = series[-1] if mode == "final" else max(series)
            table.put(task, arch, value, where)
    return table.finish()


def _metric_series(result: Any, metric: str, path: Path, where: str) -> list[float]:
    metrics = result.get("metrics") if isinstance(result, Mapping) else None
    series = metrics.get(metric) if isinstance(metrics, Mapping) else None
    if isinstance(series, Iterable) and not isinstance(series, str | bytes):
        values = [float(v) for v in series]
        if values:
            return values
    raise BenchmarkDataError(f"{path}: {where}: no per-epoch list 'metrics/{metric}'")


# sha256sum's output: the digest, a space, a space or "*" (binary mode), the file name;
# or, with --tag, "SHA256 (name) = digest". Lines starting with "#" are comments.
_SUMS_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](?P<name>.+)")
_SUMS_TAGGED = re.compile(r"SHA256 \((?P<name>.+)\) = ([0-9a-fA-F]{64})")
SUMS_NAME = "SHA256SUMS"


def read_sums(sums: Path) -> dict[str, str]:
    """The digests a SHA256SUMS file lists, by file name; every line must be one.

    A line that does not parse is an error rather than skipped: skipping it would
    leave its file unverified without anyone noticing.
    """
    try:
        text = sums.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BenchmarkDataError(f"{sums}: cannot read ({err}); fix or delete it") from None
    digests: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        m = _SUMS_LINE.fullmatch(line) or _SUMS_TAGGED.fullmatch(line)
        if m is None:
            raise BenchmarkDataError(
                f"{sums}: line {n} is not '<sha256 hex>  <file name>'; regenerate the file "
                f"with `sha256sum * > {SUMS_NAME}`"
            )
        name = m.group("name")
        digest = (m.group(1) if m.re is _SUMS_LINE else m.group(2)).lower()
        if digests.get(name, digest) != digest:
            raise BenchmarkDataError(f"{sums}: line {n} gives {name} a second, different sha256")
        digests[name] = digest
    return digests


def _verify_checksum(path: Path) -> None:
    """Check `path` against the SHA256SUMS file beside it; no SHA256SUMS, no check.

    Once a SHA256SUMS is there, it must vouch for the file: a malformed one, or one
    without a line for the file, is an error, or a damaged or edited table would
    load as if it had been verified.
    """
    sums = path.parent / SUMS_NAME
    if not sums.exists():
        return
    expected = read_sums(sums).get(path.name)
    if expected is None:
        raise BenchmarkDataError(
            f"{path}: {sums} has no line for {path.name}, so it cannot be verified; add one "
            f"(sha256sum {path.name} >> {SUMS_NAME}) or remove {SUMS_NAME} to load unverified data"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise BenchmarkDataError(
            f"{path}: sha256 {digest[:12]}... does not match {sums} "
            f"({expected[:12]}...); the file is corrupt or was changed, fetch it again"
        )


def find_file(folder: Path, space: SpaceName, mode: PthMode) -> Path:
    """Pick the file to read in a data folder: CSV, then NASLib zip, then the official .pth."""
    candidates = (
        [] if mode == "best" else [folder / CSV_NAME.format(space=space), folder / ZIP_NAMES[space]]
    )
    candidates += [folder / OFFICIAL_PTH, *sorted(folder.glob("*.pth"))]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    wanted = (
        f"{OFFICIAL_PTH} (mode 'best' needs per-epoch curves, which only the .pth file has)"
        if mode == "best"
        else f"{CSV_NAME.format(space=space)}, {ZIP_NAMES[space]} or {OFFICIAL_PTH}"
    )
    raise BenchmarkDataError(
        f"{folder}: no benchmark file for the {space} space; expected {wanted}"
    )


def load_file(path: Path, space: SpaceName, mode: PthMode = "final") -> Benchmark:
    if not path.is_file():
        raise BenchmarkDataError(f"{path}: file not found")
    _verify_checksum(path)
    suffix = path.suffix.lower()
    if suffix == ".pth":
        return load_pth(path, space, mode)
    if mode == "best":
        raise TransferSearchError(
            f"{path}: mode 'best' needs the official .pth file (CSV and zip hold final values only)"
        )
    if suffix == ".csv":
        return load_csv(path, space)
    if suffix == ".zip":
        return load_naslib_zip(path, space)
    raise BenchmarkDataError(f"{path}: unknown benchmark file type; use a .csv, .zip or .pth file")


def load_benchmark(
    data: str | os.PathLike[str] | None = None, space: str = "micro", mode: PthMode = "final"
) -> Benchmark:
    """Load a benchmark from a file or folder, local or ``s3://``, or from $TRANSFERSEARCH_DATA."""
    space_name = check_space(space)
    if mode not in ("final", "best"):
        raise TransferSearchError(f"mode: unknown value {mode!r}; use final or best")
    location = str(data) if data else os.environ.get(DATA_ENV, "")
    if not location:
        raise TransferSearchError(
            f"no benchmark data given: pass --data PATH or set {DATA_ENV} to the folder holding "
            "the TransNAS-Bench-101 files (e.g. ../shared/data/transnas-bench-101) or an s3:// URI"
        )
    return _load_cached(str(resolve_data(location).resolve()), space_name, mode)


@cache
def _load_cached(path: str, space: SpaceName, mode: PthMode) -> Benchmark:
    local = Path(path)
    if local.is_dir():
        local = find_file(local, space, mode)
    elif not local.exists():
        raise BenchmarkDataError(
            f"{local}: no such file or folder; pass --data or set {DATA_ENV} to the folder with "
            "the TransNAS-Bench-101 files"
        )
    return load_file(local, space, mode)
