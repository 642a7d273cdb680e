"""Shared fixtures: the real benchmark data, a real S3 server (moto over HTTP)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.paths import ROOT as REPO_ROOT

# One torch thread in the test process and the commands it starts: the tests' networks are
# tiny (threads buy nothing) and the suite runs beside its own subprocesses on 2 cores, where
# OpenMP threads spinning for a busy core made an 800-update training take minutes instead
# of seconds. Commands that take a manifest still set their threads from spec.resources.cpu.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = REPO_ROOT
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "transnas-bench-101"


# The smallest agent that still learns: what tests train when training is not the point.
TINY_HP: dict[str, int] = {
    "d_model": 16,
    "layers": 1,
    "heads": 2,
    "ff": 32,
    "num_actors": 16,
    "episode_steps": 12,
    "batch_size": 32,
    "learning_starts": 128,
    "eval_searches": 8,
    "eval_budget": 10,
}


def hp_flags(hp: dict[str, object]) -> list[str]:
    """`--hp name=value` flags for the CLI."""
    return [arg for k, v in hp.items() for arg in ("--hp", f"{k}={v}")]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The TransNAS-Bench-101 folder ($TRANSFERSEARCH_DATA or ../shared/data/...).

    Missing data is a failure, not a skip: CI has it, and a silently skipped
    loader test would hide a broken loader.
    """
    path = Path(os.environ.get("TRANSFERSEARCH_DATA") or DEFAULT_DATA)
    if not (path / "tnb101_micro_final_valid.csv").is_file():
        pytest.fail(
            f"benchmark data not found at {path}: set TRANSFERSEARCH_DATA to the folder with "
            "the TransNAS-Bench-101 files (see ../shared/data/transnas-bench-101/README.md)"
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 API (moto in server mode) on loopback; yields its endpoint URL."""
    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """Point the product's S3 client at the moto server, with a fresh local cache."""
    monkeypatch.setenv("TRANSFERSEARCH_S3_ENDPOINT", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("TRANSFERSEARCH_CACHE", str(tmp_path / "cache"))
    return s3_server


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus's promtool; missing is a failure (make test installs it as root)."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool not found: install Debian's `prometheus` package (make test does so as root)"
        )
    return path


def _trainer_exists() -> bool:
    from transfersearch_trainer.cli.main import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    names |= {g.name or "" for g in app.registered_groups}
    return "train" in names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`needs_trainer` tests run once `transfersearch train` exists, and skip until then."""
    if _trainer_exists():
        return
    skip = pytest.mark.skip(reason="needs `transfersearch train`, which does not exist yet")
    for item in items:
        if "needs_trainer" in item.keywords:
            item.add_marker(skip)
